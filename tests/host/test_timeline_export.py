"""The timeline's exports: Chrome trace-event JSON in the shape Perfetto and chrome://tracing read, CSV that the csv
module reads back, and a pandas DataFrame with typed columns. The records come from real guests (WAT, run by a
real Session) computing a real torch graph, one of them trapping."""

from __future__ import annotations

import csv
import datetime
import io
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import torch

from wasinn_jupyter.guests import compute, driver_wat
from wasinn_jupyter.host import GuestTrap, Host, Session, Tensor, Timeline
from wasinn_jupyter.host.timeline import FIELDS, CallRecord
from wasinn_jupyter.host.timeline_export import COLUMNS, chrome_trace

TRAPS = '(module (func (export "boom") unreachable))'


@pytest.fixture(scope="module")
def timeline() -> Timeline:
    """Two driver instances compute a torch graph (one asks for a graph that does not exist), a third guest traps."""
    session = Session(Host())
    session.host.register("lin", torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).eval())
    driver = session.compile(driver_wat(), name="driver")
    for graph in ("lin", "missing"):
        guest = session.instantiate(driver, label="driver")
        try:
            compute(guest, graph, [Tensor.from_value(torch.rand(2, 3, 4))])
        except Exception:  # noqa: BLE001 - the missing graph: its failed load_by_name is what we want recorded
            pass
        guest.close()
    trapper = session.instantiate(session.compile(TRAPS, name="traps"), label="traps")
    with pytest.raises(GuestTrap):
        trapper.call("boom", watch=False)
    trapper.close()
    return session.host.timeline


def _records(timeline: Timeline) -> list[CallRecord]:
    records = timeline.records()
    kinds = {(r.kind, r.call, r.ok) for r in records}
    assert ("call", "compute", True) in kinds and ("call", "load_by_name", False) in kinds
    assert ("lifecycle", "trap", False) in kinds and ("lifecycle", "compile", True) in kinds
    return records


# -- Chrome trace ----------------------------------------------------------------------------------------------


def test_the_trace_has_the_trace_event_shape(timeline: Timeline, tmp_path: Path) -> None:
    records = _records(timeline)
    path = tmp_path / "trace.json"
    timeline.to_chrome_trace(path)
    trace = json.loads(path.read_text())  # plain JSON, as the viewers load it

    assert set(trace) >= {"traceEvents", "displayTimeUnit"} and trace["displayTimeUnit"] == "ns"
    events = trace["traceEvents"]
    assert isinstance(events, list) and events
    meta = [e for e in events if e["ph"] == "M"]
    timed = [e for e in events if e["ph"] != "M"]
    for event in events:
        assert isinstance(event["name"], str) and event["name"]
        assert event["ph"] in {"X", "i", "M"}
        assert isinstance(event["pid"], int) and isinstance(event["tid"], int)
        assert isinstance(event.get("args", {}), dict)
    for event in timed:
        assert isinstance(event["ts"], (int, float)) and event["ts"] >= 0
        assert isinstance(event["cat"], str)
        if event["ph"] == "X":
            assert isinstance(event["dur"], (int, float)) and event["dur"] >= 0
        else:
            assert event["s"] in {"t", "p", "g"} and "dur" not in event
    assert [e["ts"] for e in timed] == sorted(e["ts"] for e in timed)  # monotonic

    # one event per record: calls and lasting lifecycle events complete, instants (trap, exit, close) instant
    assert len(timed) == len(records)
    by_seq = {e["args"]["seq"]: e for e in timed}
    for rec in records:
        event = by_seq[rec.seq]
        assert event["name"] == rec.call and event["tid"] == rec.guest_id
        assert event["cat"] == ("wasi-nn" if rec.kind == "call" else "lifecycle")
        assert event["ph"] == ("X" if rec.kind == "call" or rec.duration_ns else "i")
        if event["ph"] == "X":
            assert event["dur"] == pytest.approx(rec.duration_ns / 1000)  # microseconds
    first = min(r.start_ns for r in records)
    compute_rec = next(r for r in records if r.call == "compute")
    assert by_seq[compute_rec.seq]["ts"] == pytest.approx((compute_rec.start_ns - first) / 1000)
    assert by_seq[compute_rec.seq]["args"]["inputs"] == [
        {"name": "input", "shape": [2, 3, 4], "dtype": "f32", "nbytes": 96}
    ]
    assert next(e for e in timed if e["name"] == "trap")["ph"] == "i"

    # every thread and process is named by metadata events
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    assert {(e["pid"], e["tid"]) for e in timed} == set(names)
    guest_ids = {r.guest_id for r in records if r.guest == "driver" and r.guest_id}  # 0: compiles, not instances
    assert len(guest_ids) == 2 and {names[(1, g)] for g in guest_ids} == {f"driver #{g}" for g in guest_ids}
    assert names[(1, 0)] == "modules (compile)"
    assert [e["args"]["name"] for e in meta if e["name"] == "process_name"] == ["wasi-nn host"]
    assert trace["otherData"]["records"] == len(records) and trace["otherData"]["dropped"] == 0


def test_complete_events_on_a_thread_nest(timeline: Timeline) -> None:
    """The viewers stack a thread's X events: each must lie within the one it starts in (a run holds its calls)."""
    events = [e for e in chrome_trace(timeline)["traceEvents"] if e["ph"] == "X"]
    threads: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        threads[(event["pid"], event["tid"])].append(event)
    nested = 0
    for thread in threads.values():
        stack: list[float] = []  # ends of the open events
        for event in thread:  # sorted by ts, longer first at the same ts
            end = event["ts"] + event["dur"]
            while stack and stack[-1] <= event["ts"] + 1e-3:
                stack.pop()
            assert not stack or end <= stack[-1] + 1e-3, f"{event['name']} overlaps its parent's end"
            nested += bool(stack)
            stack.append(end)
    assert nested > 0  # the calls sit inside their guest's run events


def test_the_trace_goes_to_a_file_object_and_takes_a_selection(timeline: Timeline) -> None:
    buffer = io.StringIO()
    selected = [r for r in timeline.records() if r.call == "compute"]
    timeline.to_chrome_trace(buffer, selected)
    trace = json.loads(buffer.getvalue())
    timed = [e for e in trace["traceEvents"] if e["ph"] != "M"]
    assert [e["name"] for e in timed] == ["compute"] and timed[0]["ts"] == 0


def test_remote_records_get_a_process_of_their_own() -> None:
    timeline = Timeline()
    timeline.record("compute", "local", "g", 0, "ok", guest_id=1)
    sent = [{**timeline.records()[0].as_dict(), "guest_id": 1}]  # guest ids are per process: all three say 1
    timeline.merge(sent, node="node-b", worker="w1")
    timeline.merge(sent, node="node-b", worker="w2")
    trace = chrome_trace(timeline)
    processes = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"}
    assert processes == {1: "wasi-nn host", 2: "node-b w1", 3: "node-b w2"}
    timed = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert sorted(e["pid"] for e in timed) == [1, 2, 3]


# -- CSV ---------------------------------------------------------------------------------------------------------


def test_csv_round_trips_through_the_csv_module(timeline: Timeline, tmp_path: Path) -> None:
    records = _records(timeline)
    path = tmp_path / "timeline.csv"
    timeline.to_csv(path)
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        rows = list(reader)
    assert len(rows) == len(records)
    types = {name: CallRecord.__dataclass_fields__[name].type for name in FIELDS}
    for rec, row in zip(records, rows, strict=True):
        for name, value in rec.as_dict().items():
            text = row[name]
            if value is None:
                assert text == "", name
            elif name in ("inputs", "outputs"):
                assert json.loads(text) == value
            elif "int" in str(types[name]):
                assert int(text) == value, name
            else:
                assert text == str(value), name
        wall = datetime.datetime.fromisoformat(row["wall_time"])
        assert wall.tzinfo is not None
        assert abs((datetime.datetime.now(datetime.timezone.utc) - wall).total_seconds()) < 3600
    assert any(json.loads(r["outputs"] or "null") for r in rows if r["call"] == "get_output")


def test_csv_to_a_file_object_with_a_selection(timeline: Timeline) -> None:
    buffer = io.StringIO()
    timeline.to_csv(buffer, [r for r in timeline.records() if not r.ok])
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert {r["outcome"] for r in rows} >= {"not-found", "trap"}


# -- DataFrame ---------------------------------------------------------------------------------------------------


def test_the_dataframe_has_every_field_with_types(timeline: Timeline) -> None:
    pd = pytest.importorskip("pandas")
    records = _records(timeline)
    frame = timeline.to_dataframe()
    assert tuple(frame.columns) == COLUMNS and len(frame) == len(records)
    for name in ("seq", "start_ns", "duration_ns", "nbytes", "guest_id"):
        assert frame[name].dtype == "int64", name
    for name in ("context", "device_ns", "tokens"):
        assert str(frame[name].dtype) == "Int64", name
    for name in ("call", "guest", "graph", "outcome", "kind"):
        assert pd.api.types.is_string_dtype(frame[name].dtype), name
    assert isinstance(frame["wall_time"].dtype, pd.DatetimeTZDtype) and str(frame["wall_time"].dt.tz) == "UTC"
    assert frame["seq"].tolist() == [r.seq for r in records]
    computes = frame[frame["call"] == "compute"]
    assert computes["outputs"].iloc[0] == [{"name": "output0", "shape": [2, 3], "dtype": "f32", "nbytes": 24}]
    assert computes["context"].notna().all() and frame[frame["kind"] == "lifecycle"]["context"].isna().all()
    latency = frame[frame["kind"] == "call"].groupby("call")["duration_ns"].median()  # what a user does next
    assert latency["compute"] > 0
    assert len(timeline.to_dataframe([])) == 0


def test_without_pandas_the_dataframe_says_what_to_install(timeline: Timeline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # what a Python without pandas does on import
    with pytest.raises(ImportError, match="pip install pandas"):
        timeline.to_dataframe()
    timeline.to_csv(io.StringIO())  # the other exports need nothing
