"""(f) Chaining two graphs in a guest: an output through linear memory, against set_input_from_output with the
producing graph's outputs kept on its device (residence=device).

Graph A ("expand": an outer product) turns a 4 KiB f32 vector into a 1024x4096 f32 matrix (16 MiB); graph B
("reduce": relu, then a sum over each row) turns that back into 4 KiB. guests/chain_loop.wat runs k chains per
export call, the loop inside wasm. Sides, interleaved:

- baseline, through linear memory (what a plain witx guest does): set_input(A) + compute(A) + get_output(A) (16
  MiB into the guest) + set_input(B) from that buffer (16 MiB out again) + compute(B) + get_output(B);
- ours (judged): set_input_from_output(B, 0, A, 0) in place of the middle get_output/set_input, with A's
  ``residence`` property set to ``device``: on CUDA the 16 MiB stay on the GPU, on the CPU they are not copied;
- also printed: set_input_from_output with A's residence left at ``memory`` (on CUDA, A's output comes to host
  memory after compute and goes back for B: two PCIe copies, but none through linear memory).

Figure: time per chain. Target: ours / baseline <= 0.9 (on CUDA the copies dominate and the ratio is far lower).

    python benchmarks/residence.py [--reps 40] [--k 4] [--device cpu|cuda]
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _common import F32, GUESTS, check_errno, dump, interleaved, judge, memory_of, parser, timed, view, write_tensor
from torch import nn

from wasinn_jupyter.host import Host, Session

CHAIN_LOOP = GUESTS / "chain_loop.wat"
TARGET = 0.9
ROWS, COLS = 1024, 4096
MID_BYTES = ROWS * COLS * 4
TENSOR_A, TENSOR_B, NAMES, X_AT, OUT_AT, MID_AT = 256, 512, 1024, 4096, 8192, 65536
PAGES = (MID_AT + MID_BYTES) // 65536 + 1


class Expand(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1.0, 1.0, COLS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.outer(x, self.w)


class Reduce(nn.Module):
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return torch.relu(y).sum(dim=1)


def guest_for(session: Session, module: object, expand: str) -> object:
    """A chain_loop guest set up with graphs ``expand`` and ``reduce``, its memory laid out for both runs."""
    guest = session.instantiate(module, label=f"chain-{expand}")
    if guest.call("grow", PAGES - 1, watch=False) < 0:
        raise SystemExit("the guest could not grow its memory")
    mem = view(memory_of(guest), guest.store)
    write_tensor(mem, TENSOR_A, [ROWS], F32, X_AT, ROWS * 4)
    write_tensor(mem, TENSOR_B, [ROWS, COLS], F32, MID_AT, MID_BYTES)
    x = np.linspace(-2.0, 2.0, ROWS, dtype=np.float32)
    mem[X_AT : X_AT + ROWS * 4] = x.view(np.uint8)
    a, b = expand.encode(), b"reduce"
    mem[NAMES : NAMES + len(a)] = np.frombuffer(a, np.uint8)
    mem[NAMES + 64 : NAMES + 64 + len(b)] = np.frombuffer(b, np.uint8)
    check_errno(guest.call("setup", NAMES, len(a), NAMES + 64, len(b), watch=False), guest, "setup")
    return guest


def output(guest: object) -> np.ndarray:
    return view(memory_of(guest), guest.store)[OUT_AT : OUT_AT + ROWS * 4].copy().view(np.float32)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0], reps=40, device=True)
    p.add_argument("--k", type=int, default=4, help="chains per sample (default 4)")
    args = p.parse_args(argv)
    device, k = args.device, args.k
    if device == "cuda" and not torch.cuda.is_available():
        print("(f) --device cuda: CUDA is not available here; nothing measured")
        return 0
    target = "gpu" if device == "cuda" else "cpu"
    session = Session(Host())
    expand = Expand().eval()
    session.host.register("expand_memory", expand, target=target)
    session.host.register("expand_device", expand, target=target)
    session.host.register("reduce", Reduce(), target=target)
    session.host.set_property("expand_device", "residence", "device")
    module = session.compile(Path(CHAIN_LOOP))
    plain, resident = guest_for(session, module, "expand_memory"), guest_for(session, module, "expand_device")

    def copy_run(n: int) -> int:
        return plain.call("run_copy", n, TENSOR_A, MID_AT, MID_BYTES, TENSOR_B, OUT_AT, ROWS * 4, watch=False)

    def bind_run(guest: object, n: int) -> int:
        return guest.call("run_bind", n, TENSOR_A, OUT_AT, ROWS * 4, watch=False)

    x = torch.linspace(-2.0, 2.0, ROWS)
    with torch.inference_mode():
        expected = Reduce()(expand(x)).numpy()
    results = {}
    for label, run, guest in (("copy", copy_run, plain), ("bind", lambda n: bind_run(plain, n), plain),
                              ("resident", lambda n: bind_run(resident, n), resident)):  # fmt: skip
        check_errno(run(1), guest, label)
        results[label] = output(guest)
    same = all(np.allclose(r, expected, rtol=1e-4, atol=1e-3) for r in results.values())
    equal = np.array_equal(results["copy"], results["resident"])
    print(f"(f) chaining {MID_BYTES >> 20} MiB between two graphs on {device}, {k} chains per sample, {args.reps} reps")
    print(f"  check     all three sides match torch: {same} (copy and resident bitwise equal: {equal})")
    if not same:
        raise SystemExit("the chained outputs differ from torch's")

    def side(run: Callable[[int], int]) -> float:
        return timed(lambda: run(k), k)

    s_resident, s_copy, s_bind = interleaved(
        [
            lambda: side(lambda n: bind_run(resident, n)),
            lambda: side(copy_run),
            lambda: side(lambda n: bind_run(plain, n)),
        ],
        args.reps,
        warmup=2,
    )
    result = judge(
        f"residence[{device}]",
        "set_input_from_output, residence=device (per chain)",
        s_resident,
        "get_output + set_input through linear memory (per chain)",
        s_copy,
        unit="ms",
        target=TARGET,
        higher_is_better=False,
        ratio_meaning="ours / through linear memory (time)",
    )
    bind_ratio = statistics.median([b / c for b, c in zip(s_bind, s_copy, strict=True)])
    print(
        f"  info      set_input_from_output, residence=memory: {statistics.median(s_bind) * 1e3:.2f} ms per chain, "
        f"{bind_ratio:.3f}x through linear memory (not judged; on CUDA: a device->host->device round trip)"
    )
    result.notes.append(f"bind with residence=memory (not judged): {bind_ratio:.3f}x")
    dump([result], args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
