"""The torch backend's properties: each changes the next compute, from a real torch module, and bad values say why."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from wasinn_jupyter.host import ErrorCode, Host, Limits, Tensor, WasiNNError
from wasinn_jupyter.host.backends.torch import quiet_torchscript


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(64, 64)
        self.b = nn.Linear(64, 8)
        self.register_buffer("scale", torch.tensor(1.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(x))) * self.scale


class Threads(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([torch.get_num_threads()]) + x.sum().to(torch.int64) * 0


class Embed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Embedding(10, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table(ids)


@pytest.fixture(scope="module")
def mlp() -> nn.Module:
    torch.manual_seed(0)
    return Mlp().eval()


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(4, 64)


def run(host: Host, name: str, *inputs: torch.Tensor) -> list[Tensor]:
    """One compute through a client, as a guest makes it."""
    with host.client() as client:
        ctx = client.init_execution_context(client.load_by_name(name))
        for i, value in enumerate(inputs):
            client.set_input(ctx, i, Tensor.from_value(value))
        client.compute(ctx)
        return list(client.contexts.get(ctx).outputs or [])


def sources(tmp_path: Path, mlp: nn.Module, x: torch.Tensor) -> dict[str, object]:
    with quiet_torchscript():
        torch.jit.save(torch.jit.script(mlp), tmp_path / "mlp.pt")
    torch.export.save(torch.export.export(mlp, (x,)), tmp_path / "mlp.pt2")
    return {"module": mlp, "torchscript": tmp_path / "mlp.pt", "export": tmp_path / "mlp.pt2"}


@pytest.mark.parametrize("kind", ["module", "torchscript", "export"])
def test_precision_casts_the_next_compute_and_returns_the_guests_type(tmp_path, mlp, x, kind) -> None:
    host = Host()
    host.register("m", sources(tmp_path, mlp, x)[kind])
    assert host.properties("m")["precision"].value == "fp32"
    exact = mlp(x)
    (base,) = run(host, "m", x)
    torch.testing.assert_close(base.to_torch(), exact, rtol=0, atol=1e-6)
    for precision, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        host.set_property("m", "precision", precision)
        assert host.properties("m")["precision"].value == precision
        assert {p.dtype for p in host.graph("m").named_tensors()} == {str(dtype).removeprefix("torch.")}
        (out,) = run(host, "m", x)
        assert out.type.name == "f32" and out.dims == (4, 8)  # the guest's type and buffer size, whatever ran
        low = out.to_torch()
        assert not torch.equal(low, base.to_torch())  # really computed at the lower precision
        reference = Mlp().eval()
        reference.load_state_dict(mlp.state_dict())
        expected = reference.to(dtype)(x.to(dtype)).float()
        torch.testing.assert_close(low, expected, rtol=0.02, atol=0.02)
    host.set_property("m", "precision", "fp32")  # from the module as loaded: the round trip lost nothing
    (again,) = run(host, "m", x)
    assert torch.equal(again.to_torch(), base.to_torch())
    assert next(mlp.parameters()).dtype == torch.float32  # the user's module was never touched


def test_precision_leaves_integer_inputs_and_gives_the_loaded_type_back() -> None:
    torch.manual_seed(2)
    model = Embed().eval()
    host = Host()
    host.register("e", model)
    host.set_property("e", "precision", "fp16")
    ids = torch.tensor([[1, 2, 9]])
    (out,) = run(host, "e", ids)
    assert out.type.name == "f32"
    torch.testing.assert_close(out.to_torch(), model.table.weight[ids].half().float())


def test_threads_apply_to_this_graphs_compute_and_are_put_back() -> None:
    host = Host()
    host.register("t", Threads())
    before = torch.get_num_threads()
    assert host.properties("t")["threads"].value == "0"
    host.set_property("t", "threads", "1")
    (out,) = run(host, "t", torch.ones(1))
    assert out.to_torch().tolist() == [1]
    assert torch.get_num_threads() == before
    host.set_property("t", "threads", "0")
    (out,) = run(host, "t", torch.ones(1))
    assert out.to_torch().tolist() == [before]


def test_residence_and_device_on_the_cpu(mlp, x) -> None:
    host = Host()
    host.register("m", mlp)
    specs = host.properties("m")
    assert specs["device"].value == "cpu" and specs["device"].choices[0] == "cpu"
    assert specs["residence"].choices == ("memory", "device")
    host.set_property("m", "residence", "device")
    (out,) = run(host, "m", x)
    assert out.device == "cpu"
    assert "properties set: residence device" in host.graphs()["m"].notes


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("precision", "fp8", "one of fp32, fp16, bf16"),
        ("device", "tpu", "not available"),
        ("device", "cuda:99", "not available"),
        ("threads", "-1", "[0, "),
        ("threads", "two", "an integer"),
        ("residence", "disk", "one of memory, device"),
        ("colour", "red", "has no property 'colour' (it has: precision, device, threads, residence)"),
    ],
)
def test_bad_values_are_invalid_argument_and_change_nothing(mlp, x, key, value, words) -> None:
    host = Host(limits=Limits(guests_set_shared_properties=True))  # the guest's checks, not the sharing policy
    host.register("m", mlp)
    before = {k: v.value for k, v in host.properties("m").items()}
    with pytest.raises(WasiNNError) as err:
        host.set_property("m", key, value)
    assert err.value.code is ErrorCode.INVALID_ARGUMENT and words in err.value.message
    assert {k: v.value for k, v in host.properties("m").items()} == before
    client = host.client()
    graph = client.load_by_name("m")
    with pytest.raises(WasiNNError):
        client.set_property(graph, key, value)
    assert client.last_error is not None and words in client.last_error


def test_a_change_through_one_guest_reaches_every_guest_sharing_the_graph(mlp, x) -> None:
    host = Host(limits=Limits(guests_set_shared_properties=True))
    host.register("m", mlp)
    one, two = host.client(), host.client()
    g1, g2 = one.load_by_name("m"), two.load_by_name("m")
    assert one.list_properties(g1) == ["precision", "device", "threads", "residence"]
    one.set_property(g1, "precision", "bf16")
    assert two.get_property(g2, "precision") == "bf16"
    assert two.get_property(g2, "nothing") is None


def test_named_tensors_describe_weights_and_buffers(mlp) -> None:
    host = Host()
    host.register("m", mlp)
    tensors = {p.name: p for p in host.graph("m").named_tensors()}
    assert tensors["a.weight"].shape == (64, 64) and tensors["a.weight"].kind == "parameter"
    assert tensors["scale"].kind == "buffer" and tensors["scale"].numel == 1
    assert tensors["b.bias"].dtype == "float32" and tensors["b.bias"].device == "cpu"


def test_our_torchscript_loads_are_quiet_and_a_users_own_call_still_warns(tmp_path, mlp) -> None:
    buffer = io.BytesIO()
    with quiet_torchscript():
        torch.jit.save(torch.jit.script(mlp), buffer)
    (tmp_path / "m.pt").write_bytes(buffer.getvalue())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        host = Host()
        host.register("m", tmp_path / "m.pt")
        host.set_property("m", "precision", "fp16")
        run(host, "m", torch.randn(1, 64))
    assert not [w for w in caught if "deprecated" in str(w.message)], [str(w.message) for w in caught]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.jit.load(io.BytesIO(buffer.getvalue()))
    assert any("torch.jit.load" in str(w.message) for w in caught)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", ["module", "torchscript", "export"])
def test_device_moves_the_module_and_residence_keeps_outputs_there(tmp_path, mlp, x, kind) -> None:
    host = Host()
    host.register("m", sources(tmp_path, mlp, x)[kind])
    host.set_property("m", "device", "cuda")
    assert host.properties("m")["device"].value == "cuda:0"
    (out,) = run(host, "m", x)
    assert out.device == "cpu"  # residence memory: brought to host memory after compute
    torch.testing.assert_close(out.to_torch(), mlp(x), rtol=1e-4, atol=1e-4)
    host.set_property("m", "residence", "device")
    host.set_property("m", "precision", "fp16")
    (out,) = run(host, "m", x)
    assert out.device.startswith("cuda") and out.type.name == "f32"
    np.testing.assert_allclose(out.to_numpy(), mlp(x).detach().numpy(), rtol=0.02, atol=0.02)
    host.set_property("m", "device", "cpu")
    (out,) = run(host, "m", x)
    assert out.device == "cpu"
