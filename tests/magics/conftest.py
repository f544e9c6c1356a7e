"""A real IPython shell with the extension loaded, a private compile cache, and a cell runner that captures output."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Says "spinning" on stdout, then never returns: a test interrupts it once the marker is out, so the interrupt
# cannot land before the guest runs.
SPIN_WAT = """
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "spinning\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 9))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (loop $forever (br $forever))))
"""

# A reactor whose wasinn_compute says "spinning" on stdout, then never returns.
SPIN_COMPUTE_WAT = """
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "spinning\\n")
  (func (export "wasinn_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "wasinn_compute") (param i32 i32 i32 i32 i32) (result i32)
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 9))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (loop $forever (br $forever))
    (i32.const 0)))
"""

# Prints its arguments to stdout, one per line, and "done" to stderr; exits with argv's count minus one as code
# when the first argument is "fail".
C_ARGS = r"""
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) printf("arg %d: %s\n", i, argv[i]);
    fprintf(stderr, "done\n");
    return argc > 1 && strcmp(argv[1], "fail") == 0 ? 3 : 0;
}
"""


@dataclass
class Cell:
    """What running one cell did."""

    result: Any  # IPython's ExecutionResult
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return bool(self.result.success)

    @property
    def error(self) -> BaseException | None:
        return self.result.error_in_exec or self.result.error_before_exec

    @property
    def value(self) -> Any:
        return self.result.result


@pytest.fixture(scope="session")
def shell() -> Any:
    from IPython.testing.globalipapp import start_ipython

    return start_ipython()


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wasinn-cache")


@pytest.fixture
def ip(shell: Any, cache_dir: Path) -> Iterator[Any]:
    shell.run_line_magic("load_ext", "wasinn_jupyter")
    shell.run_line_magic("config", f"WasinnMagics.cache_dir = {str(cache_dir)!r}")
    yield shell
    shell.run_line_magic("unload_ext", "wasinn_jupyter")
    shell.config.pop("WasinnMagics", None)  # %config keeps settings in the shell's config: none may leak


@pytest.fixture
def run(ip: Any, capsys: pytest.CaptureFixture[str]) -> Callable[[str], Cell]:
    """Run one cell the way a user would (magics, display hook, error display) and capture what it printed."""

    def go(code: str) -> Cell:
        capsys.readouterr()
        result = ip.run_cell(code, store_history=True)
        captured = capsys.readouterr()
        return Cell(result, captured.out, captured.err)

    return go


@pytest.fixture
def sources(c_top1: str) -> dict[str, str]:
    return {"spin": SPIN_WAT, "spin_compute": SPIN_COMPUTE_WAT, "c_args": C_ARGS, "c_top1": c_top1}
