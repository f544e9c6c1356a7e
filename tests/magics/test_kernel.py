"""The magics in a real ipykernel: the interrupt button on a runaway guest, output streaming, and a notebook run
by nbclient that interrupts a cell and goes on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import KernelManager, start_new_kernel
from nbclient import NotebookClient

SPIN_WAT = '(module (func (export "_start") (loop $forever (br $forever))))'
TICKER_C = r"""%%wasinn guest ticker --lang c
#include <stdio.h>
#include <unistd.h>
int main(void) {
    for (int i = 0; i < 3; i++) {
        printf("tick %d\n", i);
        fflush(stdout);
        usleep(400000);
    }
    return 0;
}
"""


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[KernelManager, Any]]:
    monkeypatch.setenv("WASINN_CACHE_DIR", str(tmp_path / "cache"))
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=60, cwd=str(tmp_path))
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def collect(kc: Any, msg_id: str, timeout: float = 120) -> tuple[dict[str, Any], list[tuple[float, str, Any]]]:
    """Wait for the reply to ``msg_id``; its iopub messages as (arrival time, type, content)."""
    messages = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append((time.monotonic(), msg["msg_type"], msg["content"]))
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    while True:
        reply = kc.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"], messages


def execute(kc: Any, code: str, timeout: float = 120) -> tuple[dict[str, Any], list[tuple[float, str, Any]]]:
    return collect(kc, kc.execute(code), timeout)


def text(messages: list[tuple[float, str, Any]]) -> str:
    return "".join(c["text"] for _, kind, c in messages if kind == "stream")


def test_the_interrupt_button_stops_a_runaway_guest(kernel: tuple[KernelManager, Any]) -> None:
    km, kc = kernel
    assert execute(kc, "%load_ext wasinn_jupyter")[0]["status"] == "ok"
    assert execute(kc, "%%wasinn guest spin\n" + SPIN_WAT)[0]["status"] == "ok"
    msg_id = kc.execute("%wasinn run spin")
    time.sleep(1.0)
    km.interrupt_kernel()
    start = time.monotonic()
    reply, messages = collect(kc, msg_id, timeout=30)
    assert time.monotonic() - start < 5
    assert reply["status"] == "error" and reply["ename"] == "WasinnError"
    assert "guest 'spin' stopped: interrupted" in reply["evalue"]
    shown = "\n".join(line for _, kind, c in messages if kind == "error" for line in c["traceback"])
    assert "guest 'spin' stopped" in shown and "Traceback" not in shown
    # the kernel lives, and so do the magics' guests
    reply, messages = execute(kc, "%wasinn list")
    assert reply["status"] == "ok"
    assert any("spin" in c["data"]["text/plain"] for _, kind, c in messages if kind == "execute_result")
    reply, messages = execute(kc, "1 + 1")
    assert [c["data"]["text/plain"] for _, kind, c in messages if kind == "execute_result"] == ["2"]


def test_guest_output_streams_while_the_guest_runs(kernel: tuple[KernelManager, Any]) -> None:
    _, kc = kernel
    execute(kc, "%load_ext wasinn_jupyter")
    reply, _ = execute(kc, TICKER_C, timeout=180)  # zig's first build may happen here
    assert reply["status"] == "ok"
    reply, messages = execute(kc, "%wasinn run ticker")
    assert reply["status"] == "ok"
    ticks = [(at, c["text"]) for at, kind, c in messages if kind == "stream"]
    assert "".join(t for _, t in ticks) == "tick 0\ntick 1\ntick 2\n"
    assert ticks[-1][0] - ticks[0][0] > 0.5  # they arrived as written, not all at the end


def test_nbclient_interrupts_a_runaway_cell_and_the_notebook_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WASINN_CACHE_DIR", str(tmp_path / "cache"))
    cells = [
        nbformat.v4.new_code_cell("%load_ext wasinn_jupyter"),
        nbformat.v4.new_code_cell("%%wasinn guest spin\n" + SPIN_WAT),
        nbformat.v4.new_code_cell("%wasinn run spin", metadata={"timeout": 3}),
        nbformat.v4.new_code_cell("print('still here')\n%wasinn list"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=120,
        timeout_func=lambda cell: cell.metadata.get("timeout", 120),
        interrupt_on_timeout=True,
        allow_errors=True,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    start = time.monotonic()
    client.execute()
    assert time.monotonic() - start < 60
    (error,) = [o for o in nb.cells[2].outputs if o.output_type == "error"]
    assert error.ename == "WasinnError" and "interrupted" in error.evalue
    outputs = nb.cells[3].outputs
    assert outputs[0].text == "still here\n"
    assert "spin" in outputs[1].data["text/plain"]
