"""(c) A real CNN called through a guest against the same module called directly in torch.

The model (defined below): five 3x3 convolutions with ReLU and pooling on a 1x3x224x224 f32 input, global average
pool and a 1000-way linear layer; eval mode, random weights from torch.manual_seed(0). It is registered as the
named graph "cnn" (an nn.Module object; the host runs it under torch.inference_mode()). ``--width`` multiplies
every layer's channels: 1 on the CPU (about 10 ms per forward on 2 cores), 20 by default with --device cuda (about
5 ms on an H100, where width 1 takes 0.5 ms and the ratio would measure only per-call overhead).

Ours (judged): guests/nn_loop.wat does load_by_name("cnn") + init_execution_context once; then each timed sample
is ONE export call ``run(k, ...)`` whose loop INSIDE WASM does k forwards, each set_input (the 588 KiB input from
guest memory) + compute + get_output (the 4000-byte output into guest memory). Also timed, interleaved, and
printed but not judged: the same k forwards as k export calls ``run(1, ...)`` (one Python -> guest call each), and
the direct side timed a second time (an A/A ratio: how far apart two identical sides land on this machine now).
Baseline: the same module object called directly, ``module(x)`` k times under torch.inference_mode() with the same
input tensor (with --device cuda: ``module(x_cpu.to("cuda")).cpu()``, the same host<->device traffic as ours).
Figure: time per forward. Target: ours / direct <= 1.05.

    python benchmarks/cnn_model.py [--reps 100] [--k 2] [--device cpu|cuda] [--width N]
"""

from __future__ import annotations

import statistics
import sys

import numpy as np
import torch
from _common import (
    F32,
    NN_LOOP,
    check_errno,
    dump,
    interleaved,
    judge,
    memory_of,
    parser,
    setup_graph,
    timed,
    view,
    write_tensor,
)
from torch import nn

from wasinn_jupyter.host import Host, Session

TARGET = 1.05
SHAPE = (1, 3, 224, 224)
CLASSES = 1000
IN_BYTES = int(np.prod(SHAPE)) * 4
OUT_BYTES = CLASSES * 4
TENSOR_AT = 256
DATA_AT = 64 << 10
OUT_AT = DATA_AT + IN_BYTES + 4096
PAGES = (OUT_AT + OUT_BYTES) // 65536 + 1
CUDA_WIDTH = 20  # about 5 ms per forward on an H100


def make_cnn(width: int = 1) -> nn.Module:
    """The benchmark CNN; ``width`` multiplies every layer's channels (the GPU needs a wider one for >= 5 ms)."""
    torch.manual_seed(0)
    w = width

    def block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(3, 32 * w, stride=2),  # 112x112
        *block(32 * w, 64 * w),
        nn.MaxPool2d(2),  # 56x56
        *block(64 * w, 128 * w),
        nn.MaxPool2d(2),  # 28x28
        *block(128 * w, 256 * w),
        nn.MaxPool2d(2),  # 14x14
        *block(256 * w, 256 * w),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(256 * w, CLASSES),
    ).eval()


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0], reps=100, device=True)
    p.add_argument("--k", type=int, default=2, help="forwards per sample (default 2)")
    p.add_argument(
        "--width",
        type=int,
        help=f"channel multiplier (default 1 on the CPU, {CUDA_WIDTH} on CUDA, where width 1 runs in well under 5 ms)",
    )
    args = p.parse_args(argv)
    device, k = args.device, args.k
    width = args.width or (CUDA_WIDTH if device == "cuda" else 1)
    if device == "cuda" and not torch.cuda.is_available():
        print("(c) --device cuda: CUDA is not available here; nothing measured")
        return 0

    with torch.device(device):  # built where it runs (the wide CUDA model is large)
        model = make_cnn(width)
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))

    session = Session(Host())
    session.host.register("cnn", model, target="gpu" if device == "cuda" else "cpu")
    guest = session.instantiate(session.compile(NN_LOOP), label="cnn-bench")
    old = guest.call("grow", PAGES - 1, watch=False)
    if old < 0:
        raise SystemExit("the guest could not grow its memory")
    memory = memory_of(guest)
    mem = view(memory, guest.store)
    write_tensor(mem, TENSOR_AT, SHAPE, F32, DATA_AT, IN_BYTES)
    mem[DATA_AT : DATA_AT + IN_BYTES] = x.numpy().reshape(-1).view(np.uint8)
    setup_graph(guest, "cnn")

    if device == "cuda":

        def direct_once() -> torch.Tensor:
            return model(x.to("cuda")).cpu()
    else:

        def direct_once() -> torch.Tensor:
            return model(x)

    # warm up the direct path (oneDNN builds its kernels on the first calls), then check the guest's output once
    with torch.inference_mode():
        for _ in range(10):
            expected = direct_once()
    check_errno(guest.call("run", 1, TENSOR_AT, OUT_AT, OUT_BYTES, watch=False), guest, "cnn forward")
    mem = view(memory, guest.store)
    got = torch.from_numpy(mem[OUT_AT : OUT_AT + OUT_BYTES].copy().view(np.float32)).reshape(1, CLASSES)
    same = torch.allclose(got, expected.cpu(), rtol=1e-4, atol=1e-5)
    exact = torch.equal(got, expected.cpu())
    params = sum(p.numel() for p in model.parameters())
    print(f"(c) CNN on {device}, width {width}: {params} parameters, input {list(SHAPE)}")
    print(f"  check     guest output vs direct: allclose={same} (bitwise equal={exact})")
    if not same:
        raise SystemExit("the guest's output differs from the direct call")

    def ours() -> float:  # k forwards driven by the loop inside wasm: one export call
        return timed(lambda: guest.call("run", k, TENSOR_AT, OUT_AT, OUT_BYTES, watch=False), k)

    def ours_per_call() -> float:  # k forwards, one export call run(1) each (not judged)
        def go() -> None:
            for _ in range(k):
                guest.call("run", 1, TENSOR_AT, OUT_AT, OUT_BYTES, watch=False)

        return timed(go, k)

    def direct() -> float:
        def go() -> None:
            with torch.inference_mode():
                for _ in range(k):
                    direct_once()

        return timed(go, k)

    print(f"  timing    {k} forwards per sample; judged: the loop inside wasm, one run({k}) call; {args.reps} reps")
    s_ours, s_direct, s_calls, s_again = interleaved([ours, direct, ours_per_call, direct], args.reps, warmup=3)
    forward_ms = statistics.median(s_direct) * 1e3
    print(f"  forward   {forward_ms:.2f} ms per direct forward (median of the timed reps; the >= 5 ms requirement)")
    result = judge(
        f"cnn_model[{device}]",
        "guest, loop inside wasm: set_input + compute + get_output (per forward)",
        s_ours,
        "direct: module(x) under torch.inference_mode (per forward)",
        s_direct,
        unit="ms",
        target=TARGET,
        higher_is_better=False,
        ratio_meaning="ours / direct (time)",
        notes=[f"forward time {forward_ms:.2f} ms; output allclose={same}"],
    )
    per_call = statistics.median([c / d for c, d in zip(s_calls, s_direct, strict=True)])
    print(
        f"  info      one export call run(1) per forward instead: {statistics.median(s_calls) * 1e3:.2f} ms, "
        f"{per_call:.3f}x direct (not judged; adds the Python -> guest call on every forward)"
    )
    result.notes.append(f"one export call per forward (not judged): {per_call:.3f}x")
    noise = statistics.median([a / d for a, d in zip(s_again, s_direct, strict=True)])
    print(f"  noise     direct vs direct again, interleaved the same way (A/A): {noise:.3f}x")
    result.notes.append(f"A/A noise (direct vs direct): {noise:.3f}x")
    dump([result], args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
