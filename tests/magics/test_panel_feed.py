"""The kernel side of the timeline panel: records from real guests reach a comm in batches, wait (bounded) while no
panel listens, and follow ``%wasinn reset``. The comm is the ``comm`` package's own BaseComm with its transport
kept in a list (what ipykernel would put on iopub); tests/labextension drives the real kernel and browser."""

from __future__ import annotations

import struct
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from comm.base_comm import BaseComm

from wasinn_jupyter.magics import workbench
from wasinn_jupyter.panel import TimelineFeed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "labextension"))
from lab_harness import calls_for, echo_loop_wat


class ListComm(BaseComm):  # type: ignore[misc]
    """A comm whose messages are kept, in order, instead of going to a frontend."""

    def __init__(self, **kwargs: Any) -> None:
        self.messages: list[tuple[str, dict[str, Any], list[bytes]]] = []
        super().__init__(**kwargs)

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any):
        self.messages.append((msg_type, data or {}, list(buffers or [])))

    def sent(self, kind: str) -> list[tuple[dict[str, Any], list[bytes]]]:
        return [(d, b) for t, d, b in self.messages if t == "comm_msg" and d.get("type") == kind]


def subscribe(feed: TimelineFeed) -> ListComm:
    comm = ListComm(target_name="wasinn.timeline", data={"type": "subscribe"})
    feed.on_comm_open(comm, {"content": {"data": {"type": "subscribe"}}})
    return comm


def records(comm: ListComm) -> list[tuple[int, dict[str, Any], float, float]]:
    """(generation, fields, start_ns, duration_ns) of every record sent, in order, read as the panel reads them."""
    out = []
    for data, buffers in comm.sent("records"):
        (buf,) = buffers
        n = data["count"]
        numeric = struct.unpack(f"<{3 * n}d", buf)
        for r in range(n):
            fields: dict[str, Any] = {"seq": int(numeric[3 * r])}
            for key in data["keys"]:
                if key in data["constants"]:
                    fields[key] = data["constants"][key]
                elif isinstance(data["columns"][key], list):
                    fields[key] = data["columns"][key][r]
                else:
                    column = data["columns"][key]
                    fields[key] = column["values"][column["index"][r]]
            out.append((data["generation"], fields, numeric[3 * r + 1], numeric[3 * r + 2]))
    return out


def settle(feed: TimelineFeed, done: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the feed did not send in time"
        time.sleep(0.02)


@pytest.fixture
def echo(run: Callable[[str], Any]) -> Callable[[int, str], None]:
    """Run a guest making ``calls_for(rounds)`` calls on the echo graph."""

    def go(rounds: int, name: str = "loop") -> None:
        assert run("%wasinn load echo echo").ok
        assert run(f"%%wasinn guest {name} --lang wat\n{echo_loop_wat(rounds)}").ok
        cell = run(f"%wasinn run {name}")
        assert cell.ok and f"echoed {rounds}" in cell.out, cell.out + cell.err

    return go


def start_feed(max_pending: int) -> TimelineFeed:
    f = TimelineFeed(workbench(), interval_s=0.05, batch_max=500, max_pending=max_pending)
    f.start(announce=False)
    return f


@pytest.fixture
def feed(ip: Any) -> Iterator[TimelineFeed]:
    """A feed on the magics' workbench (the shell has no kernel, so the extension started none)."""
    f = start_feed(100_000)
    yield f
    f.stop()


@pytest.fixture
def small_feed(ip: Any) -> Iterator[TimelineFeed]:
    """The same, its queue bounded to 100 records."""
    f = start_feed(100)
    yield f
    f.stop()


def test_records_go_out_in_batches_with_every_field(feed: TimelineFeed, echo: Callable[[int, str], None]) -> None:
    comm = subscribe(feed)
    echo(1000)  # 3002 calls while the panel listens
    timeline = workbench().session.host.timeline
    expected = timeline.records()
    settle(feed, lambda: len(records(comm)) >= len(expected))
    hello = comm.sent("hello")
    assert hello and hello[0][0]["replay"] is True  # then a reset: the magics made their session after it
    assert {g for g, *_ in records(comm)} == {workbench().generation}
    got = records(comm)
    assert [f["seq"] for _, f, _, _ in got] == [r.seq for r in expected]  # each once, in order
    for (_, fields, start, duration), rec in zip(got, expected, strict=True):
        d = rec.as_dict()
        assert (start, duration) == (d.pop("start_ns"), d.pop("duration_ns"))  # exact in float64
        assert fields == d  # every other field, whatever CallRecord holds
    batches = comm.sent("records")
    assert all(data["count"] <= 500 for data, _ in batches)
    assert "guest" in batches[0][0]["constants"]  # one guest: its name goes once a batch
    assert len(batches) >= len(expected) / 500
    assert sum(f["kind"] == "call" for _, f, _, _ in got) == calls_for(1000)


def test_nobody_listening_keeps_the_newest_then_reset_then_replay(
    small_feed: TimelineFeed, echo: Callable[[int, str], None], run: Callable[[str], Any]
) -> None:
    echo(100)  # 302 calls, 8 lifecycle events, with no panel: the queue keeps the newest 100
    before = workbench().session.host.timeline.records()
    assert small_feed.pending == 100
    generation = workbench().generation
    assert run("%wasinn reset").ok
    assert small_feed.pending == 100  # the reset marker joined, the oldest record left
    comm = subscribe(small_feed)
    settle(small_feed, lambda: bool(comm.sent("hello")))
    settle(small_feed, lambda: small_feed.pending == 0)
    kinds = [d.get("type") for t, d, _ in comm.messages if t == "comm_msg"]
    # the old session's queued records first, under its generation, then the reset, then the new session's hello
    assert kinds[0] == "records" and "reset" in kinds and kinds.index("reset") < kinds.index("hello")
    old = [(g, f) for g, f, _, _ in records(comm)]
    assert {g for g, _ in old} == {generation}
    assert [f["seq"] for _, f in old] == [r.seq for r in before[-99:]]
    first = comm.sent("records")[0][0]
    assert first["dropped"] == before[-99].seq  # what the bound dropped is counted, not silently lost
    (reset, _), = comm.sent("reset")
    assert reset["generation"] == workbench().generation == generation + 1 and reset["clock_ns"] > 0
    echo(10, "after")  # the magics' next session (one more generation) streams under its own generation
    now = workbench().generation
    settle(small_feed, lambda: len([1 for g, *_ in records(comm) if g == now]) >= calls_for(10) + 4)
    new = [f for g, f, _, _ in records(comm) if g == now]
    assert new[0]["seq"] == 0 and {f["guest"] for f in new} == {"after"}
    assert [d["generation"] for d, _ in comm.sent("reset")][-1] == now


def test_a_closed_comm_buffers_and_a_new_subscribe_replays(
    feed: TimelineFeed, echo: Callable[[int, str], None]
) -> None:
    first = subscribe(feed)
    echo(5)
    settle(feed, lambda: len(records(first)) >= calls_for(5))
    first.handle_close({"content": {"data": {}}})  # the page went away
    assert not feed.listening
    echo(5, "again")
    second = subscribe(feed)  # a reloaded page: the whole timeline again, then what comes
    timeline = workbench().session.host.timeline
    settle(feed, lambda: len(records(second)) >= len(timeline))
    assert [f["seq"] for _, f, _, _ in records(second)] == [r.seq for r in timeline.records()]


def test_a_failing_comm_never_fails_a_guest(feed: TimelineFeed, echo: Callable[[int, str], None]) -> None:
    class Broken(ListComm):
        def publish_msg(self, msg_type: str, *args: Any, **kwargs: Any) -> None:
            if msg_type == "comm_msg":
                raise OSError("the socket is gone")

    comm = Broken(target_name="wasinn.timeline", data={})
    feed.on_comm_open(comm, {"content": {"data": {"type": "subscribe"}}})
    echo(50)  # the guest's calls only queue; the feed's thread logs the failure and goes on
    time.sleep(0.2)
    good = subscribe(feed)
    settle(feed, lambda: len(records(good)) >= calls_for(50))


def test_in_a_kernel_load_ext_announces_the_comm_and_records_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the panel sees of a real ipykernel: the comm opened by ``%load_ext``, then batches with buffers."""
    from jupyter_client.manager import start_new_kernel

    monkeypatch.setenv("WASINN_CACHE_DIR", str(tmp_path / "cache"))
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=60, cwd=str(tmp_path))
    seen: list[dict[str, Any]] = []

    def until(done: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, [m["msg_type"] for m in seen]
            try:
                seen.append(kc.get_iopub_msg(timeout=1))
            except Exception:  # noqa: BLE001 (queue.Empty: nothing yet)
                pass

    def run_cell(code: str) -> None:
        msg_id = kc.execute(code)
        until(
            lambda: any(
                m["parent_header"].get("msg_id") == msg_id
                and m["msg_type"] == "status"
                and m["content"]["execution_state"] == "idle"
                for m in seen
            )
        )
        errors = [m["content"] for m in seen if m["msg_type"] == "error"]
        assert not errors, errors

    try:
        run_cell("%load_ext wasinn_jupyter")
        (opened,) = [m["content"] for m in seen if m["msg_type"] == "comm_open"]
        assert opened["target_name"] == "wasinn.timeline" and opened["data"]["type"] == "hello"
        comm_id = opened["comm_id"]
        kc.session.send(kc.shell_channel.socket, "comm_msg", {"comm_id": comm_id, "data": {"type": "subscribe"}})
        run_cell("%wasinn load echo echo")
        run_cell(f"%%wasinn guest loop --lang wat\n{echo_loop_wat(50)}")
        run_cell("%wasinn run loop")

        def batches() -> list[dict[str, Any]]:
            return [
                m
                for m in seen
                if m["msg_type"] == "comm_msg"
                and m["content"]["comm_id"] == comm_id
                and m["content"]["data"]["type"] == "records"
            ]

        def calls() -> int:
            total = 0
            for m in batches():
                data = m["content"]["data"]
                kind = data["constants"].get("kind")
                column = data["columns"].get("kind")
                if kind is not None:
                    total += data["count"] if kind == "call" else 0
                elif isinstance(column, list):
                    total += column.count("call")
                else:
                    total += sum(column["values"][i] == "call" for i in column["index"])
            return total

        until(lambda: calls() >= calls_for(50))
        assert calls() == calls_for(50)
        for m in batches():
            (buf,) = m["buffers"]
            assert len(buf) == 24 * m["content"]["data"]["count"]  # seq, start, duration: float64 each
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
