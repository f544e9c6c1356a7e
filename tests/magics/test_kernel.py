"""The magics in a real ipykernel: the interrupt button on a runaway guest, output streaming, and a notebook run
by nbclient that interrupts a cell and goes on."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import KernelManager, start_new_kernel
from nbclient import NotebookClient

# Writes "tick i", then waits for /sync/go<i> before the next: the test makes that file only once "tick i" has
# reached it, so the guest finishes only if its output streams while it runs (after a minute it gives up).
TICKER_C = r"""%%wasinn guest ticker --lang c
#include <stdio.h>
#include <unistd.h>
int main(void) {
    for (int i = 0; i < 3; i++) {
        printf("tick %d\n", i);
        fflush(stdout);
        char path[32];
        snprintf(path, sizeof path, "/sync/go%d", i);
        FILE *go;
        for (int waited = 0; !(go = fopen(path, "r")); waited++) {
            if (waited == 6000) {
                fprintf(stderr, "no %s after a minute\n", path);
                return 1;
            }
            usleep(10000);
        }
        fclose(go);
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


Message = tuple[float, str, Any]  # arrival time, type, content


def iopub(kc: Any, msg_id: str, until: Callable[[str, Any], bool], timeout: float = 120) -> list[Message]:
    """The iopub messages of request ``msg_id``, up to and including the first one ``until`` accepts."""
    messages = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append((time.monotonic(), msg["msg_type"], msg["content"]))
        if until(msg["msg_type"], msg["content"]):
            return messages


def idle(kind: str, content: Any) -> bool:
    return kind == "status" and content["execution_state"] == "idle"


def shell_reply(kc: Any, msg_id: str, timeout: float = 120) -> dict[str, Any]:
    while True:
        reply = kc.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"]


def collect(kc: Any, msg_id: str, timeout: float = 120) -> tuple[dict[str, Any], list[Message]]:
    """Wait for the reply to ``msg_id``; its iopub messages."""
    messages = iopub(kc, msg_id, idle, timeout)
    return shell_reply(kc, msg_id, timeout), messages


def execute(kc: Any, code: str, timeout: float = 120) -> tuple[dict[str, Any], list[Message]]:
    return collect(kc, kc.execute(code), timeout)


def text(messages: list[Message]) -> str:
    return "".join(c["text"] for _, kind, c in messages if kind == "stream")


def test_the_interrupt_button_stops_a_runaway_guest(kernel: tuple[KernelManager, Any], sources: dict[str, str]) -> None:
    km, kc = kernel
    assert execute(kc, "%load_ext wasinn_jupyter")[0]["status"] == "ok"
    assert execute(kc, "%%wasinn guest spin\n" + sources["spin"])[0]["status"] == "ok"
    msg_id = kc.execute("%wasinn run spin")
    # ipykernel drops a SIGINT that comes before the cell runs: interrupt only once the guest says it spins
    started = iopub(kc, msg_id, lambda kind, c: kind == "stream" and "spinning" in c["text"], timeout=60)
    km.interrupt_kernel()
    reply, messages = collect(kc, msg_id, timeout=30)  # no reply within 30 s: the interrupt did not stop it
    messages = started + messages
    assert text(messages) == "spinning\n"
    assert reply["status"] == "error" and reply["ename"] == "CellError"
    assert "guest 'spin' stopped: interrupted" in reply["evalue"]
    shown = "\n".join(line for _, kind, c in messages if kind == "error" for line in c["traceback"])
    assert "guest 'spin' stopped" in shown and "Traceback" not in shown
    # the kernel lives, and so do the magics' guests
    reply, messages = execute(kc, "%wasinn list")
    assert reply["status"] == "ok"
    assert any("spin" in c["data"]["text/plain"] for _, kind, c in messages if kind == "execute_result")
    reply, messages = execute(kc, "1 + 1")
    assert [c["data"]["text/plain"] for _, kind, c in messages if kind == "execute_result"] == ["2"]


def test_guest_output_streams_while_the_guest_runs(kernel: tuple[KernelManager, Any], tmp_path: Path) -> None:
    _, kc = kernel
    execute(kc, "%load_ext wasinn_jupyter")
    reply, _ = execute(kc, TICKER_C, timeout=180)  # zig's first build may happen here
    assert reply["status"] == "ok"
    sync = tmp_path / "sync"
    sync.mkdir()
    msg_id = kc.execute(f"%wasinn run --dir {sync}::/sync ticker")
    seen = ""

    def answer(kind: str, content: Any) -> bool:
        """Let the guest go on past tick i once tick i has arrived here."""
        nonlocal seen
        if kind == "stream":
            seen += content["text"]
            for i in range(3):
                if f"tick {i}\n" in seen:
                    (sync / f"go{i}").touch()
        return idle(kind, content)

    messages = iopub(kc, msg_id, answer, timeout=120)
    reply = shell_reply(kc, msg_id)
    assert reply["status"] == "ok", text(messages)
    assert text(messages) == "tick 0\ntick 1\ntick 2\n"


def test_nbclient_interrupts_a_runaway_cell_and_the_notebook_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sources: dict[str, str]
) -> None:
    monkeypatch.setenv("WASINN_CACHE_DIR", str(tmp_path / "cache"))
    cells = [
        nbformat.v4.new_code_cell("%load_ext wasinn_jupyter"),
        nbformat.v4.new_code_cell("%%wasinn guest spin\n" + sources["spin"]),
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
    client.execute()  # an interrupt that comes too early is dropped; nbclient then interrupts again 3 s later
    (error,) = [o for o in nb.cells[2].outputs if o.output_type == "error"]
    assert error.ename == "CellError" and "interrupted" in error.evalue
    outputs = nb.cells[3].outputs
    assert outputs[0].text == "still here\n"
    assert "spin" in outputs[1].data["text/plain"]


def test_a_bad_magic_argument_fails_the_cell_and_run_all_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a UsageError note on stderr: the cell's error output, so nbconvert and Run All stop at it."""
    from nbclient.exceptions import CellExecutionError

    monkeypatch.setenv("WASINN_CACHE_DIR", str(tmp_path / "cache"))
    cells = [
        nbformat.v4.new_code_cell("%load_ext wasinn_jupyter"),
        nbformat.v4.new_code_cell("%wasinn load e echo --bogus"),
        nbformat.v4.new_code_cell("print('ran on')"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    client = NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(CellExecutionError):
        client.execute()
    (error,) = [o for o in nb.cells[1].outputs if o.output_type == "error"]
    assert error.ename == "CellError" and "%wasinn load: unrecognized arguments: --bogus" in error.evalue
    assert not any(o.output_type == "stream" and o.name == "stderr" for o in nb.cells[1].outputs)
    assert nb.cells[2].outputs == []  # never ran
