"""Every wasi-nn call the host serves, recorded with its latency, and the guests' lifecycle events.

The Host feeds the timeline; front-ends (the CLI's summary, widgets, the JupyterLab panel) subscribe or read it.
Recording sits on every host call's path, so it is an append to a bounded deque and nothing more; listeners run
synchronously and should only queue what they get.

A record is a wasi-nn call (``kind`` "call": ``call`` is its name, ``outcome`` "ok" or an error code) or a
lifecycle event of a guest (``kind`` "lifecycle": ``call`` is one of :data:`LIFECYCLE`, ``outcome`` "ok" or what
ended it, ``detail`` a short text). ``guest`` is the guest's label (several guests may share one, "driver" say);
``guest_id`` tells instances apart.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

log = logging.getLogger(__name__)


# Lifecycle events a session records for each guest.
LIFECYCLE = ("compile", "instantiate", "run", "exit", "trap", "stopped", "close")


@dataclass(frozen=True, slots=True)
class CallRecord:
    seq: int
    call: str
    guest: str
    graph: str | None
    start_ns: int  # time.perf_counter_ns() at entry: compare records with each other, not with wall clock
    duration_ns: int
    outcome: str  # "ok" or an ErrorCode value (a call); "ok" or how it ended (a lifecycle event)
    nbytes: int = 0
    device: str | None = None
    guest_id: int = 0
    kind: str = "call"  # or "lifecycle"
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Listener = Callable[[CallRecord], None]


class Timeline:
    def __init__(self, maxlen: int = 100_000) -> None:
        self._records: deque[tuple[Any, ...]] = deque(maxlen=maxlen)
        self._seq = itertools.count()
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

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
    ) -> None:
        """A wasi-nn call that started at ``start_ns`` and ends now."""
        # A plain tuple on the hot path; CallRecord objects are made only for listeners and readers.
        elapsed = time.perf_counter_ns() - start_ns
        self._append((next(self._seq), call, guest, graph, start_ns, elapsed, outcome, nbytes, device, guest_id))

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
        self._append(
            (next(self._seq), event, guest, None, start, now - start, outcome, 0, None, guest_id, "lifecycle", detail)
        )

    def _append(self, row: tuple[Any, ...]) -> None:
        self._records.append(row)
        if self._listeners:
            rec = CallRecord(*row)
            for listener in self._listeners:
                try:
                    listener(rec)
                except Exception:  # a broken front-end must not break a guest's call
                    log.exception("timeline listener failed")

    def merge(self, records: Iterable[dict[str, Any]], *, shift_ns: int = 0, **tags: Any) -> None:
        """Records made by another process's timeline (a map worker, a Ray actor), as ``CallRecord.as_dict`` gave
        them: each gets a seq here, its start moved by ``shift_ns`` onto this process's clock, and ``tags``
        (``node``, ``worker``) set. Fields this CallRecord does not have are dropped; missing ones take defaults."""
        names = [f.name for f in fields(CallRecord)]
        defaults = {f.name: f.default for f in fields(CallRecord) if f.default is not MISSING}
        for record in records:
            row = {**defaults, **{k: v for k, v in record.items() if k in defaults or k in names}}
            row.update({k: v for k, v in tags.items() if k in names})
            row["seq"] = next(self._seq)
            row["start_ns"] = int(row["start_ns"]) + shift_ns
            self._append(tuple(row[name] for name in names))

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with each new record; returns the function that unsubscribes it."""
        with self._lock:
            self._listeners = [*self._listeners, listener]

        def unsubscribe() -> None:
            with self._lock:
                self._listeners = [x for x in self._listeners if x is not listener]

        return unsubscribe

    def records(self, since: int = -1) -> list[CallRecord]:
        return [CallRecord(*row) for row in list(self._records) if row[0] > since]

    def clear(self) -> None:
        self._records.clear()

    def __len__(self) -> int:
        return len(self._records)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per wasi-nn call name: count, errors, total and mean latency in microseconds (lifecycle events apart)."""
        out: dict[str, dict[str, float]] = {}
        for rec in self.records():
            if rec.kind != "call":
                continue
            row = out.setdefault(rec.call, {"count": 0, "errors": 0, "total_us": 0.0})
            row["count"] += 1
            row["errors"] += 0 if rec.ok else 1
            row["total_us"] += rec.duration_ns / 1000
        for row in out.values():
            row["mean_us"] = row["total_us"] / row["count"]
        return out
