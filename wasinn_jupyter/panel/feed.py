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
- ``{"type": "records", "generation", "count", "keys", "columns", "constants", "dropped"}`` with one buffer, a
  little-endian float64 array ``[seq, start_ns, duration_ns] * count`` (what the panel plots, binary and exact);
  ``keys`` names each record's other fields (every CallRecord field, as ``as_dict()`` gives them, so new fields
  reach the panel's hover details), each in ``constants`` (one value for the whole batch) or in ``columns``: a
  list (one value a record) or ``{"values", "index"}`` (the distinct values, and each record's index into them);
  ``dropped`` counts records lost before this batch (the bound, or the timeline's ring).
- ``{"type": "reset", "generation", "clock_ns"}`` when ``%wasinn reset`` replaced the session (sequence numbers
  restart).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import operator
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
NUMERIC = ("seq", "start_ns", "duration_ns")  # the fields that travel in the binary buffer, as float64


@dataclass(frozen=True)
class _Reset:
    generation: int
    clock_ns: int  # perf_counter_ns when it happened: where the panel draws the marker


CommFactory = Callable[..., Any]  # comm.create_comm(target_name=..., data=...) -> a comm with send/on_msg/on_close


def _open_comm(**kwargs: Any) -> Any:
    from comm import create_comm

    return create_comm(**kwargs)


def encode(records: list[CallRecord], generation: int, dropped: int = 0) -> tuple[dict[str, Any], list[bytes]]:
    """One ``records`` message: its JSON part and its one buffer (see the module docstring).

    Field by field, over the records' own values (hashable: strings, numbers, tuples of TensorMeta): a field with
    one value in the batch goes once, as a constant; one with few values goes as those values and an index per
    record; only distinct values are made JSON (a NamedTuple by its ``as_dict``/``_asdict``, like ``as_dict()``).
    Runs in the feed's thread, never on a guest's call.
    """
    import numpy as np

    names = [f.name for f in dataclasses.fields(records[0])] if records else []
    numeric = np.fromiter(
        itertools.chain.from_iterable((r.seq, r.start_ns, r.duration_ns) for r in records),
        dtype="<f8",
        count=3 * len(records),
    )
    keys = [k for k in names if k not in NUMERIC]
    columns: dict[str, Any] = {}
    constants: dict[str, Any] = {}
    for key in keys:
        column = list(map(operator.attrgetter(key), records))
        codes: dict[Any, int] = {}
        try:
            index = [codes.setdefault(v, len(codes)) for v in column]
        except TypeError:  # an unhashable value (a list a later field holds): value by value
            columns[key] = [_jsonable(v) for v in column]
            continue
        if len(codes) == 1:
            constants[key] = _jsonable(column[0])
        elif len(codes) * 2 > len(column):
            columns[key] = [_jsonable(v) for v in column]
        else:
            columns[key] = {"values": [_jsonable(v) for v in codes], "index": index}
    data = {
        "type": "records",
        "generation": generation,
        "count": len(records),
        "keys": keys,
        "columns": columns,
        "constants": constants,
        "dropped": dropped,
    }
    return data, [numeric.tobytes()]


def _jsonable(value: Any) -> Any:
    """What JSON carries, as ``CallRecord.as_dict()`` gives it: a TensorMeta (any NamedTuple) as a dict, tuples as
    lists, a float that is not finite as null, an unknown object as its text."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    as_dict = getattr(value, "as_dict", None) or getattr(value, "_asdict", None)
    if callable(as_dict):
        return _jsonable(as_dict())
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
        # a frontend's message is input: any JSON shape may come, and only a subscribe is acted on
        content = msg.get("content") if isinstance(msg, dict) else None
        data = content.get("data") if isinstance(content, dict) else None
        if isinstance(data, dict) and data.get("type") == "subscribe":
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
