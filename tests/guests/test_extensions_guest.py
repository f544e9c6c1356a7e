"""A C guest built with zig against wasi_nn.h uses the extensions (compute_named, properties,
set_input_from_output) and meets every hostile case with the documented errno."""

from __future__ import annotations

from collections.abc import Callable

import torch

from wasinn_jupyter.guests import Compiled
from wasinn_jupyter.host import Session, WasiOptions
from wasinn_jupyter.host.backends.torch import quiet_torchscript

C_EXTENSIONS = r"""
#include <stdio.h>
#include <string.h>
#include "wasi_nn.h"

static uint8_t out[4096] __attribute__((aligned(16)));
static wasi_nn_named_tensor_t many[300];

static wasi_nn_named_tensor_t named(const char *name, const uint32_t *dims, uint32_t rank, const float *data,
                                    uint32_t n) {
    wasi_nn_named_tensor_t t = {name, (uint32_t)strlen(name), {dims, rank, WASI_NN_TYPE_F32,
                                (const uint8_t *)data, n * 4}};
    return t;
}

static void show(const char *what) {
    const wasi_nn_named_tensors_t *o = (const wasi_nn_named_tensors_t *)out;
    printf("%s:", what);
    for (uint32_t i = 0; i < o->count; i++) {
        const wasi_nn_named_tensor_t *t = &o->tensors[i];
        printf(" %s[%u] type %u =", t->name, t->tensor.dims[0], t->tensor.type);
        for (uint32_t j = 0; j < t->tensor.dims[0]; j++) printf(" %g", ((const float *)t->tensor.data)[j]);
    }
    printf("\n");
}

int main(void) {
    wasi_nn_graph_t graph, second;
    wasi_nn_context_t ctx, chain;
    uint32_t written = 0;
    wasi_nn_load_by_name("heads", 5, &graph);
    wasi_nn_init_execution_context(graph, &ctx);
    uint32_t dims[1] = {3};
    float image[3] = {1, 2, 3}, bias[3] = {0.5f, 0.5f, 0.5f};
    wasi_nn_named_tensor_t in[2] = {named("bias", dims, 1, bias, 3), named("image", dims, 1, image, 3)};
    wasi_nn_errno_t err = wasi_nn_compute_named(ctx, in, 2, out, sizeof out, &written);
    printf("compute_named: %s\n", wasi_nn_errno_name(err));
    show("outputs");

    err = wasi_nn_compute_named(ctx, in, 2, out, 16, &written);
    printf("short buffer: %s, needs %u\n", wasi_nn_errno_name(err), written);
    err = wasi_nn_get_named_outputs(ctx, out, written, &written);
    printf("get_named_outputs: %s\n", wasi_nn_errno_name(err));

    wasi_nn_named_tensor_t dup[2] = {in[1], in[1]};
    printf("duplicate: %s\n", wasi_nn_errno_name(wasi_nn_compute_named(ctx, dup, 2, out, sizeof out, &written)));
    wasi_nn_named_tensor_t unknown[2] = {in[1], named("colour", dims, 1, bias, 3)};
    printf("unknown: %s\n", wasi_nn_errno_name(wasi_nn_compute_named(ctx, unknown, 2, out, sizeof out, &written)));
    printf("missing: %s\n", wasi_nn_errno_name(wasi_nn_compute_named(ctx, in + 1, 1, out, sizeof out, &written)));
    for (int i = 0; i < 300; i++) many[i] = in[0];
    printf("too many: %s\n", wasi_nn_errno_name(wasi_nn_compute_named(ctx, many, 300, out, sizeof out, &written)));
    wasi_nn_named_tensor_t wild[2] = {in[0], in[1]};
    wild[0].name = (const char *)0xFFFFFF00;
    printf("wild name: %s\n", wasi_nn_errno_name(wasi_nn_compute_named(ctx, wild, 2, out, sizeof out, &written)));
    wild[0] = in[0];
    wild[0].name_len = 100000;
    printf("long name: %s\n", wasi_nn_errno_name(wasi_nn_compute_named(ctx, wild, 2, out, sizeof out, &written)));
    printf("wild array: %s\n", wasi_nn_errno_name(
        wasi_nn_compute_named(ctx, (const wasi_nn_named_tensor_t *)0xFFFFFFF0, 2, out, sizeof out, &written)));

    char names[128];
    wasi_nn_list_properties(graph, names, sizeof names, &written);
    printf("properties:");
    for (uint32_t at = 0; at < written; at += strlen(names + at) + 1) printf(" %s", names + at);
    printf("\n");
    err = wasi_nn_set_property(graph, "precision", 9, "fp16", 4);
    char value[16] = {0};
    wasi_nn_get_property(graph, "precision", 9, value, sizeof value - 1, &written);
    printf("set precision: %s, now %.*s\n", wasi_nn_errno_name(err), (int)written, value);
    printf("bad value: %s\n", wasi_nn_errno_name(wasi_nn_set_property(graph, "precision", 9, "fp9", 3)));
    printf("no such property: %s\n", wasi_nn_errno_name(wasi_nn_get_property(graph, "x", 1, value, 8, &written)));
    wasi_nn_compute_named(ctx, in, 2, out, sizeof out, &written);
    show("at fp16");

    wasi_nn_load_by_name("double", 6, &second);
    wasi_nn_init_execution_context(second, &chain);
    err = wasi_nn_set_input_from_output(chain, 0, ctx, 0);
    printf("chain: %s\n", wasi_nn_errno_name(err));
    wasi_nn_compute_named(chain, NULL, 0, out, sizeof out, &written);
    printf("chain compute_named without inputs: %s\n", wasi_nn_errno_name(
        wasi_nn_compute_named(chain, NULL, 0, out, sizeof out, &written)));
    wasi_nn_compute(chain);
    err = wasi_nn_get_named_outputs(chain, out, sizeof out, &written);
    show("chained");
    return 0;
}
"""


class TwoHeads(torch.nn.Module):
    def forward(self, image: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return image * 2 + bias, image - bias


class Double(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


def test_a_c_guest_uses_every_extension_and_gets_documented_errnos(
    build: Callable[..., Compiled], session: Session
) -> None:
    with quiet_torchscript():
        session.host.register("heads", torch.jit.script(TwoHeads()))  # names from TorchScript's schema
    session.host.register("double", Double())
    session.host.limits.guests_set_shared_properties = True  # the guest sets the shared graph's precision
    compiled = build(C_EXTENSIONS, "c", name="c_extensions")
    out: list[bytes] = []
    err: list[bytes] = []
    code = session.run(compiled.wasm, wasi=WasiOptions(argv=["c_ext"], stdout=out.append, stderr=err.append))
    assert code == 0, b"".join(err)
    assert b"".join(out).decode().splitlines() == [
        "compute_named: success",
        "outputs: output0[3] type 1 = 2.5 4.5 6.5 output1[3] type 1 = 0.5 1.5 2.5",
        # count and 2 records (60), then each: name "outputN\0" (8), dims (4), data at the next 16 (12 bytes)
        "short buffer: too_large, needs 124",
        "get_named_outputs: success",
        "duplicate: invalid_argument",
        "unknown: invalid_argument",
        "missing: invalid_argument",
        "too many: too_large",
        "wild name: invalid_argument",
        "long name: invalid_argument",
        "wild array: invalid_argument",
        "properties: precision device threads residence",
        "set precision: success, now fp16",
        "bad value: invalid_argument",
        "no such property: not_found",
        "at fp16: output0[3] type 1 = 2.5 4.5 6.5 output1[3] type 1 = 0.5 1.5 2.5",
        "chain: success",
        "chain compute_named without inputs: invalid_argument",
        "chained: output0[3] type 1 = 5 9 13",
    ]
    calls = {r.call for r in session.host.timeline.records() if r.kind == "call"}
    assert {"compute_named", "get_named_outputs", "set_property", "set_input_from_output"} <= calls
