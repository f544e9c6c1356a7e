"""%%wasinn prompt: a language model's reply streamed into the cell, through IPython and in a real kernel."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def test_the_reply_streams_into_the_cell(run: Callable[[str], Any], ip: Any, tiny_lm_dir: Path) -> None:
    assert run(f"%wasinn load chat {tiny_lm_dir}").ok
    cell = run("%%wasinn prompt chat -n 14 --temp 0 -o reply\nthe cat s")
    assert cell.ok, cell.error
    assert cell.out == "at on the mat.\n"
    assert ip.user_ns["reply"] == "at on the mat."
    assert "[14 tokens in " in cell.err and "tokens/s]" in cell.err
    from wasinn_jupyter.magics import workbench

    session = workbench().session
    assert session is not None
    last = [r for r in session.host.timeline.records() if r.call == "prompt"][-1]
    assert last.tokens == 14 and last.graph == "chat" and last.guest == "%%wasinn prompt"


def test_the_graphs_properties_apply_and_options_override_them(run: Callable[[str], Any], tiny_lm_dir: Path) -> None:
    assert run(f"%wasinn load chat {tiny_lm_dir}").ok
    from wasinn_jupyter.magics import workbench

    session = workbench().session
    assert session is not None
    host = session.host
    host.set_property("chat", "temperature", "0")
    host.set_property("chat", "max_new_tokens", "3")
    assert run("%%wasinn prompt chat\nthe cat s").out == "at \n"
    assert run("%%wasinn prompt chat -n 6\nthe cat s").out == "at on \n"


def test_what_cannot_be_prompted_fails_the_cell(run: Callable[[str], Any], tiny_lm_dir: Path) -> None:
    assert run("%wasinn load echo echo").ok
    cell = run("%%wasinn prompt echo\nhello")
    assert not cell.ok and "not a prompt graph" in str(cell.error)
    assert run(f"%wasinn load chat {tiny_lm_dir}").ok
    assert "the cell (the prompt) is empty" in str(run("%%wasinn prompt chat\n\n").error)
    cell = run("%%wasinn prompt chat --ctx-size 4\nthe cat s")
    assert not cell.ok and "prompt-too-long" in str(cell.error)
    assert "no graph named 'nope'" in str(run("%%wasinn prompt nope\nhi").error)


# -- in a real kernel ------------------------------------------------------------------------------------------


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from jupyter_client.manager import start_new_kernel

    monkeypatch.setenv("WASINN_CACHE_DIR", str(tmp_path / "cache"))
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=60, cwd=str(tmp_path))
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_pieces_reach_the_front_end_as_they_are_produced(kernel: Any, tiny_lm_dir: Path) -> None:
    kc = kernel
    msg_id = kc.execute(f"%load_ext wasinn_jupyter\n%wasinn load chat {tiny_lm_dir}")
    assert kc.get_shell_msg(timeout=120)["content"]["status"] == "ok"
    msg_id = kc.execute("%%wasinn prompt chat -n 14 --temp 0\nthe cat s")
    pieces = []
    while True:
        msg = kc.get_iopub_msg(timeout=120)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        content = msg["content"]
        if msg["msg_type"] == "stream" and content["name"] == "stdout":
            pieces.append(content["text"])
        if msg["msg_type"] == "status" and content["execution_state"] == "idle":
            break
    assert "".join(pieces) == "at on the mat.\n"
    assert len(pieces) >= 5, pieces  # one message per flushed piece, not the reply at the end
