"""Graph properties (PR 80) and prompt (PR 79) from a component, on real torch graphs and a real language model."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.host.component.conftest import guest
from wasinn_jupyter.host import Session
from wasinn_jupyter.host.component import PHASE3_WIT_DIR


def test_properties_are_graph_methods(session: Session) -> None:
    session.host.register("lin", torch.nn.Linear(3, 2))
    session.host.limits.guests_set_shared_properties = True  # by default a guest only reads a shared graph's
    with session.instantiate(session.compile(guest("props"))) as g:
        assert g.call("open", "lin", watch=False) == 0
        assert {"precision", "device", "threads"} <= set(g.call("list", watch=False))
        assert g.call("get", "precision", watch=False) == "fp32"
        assert g.call("get", "no-such-property", watch=False) is None
        assert g.call("set", "precision", "fp16", watch=False) is None  # result<_, string>: ok
        assert session.host.graph("lin").get_property("precision") == "fp16"  # the shared graph changed
        refused = g.call("set", "precision", "fp7", watch=False)
        assert isinstance(refused, str) and "fp32" in refused  # the error names the choices
        g.call("close", watch=False)
    calls = [r.call for r in session.host.timeline.records() if r.kind == "call"]
    assert {"list_properties", "get_property", "set_property"} <= set(calls)


def test_echo_graph_has_none_and_prompt_on_a_tensor_graph_is_an_error(session: Session) -> None:
    with session.instantiate(session.compile(guest("props"))) as g:
        assert g.call("open", "echo", watch=False) == 0
        assert g.call("list", watch=False) == []
        reply = g.call("ask", "hello", watch=False)
        assert reply.tag == "err" and reply.payload.startswith("unsupported-operation")


def test_prompt_answers_text(session: Session, tiny_lm_dir: Path) -> None:
    session.host.register("lm", tiny_lm_dir, "ggml")
    session.host.limits.guests_set_shared_properties = True
    with session.instantiate(session.compile(guest("props"))) as g:
        assert g.call("open", "lm", watch=False) == 0
        assert g.call("set", "temperature", "0", watch=False) is None
        assert g.call("set", "max_new_tokens", "8", watch=False) is None
        reply = g.call("ask", "the cat s", watch=False)
        assert reply.tag == "ok" and reply.payload.startswith("at on")


def test_the_phase3_wit_declares_what_the_host_serves() -> None:
    text = (PHASE3_WIT_DIR / "wasi-nn.wit").read_text()
    for name in ("list-properties: func()", "get-property: func(name: string) -> option<string>", "interface prompt"):
        assert name in text
