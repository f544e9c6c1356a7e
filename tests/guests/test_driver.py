"""The compute convention through real guests: the shipped WAT driver, a C guest and a Rust guest."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from wasinn_jupyter.guests import Compiled, ComputeError, as_tensors, compute, driver_wat
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
    with pytest.raises(ComputeError, match="outside the guest's"):
        compute(guest, "echo", as_tensors(np.ones(1)))


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
