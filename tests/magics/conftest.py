"""A real IPython shell with the extension loaded, a private compile cache, and a cell runner that captures output."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SPIN_WAT = '(module (func (export "_start") (loop $forever (br $forever))))'

# A reactor whose wasinn_compute never returns.
SPIN_COMPUTE_WAT = """
(module
  (memory (export "memory") 1)
  (func (export "wasinn_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "wasinn_compute") (param i32 i32 i32 i32 i32) (result i32)
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

# The compute convention in C: argmax of each row of output 0, as its own i32 output.
C_TOP1 = r"""
#include <stdlib.h>
#include "wasi_nn.h"

static void *arena;
WASINN_EXPORT("wasinn_alloc") void *wasinn_alloc(uint32_t size) { free(arena); return arena = malloc(size); }

static float scores[1 << 16];
static int32_t top[4096];
static uint32_t top_dims[1];
static wasi_nn_tensor_t outputs[1];

WASINN_EXPORT("wasinn_compute")
wasi_nn_errno_t wasinn_compute(const char *name, uint32_t name_len, const wasi_nn_tensor_t *inputs, uint32_t n,
                               wasinn_result_t *result) {
    wasi_nn_graph_t graph;
    wasi_nn_context_t ctx;
    wasi_nn_errno_t err;
    uint32_t bytes;
    if ((err = wasi_nn_load_by_name(name, name_len, &graph))) return err;
    if ((err = wasi_nn_init_execution_context(graph, &ctx))) return err;
    for (uint32_t i = 0; i < n; i++)
        if ((err = wasi_nn_set_input(ctx, i, &inputs[i]))) return err;
    if ((err = wasi_nn_compute(ctx))) return err;
    if ((err = wasi_nn_get_output(ctx, 0, (uint8_t *)scores, sizeof scores, &bytes))) return err;
    uint32_t rows = inputs[0].dims[0], classes = bytes / sizeof(float) / rows;
    for (uint32_t r = 0; r < rows && r < 4096; r++) {
        uint32_t best = 0;
        for (uint32_t c = 1; c < classes; c++)
            if (scores[r * classes + c] > scores[r * classes + best]) best = c;
        top[r] = (int32_t)best;
    }
    top_dims[0] = rows;
    outputs[0] = (wasi_nn_tensor_t){top_dims, 1, WASI_NN_TYPE_I32, (const uint8_t *)top, rows * 4};
    *result = (wasinn_result_t){1, outputs, ctx};
    return 0;
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
def sources() -> dict[str, str]:
    return {"spin": SPIN_WAT, "spin_compute": SPIN_COMPUTE_WAT, "c_args": C_ARGS, "c_top1": C_TOP1}
