"""A guest may change its own graphs' properties but only read those of a graph every guest shares."""

from __future__ import annotations

import pytest
import torch

from wasinn_jupyter.host import ErrorCode, Host, Limits, WasiNNError


class Scale(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 3


def test_a_guest_reads_but_does_not_change_a_shared_graph() -> None:
    host = Host()
    host.register("scale", Scale())
    client = host.client("g")
    graph = client.load_by_name("scale")
    assert client.get_property(graph, "precision") == "fp32"
    with pytest.raises(WasiNNError) as err:
        client.set_property(graph, "precision", "fp16")
    assert err.value.code is ErrorCode.SECURITY and "shared by every guest" in err.value.message
    assert client.get_property(graph, "precision") == "fp32"
    assert [r.outcome for r in host.timeline.records() if r.call == "set_property"] == ["security"]
    host.set_property("scale", "precision", "fp16")  # the notebook's own change (the parameters widget) is allowed
    assert client.get_property(graph, "precision") == "fp16"


def test_the_host_may_let_guests_change_shared_graphs() -> None:
    host = Host(limits=Limits(guests_set_shared_properties=True))
    host.register("scale", Scale())
    client = host.client("g")
    graph = client.load_by_name("scale")
    client.set_property(graph, "precision", "bf16")
    assert host.graph("scale").get_property("precision") == "bf16"
