"""Graphs served by Ray actors: a :class:`RayGraph` is a Graph like any other, whose ``run`` calls an actor.

Guests reach it through the same wasi-nn calls as a local graph (register it by name: ``host.register(name,
RayGraph(...))``, or :func:`register_ray_graph`). Each call puts the inputs' bytes into Ray's object store as numpy
buffers (no Python lists), an actor (one of ``replicas``, the least busy) runs the model where Ray placed it (a
GPU when ``num_gpus`` asks for one) and its outputs come back the same way. On the host's timeline the call's
record is followed by its split: ``transfer`` (putting, fetching, scheduling) and ``remote_compute`` (the model's
own time in the actor), tagged with the actor's node and worker.

Faults: an actor that dies during a call gives that call ``runtime_error`` naming what happened; Ray restarts it
(``max_restarts``), and the next call goes to another replica, or to the restarted actor. An actor past its
restarts is replaced by a new one, so a graph keeps serving.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import threading
import time
import warnings
from typing import Any

from ..host import (
    TENSOR_TYPES,
    Client,
    Encoding,
    ErrorCode,
    Graph,
    GraphInfo,
    Host,
    Limits,
    Target,
    Tensor,
    TensorInfo,
    WasiNNError,
)
from .job import clock_domain, node_name
from .ray_support import actor_died, connect
from .shipping import Shipped, land, ship

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 180.0
BY_NAME = {t.name: t for t in TENSOR_TYPES}


class GraphActor:
    """The model inside a Ray actor, loaded once by a host of its own and run through that host's wasi-nn calls
    (so a model's failure is worded as for a local graph)."""

    def __init__(
        self, name: str, shipped: Shipped, encoding: str, target: str, cpu_fallback: bool, max_model_bytes: int
    ) -> None:
        import ray

        # inputs arrive as read-only views of the object store; the model reads them and never writes
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        self.error: str | None = None
        self.graph: Graph | None = None
        self.host = Host(cpu_fallback=cpu_fallback, limits=Limits(max_model_bytes=max_model_bytes))
        self.client: Client = self.host.client("ray-actor")
        try:
            source = land(shipped, ray, tempfile.mkdtemp(prefix="wasinn-graph-"))
            self.host.register(name, source, Encoding.parse(encoding), Target.parse(target))
            self.graph = self.host.graph(name)
            self.handle = self.client.load_by_name(name)
        except WasiNNError as exc:
            self.error = exc.message
        except Exception as exc:  # noqa: BLE001 - whatever stops the load is the message the caller shows
            self.error = f"{type(exc).__name__}: {exc}"

    def describe(self) -> dict[str, Any]:
        if self.graph is None:
            return {"error": self.error}
        return {
            "info": self.graph.info().as_dict(),
            "input_names": self.graph.input_names(),
            "node": node_name(),
            "pid": os.getpid(),
            "clock": clock_domain(),
        }

    def run(self, meta: list[tuple[str, tuple[int, ...]]], *arrays: Any) -> dict[str, Any]:
        client = self.client
        try:
            ctx = client.init_execution_context(self.handle)  # one per call: no input of an earlier call stays
            try:
                for index, ((kind, dims), array) in enumerate(zip(meta, arrays, strict=True)):
                    client.set_input(ctx, index, Tensor(tuple(dims), BY_NAME[kind], array))
                start = time.perf_counter_ns()
                client.compute(ctx)
                compute_ns = time.perf_counter_ns() - start
                produced = client.output_tensors(ctx)
            finally:
                client.finalize_execution_context(ctx)
        except WasiNNError as exc:
            return {"error": (exc.code.value, exc.message)}
        assert produced is not None
        outputs, names = produced
        return {
            "names": names,
            "meta": [(t.type.name, t.dims) for t in outputs],
            "arrays": [t.raw_numpy() for t in outputs],  # flat bytes: numpy buffers in the object store
            "compute_ns": compute_ns,
            "start_ns": start,
            "node": node_name(),
            "pid": os.getpid(),
            "clock": clock_domain(),
        }


@functools.cache
def _remote_class() -> Any:
    import ray

    return ray.remote(GraphActor)


class RayGraph(Graph):
    """A graph served by ``replicas`` Ray actors (see the module docstring). ``source`` is what ``Host.register``
    takes: a .pt/.pt2 path, a directory holding model.pt, ``echo``, or a torch model object."""

    def __init__(
        self,
        name: str,
        source: Any,
        *,
        encoding: str | Encoding = Encoding.AUTODETECT,
        target: str | Target = Target.CPU,
        replicas: int = 1,
        num_gpus: float = 0,
        num_cpus: float = 1,
        max_restarts: int = 2,
        address: str = "auto",
        cpu_fallback: bool = False,
        model_dirs: list[str] | None = None,
        max_model_bytes: int = 2 << 30,
    ) -> None:
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, not {replicas}")
        self.ray = connect(address)
        enc = encoding if isinstance(encoding, Encoding) else Encoding.parse(encoding)
        tgt = target if isinstance(target, Target) else Target.parse(target)
        self.name = name
        self.replicas = replicas
        self.max_restarts = max_restarts
        self.timeline: Any = None  # a host Timeline: the transfer/remote compute split of each call goes there
        self._shipped = ship(source, enc, self.ray, model_dirs)  # kept: a restarting actor loads it again
        self._args = (name, self._shipped, enc.name.lower(), tgt.name.lower(), cpu_fallback, max_model_bytes)
        self._options = {"num_cpus": num_cpus, "num_gpus": num_gpus, "max_restarts": max_restarts}
        self._lock = threading.Lock()
        self._actors = [self._new_actor() for _ in range(replicas)]
        self._busy = [0] * replicas
        self._deaths = [0] * replicas
        self._turn = 0
        self._clock = clock_domain()
        try:
            described = self.ray.get([a.describe.remote() for a in self._actors], timeout=READY_TIMEOUT_S)
        except self.ray.exceptions.GetTimeoutError:
            self.free()
            raise WasiNNError(
                ErrorCode.RUNTIME_ERROR,
                f"graph {name!r}: Ray did not place {replicas} actor(s) ({num_cpus} CPU, {num_gpus} GPU each) within "
                f"{READY_TIMEOUT_S:.0f} s; free: {self.ray.available_resources()}",
            ) from None
        for reply in described:
            if "error" in reply:
                self.free()
                raise WasiNNError(ErrorCode.INVALID_ARGUMENT, f"graph {name!r} did not load on Ray: {reply['error']}")
        first = described[0]
        self._info = first["info"]
        self._input_names: list[str] | None = first["input_names"]
        self.device = self._info["device"]
        self.nodes = sorted({d["node"] for d in described})

    def _new_actor(self) -> Any:
        options = dict(self._options)
        options["max_task_retries"] = 0  # a compute is not retried behind the guest's back: it gets the error
        return _remote_class().options(**options).remote(*self._args)

    @property
    def input_device(self) -> str:
        return "cpu"  # inputs stay in host memory until they are put into the object store

    def input_names(self) -> list[str] | None:
        return self._input_names

    def info(self) -> GraphInfo:
        raw = dict(self._info)
        inputs = raw.pop("inputs", None)
        outputs = raw.pop("outputs", None)
        info = GraphInfo(**raw)
        info.inputs = [TensorInfo(**t) for t in inputs] if inputs is not None else None
        info.outputs = [TensorInfo(**t) for t in outputs] if outputs is not None else None
        info.kind = f"{info.kind} on Ray"
        info.notes = [*info.notes, f"served by {self.replicas} Ray actor(s) on {', '.join(self.nodes)}"]
        return info

    def _pick(self) -> int:
        """The least busy replica, taking turns among equals (so a replica that just failed is not next)."""
        with self._lock:
            order = [(self._turn + i) % self.replicas for i in range(self.replicas)]
            slot = min(order, key=lambda i: self._busy[i])
            self._turn = (slot + 1) % self.replicas
            self._busy[slot] += 1
            return slot

    def run(self, inputs: list[Tensor]) -> list[Tensor] | dict[str, Tensor]:
        ray = self.ray
        slot = self._pick()
        start = time.perf_counter_ns()
        try:
            if self._deaths[slot]:
                self._await_restart(slot)
            refs = [ray.put(t.raw_numpy()) for t in inputs]
            meta = [(t.type.name, t.dims) for t in inputs]
            reply = ray.get(self._actors[slot].run.remote(meta, *refs))
        except Exception as exc:
            if not actor_died(exc):
                raise
            raise WasiNNError(ErrorCode.RUNTIME_ERROR, self._died(slot, exc)) from None
        finally:
            with self._lock:
                self._busy[slot] -= 1
        if "error" in reply:
            code, message = reply["error"]
            raise WasiNNError(ErrorCode(code), message)
        outputs = [
            Tensor(tuple(dims), BY_NAME[kind], array)
            for (kind, dims), array in zip(reply["meta"], reply["arrays"], strict=True)
        ]
        self._record(start, reply, slot, sum(t.nbytes for t in inputs) + sum(t.nbytes for t in outputs))
        if reply["names"] is not None:
            return dict(zip(reply["names"], outputs, strict=True))
        return outputs

    def _await_restart(self, slot: int) -> None:
        """Wait until the actor in ``slot``, which died, answers again (Ray refuses calls while it restarts)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                self.ray.get(self._actors[slot].describe.remote(), timeout=READY_TIMEOUT_S)
                return
            except self.ray.exceptions.ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _died(self, slot: int, exc: BaseException) -> str:
        """What the guest is told when the actor in ``slot`` died; it is replaced when Ray will not restart it."""
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        with self._lock:
            self._deaths[slot] += 1
            replaced = self._deaths[slot] > self.max_restarts
            if replaced:
                self._deaths[slot] = 0
                old, self._actors[slot] = self._actors[slot], self._new_actor()
        if replaced:
            self._kill(old)
        if self.replicas > 1:
            then = "the next call goes to another replica"
        else:
            then = "the next call goes to a " + ("new actor" if replaced else "restarted actor")
        log.warning("graph %s: Ray actor %d died: %s", self.name, slot, first)
        return f"graph {self.name!r}: its Ray actor died during compute ({first}); {then}"

    def _record(self, start: int, reply: dict[str, Any], slot: int, nbytes: int) -> None:
        timeline = self.timeline
        if timeline is None:
            return
        end = time.perf_counter_ns()
        compute = int(reply["compute_ns"])
        total = end - start
        # the actor's clock is ours on one machine; elsewhere the compute is placed mid-way in the call
        remote_start = reply["start_ns"] if reply.get("clock") == self._clock else start + (total - compute) // 2
        tags = {"node": reply["node"], "worker": f"ray-graph-{slot + 1} (pid {reply['pid']})"}
        base = {"guest": "ray", "graph": self.name, "outcome": "ok", "device": self.device, "kind": "remote"}
        timeline.merge(
            [
                {
                    **base,
                    "call": "transfer",
                    "start_ns": start,
                    "duration_ns": max(total - compute, 0),
                    "nbytes": nbytes,
                },
                {**base, "call": "remote_compute", "start_ns": remote_start, "duration_ns": compute},
            ],
            **tags,
        )

    def free(self) -> None:
        """Nothing per guest: the actors serve every guest that loads this graph until :meth:`shutdown`."""

    def shutdown(self) -> None:
        """End the actors (``Host.unregister`` does not: other guests may still hold this graph)."""
        for actor in self._actors:
            self._kill(actor)

    def _kill(self, actor: Any) -> None:
        try:
            self.ray.kill(actor, no_restart=True)
        except Exception:
            log.debug("Ray actor already gone", exc_info=True)


def register_ray_graph(host: Host, name: str, source: Any, **options: Any) -> GraphInfo:
    """``host.register(name, RayGraph(name, source, **options))``, with the host's timeline and model directories:
    what ``%wasinn load NAME PATH --ray`` and ``wasinn run --ray`` do."""
    options.setdefault("cpu_fallback", host.cpu_fallback)
    if host.registry.model_dirs is not None:
        options.setdefault("model_dirs", [str(d) for d in host.registry.model_dirs])
    options.setdefault("max_model_bytes", host.limits.max_model_bytes)
    graph = RayGraph(name, source, **options)
    graph.timeline = host.timeline
    return host.register(name, graph)
