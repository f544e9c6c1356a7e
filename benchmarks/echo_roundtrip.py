"""(a) The echo round trip of a 1 KiB f32 tensor against the floor of three empty guest -> host calls.

Ours: guests/nn_loop.wat, after load_by_name("echo") + init_execution_context, loops inside wasm over
set_input(ctx, 0, tensor) + compute(ctx) + get_output(ctx, 0, buf, 1024, &written): a [256] f32 tensor, 1 KiB.
Floors: guests/floor_loop.wat, the same loop with the same arguments, calling three host functions that only
return 0, on the same Engine (epoch interruption compiled in, as for every Session guest), made two ways:
  - with wasmtime-py's ``Linker.define_func(..., access_caller=True)``, the ordinary way to give a guest Python
    host functions (about 6.5 us a call here);
  - with the raw unchecked callbacks our host itself uses for wasi-nn (``host/abi/rawfunc.py``, about 1.5 us).
Both loops run ``--iters`` round trips per export call; the figure is time per round trip. Target: ours / floor
<= 2.0, judged against each floor; the second is the strict one (it leaves only our own Python work).

    python benchmarks/echo_roundtrip.py [--reps 61] [--iters 500]
"""

from __future__ import annotations

import sys

import numpy as np
from _common import (
    F32,
    FLOOR_LOOP,
    NN_LOOP,
    check_errno,
    dump,
    interleaved,
    judge,
    parser,
    setup_graph,
    timed,
    view,
    write_tensor,
)
from wasmtime import FuncType, Linker, Module, Store, ValType

from wasinn_jupyter.host import Host, Session
from wasinn_jupyter.host.abi.rawfunc import define_u32_func

TARGET = 2.0
TENSOR_AT = 256  # tensor struct (20 bytes) then its dims
DATA_AT = 1024  # 1 KiB of f32 input
OUT_AT = 4096  # 1 KiB output buffer
NBYTES = 1024


def floor_guest(session: Session, raw: bool) -> tuple[Store, object]:
    """The floor guest on the session's engine: three trivial host functions, raw callbacks or define_func."""
    engine = session.engine
    linker = Linker(engine)
    i32 = ValType.i32()
    for name, arity in (("set_input", 3), ("compute", 1), ("get_output", 5)):
        if raw:
            define_u32_func(linker, "floor", name, arity, lambda caller, *args: 0)
        else:
            ty = FuncType([i32] * arity, [i32])
            linker.define_func("floor", name, ty, lambda caller, *args: 0, access_caller=True)
    store = Store(engine)
    store.set_epoch_deadline(1 << 62)  # same epoch checks compiled in; never due
    instance = linker.instantiate(store, Module(engine, FLOOR_LOOP.read_text()))  # wasmtime alone: the floor
    return store, instance.exports(store)["run"]


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0], reps=61)
    p.add_argument("--iters", type=int, default=500, help="round trips per export call (default 500)")
    args = p.parse_args(argv)
    iters = args.iters

    session = Session(Host())
    session.host.register("echo", "echo")
    guest = session.instantiate(session.compile(NN_LOOP), label="echo-bench")
    mem = view(guest.instance.exports(guest.store)["memory"], guest.store)
    write_tensor(mem, TENSOR_AT, [NBYTES // 4], F32, DATA_AT, NBYTES)
    mem[DATA_AT : DATA_AT + NBYTES] = np.arange(NBYTES // 4, dtype=np.float32).view(np.uint8)
    setup_graph(guest, "echo")

    # correctness once: the output buffer holds the input
    check_errno(guest.call("run", 1, TENSOR_AT, OUT_AT, NBYTES, watch=False), guest, "echo round trip")
    mem = view(guest.instance.exports(guest.store)["memory"], guest.store)
    assert np.array_equal(mem[OUT_AT : OUT_AT + NBYTES], mem[DATA_AT : DATA_AT + NBYTES]), "echo output differs"
    assert guest.call("written", watch=False) == NBYTES

    floors = {raw: floor_guest(session, raw) for raw in (False, True)}

    def ours() -> float:
        return timed(lambda: guest.call("run", iters, TENSOR_AT, OUT_AT, NBYTES, watch=False), iters)

    def floor(raw: bool) -> float:
        store, run = floors[raw]
        return timed(lambda: run(store, iters, TENSOR_AT, OUT_AT, NBYTES), iters)

    print(f"(a) echo round trip, 1 KiB f32, {iters} round trips per export call, {args.reps} reps")
    s_ours, s_plain, s_raw = interleaved([ours, lambda: floor(False), lambda: floor(True)], args.reps, warmup=3)
    records = len(session.host.timeline)
    results = [
        judge(
            f"echo_roundtrip[{key} floor]",
            "wasi-nn echo: set_input + compute + get_output (per round trip)",
            s_ours,
            f"floor: 3 empty host calls made with {label} (per round trip)",
            s_floor,
            unit="us",
            target=TARGET,
            higher_is_better=False,
            ratio_meaning="ours / floor (time)",
            notes=[f"timeline records kept: {records} (bounded deque)"],
        )
        for key, label, s_floor in (
            ("define_func", "wasmtime-py define_func", s_plain),
            ("raw", "raw callbacks, as our host", s_raw),
        )
    ]
    dump(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
