"""Backends keyed by encoding: lookup, a backend of one's own, abilities, and the config reaching the graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wasinn_jupyter.host import Encoding, ErrorCode, Host, Tensor, WasiNNError
from wasinn_jupyter.host.backends import backend_for, register_backend, supported, unregister_backend
from wasinn_jupyter.host.backends.base import Backend, Graph, GraphInfo
from wasinn_jupyter.host.backends.echo import EchoGraph


def test_encodings_map_to_backends_and_the_rest_are_refused_by_name() -> None:
    assert backend_for(Encoding.PYTORCH) is backend_for(Encoding.AUTODETECT)
    assert set(supported()) >= {Encoding.PYTORCH, Encoding.AUTODETECT}
    with pytest.raises(WasiNNError) as err:
        backend_for(Encoding.TENSORFLOWLITE)
    assert err.value.code is ErrorCode.INVALID_ENCODING and "pytorch, autodetect" in err.value.message


class Scaled(Graph):
    """Multiplies its input by a factor a guest may set through load_by_name_with_config."""

    abilities = frozenset({"properties"})

    def __init__(self, name: str, factor: float = 1.0) -> None:
        self.name, self.device, self.factor = name, "cpu", factor

    def run(self, inputs: list[Tensor]) -> list[Tensor]:
        return [Tensor.from_value(inputs[0].to_numpy() * self.factor)]

    def info(self) -> GraphInfo:
        return GraphInfo(self.name, "scaled", self.device)

    def configure(self, config: dict[str, Any]) -> Graph:
        return Scaled(self.name, float(config.get("factor", self.factor)))


class ScaledBackend(Backend):
    name = "scaled"

    def from_path(self, path: Path, device: str, name: str, max_bytes: int, suffix: str | None = None) -> Graph:
        return Scaled(name, float(path.read_text()))


def test_a_backend_of_ones_own_serves_its_encoding_and_the_config_reaches_its_graph(tmp_path) -> None:
    (tmp_path / "two.txt").write_text("2")
    register_backend(Encoding.ONNX, ScaledBackend())
    try:
        host = Host()
        host.register("scaled", tmp_path / "two.txt", encoding="onnx")
        with host.client() as client:
            for config, expected in ((None, 2.0), ('{"factor": 5}', 5.0)):
                graph = client.load_by_name("scaled", config)
                assert client.graphs.get(graph).supports("properties")
                ctx = client.init_execution_context(graph)
                client.set_input(ctx, 0, Tensor.from_value(np.ones(2, np.float32)))
                client.compute(ctx)
                np.testing.assert_array_equal(client.get_output(ctx, 0).to_numpy(), [expected, expected])
        with pytest.raises(WasiNNError) as err:  # the backend has no loader for bytes
            host.client().load([b"x"], "onnx", "cpu")
        assert err.value.code is ErrorCode.UNSUPPORTED_OPERATION
    finally:
        unregister_backend(Encoding.ONNX)
    assert not EchoGraph("e").supports("properties")
