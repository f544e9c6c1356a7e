"""The timeline: every call with its guest instance and device, and the guests' lifecycle events."""

from __future__ import annotations

import numpy as np
import pytest

from wasinn_jupyter.host import Host, Tensor, WasiNNError


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
    assert host.timeline.summary() == {}  # the summary counts wasi-nn calls only
    with pytest.raises(ValueError):
        host.timeline.event("explode", guest.label, guest.id)
