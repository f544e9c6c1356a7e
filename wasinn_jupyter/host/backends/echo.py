"""The echo model: n inputs come back as n outputs, unchanged, of any type and shape.

It is what the conformance suite measures the API with. On the CPU it never touches torch: an input is already a
host-owned copy of the guest's bytes, so echoing it costs nothing. On a GPU each input makes the round trip
through device memory, so the suite's gpu cases exercise the real host-device path.
"""

from __future__ import annotations

from pathlib import Path

from ..tensors import Tensor
from .base import Backend, Graph, GraphInfo

ECHO = "echo"


class EchoGraph(Graph):
    def __init__(self, name: str = ECHO, device: str = "cpu") -> None:
        self.name = name
        self.device = device

    def run(self, inputs: list[Tensor]) -> list[Tensor]:
        if self.device == "cpu":
            return list(inputs)
        return [Tensor(t.dims, t.type, t.to_torch(self.device)) for t in inputs]

    def info(self) -> GraphInfo:
        return GraphInfo(
            name=self.name,
            kind="echo",
            device=self.device,
            parameters=0,
            notes=["any number of inputs of any type and shape; output i is input i"],
        )


class EchoBackend(Backend):
    """The echo model, named by the word ``echo`` where a model path goes (``--nn-preload NAME:ENC:TARGET:echo``)."""

    name = ECHO

    def from_path(self, path: Path, device: str, name: str, max_bytes: int, suffix: str | None = None) -> Graph:
        return EchoGraph(name, device)
