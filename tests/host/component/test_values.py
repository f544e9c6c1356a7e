"""The bulk list conversions give what wasmtime-py's own give, byte for byte, in both directions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from wasmtime import Config, Engine, Store, WasiConfig, wat2wasm
from wasmtime.component import Component, Linker

from wasinn_jupyter.host.component.values import add_func

BENCH = Path(__file__).parents[3] / "benchmarks" / "guests" / "wit_bytes.wat"


@pytest.fixture(scope="module")
def engine_component() -> tuple[Engine, Component]:
    config = Config()
    config.wasm_component_model = True
    engine = Engine(config)
    return engine, Component(engine, bytes(wat2wasm(BENCH.read_text())))


def run(engine: Engine, component: Component, ours: bool, export: str, n: int, payload: bytes) -> bytes:
    seen: list[bytes] = []
    linker = Linker(engine)
    with linker.root() as root, root.add_instance("wasinn:bench/bytes") as bench:
        define = (lambda name, fn: add_func(bench, name, fn)) if ours else bench.add_func
        define("take", lambda _s, data: seen.append(bytes(data)) or len(data))
        define("give", lambda _s, k: payload[:k])
    store = Store(engine)
    store.set_wasi(WasiConfig())
    func = linker.instantiate(store, component).get_func(store, export)
    assert func is not None
    assert func(store, n) == n
    func.post_return(store)
    return seen[0] if seen else b""


@pytest.mark.parametrize("n", [0, 1, 7, 4096, 65537])
def test_guest_to_host_bytes_match_wasmtime_pys(engine_component: tuple[Engine, Component], n: int) -> None:
    engine, component = engine_component
    ours = run(engine, component, True, "send", n, b"")
    assert ours == run(engine, component, False, "send", n, b"") and len(ours) == n


@pytest.mark.parametrize("n", [0, 1, 7, 4096, 65537])
def test_host_to_guest_bytes_arrive_as_sent(engine_component: tuple[Engine, Component], n: int) -> None:
    engine, component = engine_component
    payload = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()
    run(engine, component, True, "receive", n, payload)  # the guest answers the length it got
    assert run(engine, component, True, "bounce", n, payload) == payload  # and the bytes, sent straight back


def test_conversions_round_trip_without_a_guest() -> None:
    import ctypes

    from wasmtime import _ffi as ffi

    from wasinn_jupyter.host.component import values

    data = np.random.default_rng(1).integers(0, 256, 1000, dtype=np.uint8)
    slot = ffi.wasmtime_component_val_t()
    values.bytes_to_c(None, data, ctypes.pointer(slot))
    assert np.array_equal(values.bytes_from_c(slot), data)
    values.u32s_to_c(None, [0, 1, 0xFFFFFFFF, 70000], ctypes.pointer(slot))
    assert values.u32s_from_c(slot) == (0, 1, 0xFFFFFFFF, 70000)
    with pytest.raises(ValueError, match="out of range"):
        values.u32s_to_c(None, [1 << 32], ctypes.pointer(slot))
