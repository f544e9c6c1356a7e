"""Every wasi-nn call the host serves, recorded with its latency, and the guests' lifecycle events.

The Host feeds the timeline; front-ends (the CLI's summary, ``%wasinn timeline``, widgets, the JupyterLab panel)
subscribe or read it, and :mod:`.timeline_export` writes it out (DataFrame, CSV, Chrome trace JSON).

A record is a wasi-nn call (``kind`` "call": ``call`` is its name, ``outcome`` "ok" or an error code) or a
lifecycle event of a guest (``kind`` "lifecycle": ``call`` is one of :data:`LIFECYCLE`, ``outcome`` "ok" or what
ended it, ``detail`` a short text). ``guest`` is the guest's label (several guests may share one, "driver" say);
``guest_id`` tells instances apart. A call on a context carries the tensors that went in and came out
(:class:`TensorMeta`: name, shape, dtype, bytes, never the data), and on CUDA the device time its CUDA events
measured (``device_ns``) besides the wall time.

Recording sits on every host call's path, so it costs one flat tuple appended to a bounded deque (under 1 µs a
call; ``benchmarks/recording.py`` measures it): :class:`CallRecord` objects and the tensors' dicts are made only
when a listener or a reader asks. The deque is a ring buffer: once ``maxlen`` records are held, each new one drops the
oldest (:attr:`Timeline.dropped` counts them). A timeline of size 0 records nothing, and the clients of its host
skip recording altogether. Listeners run synchronously on the calling thread and should only queue what they get.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import IO, Any, NamedTuple

from .tensors import TENSOR_TYPES

log = logging.getLogger(__name__)


# Lifecycle events a session records for each guest.
LIFECYCLE = ("compile", "instantiate", "run", "exit", "trap", "stopped", "close")

DEFAULT_SIZE = 100_000  # records a timeline keeps unless told otherwise (a few hundred bytes each)


class TensorMeta(NamedTuple):
    """A tensor that went into or came out of a call: what it was, never its data."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # a wasi-nn type name from host/tensors.py: f32, bf16, u8, ...
    nbytes: int  # what its shape and dtype take (a refused input's data may have been another size: see the call's)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "nbytes": self.nbytes}


@dataclass(slots=True)
class CallRecord:
    """One record: a copy made for each reader and listener from the timeline's row (changing it changes nothing
    else). Not frozen: a frozen dataclass of twenty fields takes ten times as long to make (over 1 µs), and one is
    made per call for every listener."""

    seq: int
    call: str
    guest: str
    graph: str | None
    start_ns: int  # time.perf_counter_ns() at entry: compare records with each other (Timeline.wall_ns for dates)
    duration_ns: int  # wall time
    outcome: str  # "ok" or an ErrorCode value (a call); "ok" or how it ended (a lifecycle event)
    nbytes: int = 0  # bytes the call moved: a model's, the input set (what a refused one gave), the output read
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
        out: dict[str, Any] = {name: getattr(self, name) for name in FIELDS}
        if self.inputs is not None:
            out["inputs"] = [m.as_dict() for m in self.inputs]
        if self.outputs is not None:
            out["outputs"] = [m.as_dict() for m in self.outputs]
        return out


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(CallRecord))

# How the ring buffer holds a record (a "row"): one flat tuple of plain values (strings, ints, None) and of tuples
# made once and shared, so that the hot path builds it in one go and the garbage collector stops tracking it at its
# first pass (a fresh nested tuple would keep a row tracked, and traversed, for several passes):
#   (seq, call, who, about, start_ns, duration_ns, outcome, nbytes, context, device_ns, tokens, rest, *io)
# ``who`` is (guest, guest_id), one per client; ``about`` starts (graph, device, target), one per execution context
# (or made by the call), or is None; ``rest`` is None for a call, else (kind, detail, node, worker). ``io`` is the
# inputs, then the outputs, each as a count (None: not recorded) followed, per tensor, by its name (or its index
# where the graph names none: "input0" is made only when the record is read), dtype name and dims, the dims tuple
# shared through :func:`shared_dims` (one per shape); its bytes follow from those when it is read:
#   set_input of a [2, 3] f32 named x:  (1, "x", "f32", (2, 3), None)
# Each int a row holds is one more object to free, cold, when the ring drops the row: rows hold few.
IO_AT = 12  # where io starts in a row
NO_IO = (None, None)
SHAPES_KEPT = 4096  # distinct shapes shared_dims keeps before it starts over
SHAPES: dict[tuple[int, ...], tuple[int, ...]] = {}  # the hot path reads it with .get; a miss calls shared_dims


def shared_dims(dims: tuple[int, ...]) -> tuple[int, ...]:
    """The one tuple kept for this shape (``SHAPES.get(dims) or shared_dims(dims)`` on the hot path): rows that share
    an old tuple are untracked by the collector at its first pass, and take no memory for their dims."""
    if len(SHAPES) >= SHAPES_KEPT:
        SHAPES.clear()
    return SHAPES.setdefault(dims, dims)


RawTensor = tuple[Any, tuple[int, ...], Any, int]  # (name or index, dims, dtype, nbytes): Timeline.record's form
_NO_GRAPH = (None, None, None)
_new_tuple = tuple.__new__  # a NamedTuple's own __new__ takes its fields one by one, through a Python frame
_ITEMSIZE = {t.name: t.itemsize for t in TENSOR_TYPES}
_MOVES_ITS_TENSORS = frozenset({"set_input", "get_output"})  # calls whose nbytes a row may leave to its tensors
_A_CALL = ("call", None, None, None)


def flat_io(inputs: Iterable[Any] | None, outputs: Iterable[Any] | None) -> tuple[Any, ...]:
    """The ``io`` part of a row from tensors as (name or index, dims, dtype, nbytes) or as TensorMeta dicts."""
    out: list[Any] = []
    for tensors in (inputs, outputs):
        if tensors is None:
            out.append(None)
            continue
        items = list(tensors)
        out.append(len(items))
        for item in items:
            if isinstance(item, dict):  # merged from another process's as_dict()
                item = (item.get("name", ""), item.get("shape", ()), item.get("dtype", ""), item.get("nbytes", 0))
            name, dims, dtype, _ = item
            out += [name, str(dtype), shared_dims(tuple(int(d) for d in dims))]
    return tuple(out)


def _metas(io: tuple[Any, ...], at: int, prefix: str) -> tuple[tuple[TensorMeta, ...] | None, int]:
    """The tensors of one ``io`` part starting at ``at``, and where the next part starts."""
    count = io[at]
    if count is None:
        return None, at + 1
    end = at + 1 + 3 * count
    metas = []
    for i in range(at + 1, end, 3):
        name, dtype, shape = io[i], io[i + 1], io[i + 2]
        if name.__class__ is not str:
            name = f"{prefix}{name}"
        metas.append(_new_tuple(TensorMeta, (name, shape, dtype, math.prod(shape) * _ITEMSIZE.get(dtype, 0))))
    return tuple(metas), end


def _make(row: tuple[Any, ...]) -> CallRecord:
    """A record from its row (see above): the shared tuples unpacked and the tensors made TensorMeta, here and not
    on the hot path."""
    seq, call, who, about, start, duration, outcome, nbytes, context, device_ns, tokens, rest = row[:IO_AT]
    graph, device, target = (about or _NO_GRAPH)[:3]
    kind, detail, node, worker = rest or _A_CALL
    inputs, at = _metas(row, IO_AT, "input")
    outputs, _ = _metas(row, at, "output")
    if not nbytes and call in _MOVES_ITS_TENSORS:  # left for the read: what the tensors take
        nbytes = sum(m.nbytes for m in (*(inputs or ()), *(outputs or ())))
    return CallRecord(
        seq, call, who[0], graph, start, duration, outcome, nbytes, device, who[1], kind, detail, context, target,
        inputs, outputs, device_ns, tokens, node, worker,
    )  # fmt: skip


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
        self._row_listeners: list[Callable[[tuple[Any, ...]], None]] = []
        self.listening = False  # whether anyone subscribed: the hot path asks this before notify()
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
        """The hot path's way in (``Client.call``): the next seq, and the ring buffer's own append for a row laid out
        as at the top of this module. The caller then calls :meth:`notify` with the row where :attr:`listening`."""
        return self._seq.__next__, self._records.append

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
        """A call that started at ``start_ns`` and ends now, recorded by someone other than a Client (whose calls
        write their rows directly, see :meth:`writer`): the host's own ``set_property``, say.

        ``inputs``/``outputs`` are tuples of (name or index, dims, dtype, nbytes); the bytes are recomputed from the
        dims and dtype when the record is read.
        """
        elapsed = time.perf_counter_ns() - start_ns
        rest = None if node is None and worker is None else ("call", None, node, worker)
        head = (next(self._seq), call, (guest, guest_id), (graph, device, target), start_ns, elapsed, outcome)
        self._append((*head, nbytes, context, device_ns, tokens, rest, *flat_io(inputs, outputs)))

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
        rest = ("lifecycle", detail, None, None)
        row = (next(self._seq), event, (guest, guest_id), None, start, now - start, outcome, 0)
        self._append((*row, None, None, None, rest, *NO_IO))

    def _append(self, row: tuple[Any, ...]) -> None:
        self._records.append(row)
        if self.listening:
            self.notify(row)

    def notify(self, row: tuple[Any, ...]) -> None:
        """Give the listeners ``row``, just appended: its record, or the row itself to those that asked for rows."""
        for listener in self._row_listeners:
            try:
                listener(row)
            except Exception:  # a broken front-end must not break a guest's call
                log.exception("timeline listener failed")
        if self._listeners:
            rec = _make(row)
            for on_record in self._listeners:
                try:
                    on_record(rec)
                except Exception:
                    log.exception("timeline listener failed")

    @staticmethod
    def record_of(row: tuple[Any, ...]) -> CallRecord:
        """The record of a row that a ``subscribe(..., rows=True)`` listener got."""
        return _make(row)

    def merge(self, records: Iterable[dict[str, Any]], *, shift_ns: int = 0, **tags: Any) -> None:
        """Records made by another process's timeline (a map worker, a Ray actor), as ``CallRecord.as_dict`` gave
        them: each gets a seq here, its start moved by ``shift_ns`` onto this process's clock, and ``tags``
        (``node``, ``worker``) set. Fields this CallRecord does not have are dropped; missing ones take defaults."""
        defaults = {f.name: None if f.default is MISSING else f.default for f in fields(CallRecord)}
        for record in records:
            r = {**defaults, **{k: v for k, v in record.items() if k in defaults}}
            r.update({k: v for k, v in tags.items() if k in defaults})
            self._append(
                (
                    next(self._seq), r["call"], (r["guest"], r["guest_id"]), (r["graph"], r["device"], r["target"]),
                    int(r["start_ns"]) + shift_ns, r["duration_ns"], r["outcome"], r["nbytes"], r["context"],
                    r["device_ns"], r["tokens"], (r["kind"], r["detail"], r["node"], r["worker"]),
                    *flat_io(r["inputs"], r["outputs"]),
                )
            )  # fmt: skip

    def subscribe(self, listener: Callable[[Any], None], *, rows: bool = False) -> Callable[[], None]:
        """Call ``listener`` with each new record; returns the function that unsubscribes it.

        The listener runs on the guest's call: making its CallRecord costs that call a microsecond or two. With
        ``rows=True`` it gets the row instead (an immutable tuple, nothing made) and turns it into a record with
        :meth:`record_of` where it reads it, in a front-end's own thread say.
        """
        with self._lock:
            if rows:
                self._row_listeners = [*self._row_listeners, listener]
            else:
                self._listeners = [*self._listeners, listener]
            self.listening = True

        def unsubscribe() -> None:
            with self._lock:
                self._listeners = [x for x in self._listeners if x is not listener]
                self._row_listeners = [x for x in self._row_listeners if x is not listener]
                self.listening = bool(self._listeners or self._row_listeners)

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
            if row[2][1] == guest_id and (row[11] or _A_CALL)[0] == "call":
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
            if (row[11] or _A_CALL)[0] != "call":
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
