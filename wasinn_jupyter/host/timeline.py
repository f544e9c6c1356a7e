"""Every wasi-nn call the host serves, recorded with its latency, and the guests' lifecycle events.

The Host feeds the timeline; front-ends (the CLI's summary, ``%wasinn timeline``, widgets, the JupyterLab panel)
subscribe or read it, and :mod:`.timeline_export` writes it out (DataFrame, CSV, Chrome trace JSON).

A record is a wasi-nn call (``kind`` "call": ``call`` is its name, ``outcome`` "ok" or an error code) or a
lifecycle event of a guest (``kind`` "lifecycle": ``call`` is one of :data:`LIFECYCLE`, ``outcome`` "ok" or what
ended it, ``detail`` a short text). ``guest`` is the guest's label (several guests may share one, "driver" say);
``guest_id`` tells instances apart. A call on a context carries the tensors that went in and came out
(:class:`TensorMeta`: name, shape, dtype, bytes, never the data), and on CUDA the device time its CUDA events
measured (``device_ns``) besides the wall time.

Recording sits on every host call's path, so it costs a plain tuple appended to a bounded deque (about 0.3 µs;
``benchmarks/recording.py`` measures it): :class:`CallRecord` objects and the tensors' dicts are made only when a
listener or a reader asks. The deque is a ring buffer: once ``maxlen`` records are held, each new one drops the
oldest (:attr:`Timeline.dropped` counts them). A timeline of size 0 records nothing, and the clients of its host
skip recording altogether. Listeners run synchronously on the calling thread and should only queue what they get.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, Any, NamedTuple

log = logging.getLogger(__name__)


# Lifecycle events a session records for each guest.
LIFECYCLE = ("compile", "instantiate", "run", "exit", "trap", "stopped", "close")

DEFAULT_SIZE = 100_000  # records a timeline keeps unless told otherwise (a few hundred bytes each)


class TensorMeta(NamedTuple):
    """A tensor that went into or came out of a call: what it was, never its data."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # a wasi-nn type name from host/tensors.py: f32, bf16, u8, ...
    nbytes: int

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "nbytes": self.nbytes}


@dataclass(frozen=True, slots=True)
class CallRecord:
    seq: int
    call: str
    guest: str
    graph: str | None
    start_ns: int  # time.perf_counter_ns() at entry: compare records with each other (Timeline.wall_ns for dates)
    duration_ns: int  # wall time
    outcome: str  # "ok" or an ErrorCode value (a call); "ok" or how it ended (a lifecycle event)
    nbytes: int = 0  # bytes the call moved: a model's, the inputs set, the output read
    device: str | None = None  # the torch device of the graph it was about ("cpu", "cuda:0"); None: no graph
    guest_id: int = 0
    kind: str = "call"  # or "lifecycle"
    detail: str | None = None
    context: int | None = None  # the guest's execution-context handle
    target: str | None = None  # the wasi-nn execution target the graph was loaded for: cpu, gpu, tpu
    inputs: tuple[TensorMeta, ...] | None = None  # what went in (set_input, compute, compute_named)
    outputs: tuple[TensorMeta, ...] | None = None  # what came out (compute, get_output, compute_named)
    device_ns: int | None = None  # CUDA event time between entry and exit; None off CUDA
    tokens: int | None = None  # tokens a prompt call produced (tokens/s = tokens / duration)
    node: str | None = None  # the machine a remote (map, Ray) record was made on
    worker: str | None = None  # the worker process there

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable, one key per field (tensors as lists of {name, shape, dtype, nbytes}): what front-ends
        send. Front-ends show keys they do not know generically, so fields may be added."""
        out = {name: getattr(self, name) for name in FIELDS}
        for key in ("inputs", "outputs"):
            metas = out[key]
            if metas is not None:
                out[key] = [m.as_dict() for m in metas]
        return out


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(CallRecord))
_DEFAULTS: tuple[Any, ...] = (None,) * 7 + tuple(f.default for f in fields(CallRecord))[7:]
_INPUTS, _OUTPUTS = FIELDS.index("inputs"), FIELDS.index("outputs")

# A tensor as the hot path keeps it: (name, or its index where the graph names none; dims; dtype name; bytes). The
# index becomes a name ("input0") only when a record is read.
RawTensor = tuple[Any, tuple[int, ...], Any, int]


def _metas(raw: Iterable[Any] | None, prefix: str) -> tuple[TensorMeta, ...] | None:
    if raw is None:
        return None
    out = []
    for item in raw:
        if isinstance(item, dict):  # merged from another process's as_dict()
            item = (item.get("name", ""), item.get("shape", ()), item.get("dtype", ""), item.get("nbytes", 0))
        name, shape, dtype, nbytes = item
        out.append(
            TensorMeta(name if isinstance(name, str) else f"{prefix}{name}", tuple(shape), str(dtype), int(nbytes))
        )
    return tuple(out)


def _make(row: tuple[Any, ...]) -> CallRecord:
    """A record from its row (tensors turned into TensorMeta here, not on the hot path)."""
    if row[_INPUTS] is not None or row[_OUTPUTS] is not None:
        row = (
            *row[:_INPUTS],
            _metas(row[_INPUTS], "input"),
            _metas(row[_OUTPUTS], "output"),
            *row[_OUTPUTS + 1 :],
        )
    return CallRecord(*row)


Listener = Callable[[CallRecord], None]


class DeviceTimer:
    """CUDA events around one call on a graph on a CUDA device: what the device spent, besides the wall time.

    Made only for such graphs (the CPU path never imports torch for it). :meth:`stop` waits for the device's queued
    work to finish, so the call's wall time then includes it too, as a user reading a latency expects.
    """

    __slots__ = ("_start", "_stream")

    def __init__(self, device: str) -> None:
        import torch

        event: Any = torch.cuda.Event  # untyped in torch
        self._stream = torch.cuda.current_stream(torch.device(device))
        self._start = event(enable_timing=True)
        self._start.record(self._stream)

    def stop(self) -> int | None:
        """Nanoseconds between the two events (None where CUDA refused: the call's own error says why)."""
        import torch

        try:
            event: Any = torch.cuda.Event
            end = event(enable_timing=True)
            end.record(self._stream)
            end.synchronize()
            return round(float(self._start.elapsed_time(end)) * 1_000_000)
        except Exception:  # a failed device must not turn a call's record into a host error
            log.debug("CUDA event timing failed", exc_info=True)
            return None


def start_timer(device: str | None) -> DeviceTimer | None:
    """A :class:`DeviceTimer` for a graph on ``device`` when that is a CUDA device, else None (no cost)."""
    if device is None or not device.startswith("cuda"):
        return None
    try:
        return DeviceTimer(device)
    except Exception:  # timing is a nicety: never the reason a call fails
        log.debug("CUDA event timing unavailable on %s", device, exc_info=True)
        return None


class Timeline:
    """A ring buffer of the last ``maxlen`` records (0: record nothing), with listeners for new ones."""

    def __init__(self, maxlen: int = DEFAULT_SIZE) -> None:
        if maxlen < 0:
            raise ValueError(f"a timeline's size is a number of records from 0, not {maxlen}")
        self._records: deque[tuple[Any, ...]] = deque(maxlen=maxlen)
        self._seq = itertools.count()
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._cleared = 0  # records clear() removed, so that `dropped` counts only what the bound dropped
        self._dropped_at_clear = 0
        # one reading of both clocks, so that exports can date records (start_ns is perf_counter_ns)
        self.origin_ns = time.perf_counter_ns()
        self.origin_wall_ns = time.time_ns()

    @property
    def maxlen(self) -> int:
        return self._records.maxlen or 0

    @property
    def recording(self) -> bool:
        """False for a timeline of size 0: its host's clients skip recording (and its cost) altogether."""
        return self.maxlen > 0

    @property
    def dropped(self) -> int:
        """Records the bound dropped (the oldest first) since this timeline was made; clear() drops none."""
        rows = self._records
        if not rows:
            return self._dropped_at_clear
        try:
            return int(rows[-1][0]) + 1 - len(rows) - self._cleared
        except IndexError:  # emptied by another thread meanwhile
            return self._dropped_at_clear

    def writer(self) -> tuple[Callable[[], int], Callable[[tuple[Any, ...]], None]]:
        """The hot path's way in (``Client.call``): the next seq, and ``append(row)`` for a row in :data:`FIELDS`
        order whose tensors are raw tuples (name or index, dims, dtype name, bytes). Plain strings, ints and tuples
        only, so that the garbage collector stops tracking a row after its first pass over it."""
        return self._seq.__next__, self._append

    def wall_ns(self, start_ns: int) -> int:
        """``start_ns`` (perf_counter_ns) as nanoseconds since the Unix epoch."""
        return self.origin_wall_ns + (start_ns - self.origin_ns)

    def record(
        self,
        call: str,
        guest: str,
        graph: str | None,
        start_ns: int,
        outcome: str,
        nbytes: int = 0,
        device: str | None = None,
        guest_id: int = 0,
        context: int | None = None,
        target: str | None = None,
        inputs: tuple[RawTensor, ...] | None = None,
        outputs: tuple[RawTensor, ...] | None = None,
        device_ns: int | None = None,
        tokens: int | None = None,
        node: str | None = None,
        worker: str | None = None,
    ) -> None:
        """A wasi-nn call that started at ``start_ns`` and ends now (positional arguments: this is the hot path).

        ``inputs``/``outputs`` are tuples of (name or index, dims, dtype, nbytes), kept as given until read.
        """
        # A plain tuple on the hot path; CallRecord objects are made only for listeners and readers.
        elapsed = time.perf_counter_ns() - start_ns
        self._append(
            (
                next(self._seq), call, guest, graph, start_ns, elapsed, outcome, nbytes, device, guest_id, "call",
                None, context, target, inputs, outputs, device_ns, tokens, node, worker,
            )
        )  # fmt: skip

    def event(
        self,
        event: str,
        guest: str,
        guest_id: int,
        *,
        start_ns: int | None = None,
        outcome: str = "ok",
        detail: str | None = None,
    ) -> None:
        """A guest's lifecycle event (:data:`LIFECYCLE`); with ``start_ns`` it lasted until now (a compile, a run)."""
        if event not in LIFECYCLE:
            raise ValueError(f"unknown lifecycle event {event!r} (known: {', '.join(LIFECYCLE)})")
        now = time.perf_counter_ns()
        start = now if start_ns is None else start_ns
        row = (next(self._seq), event, guest, None, start, now - start, outcome, 0, None, guest_id, "lifecycle", detail)
        self._append(row + _DEFAULTS[len(row) :])

    def _append(self, row: tuple[Any, ...]) -> None:
        self._records.append(row)
        if self._listeners:
            rec = _make(row)
            for listener in self._listeners:
                try:
                    listener(rec)
                except Exception:  # a broken front-end must not break a guest's call
                    log.exception("timeline listener failed")

    def merge(self, records: Iterable[dict[str, Any]], *, shift_ns: int = 0, **tags: Any) -> None:
        """Records made by another process's timeline (a map worker, a Ray actor), as ``CallRecord.as_dict`` gave
        them: each gets a seq here, its start moved by ``shift_ns`` onto this process's clock, and ``tags``
        (``node``, ``worker``) set. Fields this CallRecord does not have are dropped; missing ones take defaults."""
        defaults = dict(zip(FIELDS, _DEFAULTS, strict=True))
        for record in records:
            row = {**defaults, **{k: v for k, v in record.items() if k in defaults}}
            row.update({k: v for k, v in tags.items() if k in defaults})
            row["seq"] = next(self._seq)
            row["start_ns"] = int(row["start_ns"]) + shift_ns
            self._append(tuple(row[name] for name in FIELDS))

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with each new record; returns the function that unsubscribes it."""
        with self._lock:
            self._listeners = [*self._listeners, listener]

        def unsubscribe() -> None:
            with self._lock:
                self._listeners = [x for x in self._listeners if x is not listener]

        return unsubscribe

    def records(self, since: int = -1, *, last: int | None = None) -> list[CallRecord]:
        """The records held with ``seq`` above ``since``, oldest first; with ``last``, only the last that many."""
        rows = list(self._records)
        if since >= 0:
            rows = [row for row in rows if row[0] > since]
        if last is not None:
            rows = rows[-last:] if last > 0 else []
        return [_make(row) for row in rows]

    def last_call(self, guest_id: int) -> CallRecord | None:
        """The newest wasi-nn call of guest instance ``guest_id`` still held, or None (reads back from the end)."""
        for row in reversed(list(self._records)):
            if row[10] == "call" and row[9] == guest_id:
                return _make(row)
        return None

    def clear(self) -> None:
        """Forget every record held (the sequence numbers go on; :attr:`dropped` keeps its count)."""
        with self._lock:
            self._dropped_at_clear = self.dropped
            self._cleared += len(self._records)
            self._records.clear()

    def __len__(self) -> int:
        return len(self._records)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per wasi-nn call name: count, errors, total and mean latency in microseconds (lifecycle events apart)."""
        out: dict[str, dict[str, float]] = {}
        for row in list(self._records):
            if row[10] != "call":
                continue
            entry = out.setdefault(row[1], {"count": 0, "errors": 0, "total_us": 0.0})
            entry["count"] += 1
            entry["errors"] += 0 if row[6] == "ok" else 1
            entry["total_us"] += row[5] / 1000
        for entry in out.values():
            entry["mean_us"] = entry["total_us"] / entry["count"]
        return out

    # -- exports (timeline_export.py; pandas is imported only by to_dataframe) --------------------------------

    def to_dataframe(self, records: Iterable[CallRecord] | None = None) -> Any:
        """A pandas DataFrame: one row per record (all of them, or ``records``), ``wall_time`` a UTC datetime.

        pandas is optional for the host (ImportError saying so); the columns are in ``timeline_export.COLUMNS``."""
        from .timeline_export import to_dataframe

        return to_dataframe(self, records)

    def to_csv(self, path_or_file: str | Path | IO[str], records: Iterable[CallRecord] | None = None) -> None:
        """Write one row per record as CSV (tensors as JSON text, None as an empty field)."""
        from .timeline_export import to_csv

        to_csv(self, path_or_file, records)

    def to_chrome_trace(self, path_or_file: str | Path | IO[str], records: Iterable[CallRecord] | None = None) -> None:
        """Write Chrome trace-event JSON, which Perfetto (ui.perfetto.dev) and chrome://tracing open."""
        from .timeline_export import to_chrome_trace

        to_chrome_trace(self, path_or_file, records)
