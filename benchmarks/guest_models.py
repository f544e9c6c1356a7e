"""(d) What the sandbox costs: a guest-supplied model run in its confined worker against the same model in-process.

Both sides load the same TorchScript archive through ``Client.load`` (what a guest's ``load`` reaches), one host
with ``Limits(guest_models="sandbox")`` (the default), one with ``"in-process"`` (the trusted opt-in), and time
``set_input + compute + get_output`` per call, interleaved in one process:

- ``tiny``: a 16x16 Linear on a 1x16 input: the fixed cost of crossing to the worker and back (two messages,
  two memfds) against a few microseconds of torch;
- ``cnn``: the CNN of benchmark (c) on a 1x3x224x224 input (588 KiB in, 4000 bytes out): what that fixed cost and
  the extra copies weigh on a model of about 10 ms.

Printed, not judged on ``tiny`` (its ratio is large by construction); judged on ``cnn``: sandboxed / in-process
<= 1.10. Also printed: the time of the first ``load`` (the worker starts and imports torch) and of a second one
(the worker is already there), each against the in-process load.

    python benchmarks/guest_models.py [--reps 40] [--device cpu|cuda]
"""

from __future__ import annotations

import io
import time
import warnings

import numpy as np
import torch
from _common import dump, interleaved, judge, parser, timed
from cnn_model import CUDA_WIDTH, SHAPE, make_cnn
from torch import nn

from wasinn_jupyter.host import Client, Host, Limits, Tensor

TARGET = 1.10


def archive(module: nn.Module) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(module.eval()), buffer)
    return buffer.getvalue()


def call(client: Client, ctx: int, x: Tensor, k: int) -> float:
    def go() -> None:
        for _ in range(k):
            client.set_input(ctx, 0, x)
            client.compute(ctx)
            client.get_output(ctx, 0).to_numpy()

    return timed(go, k)


def main() -> None:
    p = parser(__doc__.splitlines()[0], reps=40, device=True)
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("(d) --device cuda: CUDA is not available here; nothing measured")
        return
    target = "gpu" if args.device == "cuda" else "cpu"
    sandboxed = Host(limits=Limits(guest_models="sandbox")).client("sandboxed")
    in_process = Host(limits=Limits(guest_models="in-process")).client("in-process")
    results = []
    try:
        tiny = archive(nn.Linear(16, 16))
        start = time.perf_counter()
        sandboxed.load([tiny], "pytorch", target)
        first = time.perf_counter() - start
        start = time.perf_counter()
        sandboxed.load([tiny], "pytorch", target)
        second = time.perf_counter() - start
        start = time.perf_counter()
        in_process.load([tiny], "pytorch", target)
        local = time.perf_counter() - start
        print(f"load, tiny archive ({len(tiny)} bytes): sandboxed first {first * 1e3:.1f} ms (the worker starts), "
              f"then {second * 1e3:.2f} ms; in-process {local * 1e3:.2f} ms")  # fmt: skip

        width = CUDA_WIDTH if args.device == "cuda" else 1
        for name, blob, x, k, unit in (
            ("tiny", tiny, np.ones((1, 16), np.float32), 20, "us"),
            ("cnn", archive(make_cnn(width)), np.random.default_rng(0).random(SHAPE, np.float32), 2, "ms"),
        ):
            tensor = Tensor.from_value(x)
            sides = []
            for client in (sandboxed, in_process):
                ctx = client.init_execution_context(client.load([blob], "pytorch", target))
                sides.append(lambda c=client, ctx=ctx, t=tensor, k=k: call(c, ctx, t, k))
            ours, base = interleaved(sides, args.reps, warmup=3)
            print(f"{name}: set_input + compute + get_output, {k} per sample")
            result = judge(
                f"guest model in the sandbox ({name})",
                "sandboxed (worker process)",
                ours,
                "in-process",
                base,
                unit=unit,
                target=TARGET if name == "cnn" else float("inf"),
                higher_is_better=False,
                ratio_meaning="sandboxed / in-process time per call",
                notes=["not judged: the fixed cost of the process boundary"] if name == "tiny" else [],
            )
            if name == "cnn":
                results.append(result)
    finally:
        sandboxed.close()
        in_process.close()
    dump(results, args.json)


if __name__ == "__main__":
    main()
