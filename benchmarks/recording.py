"""(e) What recording costs: a wasi-nn call with the timeline recording it against the same call path without.

Both sides run guests/nn_loop.wat on the ``echo`` graph (set_input + compute + get_output of a [256] f32 tensor,
500 round trips per export call), each against its own Host: one with the default timeline (recording every call
with its graph, context, device, target, tensors' names, shapes, dtypes and bytes), one with ``timeline_size=0``
(its clients skip recording: no clock reads, no notes, no append). Times are the calling thread's CPU time (the
guest runs on it), so other processes on the machine do not land in the difference. The figure is the paired median
of (with - without) per wasi-nn call; the target is at most 1 µs per call on the CPU.

Also printed, not judged: the cost with one listener subscribed (a front-end that only queues each record, as
widgets and the panel do), and the memory one record holds in the ring buffer.

    python benchmarks/recording.py [--reps 101] [--iters 300]
"""

from __future__ import annotations

import statistics
import sys
import time
import tracemalloc
from typing import Any

import numpy as np
from _common import (
    F32,
    NN_LOOP,
    Result,
    check_errno,
    dump,
    fmt_time,
    interleaved,
    parser,
    setup_graph,
    view,
    write_tensor,
)

from wasinn_jupyter.host import Host, Session

BUDGET_S = 1e-6  # per wasi-nn call
CALLS = 3  # wasi-nn calls per round trip
TENSOR_AT, DATA_AT, OUT_AT, NBYTES = 256, 1024, 4096, 1024


def echo_guest(host: Host, label: str) -> tuple[Session, Any]:
    session = Session(host)
    session.host.register("echo", "echo")
    guest = session.instantiate(session.compile(NN_LOOP), label=label)
    mem = view(guest.instance.exports(guest.store)["memory"], guest.store)
    write_tensor(mem, TENSOR_AT, [NBYTES // 4], F32, DATA_AT, NBYTES)
    mem[DATA_AT : DATA_AT + NBYTES] = np.arange(NBYTES // 4, dtype=np.float32).view(np.uint8)
    setup_graph(guest, "echo")
    check_errno(guest.call("run", 1, TENSOR_AT, OUT_AT, NBYTES, watch=False), guest, "echo round trip")
    return session, guest


def per_call(guest: Any, iters: int) -> float:
    """Seconds of this thread's CPU time per wasi-nn call: recording is CPU work, and CPU time leaves out the
    time other processes on the shared machine take the core away (wall time is printed by echo_roundtrip)."""
    start = time.thread_time_ns()
    check_errno(guest.call("run", iters, TENSOR_AT, OUT_AT, NBYTES, watch=False), guest, "echo round trip")
    return (time.thread_time_ns() - start) / 1e9 / (iters * CALLS)


def record_bytes(host: Host, guest: Any, iters: int) -> float:
    """Bytes the ring buffer holds per record of this loop (tracemalloc over a fresh batch of records)."""
    host.timeline.clear()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    check_errno(guest.call("run", iters, TENSOR_AT, OUT_AT, NBYTES, watch=False), guest, "echo round trip")
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / len(host.timeline)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0], reps=101)
    p.add_argument("--iters", type=int, default=300, help="round trips per export call (default 300)")
    args = p.parse_args(argv)
    iters = args.iters

    recorded_host, quiet_host, listened_host = Host(), Host(timeline_size=0), Host()
    _, recorded = echo_guest(recorded_host, "recorded")
    _, quiet = echo_guest(quiet_host, "quiet")
    _, listened = echo_guest(listened_host, "listened")
    queue: list[Any] = []
    listened_host.timeline.subscribe(queue.append)
    assert len(quiet_host.timeline) == 0 and len(recorded_host.timeline) > 0

    def drain() -> None:
        queue.clear()

    print(f"(e) recording, echo round trip of 1 KiB f32, {iters} round trips per export call, {args.reps} reps")
    with_s, without_s, listener_s = interleaved(
        [
            lambda: per_call(recorded, iters),
            lambda: per_call(quiet, iters),
            lambda: (drain(), per_call(listened, iters))[1],
        ],
        args.reps,
        warmup=3,
    )
    cost = [w - o for w, o in zip(with_s, without_s, strict=True)]
    with_listener = [w - o for w, o in zip(listener_s, without_s, strict=True)]
    median_cost = statistics.median(cost)
    per_record = record_bytes(recorded_host, recorded, iters)
    rec = next(r for r in reversed(recorded_host.timeline.records()) if r.call == "compute")  # what a record carries
    size = recorded_host.timeline.maxlen
    notes = [
        f"per wasi-nn call: with recording {statistics.median(with_s) * 1e6:.2f} µs, "
        f"without {statistics.median(without_s) * 1e6:.2f} µs (medians)",
        f"each side's fastest repetition (the least disturbed): with {min(with_s) * 1e6:.2f} µs, without "
        f"{min(without_s) * 1e6:.2f} µs: {(min(with_s) - min(without_s)) * 1e6:.2f} µs per call",
        f"recording with one listener that queues each CallRecord: {statistics.median(with_listener) * 1e6:.2f} µs "
        "per call (a subscribed front-end's cost: the record object is made for it)",
        f"ring buffer: {per_record:.0f} bytes per record here; the default {size} records hold about "
        f"{per_record * size / 2**20:.0f} MiB at most (Host(timeline_size=...) bounds it)",
        f"a record carries: {rec.call} graph={rec.graph} context={rec.context} device={rec.device} "
        f"target={rec.target} inputs={[tuple(m) for m in rec.inputs or ()]} "
        f"outputs={[tuple(m) for m in rec.outputs or ()]}",
    ]
    result = Result(
        name="recording[per call]",
        ours_label="recording cost per wasi-nn call (with minus without, paired per repetition)",
        base_label="the budget: 1 µs per call",
        unit="us",
        ours_s=median_cost,
        base_s=BUDGET_S,
        ratio=median_cost / BUDGET_S,
        ratio_of_medians=(statistics.median(with_s) - statistics.median(without_s)) / BUDGET_S,
        ratio_meaning="recording cost / 1 µs",
        target=1.0,
        higher_is_better=False,
        passed=median_cost <= BUDGET_S,
        reps=len(cost),
        notes=notes,
    )
    q = statistics.quantiles(cost, n=4)
    spread = f"(p25 {q[0] * 1e6:.2f} µs, p75 {q[2] * 1e6:.2f} µs)"
    print(f"  ours      {fmt_time(median_cost, 'us')}  {result.ours_label}  {spread}")
    print(f"  budget    {fmt_time(BUDGET_S, 'us')}  per call")
    print(f"  ratio     {result.ratio:.3f}x  {result.ratio_meaning}  (of medians {result.ratio_of_medians:.3f}x)")
    print(f"  target    <= 1.0x  ->  {'PASS' if result.passed else 'MISS'}")
    for note in notes:
        print(f"  note      {note}")
    dump([result], args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
