"""Compiling guests: every toolchain CI can install, the disk cache, short errors, missing toolchains, progress."""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest

from wasinn_jupyter.guests import Compiled, CompileError, ToolchainMissing, compile_source
from wasinn_jupyter.guests import compile as compile_mod
from wasinn_jupyter.host import GuestTrap, Session, WasiOptions

HELLO_WAT = """
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""

C_HELLO = r"""
#include <stdio.h>
int main(int argc, char **argv) {
    printf("hello from C, %d args\n", argc);
    fprintf(stderr, "to stderr\n");
    return 0;
}
"""

C_REACTOR = r"""
#include "wasi_nn.h"
WASINN_EXPORT("twice") int twice(int x) { return 2 * x; }
"""

C_TRAP = r"""
#include <stdio.h>
__attribute__((noinline)) void deep_failure(volatile int *p) { __builtin_trap(); }
int main(void) { puts("before the trap"); deep_failure(0); return 0; }
"""


def run_command(session: Session, compiled: Compiled, argv: list[str] | None = None) -> tuple[int, str, str]:
    out: list[bytes] = []
    err: list[bytes] = []
    wasi = WasiOptions(argv=argv or ["guest"], stdout=out.append, stderr=err.append)
    code = session.run(compiled.wasm, wasi=wasi)
    return code, b"".join(out).decode(), b"".join(err).decode()


# -- WAT ------------------------------------------------------------------------------------------------------


def test_wat_compiles_then_comes_from_the_cache(build: Callable[..., Compiled], session: Session) -> None:
    first = build(HELLO_WAT, "wat", name="hello")
    again = build(HELLO_WAT, "wat", name="hello")
    forced = build(HELLO_WAT, "wat", name="hello", force=True)
    assert (first.cached, again.cached, forced.cached) == (False, True, False)
    assert first.wasm == again.wasm == forced.wasm
    assert first.path is not None and first.path.is_file()
    assert run_command(session, again) == (0, "hello\n", "")


def test_the_cache_key_covers_source_flags_and_toolchain() -> None:
    key = compile_mod.cache_key
    base = key("c", "int x;", [], "zig 0.17.1")
    assert base == key("c", "int x;", [], "zig 0.17.1")
    assert len({base, key("c", "int y;", [], "zig 0.17.1"), key("c", "int x;", ["-O3"], "zig 0.17.1")}) == 3
    assert base != key("c", "int x;", [], "zig 0.18.0")
    assert base != key("rust", "int x;", [], "zig 0.17.1")
    command = ["zig", "cc", "-O2", "SOURCE.c"]
    assert key("c", "int x;", [], "zig 0.17.1", command) != key("c", "int x;", [], "zig 0.17.1", ["zig", "cc", "-O3"])


def test_the_cache_key_covers_the_package_version(monkeypatch: pytest.MonkeyPatch) -> None:
    before = compile_mod.cache_key("wat", "(module)", [], "wat2wasm")
    monkeypatch.setattr(compile_mod, "__version__", "999.0")
    assert compile_mod.cache_key("wat", "(module)", [], "wat2wasm") != before


def test_a_new_package_version_compiles_again(build: Callable[..., Compiled], monkeypatch: pytest.MonkeyPatch) -> None:
    """What the package does to a module (strip_debug) may change between versions: no stale cache entry."""
    source = '(module (func (export "_start")))  ;; versioned'
    build(source, "wat", name="versioned")
    assert build(source, "wat", name="versioned").cached
    monkeypatch.setattr(compile_mod, "__version__", compile_mod.__version__ + ".post1")
    assert not build(source, "wat", name="versioned").cached


def test_fixed_compiler_arguments_are_part_of_the_key(
    build: Callable[..., Compiled], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A release that changes the tool's own arguments (-O2 here) does not reuse modules built the old way."""
    source = "int main(void) { return 0; }  /* keyed */\n"
    build(source, "c", name="keyed")
    assert build(source, "c", name="keyed").cached
    command = compile_mod.Zig.command

    def o1(self: compile_mod.Zig, *args: object, **kwargs: object) -> list[str]:
        return ["-O1" if a == "-O2" else a for a in command(self, *args, **kwargs)]  # type: ignore[arg-type]

    monkeypatch.setattr(compile_mod.Zig, "command", o1)
    again = build(source, "c", name="keyed")
    assert not again.cached and again.wasm.startswith(b"\0asm")


def test_a_wat_error_is_short_and_points_at_the_line(build: Callable[..., Compiled]) -> None:
    with pytest.raises(CompileError) as info:
        build('(module\n  (func (export "f") (i32.bogus)))', "wat")
    assert "does not parse" in info.value.message
    assert ":2:" in info.value.log
    assert "Traceback" not in str(info.value)


def test_unknown_language() -> None:
    with pytest.raises(CompileError, match="unknown guest language 'cobol'"):
        compile_source("x", "cobol")


# -- C (zig) ----------------------------------------------------------------------------------------------------


def test_c_command_runs_and_is_cached(build: Callable[..., Compiled], session: Session) -> None:
    compiled = build(C_HELLO, "c", name="hello_c")
    assert compiled.command and compiled.toolchain.startswith("zig ")
    assert build(C_HELLO, "c", name="hello_c").cached
    assert run_command(session, compiled, ["hello", "a", "b"]) == (0, "hello from C, 3 args\n", "to stderr\n")


def test_c_without_main_is_a_reactor(build: Callable[..., Compiled], session: Session) -> None:
    compiled = build(C_REACTOR, "c", name="reactor")
    assert not compiled.command
    guest = session.instantiate(session.compile(compiled.wasm))
    assert "_start" not in guest.exports()
    guest.call("_initialize")
    assert guest.call("twice", 21) == 42


def test_c_modules_keep_names_for_backtraces_but_not_dwarf(build: Callable[..., Compiled], session: Session) -> None:
    compiled = build(C_TRAP, "c", name="trapper")
    assert len(compiled.wasm) < 100_000  # zig links about 900 KB of DWARF; it is stripped
    with pytest.raises(GuestTrap) as info:
        run_command(session, compiled)
    assert any("deep_failure" in frame for frame in info.value.frames)


def test_a_c_error_names_the_cell_file_not_a_temporary_path(build: Callable[..., Compiled]) -> None:
    with pytest.raises(CompileError) as info:
        build("int main(void) { return oops; }\n", "c", name="broken")
    err = info.value
    assert "c guest 'broken' did not compile (zig cc" in err.message
    assert "broken.c:1:" in err.log and "undeclared identifier 'oops'" in err.log
    assert "wasinn-build-" not in err.log


def test_compiler_flags_reach_the_compiler(build: Callable[..., Compiled], session: Session) -> None:
    source = '#include <stdio.h>\nint main(void) { printf("%d\\n", ANSWER); return 0; }\n'
    compiled = build(source, "c", name="flags", flags=["-DANSWER=42"])
    assert run_command(session, compiled)[1] == "42\n"


def test_long_builds_report_progress(tmp_path: Path) -> None:
    seen: list[str] = []
    code, _ = compile_mod._run([sys.executable, "-c", "import time; time.sleep(1.4)"], tmp_path, "c", seen.append)
    assert code == 0
    assert seen and seen[0].startswith("compiling c... 1 s")


def test_zig_first_build_is_announced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZIG_GLOBAL_CACHE_DIR", str(tmp_path))
    note = compile_mod.Zig().slow_note()
    assert note is not None and "first" in note and "25 s" in note
    (tmp_path / "o" / "abc").mkdir(parents=True)
    (tmp_path / "o" / "abc" / "libc.a").write_bytes(b"")
    assert compile_mod.Zig().slow_note() is None


# -- missing toolchains: one line that says how to install ----------------------------------------------------


def test_missing_zig_says_pip_install(monkeypatch: pytest.MonkeyPatch, build: Callable[..., Compiled]) -> None:
    def no_package(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(compile_mod.metadata, "version", no_package)
    with pytest.raises(ToolchainMissing) as info:
        build(C_HELLO, "c", force=True)
    assert str(info.value) == "C guests need zig: pip install ziglang"


def test_missing_rustc_says_how_to_install(monkeypatch: pytest.MonkeyPatch, build: Callable[..., Compiled]) -> None:
    monkeypatch.setattr(compile_mod, "_rustc_candidates", lambda explicit: [])
    with pytest.raises(ToolchainMissing) as info:
        build("fn main() {}", "rust", force=True)
    assert "\n" not in str(info.value)
    assert "apt-get install rustc libstd-rust-dev-wasm32" in str(info.value)


def test_a_rustc_without_the_wasm_target_is_passed_over(tmp_path: Path) -> None:
    fake = tmp_path / "rustc"
    fake.write_text("#!/bin/sh\necho /nonexistent\n")
    fake.chmod(0o755)
    with pytest.raises(ToolchainMissing):
        compile_mod.Rustc(str(fake)).identity()


def test_missing_node_says_how_to_install(monkeypatch: pytest.MonkeyPatch, build: Callable[..., Compiled]) -> None:
    monkeypatch.setattr(compile_mod.shutil, "which", lambda name: None)
    with pytest.raises(ToolchainMissing) as info:
        build("export function _start(): void {}", "assemblyscript", force=True)
    assert "\n" not in str(info.value) and "npm install -g assemblyscript" in str(info.value)


def test_asc_falls_back_to_npx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No asc on PATH nor in ./node_modules/.bin: `npx --no-install asc`, which never downloads one."""
    npx = tmp_path / "npx"
    npx.write_text("#!/bin/sh\necho Version 0.0.1-fake\n")
    npx.chmod(0o755)
    found = {"node": "/usr/bin/node", "npx": str(npx)}
    monkeypatch.setattr(compile_mod.shutil, "which", found.get)
    monkeypatch.delenv("WASINN_ASC", raising=False)
    monkeypatch.chdir(tmp_path)
    asc = compile_mod.Asc()
    assert asc._found() == [str(npx), "--no-install", "asc"]
    assert asc.identity() == "asc Version 0.0.1-fake"
    assert asc.command(Path("g.ts"), Path("g.wasm"), [], True)[:4] == [str(npx), "--no-install", "asc", "g.ts"]


def test_npx_without_asc_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    npx = tmp_path / "npx"
    npx.write_text("#!/bin/sh\necho 'npm error could not determine executable to run' >&2\nexit 1\n")
    npx.chmod(0o755)
    found = {"node": "/usr/bin/node", "npx": str(npx)}
    monkeypatch.setattr(compile_mod.shutil, "which", found.get)
    monkeypatch.delenv("WASINN_ASC", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ToolchainMissing) as info:
        compile_mod.Asc().identity()
    assert str(info.value) == compile_mod.Asc.HINT


# -- Rust and AssemblyScript, where installed ------------------------------------------------------------------


def test_rust_command_uses_the_shipped_module(
    build: Callable[..., Compiled], session: Session, need_toolchain: Callable[[str], None], sources: dict[str, str]
) -> None:
    need_toolchain("rust")
    compiled = build(sources["rust_echo_command"], "rust", name="rust_echo")
    assert compiled.command and "rustc" in compiled.toolchain
    code, out, _ = run_command(session, compiled)
    assert code == 0
    assert out == "rust: [1.5, -2.0, 3.25, 4.0]\nmissing: wasi-nn errno 8 (not_found)\n"


def test_a_rust_error_is_shown_with_the_cell_file(
    build: Callable[..., Compiled], need_toolchain: Callable[[str], None]
) -> None:
    need_toolchain("rust")
    with pytest.raises(CompileError) as info:
        build('fn main() { let x: u32 = "no"; }', "rust", name="rbad")
    assert "guest_rbad.rs:1" in info.value.log and "mismatched types" in info.value.log


def test_the_rust_bindings_build_without_warnings(
    build: Callable[..., Compiled], need_toolchain: Callable[[str], None], sources: dict[str, str]
) -> None:
    """A warning in wasi_nn.rs would be printed under every Rust cell."""
    need_toolchain("rust")
    compiled = build(sources["rust_echo_command"], "rust", name="rust_quiet", force=True)
    assert compiled.log == ""


def test_a_rust_guest_may_be_named_like_the_bindings(
    build: Callable[..., Compiled], session: Session, need_toolchain: Callable[[str], None], sources: dict[str, str]
) -> None:
    """The cell's file must not be overwritten by the wasi_nn.rs that `mod wasi_nn;` reads."""
    need_toolchain("rust")
    compiled = build(sources["rust_echo_command"], "rust", name="wasi_nn", force=True)
    assert run_command(session, compiled)[1].startswith("rust: [1.5, -2.0, 3.25, 4.0]\n")


def test_assemblyscript_command(
    build: Callable[..., Compiled], session: Session, need_toolchain: Callable[[str], None], sources: dict[str, str]
) -> None:
    need_toolchain("assemblyscript")
    compiled = build(sources["as_command"], "assemblyscript", name="as_hello")
    assert run_command(session, compiled) == (0, "assemblyscript: load_by_name errno 0\n", "")


def test_assemblyscript_through_npx(
    build: Callable[..., Compiled],
    session: Session,
    need_toolchain: Callable[[str], None],
    sources: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    need_toolchain("assemblyscript")
    which = compile_mod.shutil.which
    if which("npx") is None:
        pytest.skip("npx is not installed")
    monkeypatch.setattr(compile_mod.shutil, "which", lambda name: None if name == "asc" else which(name))
    monkeypatch.delenv("WASINN_ASC", raising=False)
    monkeypatch.chdir(tmp_path)
    assert compile_mod.Asc()._found()[1:] == ["--no-install", "asc"]
    try:
        compiled = build(sources["as_command"], "assemblyscript", name="as_npx", force=True)
    except ToolchainMissing as exc:  # asc is installed only where npx does not look
        pytest.skip(exc.message)
    assert run_command(session, compiled) == (0, "assemblyscript: load_by_name errno 0\n", "")


def test_a_read_only_cache_only_costs_the_caching(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    compiled = compile_source(HELLO_WAT, "wat", cache_dir=blocked)
    assert compiled.path is None and compiled.wasm.startswith(b"\0asm")
