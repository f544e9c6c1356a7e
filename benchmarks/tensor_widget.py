"""(e) Building a tensor widget's state (summary, histogram, heatmap slice, value grid) for 1e6..1e8 elements.

Ours: ``TensorWidget(t)``: everything the front-end gets at first display, computed on the tensor's device
(chunked statistics and histogram, a block-mean or strided heatmap of the first 2-D slice at most 256 px a side),
made into bytes. Shapes: 1e6 = [1000, 1000], 1e7 = [10, 1000, 1000], 1e8 = [10000, 10000] (its one slice is
the whole tensor, the heatmap's worst case). f32, f16 and bf16 with random normal values.

Baseline (judged, for 1e8): the obvious torch code for the same numbers, each a whole-tensor op on the same device:
``aminmax``, ``var_mean``, ``isnan().sum()``, ``isinf().sum()``, ``histc`` (64 bins; half types widened to
float32 first, which histc and var_mean need on the CPU) and an ``avg_pool2d`` of the slice to 256 px.
Target: ours / baseline <= 1.0 (no slower than the obvious code), and, printed beside it, under 1 s absolute
for 100 million elements ("well under a second").

    python benchmarks/tensor_widget.py [--reps 5] [--device cpu|cuda]
"""

from __future__ import annotations

import math
import os
import statistics
import sys
from typing import Any

import torch
import torch.nn.functional as F
from _common import dump, fmt_time, interleaved, judge, parser, timed

from wasinn_jupyter.widgets import TensorWidget
from wasinn_jupyter.widgets.summary import cpus_busy

TARGET = 1.0
SHAPES = {"1e6": (1000, 1000), "1e7": (10, 1000, 1000), "1e8": (10000, 10000)}
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def obvious(t: torch.Tensor) -> Any:
    """The whole-tensor way to the same figures (what one would write first)."""
    wide = t if t.dtype in (torch.float32, torch.float64) else t.float()
    lo, hi = torch.aminmax(wide)
    var, mean = torch.var_mean(wide, correction=0)
    nan = torch.isnan(wide).sum()
    inf = torch.isinf(wide).sum()
    hist = torch.histc(wide, 64, float(lo), float(hi))
    plane = wide.reshape(-1, wide.shape[-1]) if wide.dim() > 2 else wide
    plane = plane[: wide.shape[-2]]
    step = (math.ceil(plane.shape[0] / 256), math.ceil(plane.shape[1] / 256))
    small = F.avg_pool2d(plane[None, None], step, ceil_mode=True)
    return [x.cpu() for x in (lo, hi, var, mean, nan, inf, hist, small)]


def build(t: torch.Tensor) -> TensorWidget:
    widget = TensorWidget(t)
    widget.close()  # no front-end here: drop the comm and the reference
    return widget


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.splitlines()[0], reps=5, device=True).parse_args(argv)
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    load = os.getloadavg()[0]
    loop = "1 thread (busy CPUs)" if cpus_busy(torch.get_num_threads()) else f"{torch.get_num_threads()} threads"
    print(
        f"tensor widget state, {device} ({torch.get_num_threads()} torch threads; chunk loop on {loop}; "
        f"load average {load:.1f} on {os.cpu_count()} CPUs), median of {args.reps}:"
    )
    table: dict[tuple[str, str], float] = {}
    results = []
    for size, shape in SHAPES.items():
        for name, dtype in DTYPES.items():
            g = torch.Generator(device=device).manual_seed(0)
            t = torch.randn(shape, generator=g, device=device, dtype=torch.float32).to(dtype)
            sync()

            def ours(t: torch.Tensor = t) -> float:
                seconds = timed(lambda: build(t))
                sync()
                return seconds

            if size != "1e8":
                samples = interleaved([ours], reps=args.reps, warmup=1)[0]
                table[(size, name)] = statistics.median(samples)
                print(f"  {size} {name:4s} {fmt_time(table[(size, name)], 'ms')}", flush=True)
                continue

            def base(t: torch.Tensor = t) -> float:
                seconds = timed(lambda: obvious(t))
                sync()
                return seconds

            print(f"  {size} {name}, judged against the obvious whole-tensor code:", flush=True)
            mine, theirs = interleaved([ours, base], reps=args.reps, warmup=1)
            table[(size, name)] = statistics.median(mine)
            result = judge(
                f"tensor_widget {size} {name} {device}",
                f"TensorWidget({name}{list(shape)})",
                mine,
                "aminmax+var_mean+isnan+isinf+histc+avg_pool2d",
                theirs,
                unit="ms",
                target=TARGET,
                higher_is_better=False,
                ratio_meaning="our time / the obvious code's time",
                notes=[f"absolute: {statistics.median(mine):.3f} s for 1e8 elements (goal: well under 1 s)"],
            )
            results.append(result)
            del t
    print("summary, ms (rows: elements; columns: dtype):")
    print("          " + "  ".join(f"{n:>9s}" for n in DTYPES))
    for size in SHAPES:
        print(f"  {size:6s}  " + "  ".join(f"{table[(size, n)] * 1e3:9.1f}" for n in DTYPES))
    dump(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
