"""Every wasi-nn call the host serves, recorded with its latency.

The Host feeds the timeline; front-ends (the CLI's summary, the matplotlib plot, the JupyterLab panel) subscribe
or read it. Recording sits on every host call's path, so it is an append to a bounded deque and nothing more;
listeners run synchronously and should only queue what they get.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CallRecord:
    seq: int
    call: str
    guest: str
    graph: str | None
    start_ns: int  # time.perf_counter_ns() at entry: compare records with each other, not with wall clock
    duration_ns: int
    outcome: str  # "ok" or an ErrorCode value
    nbytes: int = 0
    device: str | None = None

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
    ) -> None:
        # A plain tuple on the hot path; CallRecord objects are made only for listeners and readers.
        elapsed = time.perf_counter_ns() - start_ns
        row = (next(self._seq), call, guest, graph, start_ns, elapsed, outcome, nbytes, device)
        self._records.append(row)
        if self._listeners:
            rec = CallRecord(*row)
            for listener in self._listeners:
                try:
                    listener(rec)
                except Exception:  # a broken front-end must not break a guest's call
                    log.exception("timeline listener failed")

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
        """Per call name: count, errors, total and mean latency in microseconds."""
        out: dict[str, dict[str, float]] = {}
        for rec in self.records():
            row = out.setdefault(rec.call, {"count": 0, "errors": 0, "total_us": 0.0})
            row["count"] += 1
            row["errors"] += 0 if rec.ok else 1
            row["total_us"] += rec.duration_ns / 1000
        for row in out.values():
            row["mean_us"] = row["total_us"] / row["count"]
        return out
