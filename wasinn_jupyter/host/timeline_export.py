"""The timeline written out: a pandas DataFrame, CSV, and Chrome trace-event JSON for Perfetto and chrome://tracing.

Each function takes the :class:`~.timeline.Timeline` (for its clock origin and dropped count) and optionally the
records to write (a filtered selection; default: all it holds). pandas is imported only by :func:`to_dataframe`.

The trace is the JSON object format of the Trace Event Format (the document Chrome's and Perfetto's importers
read): ``{"traceEvents": [...], "displayTimeUnit": "ns", "otherData": {...}}``. Each wasi-nn call is a complete
event (``"ph": "X"``, ``ts`` and ``dur`` in microseconds from the first record); each guest instance is a thread
(``tid`` = its ``guest_id``, named ``label #id`` by a ``thread_name`` metadata event), so a guest's ``run`` spans
nest its calls; each process that made records (this one first, then each ``node`` and ``worker`` of remote ones,
whose guest ids are their own) is a process. Lifecycle events that
lasted (compile, instantiate, run) are complete events too; those of an instant (exit, trap, stopped, close) are
instant events (``"ph": "i"``, thread scope). ``args`` holds the record's details.
"""

from __future__ import annotations

import csv
import datetime
import importlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from .timeline import FIELDS, CallRecord, Timeline

# CSV and DataFrame columns: every record field, with the wall-clock time after start_ns.
COLUMNS: tuple[str, ...] = (
    *FIELDS[: FIELDS.index("start_ns") + 1],
    "wall_time",
    *FIELDS[FIELDS.index("start_ns") + 1 :],
)
_OPTIONAL_INTS = ("context", "device_ns", "tokens")
_TEXT = ("call", "guest", "graph", "outcome", "device", "kind", "detail", "target", "node", "worker")
HOST_PROCESS = "wasi-nn host"


def _selected(timeline: Timeline, records: Iterable[CallRecord] | None) -> list[CallRecord]:
    return timeline.records() if records is None else list(records)


def _wall_time(timeline: Timeline, start_ns: int) -> datetime.datetime:
    wall = timeline.wall_ns(start_ns)
    return datetime.datetime.fromtimestamp(wall // 1_000_000_000, datetime.timezone.utc).replace(
        microsecond=(wall % 1_000_000_000) // 1000
    )


def to_dataframe(timeline: Timeline, records: Iterable[CallRecord] | None = None) -> Any:
    """A pandas DataFrame (Any here: pandas is optional), one row per record, columns :data:`COLUMNS`: integers
    as int64 (Int64 where a value may be missing), text as strings, ``wall_time`` a UTC datetime,
    ``inputs``/``outputs`` lists of {name, shape, dtype, nbytes}."""
    try:
        pd: Any = importlib.import_module("pandas")  # optional, and untyped without pandas-stubs
    except ImportError:
        raise ImportError(
            "Timeline.to_dataframe needs pandas, which is not installed: pip install pandas "
            "(to_csv and to_chrome_trace need nothing more)"
        ) from None
    rows = [rec.as_dict() for rec in _selected(timeline, records)]
    frame = pd.DataFrame.from_records(rows, columns=list(FIELDS))
    wall = [timeline.wall_ns(int(ns)) for ns in frame["start_ns"]]
    frame.insert(FIELDS.index("start_ns") + 1, "wall_time", pd.to_datetime(pd.Series(wall, dtype="int64"), utc=True))
    for name in ("seq", "start_ns", "duration_ns", "nbytes", "guest_id"):
        frame[name] = frame[name].astype("int64")
    for name in _OPTIONAL_INTS:
        frame[name] = frame[name].astype("Int64")
    for name in _TEXT:
        frame[name] = frame[name].astype("string")
    for name in ("inputs", "outputs"):
        frame[name] = frame[name].astype(object)
    extra = [c for c in frame.columns if c not in COLUMNS]
    return frame[[*COLUMNS, *extra]]


def csv_row(timeline: Timeline, record: CallRecord) -> dict[str, Any]:
    """A record as CSV fields: None empty, tensors as JSON text, ``wall_time`` ISO 8601 in UTC (microseconds)."""
    row = record.as_dict()
    out: dict[str, Any] = {}
    for name in COLUMNS:
        if name == "wall_time":
            out[name] = _wall_time(timeline, record.start_ns).isoformat()
            continue
        value = row[name]
        if value is None:
            out[name] = ""
        elif name in ("inputs", "outputs"):
            out[name] = json.dumps(value, separators=(",", ":"))
        else:
            out[name] = value
    return out


def to_csv(timeline: Timeline, path_or_file: str | Path | IO[str], records: Iterable[CallRecord] | None = None) -> None:
    """Write a header and one row per record (see :func:`csv_row`); read it back with ``csv.DictReader``."""
    selected = _selected(timeline, records)

    def write(stream: IO[str]) -> None:
        writer = csv.DictWriter(stream, fieldnames=COLUMNS)
        writer.writeheader()
        for record in selected:
            writer.writerow(csv_row(timeline, record))

    if isinstance(path_or_file, (str, Path)):
        with open(path_or_file, "w", newline="", encoding="utf-8") as stream:
            write(stream)
    else:
        write(path_or_file)


def _args(record: CallRecord) -> dict[str, Any]:
    """The details a viewer shows for an event: every field that says something, minus what the event itself is."""
    skip = {"call", "start_ns", "duration_ns", "guest", "guest_id", "kind"}
    return {k: v for k, v in record.as_dict().items() if k not in skip and v is not None}


def chrome_trace(timeline: Timeline, records: Iterable[CallRecord] | None = None) -> dict[str, Any]:
    """The trace-event JSON object (see the module docstring)."""
    selected = _selected(timeline, records)
    origin = min((r.start_ns for r in selected), default=timeline.origin_ns)
    pids: dict[tuple[str | None, str | None], int] = {(None, None): 1}
    threads: dict[tuple[int, int], str] = {}
    events: list[dict[str, Any]] = []
    for rec in selected:
        pid = pids.setdefault((rec.node, rec.worker), len(pids) + 1)
        tid = rec.guest_id
        if (pid, tid) not in threads:
            threads[(pid, tid)] = "modules (compile)" if tid == 0 else f"{rec.guest} #{tid}"
        event: dict[str, Any] = {
            "name": rec.call,
            "cat": "wasi-nn" if rec.kind == "call" else "lifecycle",
            "ts": (rec.start_ns - origin) / 1000,
            "pid": pid,
            "tid": tid,
            "args": _args(rec),
        }
        if rec.kind == "call" or rec.duration_ns > 0:
            event["ph"] = "X"
            event["dur"] = rec.duration_ns / 1000
        else:
            event["ph"] = "i"
            event["s"] = "t"
        events.append(event)
    # parents before their children at the same instant: a longer event first
    events.sort(key=lambda e: (e["ts"], -e.get("dur", 0.0)))
    meta: list[dict[str, Any]] = []
    used = {pid for pid, _ in threads}
    for (node, worker), pid in pids.items():
        if pid not in used:  # no record of this machine selected
            continue
        name = " ".join(str(part) for part in (node, worker) if part) or HOST_PROCESS
        meta.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": name}})
    for (pid, tid), name in sorted(threads.items()):
        meta.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}})
        meta.append({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid, "args": {"sort_index": tid}})
    return {
        "traceEvents": meta + events,
        "displayTimeUnit": "ns",
        "otherData": {
            "producer": "wasinn-jupyter",
            "records": len(selected),
            "dropped": timeline.dropped,
            "start_wall_time": _wall_time(timeline, origin).isoformat(),
        },
    }


def to_chrome_trace(
    timeline: Timeline, path_or_file: str | Path | IO[str], records: Iterable[CallRecord] | None = None
) -> None:
    """Write :func:`chrome_trace` as JSON: open it in https://ui.perfetto.dev or chrome://tracing."""
    trace = chrome_trace(timeline, records)
    if isinstance(path_or_file, (str, Path)):
        with open(path_or_file, "w", encoding="utf-8") as stream:
            json.dump(trace, stream)
    else:
        json.dump(trace, path_or_file)
