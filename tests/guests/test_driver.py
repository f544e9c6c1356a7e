"""The compute convention through real guests: the shipped WAT driver, a C guest and a Rust guest."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from wasinn_jupyter.guests import Compiled, ComputeError, as_tensors, compute, convention_problem, driver_wat
from wasinn_jupyter.host import Guest, GuestLimits, Host

Build = Callable[..., Compiled]
Instantiate = Callable[..., Guest]


@pytest.fixture
def driver(build: Build, instantiate: Instantiate) -> Guest:
    return instantiate(build(driver_wat(), "wat", name="driver"))


def roundtrip(guest: Guest, graph: str, *values: object) -> list[torch.Tensor]:
    return [o.tensor.to_torch() for o in compute(guest, graph, as_tensors(list(values)))]


def test_the_driver_echoes_every_type_and_shape(driver: Guest) -> None:
    inputs = [
        np.arange(6, dtype=np.float32).reshape(2, 3),
        np.array([1, -2, 3], dtype=np.int64),
        np.array(7, dtype=np.int32),  # rank 0
        np.zeros((0, 4), dtype=np.float64),  # no elements
        np.arange(256, dtype=np.uint8),
        np.array([0.5, -1.0], dtype=np.float16),
    ]
    outputs = compute(driver, "echo", as_tensors(inputs))
    assert len(outputs) == len(inputs)
    for value, out in zip(inputs, outputs, strict=True):
        assert out.tensor.dims == value.shape and out.tensor.type.numpy == value.dtype
        np.testing.assert_array_equal(out.tensor.to_numpy(), value)


def test_outputs_larger_than_the_driver_expects_are_fetched_again(driver: Guest) -> None:
    big = np.random.default_rng(0).standard_normal((700, 300))  # 1.6 MB: past the driver's slack
    (out,) = roundtrip(driver, "echo", big)
    np.testing.assert_array_equal(out.numpy(), big)
    (small,) = roundtrip(driver, "echo", np.ones(3, np.float32))  # the same instance, heap restarted
    assert small.tolist() == [1.0, 1.0, 1.0]


def test_torch_inputs_and_a_torch_module(driver: Guest, host: Host) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()).eval()
    host.register("mlp", model)
    x = torch.randn(5, 4)
    (y,) = roundtrip(driver, "mlp", x)
    torch.testing.assert_close(y, model(x))


def test_named_outputs_keep_their_names(driver: Guest, host: Host) -> None:
    class Split(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"double": x * 2, "total": x.sum()}

    host.register("split", Split())
    outputs = compute(driver, "split", as_tensors(torch.ones(2)))
    assert [o.name for o in outputs] == ["double", "total"]
    assert outputs[1].tensor.to_torch().item() == 2.0


def test_an_unknown_graph_is_the_errno_with_the_host_message(driver: Guest) -> None:
    with pytest.raises(ComputeError) as info:
        compute(driver, "nope", as_tensors(np.ones(1)))
    assert info.value.errno == 8
    assert "errno 8 (not_found)" in info.value.message and "no graph named 'nope'" in info.value.message


def test_a_model_error_comes_back_as_runtime_error(driver: Guest, host: Host) -> None:
    host.register("mlp", torch.nn.Linear(4, 3))
    with pytest.raises(ComputeError) as info:
        compute(driver, "mlp", as_tensors(torch.ones(2, 5)))
    assert info.value.errno == 5 and "runtime_error" in info.value.message


def test_inputs_past_the_memory_limit_fail_cleanly(build: Build, instantiate: Instantiate) -> None:
    guest = instantiate(build(driver_wat(), "wat", name="driver"), limits=GuestLimits(memory_bytes=1 << 20))
    with pytest.raises(ComputeError, match="could not allocate"):
        compute(guest, "echo", as_tensors(np.ones(1 << 20, np.uint8)))
    assert roundtrip(guest, "echo", np.ones(4, np.uint8))[0].tolist() == [1, 1, 1, 1]


def test_a_guest_without_the_exports_is_refused(build: Build, instantiate: Instantiate) -> None:
    guest = instantiate(build('(module (memory (export "memory") 1))', "wat", name="empty"))
    with pytest.raises(ComputeError, match="does not follow the compute convention"):
        compute(guest, "echo", as_tensors(np.ones(1)))


def convention_wat(result_body: str) -> str:
    """A guest whose wasinn_compute ignores its inputs and writes a result record by hand."""
    return f"""
    (module
      (memory (export "memory") 1)
      (func (export "wasinn_alloc") (param i32) (result i32) (i32.const 1024))
      (func (export "wasinn_compute") (param i32 i32 i32 i32 i32) (result i32)
        {result_body}
        (i32.const 0)))
    """


def test_guest_made_outputs_are_checked(build: Build, instantiate: Instantiate) -> None:
    # one output: dims [3] at 100, type i32, data at 200 but only 8 bytes (12 needed)
    body = """
        (i32.store (i32.const 100) (i32.const 3))
        (i32.store (i32.const 300) (i32.const 100)) (i32.store (i32.const 304) (i32.const 1))
        (i32.store (i32.const 308) (i32.const 4))
        (i32.store (i32.const 312) (i32.const 200)) (i32.store (i32.const 316) (i32.const 8))
        (i32.store (local.get 4) (i32.const 1)) (i32.store offset=4 (local.get 4) (i32.const 300))
    """
    guest = instantiate(build(convention_wat(body), "wat", name="short"))
    with pytest.raises(ComputeError, match=r"output 0: .*need 12 bytes"):
        compute(guest, "echo", as_tensors(np.ones(1)))


def test_wild_output_pointers_are_caught(build: Build, instantiate: Instantiate) -> None:
    body = """
        (i32.store (i32.const 300) (i32.const 0)) (i32.store (i32.const 304) (i32.const 0))
        (i32.store (i32.const 308) (i32.const 3))
        (i32.store (i32.const 312) (i32.const 0xFFFFFF00)) (i32.store (i32.const 316) (i32.const 16))
        (i32.store (local.get 4) (i32.const 1)) (i32.store offset=4 (local.get 4) (i32.const 300))
    """
    guest = instantiate(build(convention_wat(body), "wat", name="wild"))
    with pytest.raises(ComputeError, match="output 0 data: 16 bytes at 0xffffff00 run past the end of linear memory"):
        compute(guest, "echo", as_tensors(np.ones(1)))


def test_outputs_may_not_add_up_to_more_than_the_guest_memory(build: Build, instantiate: Instantiate) -> None:
    # 64 u8 outputs, each the same 32 KiB at 0 (each one in bounds), in a 64 KiB memory: 2 MiB to copy in all
    body = """
        (local $i i32) (local $row i32)
        (i32.store (i32.const 200) (i32.const 32768))
        (block $done (loop $next
          (br_if $done (i32.ge_u (local.get $i) (i32.const 64)))
          (local.set $row (i32.add (i32.const 4096) (i32.mul (local.get $i) (i32.const 20))))
          (i32.store (local.get $row) (i32.const 200)) (i32.store offset=4 (local.get $row) (i32.const 1))
          (i32.store offset=8 (local.get $row) (i32.const 3))
          (i32.store offset=12 (local.get $row) (i32.const 0)) (i32.store offset=16 (local.get $row) (i32.const 32768))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $next)))
        (i32.store (local.get 4) (i32.const 64)) (i32.store offset=4 (local.get 4) (i32.const 4096))
    """
    guest = instantiate(build(convention_wat(body), "wat", name="aliased"))
    with pytest.raises(ComputeError, match="64 outputs add up to 2097152 bytes, more than its 65536-byte memory"):
        compute(guest, "echo", as_tensors(np.ones(1)))


def test_outputs_that_fit_may_share_memory(build: Build, instantiate: Instantiate) -> None:
    # two outputs naming the same 4 bytes: allowed, since together they stay within the guest's memory
    body = """
        (i32.store (i32.const 200) (i32.const 4)) (i32.store (i32.const 208) (i32.const 0x04030201))
        (i32.store (i32.const 300) (i32.const 200)) (i32.store (i32.const 304) (i32.const 1))
        (i32.store (i32.const 308) (i32.const 3))
        (i32.store (i32.const 312) (i32.const 208)) (i32.store (i32.const 316) (i32.const 4))
        (memory.copy (i32.const 320) (i32.const 300) (i32.const 20))
        (i32.store (local.get 4) (i32.const 2)) (i32.store offset=4 (local.get 4) (i32.const 300))
    """
    guest = instantiate(build(convention_wat(body), "wat", name="shared"))
    outputs = compute(guest, "echo", as_tensors(np.ones(1)))
    assert [o.tensor.to_numpy().tolist() for o in outputs] == [[1, 2, 3, 4], [1, 2, 3, 4]]


@pytest.mark.parametrize(
    ("alloc", "compute_params", "wrong"),
    [
        (
            "(param i32) (result i32)",
            "(param i32 i32 i32 i32)",
            "wasinn_compute must be (i32, i32, i32, i32, i32) -> i32, but it is (i32, i32, i32, i32) -> i32",
        ),
        (
            "(param i64) (result i32)",
            "(param i32 i32 i32 i32 i32)",
            "wasinn_alloc must be (i32) -> i32, but it is (i64) -> i32",
        ),
        ("(param i32)", "(param i32 i32 i32 i32 i32)", "wasinn_alloc must be (i32) -> i32, but it is (i32) -> ()"),
        ("(result i32)", "(param i32 i32 i32 i32 i32)", "wasinn_alloc must be (i32) -> i32, but it is () -> i32"),
    ],
)
def test_export_signatures_are_checked_before_any_call(
    build: Build, instantiate: Instantiate, alloc: str, compute_params: str, wrong: str
) -> None:
    """Without the check, wasmtime's TypeError (or a None result) would surface from deep inside the call."""
    body = "(i32.const 1024)" if "result" in alloc else ""
    wat = f"""
    (module
      (memory (export "memory") 1)
      (func (export "wasinn_alloc") {alloc} {body})
      (func (export "wasinn_compute") {compute_params} (result i32) (i32.const 0)))
    """
    guest = instantiate(build(wat, "wat", name="signature"))
    assert convention_problem(guest.module) == wrong
    with pytest.raises(ComputeError) as info:
        compute(guest, "echo", as_tensors(np.ones(1)))
    assert info.value.message == f"guest {guest.label!r} does not follow the compute convention: {wrong}"


def test_exports_of_the_wrong_kind_are_refused(build: Build, instantiate: Instantiate) -> None:
    wat = """
    (module
      (memory (export "memory") 1)
      (global (export "wasinn_alloc") i32 (i32.const 0))
      (func (export "wasinn_compute") (param i32 i32 i32 i32 i32) (result i32) (i32.const 0)))
    """
    guest = instantiate(build(wat, "wat", name="notfunc"))
    with pytest.raises(ComputeError, match=r"wasinn_alloc must be a function \(i32\) -> i32, but it is not one"):
        compute(guest, "echo", as_tensors(np.ones(1)))
    wat = """
    (module
      (func (export "memory"))
      (func (export "wasinn_alloc") (param i32) (result i32) (i32.const 0))
      (func (export "wasinn_compute") (param i32 i32 i32 i32 i32) (result i32) (i32.const 0)))
    """
    guest = instantiate(build(wat, "wat", name="notmemory"))
    with pytest.raises(ComputeError, match="its export 'memory' is not a memory"):
        compute(guest, "echo", as_tensors(np.ones(1)))


def test_an_errno_the_guest_chose_shows_no_earlier_host_error(build: Build, instantiate: Instantiate) -> None:
    # load_by_name's errno when it fails; else errno 6, chosen by the guest with no host error behind it
    wat = """
    (module
      (import "wasi_ephemeral_nn" "load_by_name" (func $load (param i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "wasinn_alloc") (param i32) (result i32) (i32.const 1024))
      (func (export "wasinn_compute") (param i32 i32 i32 i32 i32) (result i32)
        (local $err i32)
        (local.set $err (call $load (local.get 0) (local.get 1) (i32.const 0)))
        (if (result i32) (local.get $err) (then (local.get $err)) (else (i32.const 6)))))
    """
    guest = instantiate(build(wat, "wat", name="ownerrno"))
    with pytest.raises(ComputeError, match="no graph named 'nope'"):
        compute(guest, "nope", as_tensors(np.ones(1)))
    with pytest.raises(ComputeError) as info:
        compute(guest, "echo", as_tensors(np.ones(1)))
    assert info.value.errno == 6
    assert "no graph named" not in info.value.message
    assert "the guest gave no host error" in info.value.message


def test_from_graph_needs_a_real_context(build: Build, instantiate: Instantiate) -> None:
    body = """
        (i32.store (i32.const 308) (i32.const 255))
        (i32.store (local.get 4) (i32.const 1)) (i32.store offset=4 (local.get 4) (i32.const 300))
        (i32.store offset=8 (local.get 4) (i32.const 77))
    """
    guest = instantiate(build(convention_wat(body), "wat", name="nocontext"))
    with pytest.raises(ComputeError, match="execution context 77 has no such output"):
        compute(guest, "echo", as_tensors(np.ones(1)))


def test_a_c_guest_makes_its_own_outputs(
    build: Build, instantiate: Instantiate, host: Host, sources: dict[str, str]
) -> None:
    torch.manual_seed(1)
    model = torch.nn.Linear(8, 5).eval()
    host.register("scores", model)
    guest = instantiate(build(sources["c_top1"], "c", name="top1"))
    x = torch.randn(6, 8)
    (out,) = compute(guest, "scores", as_tensors(x))
    assert out.tensor.type.name == "i32" and out.tensor.dims == (6,)
    assert out.tensor.to_torch().tolist() == model(x).argmax(1).tolist()
    # the same instance again: wasinn_alloc frees the previous arena
    (again,) = compute(guest, "scores", as_tensors(x[:2]))
    assert again.tensor.to_torch().tolist() == model(x[:2]).argmax(1).tolist()


C_ALIGNED = r"""
#include <stdlib.h>
#include "wasi_nn.h"

static void *arena;
WASINN_EXPORT("wasinn_alloc") void *wasinn_alloc(uint32_t size) {
    free(arena);
    return arena = malloc(size);
}

/* invalid_argument unless every input's data is 16-byte aligned; no outputs */
WASINN_EXPORT("wasinn_compute")
wasi_nn_errno_t wasinn_compute(const char *name, uint32_t name_len, const wasi_nn_tensor_t *inputs, uint32_t n,
                               wasinn_result_t *result) {
    for (uint32_t i = 0; i < n; i++)
        if ((uintptr_t)inputs[i].data % 16) return WASI_NN_ERRNO_INVALID_ARGUMENT;
    return WASI_NN_ERRNO_SUCCESS;
}
"""


def test_data_is_16_byte_aligned_when_alloc_is(build: Build, instantiate: Instantiate) -> None:
    """The arena's parts are 16-aligned relative to it; malloc's 16-aligned pointer makes them so in memory."""
    guest = instantiate(build(C_ALIGNED, "c", name="aligned"))
    odd = [np.ones(n, np.uint8) for n in (1, 3, 17, 5)] + [np.ones((3, 5, 7), np.float32), np.array(1.0)]
    for k in range(1, len(odd) + 1):
        assert compute(guest, "echo", as_tensors(odd[:k])) == []


def test_a_rust_guest_forwards(
    build: Build,
    instantiate: Instantiate,
    need_toolchain: Callable[[str], None],
    sources: dict[str, str],
) -> None:
    need_toolchain("rust")
    guest = instantiate(build(sources["rust_forward"], "rust", name="forward"))
    outs = roundtrip(guest, "echo", np.arange(5, dtype=np.int64), np.ones((2, 3), np.float32))
    assert outs[0].tolist() == [0, 1, 2, 3, 4] and outs[1].shape == (2, 3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_inputs_are_copied_into_guest_memory(driver: Guest) -> None:
    """Tensor.copy_into writes a CUDA tensor straight into the guest's memory, non-contiguous ones included."""
    x = torch.randn(64, 33, device="cuda")
    half = torch.arange(12, device="cuda", dtype=torch.float16).reshape(3, 4)
    ys = roundtrip(driver, "echo", x, x.t(), half)
    assert all(y.device.type == "cpu" for y in ys)
    for y, want in zip(ys, (x, x.t(), half), strict=True):
        torch.testing.assert_close(y, want.cpu())


# -- what the cell's value becomes ------------------------------------------------------------------------------


def test_as_tensors_reads_one_value_a_list_or_a_dict() -> None:
    assert [t.dims for t in as_tensors(np.ones((2, 2)))] == [(2, 2)]
    assert [t.dims for t in as_tensors([np.ones(2), torch.ones(3)])] == [(2,), (3,)]
    assert [t.dims for t in as_tensors([[1.0, 2.0], [3.0, 4.0]])] == [(2, 2)]  # numbers: one array
    ordered = as_tensors({"b": np.ones(2), "a": np.ones(3)}, names=["a", "b"])
    assert [t.dims for t in ordered] == [(3,), (2,)]
    assert [t.dims for t in as_tensors({"b": np.ones(2), "a": np.ones(3)})] == [(2,), (3,)]


def test_as_tensors_says_what_is_wrong(driver: Guest) -> None:
    with pytest.raises(ComputeError, match=r"unknown \['c'\], missing \['b'\]"):
        as_tensors({"a": np.ones(1), "c": np.ones(1)}, names=["a", "b"])
    with pytest.raises(ComputeError, match=r"input 0 .* is not a tensor"):
        as_tensors(np.array(["text"]))
    with pytest.raises(ComputeError, match="no witx tensor type"):
        compute(driver, "echo", as_tensors(torch.ones(2, dtype=torch.bfloat16)))
