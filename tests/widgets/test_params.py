"""The parameters widget on a real registered torch graph: the tree, the totals, and property controls whose
changes reach the next compute of a real guest (the shipped driver, through the witx ABI)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from wasinn_jupyter.guests import as_tensors, compile_source, compute, driver_wat
from wasinn_jupyter.host import Host, Session
from wasinn_jupyter.widgets import ParamsWidget


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU())
        self.head = torch.nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@pytest.fixture
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    with Session() as s:
        torch.manual_seed(0)
        s.host.register("net", Net().eval())
        yield s


def run(session: Session, x: torch.Tensor) -> torch.Tensor:
    """One compute of graph ``net`` through a fresh driver guest."""
    wasm = compile_source(driver_wat(), "wat", name="driver").wasm
    guest = session.instantiate(session.compile(wasm, name="driver"))
    try:
        (out,) = compute(guest, "net", as_tensors(x))
    finally:
        guest.close()
    return out.tensor.to_torch()


def test_the_tree_lists_every_parameter_and_buffer_with_totals(session: Session) -> None:
    w = ParamsWidget(session.host, "net")
    model = Net()
    names = {r["name"]: r for r in w.tree.rows}
    expected = dict(model.named_parameters()) | dict(model.named_buffers())
    assert set(names) == set(expected)
    row = names["body.0.weight"]
    assert (row["kind"], row["shape"], row["dtype"], row["device"], row["numel"]) == (
        "parameter", [32, 16], "float32", "cpu", 512,
    )  # fmt: skip
    assert names["body.1.running_mean"]["kind"] == "buffer"
    count = sum(p.numel() for p in model.parameters())
    assert f"{count:,} parameter values in 6 tensors" in w.header.value
    assert f"{count:,} parameter values" in repr(w)
    assert set(w.controls) >= {"precision", "device", "threads", "residence"}
    assert w.controls["precision"].control.options == ("fp32", "fp16", "bf16")
    bundle = w._repr_mimebundle_()
    assert "precision = fp32 (choice)" in bundle["text/plain"]
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_a_control_change_reaches_the_next_compute(session: Session) -> None:
    x = torch.randn(3, 16)
    module = session.host.graph("net")
    reference = run(session, x)
    w = ParamsWidget(session.host, "net")
    w.set("precision", "bf16")  # as a person picks it in the dropdown
    assert session.host.properties("net")["precision"].value == "bf16"
    assert "next compute" in w.controls["precision"].message.value
    assert {r["dtype"] for r in w.tree.rows if r["kind"] == "parameter"} == {"bfloat16"}  # the tree follows
    lowered = run(session, x)
    assert lowered.dtype == torch.float32  # outputs keep the guest's type
    assert not torch.equal(lowered, reference)
    np.testing.assert_allclose(lowered.numpy(), reference.numpy(), rtol=0.1, atol=0.1)
    w.set("precision", "fp32")
    assert torch.equal(run(session, x), reference)
    assert module is session.host.graph("net")


def test_a_refused_value_shows_the_message_and_the_control_goes_back(session: Session) -> None:
    w = ParamsWidget(session.host, "net")
    threads = w.controls["threads"]
    w.set("threads", 10_000)
    assert "threads must lie in" in threads.message.value
    assert threads.control.value == 0 and session.host.properties("net")["threads"].value == "0"
    w.set("threads", 1)
    assert session.host.properties("net")["threads"].value == "1" and "next compute" in threads.message.value


def test_an_unregistered_graph_disables_the_controls(session: Session) -> None:
    w = ParamsWidget(session.host, "net")
    session.host.unregister("net")
    w.refresh()
    assert "no graph named 'net'" in w.status.value
    assert all(c.control.disabled for c in w.controls.values())


def test_a_graph_without_properties_or_tensors(session: Session) -> None:
    session.host.register("echo", "echo")
    w = ParamsWidget(session.host, "echo")
    assert w.controls == {} and w.tree.rows == [] and w.tree.layout.display == "none"
    assert repr(w) == "graph 'echo': no named tensors known (the backend lists none for this graph)"


def test_a_prompt_graph_offers_its_sampling_settings(tiny_lm_dir: Path) -> None:
    import ipywidgets

    host = Host()
    host.register("chat", str(tiny_lm_dir))
    w = ParamsWidget(host, "chat")
    kinds = {k: type(c.control) for k, c in w.controls.items()}
    assert kinds["temperature"] is ipywidgets.FloatText and kinds["top_p"] is ipywidgets.FloatText
    assert kinds["top_k"] is ipywidgets.IntText and kinds["max_new_tokens"] is ipywidgets.IntText
    assert kinds["precision"] is ipywidgets.Dropdown
    w.set("temperature", 0.25)
    assert host.properties("chat")["temperature"].value in ("0.25", "0.250")
    top_p = w.controls["top_p"]
    before = top_p.control.value
    w.set("top_p", 2.0)
    assert "top_p must lie in [0, 1]" in top_p.message.value and top_p.control.value == before
    host.close()
