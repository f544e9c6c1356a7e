"""Properties of a graph a guest loaded into its sandbox: precision and threads reach the worker, the rest is fixed."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from wasinn_jupyter.host import ErrorCode, Host, Tensor, WasiNNError
from wasinn_jupyter.host.backends.torch import quiet_torchscript
from wasinn_jupyter.host.sandbox import remote


def archive(module: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    with quiet_torchscript():
        torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


def run(client, graph: int, x: np.ndarray) -> Tensor:
    ctx = client.init_execution_context(graph)
    client.set_input(ctx, 0, Tensor.from_value(x))
    client.compute(ctx)
    return (client.contexts.get(ctx).outputs or [])[0]


def test_precision_and_threads_change_the_workers_next_compute() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4)).eval()
    x = np.random.default_rng(0).standard_normal((3, 32), dtype=np.float32)
    with Host().client() as client:
        graph = client.load([archive(model)], "pytorch", "cpu")
        assert client.list_properties(graph) == ["precision", "threads", "device", "residence"]
        base = run(client, graph, x).to_numpy()
        client.set_property(graph, "precision", "fp16")
        assert client.get_property(graph, "precision") == "fp16"
        low = run(client, graph, x)
        assert low.type.name == "f32" and not np.array_equal(low.to_numpy(), base)
        expected = model.half()(torch.from_numpy(x).half()).float().detach().numpy()
        np.testing.assert_allclose(low.to_numpy(), expected, rtol=0.02, atol=0.02)
        client.set_property(graph, "precision", "fp32")
        np.testing.assert_array_equal(run(client, graph, x).to_numpy(), base)

        # TorchScript cannot ask torch for its thread count (the in-process tests show the effect): here, that the
        # confined worker sets it and computes the same
        client.set_property(graph, "threads", "1")
        assert client.get_property(graph, "threads") == "1"
        np.testing.assert_array_equal(run(client, graph, x).to_numpy(), base)


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("device", "cuda:0", "must be one of cpu"),
        ("residence", "device", "must be one of memory"),
        ("precision", "fp8", "one of fp32, fp16, bf16"),
        ("threads", "x" * 300, "too long"),
        ("colour", "red", "cannot be set"),
    ],
)
def test_what_a_sandboxed_graph_cannot_change_is_invalid_argument(key: str, value: str, words: str) -> None:
    with Host().client() as client:
        graph = client.load([archive(torch.nn.Linear(2, 2))], "pytorch", "cpu")
        with pytest.raises(WasiNNError) as err:
            client.set_property(graph, key, value)
        assert err.value.code is ErrorCode.INVALID_ARGUMENT and words in err.value.message
        assert client.get_property(graph, "device") == "cpu"  # the worker lives on


@pytest.mark.parametrize(
    "raw",
    [
        "not a list",
        [{"name": "device", "value": "cuda", "kind": "choice"}],  # a property the worker may not claim
        [{"name": "threads", "value": 3, "kind": "int"}],
        [{"name": "threads", "value": "1", "kind": "exec"}],
        [{"name": "threads", "value": "1", "kind": "int", "minimum": "0"}],
        [{"name": "precision", "value": "fp32", "kind": "choice", "choices": ["x" * 99]}],
        [{"name": "threads", "value": "1", "kind": "int"}] * 2,
    ],
)
def test_specs_from_a_hostile_worker_are_refused(raw: object) -> None:
    assert remote._checked_specs(raw) is None
