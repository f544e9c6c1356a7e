"""The Ray side of ``wasinn map``: one actor per worker, each a :class:`~.job.MapWorker`.

The guest and the preloaded models reach each actor once through the object store; each input's bytes are put
there by the caller and land in the actor's private directory, which is preopened for that run only. An actor
that dies (its process killed, its node lost) fails the tasks it held with an actor error: the dispatcher
(:mod:`.mapping`) hands those inputs to other workers and this pool starts a replacement.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ..host import Encoding
from .job import MapJob, MapWorker, Preload, SetupError, clock_domain
from .mapping import READY_TIMEOUT_S, Event, MapError
from .ray_support import actor_died, connect
from .shipping import Shipped, land, ship


class MapActor:
    """A map worker inside a Ray actor (see the module docstring)."""

    def __init__(self, job: MapJob, models: list[tuple[Preload, Shipped]], name: str) -> None:
        import ray

        self.dir = tempfile.mkdtemp(prefix="wasinn-map-")
        self.error: str | None = None
        self.worker: MapWorker | None = None
        try:
            preloads = [dataclasses.replace(p, source=land(s, ray, tempfile.mkdtemp(dir=self.dir))) for p, s in models]
            job = dataclasses.replace(job, preloads=preloads, model_dirs=None)  # the caller checked the paths
            self.worker = MapWorker(job, name)
        except SetupError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - whatever stops the setup is the message the caller shows
            self.error = f"{type(exc).__name__}: {exc}"

    def ready(self) -> tuple[str, ...]:
        if self.worker is None:
            return ("setup_error", self.error or "no worker")
        return ("ready", self.worker.node, clock_domain(), str(os.getpid()))

    def serve(self, index: int, name: str, data: bytes, display: str) -> tuple[Any, ...]:
        assert self.worker is not None
        folder = tempfile.mkdtemp(dir=self.dir)
        try:
            (Path(folder) / name).write_bytes(data)
            result = self.worker.serve(index, name, folder, display)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return result, self.worker.new_records(), time.perf_counter_ns(), clock_domain()


@functools.cache
def _remote_class() -> Any:
    import ray

    return ray.remote(MapActor)


class RayPool:
    """Map workers as Ray actors on the cluster ``address`` names (see :func:`.ray_support.connect`)."""

    engine = "ray"

    def __init__(self, job: MapJob, address: str = "auto", num_cpus: float = 1.0) -> None:
        self.ray = connect(address)
        self.num_cpus = num_cpus
        # a worker whose graphs ask for a GPU gets one from Ray (else Ray hides every GPU from it)
        self.num_gpus = 1.0 if any(p.target == "gpu" for p in job.preloads) else 0.0
        models = []
        for preload in job.preloads:
            encoding = Encoding.parse(preload.encoding)
            models.append((preload, ship(preload.source, encoding, self.ray, job.model_dirs)))
        self.job = job
        self.models = models
        self.actors: dict[int, Any] = {}
        self.tasks: dict[Any, tuple[int, int]] = {}  # task ref -> (worker, input index)
        self.pids: dict[int, int] = {}
        self._next = 0

    def default_workers(self) -> int:
        return max(1, int(self.ray.cluster_resources().get("CPU", 1) // self.num_cpus))

    def _spawn(self) -> int:
        key = self._next
        self._next += 1
        actor_class = _remote_class().options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=0, max_task_retries=0
        )
        self.actors[key] = actor_class.remote(self.job, self.models, f"ray-{key + 1}")
        return key

    def start(self, count: int) -> list[int]:
        keys = [self._spawn() for _ in range(count)]
        ray = self.ray
        try:
            replies = ray.get([self.actors[k].ready.remote() for k in keys], timeout=READY_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise MapError(
                f"Ray did not start {count} map workers ({self.num_cpus} CPU, {self.num_gpus} GPU each) within "
                f"{READY_TIMEOUT_S:.0f} s; the cluster has free: {ray.available_resources()}"
            ) from None
        for key, reply in zip(keys, replies, strict=True):
            if reply[0] == "setup_error":
                raise MapError(reply[1])
            self.pids[key] = int(reply[3])
        return keys

    def submit(self, worker: int, index: int, path: Path) -> None:
        data = self.ray.put(path.read_bytes())
        task = self.actors[worker].serve.remote(index, path.name, data, str(path))
        self.tasks[task] = (worker, index)

    def poll(self, timeout: float) -> list[Event]:
        if not self.tasks:
            time.sleep(timeout)
            return []
        ray = self.ray
        refs = list(self.tasks)
        ready, rest = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        events: list[Event] = []
        dead: dict[int, str] = {}
        for ref in ready:
            if ref not in self.tasks:
                continue
            worker, _index = self.tasks.pop(ref)
            if worker in dead:
                continue
            try:
                result, records, sent_ns, clock = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - an actor lost, or an error in it: the worker is replaced
                dead[worker] = _short(exc) if actor_died(exc) else f"failed: {type(exc).__name__}"
                continue
            events.append(Event(worker, result, records, sent_ns, clock))
        for worker, why in dead.items():
            self.tasks = {ref: held for ref, held in self.tasks.items() if held[0] != worker}
            events.append(Event(worker, died=f"ray-{worker + 1} {why}"))
        return events

    def replace(self, worker: int) -> int:
        actor = self.actors.pop(worker)
        self.pids.pop(worker, None)
        try:
            self.ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        key = self._spawn()
        self.actors[key].ready.remote()  # not awaited: its tasks queue behind its setup
        return key

    def pid(self, worker: int) -> int | None:
        return self.pids.get(worker)

    def close(self) -> None:
        for actor in self.actors.values():
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.actors.clear()
        self.tasks.clear()


def _short(exc: BaseException) -> str:
    """An actor error's first line (Ray's are paragraphs)."""
    text = str(exc).strip().splitlines()
    return "died: " + (text[0][:200] if text else type(exc).__name__)
