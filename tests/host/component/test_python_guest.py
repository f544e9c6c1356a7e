"""A Python guest built by componentize-py runs as a command component, with wasi-nn, WASI args, env and dirs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.host.component.python_guest import CACHE, CELL, needs_componentize_py
from wasinn_jupyter.guests.compile import compile_source
from wasinn_jupyter.host import Session, WasiOptions


@pytest.fixture(scope="module")
def wasm() -> bytes:
    needs_componentize_py()
    return compile_source(CELL, "python", name="pyguest", cache_dir=CACHE).wasm


def test_the_cell_runs_with_wasi_nn_args_env_and_dirs(session: Session, wasm: bytes, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    out: list[bytes] = []
    wasi = WasiOptions(
        argv=["pyguest", "one"], env={"GREETING": "hi"}, dirs=[(str(tmp_path), "/data")], stdout=out.append
    )
    assert session.run(wasm, wasi) == 0
    text = b"".join(out).decode()
    assert "argv ['one'] env hi" in text
    assert "files ['a.txt']" in text
    assert "echo [2, 3] FP32 True" in text
    assert "error not-found" in text


def test_an_uncaught_exception_is_exit_code_1_with_its_traceback(session: Session, wasm: bytes) -> None:
    err: list[bytes] = []
    assert session.run(wasm, WasiOptions(argv=["pyguest", "fail"], stderr=err.append)) == 1
    assert "RuntimeError: asked to fail" in b"".join(err).decode()


def test_a_second_build_comes_from_the_cache(wasm: bytes) -> None:
    again = compile_source(CELL, "py", name="pyguest", cache_dir=CACHE)
    assert again.cached and again.wasm == wasm and again.lang == "python"
