"""The kernel side of the JupyterLab "wasi-nn timeline" panel: timeline records, in batches, over one comm.

Records come from :func:`wasinn_jupyter.magics.workbench` (the magics' current session, across ``%wasinn reset``).
A listener runs on the guest's thread during its wasi-nn call, so it only appends the record to a bounded deque;
a daemon thread sends what is queued at most every ``interval_s`` (100 ms), ``batch_max`` records a message.
While no panel listens the deque keeps the newest ``max_pending`` records (the oldest are dropped and counted).

The comm target is :data:`TARGET`, opened from either side:

- the panel opens it (``{"type": "subscribe"}``) when it finds a kernel, on a restart and when it is shown again;
- the kernel opens it once, when the extension loads (``{"type": "hello"}``), and the panel answers ``subscribe``
  on it (a frontend without the panel closes it, and the records wait).

On ``subscribe`` the kernel sends ``hello``, replays the current session's timeline (its own bounded ring, so a
reloaded page gets the history) and then streams. Messages, kernel to panel:

- ``{"type": "hello", "generation", "version", "clock_ns", "wall_ns", "replay": True|False}``
- ``{"type": "records", "generation", "keys", "rows", "dropped"}`` with one buffer, a little-endian float64 array
  ``[start_ns, duration_ns] * len(rows)`` (what the panel plots, binary and exact), and ``rows`` each record's other
  fields in ``keys`` order (whatever ``CallRecord.as_dict()`` holds, so new fields reach the panel's hover details);
  ``dropped`` counts records lost before this batch (the bound, or the timeline's own ring).
- ``{"type": "reset", "generation", "clock_ns"}`` when ``%wasinn reset`` replaced the session (sequence numbers
  restart).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._version import __version__

if TYPE_CHECKING:
    from ..host import CallRecord, Session
    from ..magics.workbench import Workbench

log = logging.getLogger(__name__)

TARGET = "wasinn.timeline"
PLOTTED = ("start_ns", "duration_ns")  # the fields that travel in the binary buffer


@dataclass(frozen=True)
class _Reset:
    generation: int
    clock_ns: int  # perf_counter_ns when it happened: where the panel draws the marker


CommFactory = Callable[..., Any]  # comm.create_comm(target_name=..., data=...) -> a comm with send/on_msg/on_close


def _open_comm(**kwargs: Any) -> Any:
    from comm import create_comm

    return create_comm(**kwargs)


def encode(records: list[CallRecord], generation: int, dropped: int = 0) -> tuple[dict[str, Any], list[bytes]]:
    """One ``records`` message: its JSON part and its one buffer (see the module docstring)."""
    import numpy as np

    dicts = [rec.as_dict() for rec in records]
    keys = [k for k in dicts[0] if k not in PLOTTED] if dicts else []
    plotted = np.array([[d["start_ns"], d["duration_ns"]] for d in dicts], dtype="<f8").reshape(-1)
    rows = [[_jsonable(d.get(k)) for k in keys] for d in dicts]
    data = {"type": "records", "generation": generation, "keys": keys, "rows": rows, "dropped": dropped}
    return data, [plotted.tobytes()]


def _jsonable(value: Any) -> Any:
    """What JSON can carry: a field a later CallRecord adds may hold a tuple, a float NaN, or an object."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


class TimelineFeed:
    """Queues the workbench's records and sends them to the panel in batches, from a thread of its own."""

    def __init__(
        self,
        bench: Workbench,
        *,
        open_comm: CommFactory = _open_comm,
        interval_s: float = 0.1,
        batch_max: int = 5000,
        max_pending: int = 100_000,
    ) -> None:
        if interval_s <= 0 or batch_max < 1 or max_pending < 1:
            raise ValueError("interval_s must be above 0, batch_max and max_pending at least 1")
        self._bench = bench
        self._open_comm = open_comm
        self.interval_s = interval_s
        self.batch_max = batch_max
        self._pending: deque[tuple[int, CallRecord] | _Reset] = deque(maxlen=max_pending)
        self._queued_generation = bench.generation  # the session whose records the listener now queues
        self._cond = threading.Condition()
        self._comm: Any = None
        self._replay = False
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._generation = bench.generation
        self._sent_seq = -1  # the last sequence number sent in this generation: a replay and the queue overlap
        self.batches_sent = 0  # messages of type "records" sent, for tests and the curious

    @property
    def listening(self) -> bool:
        """Whether a panel subscribed (and has not closed its comm since)."""
        return self._comm is not None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self, announce: bool = True) -> None:
        """Subscribe to the workbench and start the sending thread; with ``announce``, open the comm from here
        (a panel that is already there subscribes on it)."""
        self._unsubscribe = [
            self._bench.on_record(self._queue),
            self._bench.on_session_replaced(self._replaced),
        ]
        self._thread = threading.Thread(target=self._run, name="wasinn-timeline-feed", daemon=True)
        self._thread.start()
        if announce:
            try:
                comm = self._open_comm(target_name=TARGET, data=self._hello(replay=False))
            except Exception:  # no kernel behind this shell (a terminal IPython): the panel cannot be there either
                log.debug("no comm for the timeline panel", exc_info=True)
            else:
                comm.on_msg(lambda msg: self._on_msg(comm, msg))

    def stop(self) -> None:
        """Unsubscribe, stop the thread and close the comm (``%unload_ext``)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        with self._cond:
            self._stopped = True
            comm, self._comm = self._comm, None
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if comm is not None:
            try:
                comm.close()
            except Exception:
                log.debug("closing the timeline comm failed", exc_info=True)

    def on_comm_open(self, comm: Any, msg: dict[str, Any]) -> None:
        """The comm target's handler: a panel opened the comm (its open message says ``subscribe``)."""
        comm.on_msg(lambda m: self._on_msg(comm, m))
        self._on_msg(comm, msg)

    def _on_msg(self, comm: Any, msg: dict[str, Any]) -> None:
        data = msg.get("content", {}).get("data") or {}
        if data.get("type") == "subscribe":
            self.attach(comm)

    def attach(self, comm: Any) -> None:
        """Send to ``comm`` from now on, starting with a replay of the current session's timeline."""
        comm.on_close(lambda _msg: self._detach(comm))
        with self._cond:
            self._comm = comm
            self._replay = True
            self._cond.notify_all()

    def _detach(self, comm: Any) -> None:
        with self._cond:
            if self._comm is comm:
                self._comm = None

    def _queue(self, record: CallRecord) -> None:
        """On the guest's thread, during its call: an append and nothing more."""
        self._pending.append((self._queued_generation, record))

    def _replaced(self, session: Session | None) -> None:
        self._queued_generation = self._bench.generation
        self._pending.append(_Reset(self._bench.generation, time.perf_counter_ns()))

    def _hello(self, replay: bool) -> dict[str, Any]:
        return {
            "type": "hello",
            "generation": self._bench.generation,
            "version": __version__,
            "clock_ns": time.perf_counter_ns(),
            "wall_ns": time.time_ns(),
            "replay": replay,
        }

    # The sending thread.

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait(self.interval_s)  # at most one round of batches per interval
                while self._comm is None and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                comm, replay, self._replay = self._comm, self._replay, False
            try:
                if replay:
                    self._drain(comm, older_only=True)  # what older sessions left, under their generations
                    self._send_replay(comm)
                self._drain(comm)
            except Exception:  # a closed socket at shutdown, a record that will not encode: never kill the feed
                log.exception("the timeline feed failed to send")

    def _send_replay(self, comm: Any) -> None:
        """Hello, then the current session's timeline (the queue's records of it follow, those not sent skipped)."""
        comm.send(self._hello(replay=True))
        self._generation = self._bench.generation
        session = self._bench.session
        self._sent_seq = -1
        self._send_records(comm, session.host.timeline.records() if session is not None else [])

    def _drain(self, comm: Any, older_only: bool = False) -> None:
        """Send what is queued, in order: records in batches under their generation, a reset as its own message;
        with ``older_only``, only what sessions before the current one left."""
        current = self._bench.generation
        run: list[CallRecord] = []
        while self._pending:
            head = self._pending[0]
            if older_only and isinstance(head, tuple) and head[0] >= current:
                break
            item = self._pending.popleft()
            if isinstance(item, _Reset):
                self._send_records(comm, run)
                run = []
                comm.send({"type": "reset", "generation": item.generation, "clock_ns": item.clock_ns})
                if item.generation != self._generation:
                    self._generation, self._sent_seq = item.generation, -1
                continue
            generation, record = item
            if generation != self._generation:
                self._send_records(comm, run)
                run = []
                self._generation, self._sent_seq = generation, -1
            run.append(record)
        self._send_records(comm, run)

    def _send_records(self, comm: Any, records: Iterable[CallRecord]) -> None:
        fresh = [rec for rec in records if rec.seq > self._sent_seq]
        for i in range(0, len(fresh), self.batch_max):
            batch = fresh[i : i + self.batch_max]
            dropped = batch[0].seq - self._sent_seq - 1  # the bound's, or the timeline ring's, losses
            data, buffers = encode(batch, self._generation, dropped)
            comm.send(data, buffers=buffers)
            self._sent_seq = batch[-1].seq
            self.batches_sent += 1
