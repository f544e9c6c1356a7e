"""Which host a guest was built for: the import list, the module's own sections, the command line's encodings."""

from __future__ import annotations

import pytest
import wasmtime

from wasinn_jupyter.host import Dialect, Encoding, Session
from wasinn_jupyter.host.abi.dialect import DialectHint, encodings_dialect, guest_dialect, module_hint

# Imports only load_by_name, as WasmEdge's GGML model-not-found test guest does; returns the errno for "default".
LOAD_BY_NAME = r"""(module
  (import "wasi_ephemeral_nn" "load_by_name" (func $load_by_name (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "default")
  (func ${name} (export "load") (result i32)
    (call $load_by_name (i32.const 0) (i32.const 7) (i32.const 64)))
){extra}"""


def guest_wat(name: str = "load", extra: str = "") -> str:
    return LOAD_BY_NAME.format(name=name, extra=extra)


def custom_section(name: str, payload: bytes) -> bytes:
    body = leb(len(name)) + name.encode() + payload
    return b"\x00" + leb(len(body)) + body


def leb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def string(text: str) -> bytes:
    return leb(len(text)) + text.encode()


def test_the_crates_symbol_in_the_name_section_gets_wasmedges_103(session: Session) -> None:
    module = session.compile(guest_wat("wasmedge_wasi_nn::graph::load_by_name"))
    guest = session.instantiate(module)
    assert guest.dialect is Dialect.WASMEDGE
    assert guest.call("load") == 103


def test_a_plain_spec_guest_still_gets_8(session: Session) -> None:
    guest = session.instantiate(session.compile(guest_wat("load_model")))
    assert guest.dialect is Dialect.SPEC
    assert guest.call("load") == 8


def test_the_override_wins_both_ways(session: Session) -> None:
    wasmedge = session.compile(guest_wat("wasmedge_wasi_nn::graph::load_by_name"))
    assert session.instantiate(wasmedge, dialect="spec").call("load") == 8
    assert session.instantiate(session.compile(guest_wat()), dialect="wasmedge").call("load") == 103


MANGLED = "_ZN16wasmedge_wasi_nn5graph12GraphBuilder16build_from_cache17h0123E"  # legacy Rust mangling
FUNCTION_NAMES = leb(1) + leb(0) + string(MANGLED)  # one (index, name) pair
SIGNS = {
    "mangled name": custom_section("name", b"\x01" + leb(len(FUNCTION_NAMES)) + FUNCTION_NAMES),
    "producers": custom_section("producers", leb(1) + string("sdk") + leb(1) + string("WasmEdge") + string("0.14")),
    "debug info": custom_section(".debug_str", b"/cargo/registry/src/wasmedge-wasi-nn-0.8.0/src/graph.rs\0"),
}


@pytest.mark.parametrize("sign", SIGNS)
def test_other_signs_in_the_module(sign: str) -> None:
    wasm = bytes(wasmtime.wat2wasm(guest_wat()))
    assert module_hint(wasm).wasmedge is None
    hint = module_hint(wasm + SIGNS[sign])
    assert hint.wasmedge
    assert guest_dialect({"load_by_name"}, hint)[0] is Dialect.WASMEDGE


def test_panic_locations_in_the_data_section() -> None:
    panic_location = '(data (i32.const 256) "src/wasmedge-wasi-nn-0.8.0/src/error.rs")'
    wat = guest_wat().replace('"default")', f'"default")\n  {panic_location}')
    hint = module_hint(bytes(wasmtime.wat2wasm(wat)))
    assert hint.wasmedge and "data" in hint.wasmedge


def test_imports_and_encodings() -> None:
    assert guest_dialect({"load_by_name", "compute_single"})[0] is Dialect.WASMEDGE
    assert guest_dialect({"load", "compute"}, DialectHint())[0] is Dialect.SPEC
    assert encodings_dialect([Encoding.PYTORCH, Encoding.AUTODETECT]) is None
    found = encodings_dialect([Encoding.PYTORCH, Encoding.GGML])
    assert found is not None and found[0] is Dialect.WASMEDGE and "ggml" in found[1]


def test_garbage_is_no_evidence() -> None:
    assert module_hint(b"") == DialectHint()
    assert module_hint(b"\0asm\x01\0\0\0\x00\xff\xff\xff\xff\xff") == DialectHint()  # an unreadable size
    assert module_hint(b"\0asm\x01\0\0\0" + custom_section("name", b"\x01\x05")) == DialectHint()  # cut short
