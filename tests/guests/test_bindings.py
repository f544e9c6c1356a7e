"""The bindings we ship (wasi_nn.h, wasi_nn.rs): their numbers match the host's tables, and guests built on them
work through the whole ABI."""

from __future__ import annotations

import re
from collections.abc import Callable

from wasinn_jupyter.guests import BINDINGS, Compiled
from wasinn_jupyter.host import Encoding, Session, Target, WasiOptions
from wasinn_jupyter.host.errors import WITX_ERRNO_NAMES
from wasinn_jupyter.host.tensors import TENSOR_TYPES

HEADER = (BINDINGS / "wasi_nn.h").read_text()
RUST = (BINDINGS / "wasi_nn.rs").read_text()


def c_enum(prefix: str) -> dict[str, int]:
    return {m[1].lower(): int(m[2]) for m in re.finditer(rf"\bWASI_NN_{prefix}_(\w+) = (\d+)", HEADER)}


def rust_consts(module: str) -> dict[str, int]:
    body = re.search(rf"pub mod {module} \{{(.*?)\}}", RUST, re.S)
    assert body is not None
    return {m[1].lower(): int(m[2]) for m in re.finditer(r"pub const (\w+): u32 = (\d+);", body[1])}


def test_errnos_match_the_host() -> None:
    assert c_enum("ERRNO") == {name: code for code, name in WITX_ERRNO_NAMES.items()}
    assert rust_consts("errno") == c_enum("ERRNO")
    for name in WITX_ERRNO_NAMES.values():
        assert f'case WASI_NN_ERRNO_{name.upper()}: return "{name}";' in HEADER
        assert f'errno::{name.upper()} => "{name}",' in RUST


def test_tensor_types_match_the_host() -> None:
    witx = {t.name: t.witx for t in TENSOR_TYPES if t.witx is not None}
    assert c_enum("TYPE") == witx
    rust = {m[1].lower(): int(m[2]) for m in re.finditer(r"^\s+(F16|F32|F64|U8|I32|I64) = (\d+),", RUST, re.M)}
    assert rust == witx


def test_encodings_and_targets_match_the_host() -> None:
    for name, value in c_enum("ENCODING").items():
        assert Encoding[name.upper()].value == value
    assert rust_consts("encoding") == c_enum("ENCODING")
    assert c_enum("TARGET") == {t.name.lower(): t.value for t in Target}
    assert rust_consts("target") == c_enum("TARGET")


def test_the_imports_are_the_witx_functions() -> None:
    from wasinn_jupyter.host.abi.witx import SIGNATURES

    declared = set(re.findall(r'WASI_NN_IMPORT\("(\w+)"\)', HEADER))
    assert declared <= set(SIGNATURES)
    assert {"load", "load_by_name", "init_execution_context", "set_input", "compute", "get_output"} <= declared
    rust_imports = set(re.findall(r"pub fn (\w+)\(", RUST.split("pub mod raw")[1].split("/// A non-zero errno")[0]))
    assert rust_imports == declared


def test_a_c_guest_goes_through_the_whole_abi(
    build: Callable[..., Compiled], session: Session, sources: dict[str, str]
) -> None:
    compiled = build(sources["c_echo_command"], "c", name="c_echo")
    out: list[bytes] = []
    err: list[bytes] = []
    code = session.run(compiled.wasm, wasi=WasiOptions(argv=["c_echo", "echo"], stdout=out.append, stderr=err.append))
    assert code == 0, b"".join(err)
    assert b"".join(out).decode() == "first try: too_large, needs 16 bytes\nsuccess: 1.5 -2 3.25 4\n"
    code = session.run(compiled.wasm, wasi=WasiOptions(argv=["c_echo", "nope"], stdout=out.append, stderr=err.append))
    assert code == 2 and b"".join(err).decode() == "load_by_name(nope): not_found\n"


def test_the_tensor_struct_layout_is_checked_by_the_compiler(build: Callable[..., Compiled]) -> None:
    """The header's _Static_asserts hold for wasm32 (20-byte tensor, 8-byte builder)."""
    compiled = build('#include "wasi_nn.h"\nint main(void) { return (int)sizeof(wasi_nn_tensor_t) - 20; }\n', "c")
    assert Session().run(compiled.wasm, wasi=WasiOptions(stdout=lambda b: None)) == 0
