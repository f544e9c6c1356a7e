"""The timeline: every call with its guest instance, graph, context, device, target and tensors, the guests'
lifecycle events, and the ring buffer that bounds it."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch

from wasinn_jupyter.guests import compute, driver_wat
from wasinn_jupyter.host import CallRecord, Host, Session, Tensor, Timeline, WasiNNError
from wasinn_jupyter.host.tensors import BY_NAME
from wasinn_jupyter.host.timeline import TensorMeta


class TwoInputs(torch.nn.Module):
    """Named inputs and named outputs, so that the records can say which tensor was which."""

    def forward(self, image: torch.Tensor, scale: torch.Tensor) -> dict[str, torch.Tensor]:
        flat = image.flatten(1) * scale
        return {"scores": flat[:, :5], "total": flat.sum(1).to(torch.float64)}


def test_records_tell_guest_instances_apart_and_carry_the_device() -> None:
    host = Host()
    host.register("echo", "echo")
    first, second = host.client("driver"), host.client("driver")
    assert first.id != second.id
    ctx = first.init_execution_context(first.load_by_name("echo"))
    first.set_input(ctx, 0, Tensor.from_value(np.ones(2, np.float32)))
    first.compute(ctx)
    with pytest.raises(WasiNNError):
        second.compute(99)
    records = host.timeline.records()
    assert [(r.call, r.guest, r.guest_id) for r in records[-3:]] == [
        ("set_input", "driver", first.id),
        ("compute", "driver", first.id),
        ("compute", "driver", second.id),
    ]
    assert records[-2].device == "cpu" and records[-1].device is None  # no graph behind a bad handle
    assert records[-1].context == 99 and records[-1].outcome == "invalid-argument"


def test_lifecycle_events_are_recorded_apart_from_calls() -> None:
    host = Host()
    guest = host.client("g")
    host.timeline.event("instantiate", guest.label, guest.id, detail="core module")
    host.timeline.event("trap", guest.label, guest.id, outcome="trap", detail="unreachable")
    events = [r for r in host.timeline.records() if r.kind == "lifecycle"]
    assert [(e.call, e.outcome, e.detail) for e in events] == [
        ("instantiate", "ok", "core module"),
        ("trap", "trap", "unreachable"),
    ]
    assert all(e.inputs is None and e.context is None and e.device_ns is None for e in events)
    assert host.timeline.summary() == {}  # the summary counts wasi-nn calls only
    with pytest.raises(ValueError):
        host.timeline.event("explode", guest.label, guest.id)


def test_a_wat_guests_calls_carry_graph_context_target_and_tensors() -> None:
    """The shipped driver (WAT) computes a torch graph through the witx ABI; each record says what crossed."""
    session = Session(Host())
    session.host.register("two", TwoInputs())
    module = session.compile(driver_wat(), name="driver")
    guest = session.instantiate(module, label="driver")
    image = torch.rand(2, 3, 4)
    outputs = compute(guest, "two", [Tensor.from_value(image), Tensor.from_value(torch.tensor(2.0))])
    assert torch.allclose(outputs[0].tensor.to_torch(), image.flatten(1)[:, :5] * 2)
    guest.close()

    records = session.host.timeline.records()
    calls = {r.call: r for r in records if r.kind == "call" and r.ok}
    assert {"load_by_name", "init_execution_context", "set_input", "compute", "get_output"} <= set(calls)
    for rec in calls.values():
        assert (rec.guest, rec.guest_id, rec.graph, rec.device, rec.target) == ("driver", guest.id, "two", "cpu", "cpu")
        assert rec.duration_ns > 0 and rec.device_ns is None  # no CUDA events on the CPU
    ctx = calls["init_execution_context"].context
    assert ctx is not None and all(calls[c].context == ctx for c in ("set_input", "compute", "get_output"))

    sets = [r for r in records if r.call == "set_input"]
    assert [r.inputs for r in sets] == [
        (TensorMeta("image", (2, 3, 4), "f32", 96),),
        (TensorMeta("scale", (), "f32", 4),),
    ]
    assert [r.nbytes for r in sets] == [96, 4]
    computed = calls["compute"]
    assert computed.inputs == (TensorMeta("image", (2, 3, 4), "f32", 96), TensorMeta("scale", (), "f32", 4))
    assert computed.outputs == (TensorMeta("scores", (2, 5), "f32", 40), TensorMeta("total", (2,), "f64", 16))
    reads = [r for r in records if r.call == "get_output" and r.ok]
    assert [r.outputs for r in reads] == [
        (TensorMeta("scores", (2, 5), "f32", 40),),
        (TensorMeta("total", (2,), "f64", 16),),
    ]
    assert [r.nbytes for r in reads] == [40, 16]

    # lifecycle markers around the calls, in order, for this instance
    lifecycle = [(r.call, r.guest_id) for r in records if r.kind == "lifecycle"]
    assert lifecycle[0] == ("compile", 0) and ("instantiate", guest.id) in lifecycle
    assert lifecycle[-1] == ("close", guest.id)
    # and every record is what a front-end can send as JSON
    sent = json.loads(json.dumps([r.as_dict() for r in records]))
    assert sent[records.index(computed)]["inputs"][0] == {
        "name": "image",
        "shape": [2, 3, 4],
        "dtype": "f32",
        "nbytes": 96,
    }


def test_a_refused_input_is_recorded_with_what_the_guest_tried_to_set() -> None:
    host = Host()
    host.register("echo", "echo")
    client = host.client("py")
    ctx = client.init_execution_context(client.load_by_name("echo"))
    with pytest.raises(WasiNNError):  # 3 f32 need 12 bytes, not 8
        client.set_input_bytes(ctx, 0, (3,), BY_NAME["f32"], np.zeros(8, np.uint8))
    rec = host.timeline.records()[-1]
    assert (rec.call, rec.outcome, rec.nbytes) == ("set_input", "invalid-argument", 8)
    assert rec.inputs == (TensorMeta("input0", (3,), "f32", 12),)  # what its dims say; echo names no inputs


def test_compute_named_records_names_both_ways() -> None:
    host = Host()
    host.register("two", TwoInputs())
    client = host.client("py")
    ctx = client.init_execution_context(client.load_by_name("two"))
    client.compute_named(
        ctx, {"scale": Tensor.from_value(np.float32(1)), "image": Tensor.from_value(np.ones((1, 6), np.float32))}
    )
    rec = host.timeline.records()[-1]
    assert rec.call == "compute_named" and rec.ok
    assert {m.name for m in rec.inputs or ()} == {"image", "scale"}
    assert rec.outputs == (TensorMeta("scores", (1, 5), "f32", 20), TensorMeta("total", (1,), "f64", 8))
    assert rec.nbytes == 24 + 4 + 20 + 8  # in and out


def test_unload_and_finalize_say_which_graph() -> None:
    host = Host()
    host.register("echo", "echo", target="cpu")
    client = host.client("py")
    graph = client.load_by_name("echo")
    ctx = client.init_execution_context(graph)
    client.finalize_execution_context(ctx)
    client.unload(graph)
    last = host.timeline.records()[-2:]
    assert [(r.call, r.graph, r.target) for r in last] == [
        ("finalize_execution_context", "echo", "cpu"),
        ("unload", "echo", "cpu"),
    ]


def test_the_ring_buffer_keeps_the_newest_and_counts_what_it_dropped() -> None:
    timeline = Timeline(maxlen=5)
    for i in range(12):
        timeline.record("compute", "g", None, i, "ok")
    assert len(timeline) == 5 and timeline.maxlen == 5
    assert [r.seq for r in timeline.records()] == [7, 8, 9, 10, 11]  # the oldest went first
    assert timeline.dropped == 7
    timeline.clear()  # cleared records are not dropped ones
    assert timeline.dropped == 7 and len(timeline) == 0
    timeline.record("compute", "g", None, 0, "ok")
    assert timeline.dropped == 7 and timeline.records()[0].seq == 12

    host = Host(timeline_size=3)
    host.register("echo", "echo")
    client = host.client()
    ctx = client.init_execution_context(client.load_by_name("echo"))
    for _ in range(4):
        client.set_input(ctx, 0, Tensor.from_value(np.ones(1, np.float32)))
    assert len(host.timeline) == 3 and host.timeline.dropped == 3
    with pytest.raises(ValueError):
        Timeline(maxlen=-1)


def test_a_timeline_of_size_zero_records_nothing_and_the_calls_still_work() -> None:
    host = Host(timeline_size=0)
    host.register("echo", "echo")
    client = host.client()
    assert not client.recording
    ctx = client.init_execution_context(client.load_by_name("echo"))
    client.set_input(ctx, 0, Tensor.from_value(np.arange(3, dtype=np.float32)))
    client.compute(ctx)
    assert client.get_output(ctx, 0).to_numpy().tolist() == [0, 1, 2]
    with pytest.raises(WasiNNError):
        client.compute(42)
    assert client.last_error is not None and "42" in client.last_error  # errors are still kept for the user
    assert len(host.timeline) == 0 and host.timeline.dropped == 0


def test_records_since_and_last_and_the_listener() -> None:
    timeline = Timeline()
    seen: list[CallRecord] = []
    unsubscribe = timeline.subscribe(seen.append)
    for i in range(6):
        timeline.record("set_input", "g", "m", i, "ok", 4, "cpu", 1, 0, "cpu", ((0, (1,), "f32", 4),), None)
    unsubscribe()
    timeline.record("compute", "g", "m", 9, "ok")
    assert len(seen) == 6 and seen[0].inputs == (TensorMeta("input0", (1,), "f32", 4),)
    assert [r.seq for r in timeline.records(since=3)] == [4, 5, 6]
    assert [r.seq for r in timeline.records(last=2)] == [5, 6]
    assert [r.seq for r in timeline.records(since=1, last=2)] == [5, 6]
    assert timeline.records(last=0) == []
    assert timeline.last_call(1) is not None and timeline.last_call(1).call == "set_input"  # type: ignore[union-attr]


def test_records_from_another_process_merge_with_their_tensors_and_tags() -> None:
    source = Host()
    source.register("echo", "echo")
    client = source.client("worker-guest")
    ctx = client.init_execution_context(client.load_by_name("echo"))
    client.set_input(ctx, 0, Tensor.from_value(np.ones((2, 2), np.float32)))
    sent: list[dict[str, Any]] = json.loads(json.dumps([r.as_dict() for r in source.timeline.records()]))

    here = Timeline()
    here.record("compute", "local", None, 0, "ok")
    here.merge(sent, shift_ns=1000, node="node-7", worker="pid 12")
    merged = here.records()[1:]
    assert [r.call for r in merged] == ["load_by_name", "init_execution_context", "set_input"]
    assert all(r.node == "node-7" and r.worker == "pid 12" for r in merged)
    assert merged[-1].inputs == (TensorMeta("input0", (2, 2), "f32", 16),)
    assert merged[-1].start_ns == sent[-1]["start_ns"] + 1000
    assert [r.seq for r in merged] == [1, 2, 3]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_calls_on_a_cuda_graph_carry_the_device_time_from_cuda_events() -> None:
    host = Host()
    host.register("mm", torch.nn.Linear(512, 512), target="gpu")
    client = host.client("py")
    ctx = client.init_execution_context(client.load_by_name("mm"))
    client.set_input(ctx, 0, Tensor.from_value(torch.rand(256, 512)))
    client.compute(ctx)
    client.get_output(ctx, 0)
    records = {r.call: r for r in host.timeline.records()}
    for call in ("set_input", "compute", "get_output"):
        rec = records[call]
        assert rec.device is not None and rec.device.startswith("cuda") and rec.target == "gpu"
        assert rec.device_ns is not None and 0 <= rec.device_ns <= rec.duration_ns
    assert records["compute"].device_ns > 0  # type: ignore[operator]  # a 256x512 @ 512x512 matmul
    assert records["load_by_name"].device_ns is None  # no graph known when it started: not timed on the device


def test_a_row_listener_gets_rows_and_makes_the_records_itself() -> None:
    timeline = Timeline()
    rows: list[Any] = []
    records: list[CallRecord] = []
    stop_rows = timeline.subscribe(rows.append, rows=True)
    stop_records = timeline.subscribe(records.append)
    timeline.record("get_output", "g", "m", 3, "ok", 0, "cpu", 2, 0, "cpu", None, (("y", (4,), "f16", 8),))
    timeline.event("exit", "g", 2)
    assert len(rows) == len(records) == 2 and isinstance(rows[0], tuple)
    assert [Timeline.record_of(r) for r in rows] == records
    assert records[0].outputs == (TensorMeta("y", (4,), "f16", 8),) and records[0].nbytes == 8  # from its tensor
    stop_rows()
    timeline.record("compute", "g", "m", 3, "ok")
    assert len(rows) == 2 and len(records) == 3 and timeline.listening
    stop_records()
    assert not timeline.listening
