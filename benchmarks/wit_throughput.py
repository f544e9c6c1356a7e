"""WIT list<u8> throughput across wasmtime's component boundary: wasmtime-py's conversion against ours.

    python benchmarks/wit_throughput.py [--reps N] [--mib M] [--json FILE]

A component (guests/wit_bytes.wat) passes M MiB to a host function (guest -> host) and asks one for M MiB (host ->
guest). The same host functions are defined twice: with wasmtime-py's ``LinkerInstance.add_func`` (its types
rebuilt per call, one Python conversion per byte) and with ``wasinn_jupyter.host.component.values.add_func``
(numpy filling and reading wasmtime's 32-byte value entries in bulk). Then the whole wasi:nn path over WIT (a U8
tensor through the echo graph and back, ``wit_echo.wat``) with ours, and the guest -> host cap that remains.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from _common import GUESTS, dump, interleaved, judge, parser
from wasmtime import Config, Engine, Store, WasiConfig, WasmtimeError, wat2wasm
from wasmtime.component import Component, Linker

from wasinn_jupyter.host.component.linking import GUEST_TO_HOST_LIST_LIMIT
from wasinn_jupyter.host.component.values import add_func

MIB = 1 << 20


def instance(engine: Engine, component: Component, ours: bool, payload: np.ndarray) -> tuple[Store, object]:
    linker = Linker(engine)
    as_bytes = payload.tobytes()
    with linker.root() as root, root.add_instance("wasinn:bench/bytes") as bench:
        if ours:
            add_func(bench, "take", lambda _store, data: len(data))
            add_func(bench, "give", lambda _store, n: payload[:n])
        else:
            bench.add_func("take", lambda _store, data: len(data))
            bench.add_func("give", lambda _store, n: as_bytes[:n])
    store = Store(engine)
    store.set_wasi(WasiConfig())
    return store, linker.instantiate(store, component)


def call(store: Store, inst: object, name: str, n: int) -> float:
    func = inst.get_func(store, name)  # type: ignore[attr-defined]
    start = time.perf_counter()
    got = func(store, n)
    func.post_return(store)
    elapsed = time.perf_counter() - start
    if got != n:
        raise SystemExit(f"{name}({n}) moved {got} bytes")
    return elapsed


def wasi_nn_echo(nbytes: int, reps: int) -> float:
    """Seconds for one U8 [nbytes] tensor through wasi:nn over WIT, in and out (the conformance guest's echo)."""
    from wasinn_jupyter.conformance.components import assemble_wit
    from wasinn_jupyter.host import Host, Session

    with Session(Host()) as session:
        session.host.register("echo", "echo")
        module = session.compile(assemble_wit(), name="wit_echo.wasm")
        times = []
        for _ in range(reps + 1):
            with session.instantiate(module) as guest:
                start = time.perf_counter()
                code = guest.call("echo", 4, 1, nbytes, 0, 0, 0, 0, watch=False)
                times.append(time.perf_counter() - start)
                if code:
                    raise SystemExit(f"wit echo of {nbytes} bytes answered {code}")
        return float(np.median(times[1:]))


def cap(engine: Engine, component: Component) -> str:
    payload = np.zeros(8, np.uint8)
    passed = []
    for n in (GUEST_TO_HOST_LIST_LIMIT, GUEST_TO_HOST_LIST_LIMIT + 2, 4 * MIB):
        store, inst = instance(engine, component, True, payload)
        try:
            call(store, inst, "send", n)
            passed.append(f"{n:,} bytes pass")
        except WasmtimeError as exc:
            passed.append(f"{n:,} bytes fail ({str(exc).splitlines()[0][:60]}...)")
    return "guest -> host cap: " + "; ".join(passed)


def main() -> None:
    p = parser(__doc__.splitlines()[0], reps=3)
    p.add_argument("--mib", type=float, default=1.0, help="MiB per transfer (default 1)")
    args = p.parse_args()
    n = int(args.mib * MIB)
    config = Config()
    config.wasm_component_model = True
    engine = Engine(config)
    component = Component(engine, bytes(wat2wasm(Path(GUESTS / "wit_bytes.wat").read_text())))
    payload = np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8)
    stock = instance(engine, component, False, payload)
    ours = instance(engine, component, True, payload)

    results = []
    for direction, export in (("guest -> host", "send"), ("host -> guest", "receive")):
        print(f"wit list<u8> {direction}, {args.mib:g} MiB per call")
        samples = interleaved(
            [lambda s=ours, e=export: call(*s, e, n), lambda s=stock, e=export: call(*s, e, n)], args.reps, 1
        )
        mbps = [n / 1e6 / float(np.median(side)) for side in samples]
        print(f"  throughput: ours {mbps[0]:.1f} MB/s, wasmtime-py {mbps[1]:.1f} MB/s")
        results.append(
            judge(
                f"wit_{export}_{args.mib:g}MiB",
                f"values.add_func ({mbps[0]:.1f} MB/s)",
                samples[0],
                f"wasmtime-py add_func ({mbps[1]:.1f} MB/s)",
                samples[1],
                unit="ms",
                target=5.0,
                higher_is_better=True,
                ratio_meaning=f"times faster {direction}",
            )
        )
    seconds = wasi_nn_echo(n, args.reps)
    print(
        f"wasi:nn over WIT, U8 [{n}] through the echo graph and back: {seconds * 1e3:.1f} ms "
        f"({2 * n / 1e6 / seconds:.1f} MB/s moved, both directions counted)"
    )
    print(cap(engine, component))
    dump(results, args.json)


if __name__ == "__main__":
    main()
