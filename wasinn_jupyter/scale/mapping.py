"""``wasinn map``: one guest over many inputs, on a pool of local worker processes or on Ray actors.

The caller's side is one dispatcher for both: it hands each worker up to :data:`DEPTH` inputs at a time, takes
results in any order and gives them back in input order, merges every worker's timeline records into the caller's
timeline (tagged with node and worker), and retries elsewhere the inputs a dying worker held. A result is accepted
once, from the worker that was last handed that input, so nothing is lost or reported twice; an input that killed
:data:`MAX_ATTEMPTS` workers is reported failed instead of killing more (only the input a worker was running when
it died counts that death; those queued behind it go elsewhere as if new).

Local workers are fresh Python processes (not forks: the caller may hold threads, a wasmtime engine and the
sandbox's zygote socket, none of which survive a fork; each worker starts its own zygote on its first guest
``load``). The job and the inputs travel over a socket; its end is how the caller sees a worker die. Ray workers
are actors (:mod:`.ray_map`); they get the guest, the models and each input's bytes through Ray, so the
cluster's nodes need only the package installed, not the caller's files.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Protocol

from ..host import WasinnError
from .job import InputResult, MapJob, MapWorker, SetupError, clock_domain
from .progress import Progress

log = logging.getLogger(__name__)

DEPTH = 2  # inputs handed to a worker at once: the next is waiting when one ends
MAX_ATTEMPTS = 3  # workers an input may see die before it is reported failed
READY_TIMEOUT_S = 180.0  # workers must have set up (imported torch, loaded the models) by then
POLL_S = 0.2


class MapError(WasinnError):
    """The map could not run: no worker could set up (the message is the first worker's), or workers keep dying."""


@dataclass
class MapSummary:
    """A finished map: every input's result in input order, and how the run went."""

    results: list[InputResult]
    wall_s: float
    workers: int
    engine: str  # "local" or "ray"
    retried: int = 0  # inputs that a dying worker held and another worker ran
    replaced: int = 0  # workers started to replace dead ones
    nodes: list[str] = field(default_factory=list)
    startup_s: float = 0.0  # starting the workers (they import torch, load the models, compile the guest)

    def __repr__(self) -> str:
        return (
            f"<MapSummary {len(self.results)} inputs: {self.ok} ok, {self.failed} failed, {self.wall_s:.2f} s "
            f"on {self.workers} {self.engine} worker(s)>"
        )

    @property
    def ok(self) -> int:
        return sum(r.ok for r in self.results)

    @property
    def failed(self) -> int:
        return len(self.results) - self.ok

    def as_json(self) -> dict[str, Any]:
        return {
            "inputs": len(self.results),
            "ok": self.ok,
            "failed": self.failed,
            "wall_s": round(self.wall_s, 6),
            "startup_s": round(self.startup_s, 6),
            "rate_per_s": round(len(self.results) / self.wall_s, 3) if self.wall_s else None,
            "workers": self.workers,
            "engine": self.engine,
            "retried": self.retried,
            "replaced": self.replaced,
            "nodes": self.nodes,
        }


@dataclass
class Event:
    """What a pool saw: a worker's result (with its timeline records) or its death."""

    worker: int
    result: InputResult | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    sent_ns: int = 0  # the worker's perf_counter_ns when it sent the result
    clock: str = ""  # the worker's clock domain (see job.clock_domain)
    died: str | None = None


class Pool(Protocol):
    """Workers a dispatcher hands inputs to. Keys are ints; a replaced worker gets a new key."""

    engine: str

    def start(self, count: int) -> list[int]: ...
    def submit(self, worker: int, index: int, path: Path) -> None: ...
    def poll(self, timeout: float) -> list[Event]: ...
    def replace(self, worker: int) -> int: ...
    def pid(self, worker: int) -> int | None: ...
    def close(self) -> None: ...


def map_inputs(
    job: MapJob,
    inputs: Sequence[Path],
    *,
    workers: int | None = None,
    ray: str | None = None,
    progress: Progress | None = None,
    on_result: Callable[[InputResult], None] | None = None,
    timeline: Any = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> MapSummary:
    """Run ``job`` once per input; ``on_result`` gets the results in input order as they become available.

    ``ray`` None runs a local pool of ``workers`` processes (default: one per CPU, at most one per input); else
    Ray actors on the cluster ``ray`` names (``auto``, ``local`` or an address: :func:`.ray_support.connect`),
    ``workers`` of them (default: the cluster's CPUs). ``timeline`` (a host Timeline) receives every worker's
    records. The workers end with the map (:class:`Workers` keeps them for several). Raises MapError when the
    workers cannot set up.
    """
    paths = [Path(p) for p in inputs]
    if not paths:
        raise MapError("no inputs to map over")
    with Workers(job, workers=workers, ray=ray, most=len(paths)) as pool:
        return pool.map(paths, progress=progress, on_result=on_result, timeline=timeline, max_attempts=max_attempts)


class Workers:
    """Started workers for one job, kept for several maps (a notebook's next cell, a benchmark's repetitions).

    ``with Workers(job, workers=2) as pool: pool.map(inputs)``. Workers start on entry (or the first map); a map
    that ends by an exception (Ctrl-C) ends them too, since they may still hold its inputs.
    """

    def __init__(self, job: MapJob, *, workers: int | None = None, ray: str | None = None, most: int = 0) -> None:
        self.pool: Pool
        if ray is None:
            count = workers or os.cpu_count() or 1
            self.pool = LocalPool(job)
        else:
            from .ray_map import RayPool

            ray_pool = RayPool(job, ray)
            count = workers or ray_pool.default_workers()
            self.pool = ray_pool
        self.count = max(1, min(count, most) if most else count)
        self.keys: list[int] | None = None
        self.startup_s = 0.0
        self.closed = False

    def start(self) -> None:
        if self.closed:
            raise MapError("these workers are closed")
        if self.keys is None:
            began = time.perf_counter()
            try:
                self.keys = self.pool.start(self.count)
            except BaseException:
                self.close()
                raise
            self.startup_s = time.perf_counter() - began

    def map(
        self,
        inputs: Sequence[Path],
        *,
        progress: Progress | None = None,
        on_result: Callable[[InputResult], None] | None = None,
        timeline: Any = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> MapSummary:
        """Run the job once per input on these workers (see :func:`map_inputs`)."""
        paths = [Path(p) for p in inputs]
        if not paths:
            raise MapError("no inputs to map over")
        if progress is not None:
            progress.start(len(paths))
        try:
            self.start()
            assert self.keys is not None
            dispatch = _Dispatch(self.pool, self.keys, paths, progress, on_result, timeline, max_attempts)
            summary = dispatch.run()
        except BaseException:
            self.close()
            raise
        finally:
            if progress is not None:
                progress.close()
        self.keys = list(dispatch.held)
        summary.startup_s = self.startup_s
        return summary

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.pool.close()

    def __enter__(self) -> Workers:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Dispatch:
    def __init__(
        self,
        pool: Pool,
        keys: list[int],
        paths: list[Path],
        progress: Progress | None,
        on_result: Callable[[InputResult], None] | None,
        timeline: Any,
        max_attempts: int,
    ) -> None:
        self.pool = pool
        self.paths = paths
        self.count = len(keys)
        self.progress = progress
        self.on_result = on_result
        self.timeline = timeline
        self.max_attempts = max_attempts
        self.results: dict[int, InputResult] = {}
        self.attempts = [0] * len(paths)
        self.held: dict[int, list[int]] = {k: [] for k in keys}  # worker -> inputs handed to it, not answered
        self.pending: deque[int] = deque(range(len(paths)))
        self.emitted = 0
        self.failed = 0
        self.replaced = 0
        self.nodes: set[str] = set()
        self.clock = clock_domain()

    def run(self) -> MapSummary:
        start = time.perf_counter()
        while self.emitted < len(self.paths):
            self._hand_out()
            for event in self.pool.poll(POLL_S):
                if event.died is not None:
                    self._died(event.worker, event.died)
                elif event.result is not None:
                    self._result(event)
            self._emit()
        retried = sum(1 for r in self.results.values() if r.attempts > 1)
        return MapSummary(
            results=[self.results[i] for i in range(len(self.paths))],
            wall_s=time.perf_counter() - start,
            workers=self.count,
            engine=self.pool.engine,
            retried=retried,
            replaced=self.replaced,
            nodes=sorted(self.nodes),
        )

    def _hand_out(self) -> None:
        for worker, held in self.held.items():
            while len(held) < DEPTH and self.pending:
                index = self.pending.popleft()
                self.attempts[index] += 1
                held.append(index)
                self.pool.submit(worker, index, self.paths[index])

    def _result(self, event: Event) -> None:
        result = event.result
        assert result is not None
        held = self.held.get(event.worker, [])
        if result.index not in held or result.index in self.results:
            return  # not this worker's any more (it was taken for dead): the other attempt's result counts
        held.remove(result.index)
        result.attempts = self.attempts[result.index]
        self._accept(result)
        if self.timeline is not None and event.records:
            shift = 0 if event.clock == self.clock else time.perf_counter_ns() - event.sent_ns
            self.timeline.merge(event.records, shift_ns=shift, node=result.node, worker=result.worker)

    def _accept(self, result: InputResult) -> None:
        self.results[result.index] = result
        self.nodes.add(result.node)
        if not result.ok:
            self.failed += 1
        if self.progress is not None:
            self.progress.update(len(self.results), self.failed)

    def _died(self, worker: int, why: str) -> None:
        lost = self.held.pop(worker, None)
        if lost is None:
            return
        log.warning("map worker %s died (%s); its %d input(s) go to other workers", worker, why, len(lost))
        for index in lost[1:]:  # a worker runs its inputs in order: those behind the first had not started
            self.attempts[index] -= 1
        for index in reversed(lost):
            if index in self.results:
                continue
            if self.attempts[index] >= self.max_attempts:
                self._accept(self._gave_up(index, why))
            else:
                self.pending.appendleft(index)
        if self.replaced >= 2 * self.count + len(self.paths):
            raise MapError(f"map workers keep dying ({self.replaced} replaced; the last: {why})")
        self.replaced += 1
        self.held[self.pool.replace(worker)] = []

    def _gave_up(self, index: int, why: str) -> InputResult:
        return InputResult(
            index=index,
            input=str(self.paths[index]),
            exit_code=1,
            stdout="",
            stderr="",
            time_s=0.0,
            error=f"{self.attempts[index]} workers died running this input (the last: {why}); not retried again",
            node="",
            worker="",
            attempts=self.attempts[index],
        )

    def _emit(self) -> None:
        while self.emitted < len(self.paths) and self.emitted in self.results:
            if self.on_result is not None:
                self.on_result(self.results[self.emitted])
            self.emitted += 1


# -- the local pool: worker processes started fresh ------------------------------------------------------------


def _local_worker(fd: int) -> None:
    """A local worker process: take the job, set up once, then serve inputs until told to stop or the caller goes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle: it ends the workers
    conn = Connection(fd)
    job, name = conn.recv()
    try:
        worker = MapWorker(job, name)
    except SetupError as exc:
        conn.send(("setup_error", str(exc)))
        os._exit(0)
    except Exception as exc:  # noqa: BLE001 - whatever stops the setup is the message the caller shows
        conn.send(("setup_error", f"{type(exc).__name__}: {exc}"))
        os._exit(0)
    conn.send(("ready", worker.node, clock_domain()))
    while True:
        try:
            task = conn.recv()
        except EOFError:
            break
        if task is None:
            break
        index, name_in_dir, host_dir, display = task
        result = worker.serve(index, name_in_dir, host_dir, display)
        conn.send(("result", result, worker.new_records(), time.perf_counter_ns(), clock_domain()))
    os._exit(0)  # a guest thread abandoned in a host call must not hold the process at interpreter shutdown


_BOOT = "import sys; from wasinn_jupyter.scale.mapping import _local_worker; _local_worker(int(sys.argv[1]))"
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass
class _Proc:
    process: subprocess.Popen[bytes]
    conn: Connection
    name: str


class LocalPool:
    """Worker processes on this machine, each a fresh Python (not a fork, and not multiprocessing's spawn, which
    would run the caller's ``__main__`` again in each); a dead one is seen as the end of its socket."""

    engine = "local"

    def __init__(self, job: MapJob) -> None:
        self.job = job
        self.procs: dict[int, _Proc] = {}
        self._next = 0

    def _spawn(self) -> int:
        key = self._next
        self._next += 1
        name = f"local-{key + 1}"
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        # one torch thread per worker unless the caller says otherwise, as Ray gives its one-CPU actors: workers
        # run inputs side by side, and intra-op threads of several workers spin against each other on few cores
        env.setdefault("OMP_NUM_THREADS", "1")
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(theirs.fileno())], pass_fds=[theirs.fileno()], env=env
            )
        finally:
            theirs.close()
        conn = Connection(ours.detach())
        conn.send((self.job, name))
        self.procs[key] = _Proc(process, conn, name)
        return key

    def start(self, count: int) -> list[int]:
        keys = [self._spawn() for _ in range(count)]
        deadline = time.monotonic() + READY_TIMEOUT_S
        for key in keys:
            proc = self.procs[key]
            left = deadline - time.monotonic()
            if not proc.conn.poll(max(left, 0)):
                raise MapError(f"map worker {proc.name} did not set up within {READY_TIMEOUT_S:.0f} s")
            try:
                message = proc.conn.recv()
            except (EOFError, OSError):
                code = proc.process.wait(5)
                raise MapError(f"map worker {proc.name} {_exit_words(code)} while setting up") from None
            if message[0] == "setup_error":
                raise MapError(message[1])
        return keys

    def submit(self, worker: int, index: int, path: Path) -> None:
        proc = self.procs[worker]
        try:
            proc.conn.send((index, path.name, str(path.parent.resolve()), str(path)))
        except OSError:
            pass  # it died: the end of its socket says so at the next poll, and the input goes elsewhere

    def poll(self, timeout: float) -> list[Event]:
        by_conn = {p.conn: k for k, p in self.procs.items()}
        events: list[Event] = []
        dead: set[int] = set()
        for handle in wait(list(by_conn), timeout):
            assert isinstance(handle, Connection)
            key = by_conn[handle]
            while True:  # drain: a worker may have sent results just before it died
                try:
                    if not handle.poll():
                        break
                    message = handle.recv()
                except (EOFError, OSError):
                    dead.add(key)
                    break
                if message[0] == "result":
                    _, result, records, sent_ns, clock = message
                    events.append(Event(key, result, records, sent_ns, clock))
                elif message[0] == "setup_error":  # a replacement that could not set up
                    dead.add(key)
                    break
        for key in dead:
            proc = self.procs[key]
            try:
                code: int | None = proc.process.wait(2)
            except subprocess.TimeoutExpired:
                code = None
            events.append(Event(key, died=f"{proc.name} {_exit_words(code)}"))
        return events

    def replace(self, worker: int) -> int:
        proc = self.procs.pop(worker)
        proc.conn.close()
        if proc.process.poll() is None:
            proc.process.kill()
        proc.process.wait()
        return self._spawn()

    def pid(self, worker: int) -> int | None:
        proc = self.procs.get(worker)
        return proc.process.pid if proc is not None else None

    def close(self) -> None:
        for proc in self.procs.values():
            try:
                proc.conn.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + 5
        for proc in self.procs.values():
            try:
                proc.process.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                proc.process.kill()
                proc.process.wait()
            proc.conn.close()
        self.procs.clear()


def _exit_words(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def ship_dir() -> str:
    """A private directory for inputs that arrive as bytes (Ray workers write each input here before a run)."""
    return tempfile.mkdtemp(prefix="wasinn-map-")
