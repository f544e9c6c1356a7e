"""Fixtures every test folder uses: a host with the echo graph, its session, and a C guest of the compute convention."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasinn_jupyter.host import Host, Session

# A reactor that follows the compute convention and makes its own output: the argmax of each row of output 0.
C_TOP1 = r"""
#include <stdlib.h>
#include "wasi_nn.h"

static void *arena;
WASINN_EXPORT("wasinn_alloc") void *wasinn_alloc(uint32_t size) {
    free(arena);
    return arena = malloc(size);
}

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
    uint32_t rows = inputs[0].dims_len ? inputs[0].dims[0] : 1;
    if (rows == 0 || rows > 4096) return WASI_NN_ERRNO_INVALID_ARGUMENT;
    uint32_t classes = bytes / sizeof(float) / rows;
    for (uint32_t r = 0; r < rows; r++) {
        uint32_t best = 0;
        for (uint32_t c = 1; c < classes; c++)
            if (scores[r * classes + c] > scores[r * classes + best]) best = c;
        top[r] = (int32_t)best;
    }
    top_dims[0] = rows;
    outputs[0] = (wasi_nn_tensor_t){top_dims, 1, WASI_NN_TYPE_I32, (const uint8_t *)top, rows * 4};
    result->n_outputs = 1;
    result->outputs = outputs;
    result->ctx = ctx;
    return WASI_NN_ERRNO_SUCCESS;
}
"""


@pytest.fixture
def host() -> Host:
    host = Host()
    host.register("echo", "echo")
    return host


@pytest.fixture
def session(host: Host) -> Session:
    return Session(host)


@pytest.fixture
def c_top1() -> str:
    return C_TOP1


# A small GPT of the package's own format, trained for about a second on this text, so that tests of the prompt
# path can check what it says ("the cat s" -> "at on the mat. ..."). Saved once per test session.
LM_TEXT = b"the cat sat on the mat. " * 6


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from wasinn_jupyter.host.backends import tinygpt

    model = tinygpt.train(LM_TEXT, tinygpt.TinyGPTConfig(n_embd=32, n_layer=2, n_head=2, block_size=32))
    return tinygpt.save(model, tmp_path_factory.mktemp("tiny-lm"))
