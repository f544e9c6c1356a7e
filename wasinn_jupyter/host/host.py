"""The Host: the one object every front-end talks to.

A :class:`Host` owns what guests share: the registry of named graphs, the limits and the timeline. Each guest
(or Python caller) gets a :class:`Client`, which owns that guest's handles, so one guest can neither see nor free
another's graphs and contexts, and everything a guest opened is freed when its client closes. Every client call
is recorded on the timeline, failures included.
"""

from __future__ import annotations

import codecs
import itertools
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .backends import backend_for
from .backends.base import ExecutionContext, Graph, GraphInfo, PropertySpec
from .backends.lm import PromptContext
from .devices import resolve
from .encodings import Encoding, Target
from .errors import ErrorCode, WasiNNError, WasinnError, fail
from .handles import ByteBudget, HandleTable, Limits
from .registry import Entry, Registry
from .sandbox.remote import MAX_CRASHES_PER_GUEST, Buffer, SandboxProcess
from .tensors import Tensor, TensorType
from .timeline import DEFAULT_SIZE, NO_IO, SHAPES, DeviceTimer, Timeline, shared_dims, start_timer

log = logging.getLogger(__name__)
R = TypeVar("R")
_client_ids = itertools.count(1)  # unique in the process: a front-end's record stream outlives any one Host


_now = time.perf_counter_ns


def _io_part(named: Iterable[tuple[Any, Tensor]], count: int) -> tuple[Any, ...]:
    """Tensors as a row of the timeline keeps them (timeline.py): the count, then each one's name (or index), dtype,
    bytes and shared dims. The usual single tensor is written inline by the callers, without this loop."""
    out: list[Any] = [count]
    for name, t in named:
        out += (name, t.type.name, SHAPES.get(t.dims) or shared_dims(t.dims))
    return tuple(out)


def _by_name(tensors: Sequence[Tensor], names: Sequence[str] | None) -> Iterable[tuple[Any, Tensor]]:
    return ((names[i] if names and i < len(names) else i, t) for i, t in enumerate(tensors))


def check_model_size(nbytes: int, limit: int) -> None:
    if nbytes > limit:
        fail(ErrorCode.TOO_LARGE, f"model is {nbytes} bytes, over the limit of {limit} (max_model_bytes)")


class Host:
    def __init__(
        self,
        *,
        cpu_fallback: bool = False,
        model_dirs: Sequence[str | Path] | None = None,
        limits: Limits | None = None,
        timeline: Timeline | None = None,
        timeline_size: int = DEFAULT_SIZE,
    ) -> None:
        """``timeline_size``: the records the timeline keeps (the oldest are dropped first; 0: record nothing, at
        no cost). ``timeline``: a Timeline of the caller's instead (its size then applies)."""
        self.limits = limits or Limits()
        self.registry = Registry(
            cpu_fallback=cpu_fallback,
            model_dirs=[Path(d) for d in model_dirs] if model_dirs is not None else None,
            limits=self.limits,
        )
        self.timeline = timeline if timeline is not None else Timeline(timeline_size)
        self.last_error: str | None = None
        self._open: weakref.WeakSet[Client] = weakref.WeakSet()  # what close() must close
        self._closed = False
        self._lock = threading.Lock()

    @property
    def cpu_fallback(self) -> bool:
        return self.registry.cpu_fallback

    def register(
        self,
        name: str,
        source: Any,
        encoding: str | Encoding = Encoding.AUTODETECT,
        target: str | Target = Target.CPU,
    ) -> GraphInfo:
        """Name a graph for ``load_by_name``: ``"echo"``, a .pt/.pt2 file or directory, or a torch object."""
        if self._closed:
            raise WasinnError("this Host is closed")
        enc = encoding if isinstance(encoding, Encoding) else Encoding.parse(encoding)
        tgt = target if isinstance(target, Target) else Target.parse(target)
        return _info(self.registry.register(name, source, enc, tgt))

    def unregister(self, name: str) -> None:
        self.registry.unregister(name)

    def graphs(self) -> dict[str, GraphInfo]:
        """What is registered, by name: each graph's info with the registry's notes (a CPU fallback, say)."""
        return {e.name: _info(e) for e in self.registry.entries()}

    def graph(self, name: str) -> Graph:
        """The graph registered as ``name`` (not_found otherwise): the very object every guest that loads it shares."""
        return self.registry.get(name).graph

    def prompt(
        self,
        name: str,
        text: str | bytes,
        on_token: Callable[[str], None] | None = None,
        options: dict[str, Any] | None = None,
        label: str = "python",
    ) -> str:
        """The reply of the prompt graph registered as ``name`` to ``text`` (PR 79), each piece passed to
        ``on_token`` as the model produces it. ``options`` are WasmEdge's GGML settings for this call only
        (``{"n-predict": 32, "temp": 0}``); the graph's properties apply otherwise. Recorded as guest ``label``."""
        config = json.dumps(options) if options else None
        with self.client(label) as client:
            ctx = client.init_execution_context(client.load_by_name(name, config))
            return client.prompt(ctx, text, on_token)

    def compute(self, graph: str, inputs: Mapping[str, Any], label: str = "python") -> dict[str, Tensor]:
        """One call over named tensors (wasi-nn's single-call compute) on the graph registered as ``graph``.

        ``inputs`` maps the model's input names (TorchScript's forward arguments, a torch.export program's
        signature, a module's ``forward`` parameters; ``input0``, ``input1``... by position for a graph that
        declares none) to Tensors, torch tensors or anything numpy reads. Returns the outputs by name (a model's
        dict keys, else ``output0``...). Recorded on the timeline as guest ``label``.
        """
        tensors = {str(k): v if isinstance(v, Tensor) else Tensor.from_value(v) for k, v in inputs.items()}
        with self.client(label) as client:
            ctx = client.init_execution_context(client.load_by_name(graph))
            return client.compute_named(ctx, tensors)

    def properties(self, name: str) -> dict[str, PropertySpec]:
        """The properties of the graph registered as ``name``, with their current values (for widgets)."""
        return self.graph(name).describe_properties()

    def set_property(self, name: str, key: str, value: str) -> None:
        """Set property ``key`` of the registered graph ``name``: every guest sharing it sees it from its next
        compute. invalid_argument for an unknown key or a bad value; recorded on the timeline (guest ``host``)."""
        graph = self.graph(name)
        start = time.perf_counter_ns()
        try:
            graph.set_property(key, value)
        except WasiNNError as err:
            self._record_error(f"set_property {name}.{key}: {err.message}")
            self.timeline.record("set_property", "host", name, start, err.code.value, 0, graph.device, 0)
            raise
        self.timeline.record("set_property", "host", name, start, "ok", 0, graph.device, 0)

    def client(self, label: str | None = None) -> Client:
        """A new guest's wasi-nn. ``label`` names it on the timeline (default ``guestN``); ``Client.id`` is unique."""
        with self._lock:
            if self._closed:
                raise WasinnError("this Host is closed")
            number = next(_client_ids)
            client = Client(self, label or f"guest{number}", number)
            self._open.add(client)
        return client

    def close(self) -> None:
        """Close every client it made (their handles, their sandbox workers) and drop the registered graphs.

        Idempotent. Graphs a caller still holds elsewhere stay usable by that caller; the host serves no more.
        """
        with self._lock:
            self._closed = True
            clients = list(self._open)
            self._open.clear()
        for client in clients:
            client.close()
        self.registry.clear()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _record_error(self, message: str) -> None:
        self.last_error = message


def _info(entry: Entry) -> GraphInfo:
    info = entry.graph.info()
    if entry.note and entry.note not in info.notes:
        info.notes.append(entry.note)
    return info


class Client:
    """One guest's wasi-nn: its graph and context handles, its budget, its last error. Not shared between threads.

    The public methods are the wasi-nn operations; an ABI layer (``abi/witx.py``) only reads guest memory, calls
    them inside :meth:`call` and writes results and errnos back.
    """

    # The calls whose operations note their own context for the record (inline, the hot path): ABI layers skip
    # graph_name() for them.
    NOTES_OWN_CONTEXT = frozenset({"set_input", "compute", "get_output"})

    def __init__(self, host: Host, label: str, id: int = 0) -> None:
        self.host = host
        self.label = label
        self.id = id  # unique in the process: labels repeat ("driver"), instances do not
        self.graphs: HandleTable[Graph] = HandleTable("graph", host.limits.max_graphs)
        self.contexts: HandleTable[ExecutionContext] = HandleTable("execution context", host.limits.max_contexts)
        self.budget = ByteBudget(host.limits.max_guest_bytes)
        self.last_error: str | None = None
        # Set by the guest that owns this client: its stop reason (interrupted, past its deadline) or None, so a
        # call blocked on a sandbox worker can be cut short.
        self.stop_check: Callable[[], str | None] | None = None
        self.recording = host.timeline.recording  # False for a host whose timeline has size 0: no recording cost
        self._timeline = host.timeline
        self._next_seq, self._append = host.timeline.writer()
        self._sandboxes: dict[str, SandboxProcess] = {}  # device -> this guest's worker for its `load` models
        self.sandbox_crashes = 0  # workers of this guest that its models crashed
        self._graph_bytes: dict[int, int] = {}  # handle -> bytes charged for a graph loaded in-process
        self._targets: dict[int, str] = {}  # graph handle -> the target it was loaded for, for the timeline
        # context -> (graph, device, target, input names, on CUDA): what its records say, made once per context
        self._abouts: dict[int, tuple[Any, ...]] = {}
        self._who = (label, id)  # the guest on each of its records
        # 1 inside a recorded call, 2 inside an unrecorded one: the operations it makes are not recorded again
        self._depth = 0
        self._closed = False
        # What the current recorded call is about, noted by graph_name() and by the operations it makes (only at
        # depth 1), for its record: plain attributes, reset after each call, so recording stays cheap.
        self._about: tuple[Any, ...] | None = None  # (graph, device, target, ...): see _abouts
        self._timer: DeviceTimer | None = None  # CUDA events, for a call on a graph on CUDA
        self._context: int | None = None
        self._io: tuple[Any, ...] | None = None  # the tensors in and out, flat, as a row keeps them (timeline.py)
        self._nbytes = 0  # bytes the call moved, where only the operation knows (get_output)
        self._tokens: int | None = None

    def call(self, call: str, graph: str | None, fn: Callable[..., R], *args: Any, nbytes: int = 0) -> R:
        """Run ``fn(*args)`` as one wasi-nn call: time it, record it, keep its error message.

        An ABI layer wraps each guest call in this (with its reading of guest memory inside); the operations it
        then calls are recorded once, by this outermost call.
        """
        if self._depth:
            return fn(*args)
        if self._closed:
            self._about = self._context = None
            fail(ErrorCode.RUNTIME_ERROR, f"{call}: this guest's wasi-nn is closed (its guest or host was closed)")
        recording = self.recording
        if recording:
            start = _now()
            about = self._about  # where the caller noted it already (the three inference calls note their own)
            if about is not None and about[1] is not None and about[1] != "cpu":
                self._timer = start_timer(about[1])  # CUDA events on CUDA only
            self._depth = 1
        else:
            self._depth = 2
        outcome = "interrupted"  # a BaseException (KeyboardInterrupt) went through
        try:
            try:
                result = fn(*args)
                outcome = "ok"
            except WasiNNError:
                raise
            except Exception as exc:  # a host bug: the caller still gets a wasi-nn error, the log gets the trace
                log.exception("wasi-nn %s failed inside the host", call)
                message = f"internal error in {call}: {type(exc).__name__}: {exc}"
                raise WasiNNError(ErrorCode.RUNTIME_ERROR, message) from exc
        except WasiNNError as err:
            outcome = err.code.value
            self.last_error = err.message
            self.host._record_error(f"{self.label}: {call}: {err.message}")
            raise
        finally:
            self._depth = 0
            if recording:  # one plain tuple, laid out as timeline.py says
                timer = self._timer
                if timer is not None:
                    device_ns: int | None = timer.stop()
                    self._timer = None
                else:
                    device_ns = None
                about = self._about
                if about is None and graph is not None:
                    about = (graph, None, None)
                row = (
                    self._next_seq(), call, self._who, about, start, _now() - start, outcome, self._nbytes or nbytes,
                    self._context, device_ns, self._tokens, None,
                ) + (self._io or NO_IO)  # fmt: skip
                self._append(row)
                if self._timeline.listening:
                    self._timeline.notify(row)
                self._about = self._context = self._io = self._tokens = None
                self._nbytes = 0
        return result

    def _on_context(self, call: str, ctx: int, fn: Callable[..., R], *args: Any, nbytes: int = 0) -> R:
        """An operation on context ``ctx``, recorded under its graph's name (looked up only when recording)."""
        if self._depth:
            return fn(*args)
        return self.call(call, self.graph_name(ctx) if self.recording else None, fn, *args, nbytes=nbytes)

    def clear_last_error(self) -> None:
        """Forget the last error, so that the next failure's message is not confused with an earlier one."""
        self.last_error = None

    def graph_name(self, ctx: int) -> str | None:
        """The name of ``ctx``'s graph, for the timeline; it also notes the context, the graph's device and target
        for the record of the call about to be made (and so whether to time it with CUDA events)."""
        self._context = ctx
        about = self._about = self._abouts.get(ctx)
        return None if about is None else about[0]

    # -- the operations: what ABI layers and Python callers use ----------------------------------------------

    def load(self, builders: Sequence[Buffer], encoding: Encoding | str, target: Target | str) -> int:
        """Load a graph from a guest's bytes (a TorchScript archive: code, so sandboxed by default; see ``_load``).

        ``builders`` may be views of guest memory, valid for this call: the host copies what it keeps.
        """
        enc = encoding if isinstance(encoding, Encoding) else Encoding.parse(encoding)
        tgt = target if isinstance(target, Target) else Target.parse(target)
        return self.call("load", None, self._load, builders, enc, tgt, nbytes=sum(len(b) for b in builders))

    def load_by_name(self, name: str, config: str | None = None) -> int:
        """A handle to the graph registered as ``name``; ``config`` is WasmEdge's JSON text (checked, then unused)."""
        return self.call("load_by_name", name, self._load_by_name, name, config)

    def unload(self, graph: int) -> None:
        self.call("unload", None, self._unload, graph)

    def init_execution_context(self, graph: int) -> int:
        return self.call("init_execution_context", None, self._init_execution_context, graph)

    def finalize_execution_context(self, ctx: int) -> None:
        self._on_context("finalize_execution_context", ctx, self._finalize_execution_context, ctx)

    def set_input(self, ctx: int, index: int, tensor: Tensor) -> None:
        self._on_context("set_input", ctx, self._set_input, ctx, index, tensor, nbytes=tensor.nbytes)

    # The three calls of every inference skip the generic dispatch: inside a recorded call (the ABI's) they go
    # straight to the context.
    def set_input_bytes(self, ctx: int, index: int, dims: tuple[int, ...], ttype: TensorType, data: Buffer) -> None:
        """Set an input from raw bytes (a view of guest memory, say): checked and admitted to the budget first,
        then copied once, onto the graph's device."""
        if self._depth:
            self._set_input_bytes(ctx, index, dims, ttype, data)
            return
        self._on_context("set_input", ctx, self._set_input_bytes, ctx, index, dims, ttype, data, nbytes=len(data))

    def compute(self, ctx: int) -> None:
        if self._depth:
            self._compute(ctx)
            return
        self._on_context("compute", ctx, self._compute, ctx)

    def get_output(self, ctx: int, index: int) -> Tensor:
        if self._depth:
            return self._get_output(ctx, index)
        tensor: Tensor = self._on_context("get_output", ctx, self._get_output, ctx, index)
        return tensor

    def compute_named(self, ctx: int, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        nbytes = sum(t.nbytes for t in inputs.values())
        return self._on_context("compute_named", ctx, self._compute_named, ctx, inputs, nbytes=nbytes)

    # -- the prompt path (backends/lm.py): WasmEdge's token streaming for core guests, and PR 79's
    # compute(prompt) -> string for components and Python; each records the tokens it produced

    def compute_single(self, ctx: int) -> None:
        """One more token of a prompt graph's reply; end_of_sequence (100) or context_full (101) when there is none."""
        self._on_context("compute_single", ctx, self._compute_single, ctx)

    def get_output_single(self, ctx: int, index: int) -> Tensor:
        """What the last compute_single added to the reply (index 0), or the token counts as JSON (index 1)."""
        tensor: Tensor = self._on_context("get_output_single", ctx, self._context_op, ctx, "get_output_single", index)
        return tensor

    def fini_single(self, ctx: int) -> None:
        """End a streamed reply: the next compute_single starts over from the prompt."""
        self._on_context("fini_single", ctx, self._context_op, ctx, "fini_single")

    def prompt(self, ctx: int, text: str | bytes, on_token: Callable[[str], None] | None = None) -> str:
        """The reply of context ``ctx``'s prompt graph to ``text`` (PR 79), each piece passed to ``on_token`` as it is
        produced; a full context ends the reply. unsupported_operation for a graph that is not a prompt graph."""
        nbytes = len(text.encode("utf-8")) if isinstance(text, str) else len(text)
        reply: str = self._on_context("prompt", ctx, self._prompt, ctx, text, on_token, nbytes=nbytes)
        return reply

    # -- graph properties (wasi-nn PR 80): on a graph handle, values as strings ----------------------------------

    def list_properties(self, graph: int) -> list[str]:
        return self._on_graph("list_properties", graph, lambda g: g.list_properties())

    def get_property(self, graph: int, name: str) -> str | None:
        """The property's value, or None where the graph has no such property."""
        return self._on_graph("get_property", graph, lambda g: g.get_property(name))

    def set_property(self, graph: int, name: str, value: str) -> None:
        """Change a property of ``graph`` from its next compute.

        A graph registered by name is shared by every guest, and a new precision or device keeps another copy of
        its weights that no guest's budget pays for: so a guest may change its own graphs (from ``load``, or a
        configured copy) but only read a shared one, unless ``Limits.guests_set_shared_properties`` says it may.
        The notebook's own ``Host.set_property`` (the parameters widget) is not a guest and is not limited.
        """

        def change(g: Graph) -> None:
            shared = any(e.graph is g for e in self.host.registry.entries())
            if shared and not self.host.limits.guests_set_shared_properties and name in g.list_properties():
                fail(
                    ErrorCode.SECURITY,
                    f"set_property {name}: graph {g.name!r} is shared by every guest; guests may read its properties "
                    "but not change them (the host allows it with Limits.guests_set_shared_properties)",
                )
            g.set_property(name, value)

        self._on_graph("set_property", graph, change)

    def _on_graph(self, call: str, graph: int, fn: Callable[[Graph], R]) -> R:
        """An operation on graph handle ``graph``, recorded under the graph's name."""
        entry = self.graphs.peek(graph)
        if entry is not None:
            self._about = (entry.name, entry.device, self._targets.get(graph))
        return self.call(call, entry.name if entry is not None else None, lambda: fn(self.graphs.get(graph)))

    def check_context(self, ctx: int) -> None:
        """Fail with invalid_argument unless ``ctx`` is one of this guest's open contexts."""
        self.contexts.get(ctx)

    def set_input_from_output(self, ctx: int, index: int, src_ctx: int, src_index: int) -> None:
        """Input ``index`` of ``ctx`` becomes output ``src_index`` of ``src_ctx`` (this guest's contexts), with no
        copy through linear memory: where the producing graph keeps outputs on its device (``residence=device``)
        and both graphs share it, no copy at all. The tensor is charged again to the budget as an input."""
        self._on_context("set_input_from_output", ctx, self._set_input_from_output, ctx, index, src_ctx, src_index)

    def _set_input_from_output(self, ctx: int, index: int, src_ctx: int, src_index: int) -> None:
        tensor = self.contexts.get(src_ctx).get_output(src_index)
        self._set_input(ctx, index, tensor)

    def named_outputs(self, ctx: int) -> dict[str, Tensor]:
        """The last compute's outputs by name (the model's names, the caller's for a graph that keeps them, else
        ``output0``...); invalid_argument before a compute."""
        context = self.contexts.get(ctx)
        if context.outputs is None:
            fail(ErrorCode.INVALID_ARGUMENT, "no outputs yet: call compute first")
        names = context.output_names or [f"output{i}" for i in range(len(context.outputs))]
        return dict(zip(names, context.outputs, strict=True))

    # -- the context operations' work: inside a recorded call (depth 1) each notes what went in and came out, as
    # plain tuples (name or index, dims, type, bytes) that the timeline turns into TensorMeta only when read

    def _set_input_bytes(self, ctx: int, index: int, dims: tuple[int, ...], ttype: TensorType, data: Buffer) -> None:
        if self._depth == 1:  # noted first: a refused input's record says what the guest tried to set
            self._context = ctx
            about = self._about = self._abouts.get(ctx)
            names = None
            if about is not None:
                names = about[3]
                if about[4] and self._timer is None:
                    self._timer = start_timer(about[1])
            name = names[index] if names and 0 <= index < len(names) else index
            self._io = (1, name, ttype.name, SHAPES.get(dims) or shared_dims(dims), None)
        try:
            self.contexts.get(ctx).set_input_bytes(index, dims, ttype, data)
        except WasiNNError:  # the bytes it gave (its record's tensor says what its dims take)
            self._nbytes = len(data)
            raise

    def _note(self, ctx: int) -> Sequence[str] | None:
        """Note context ``ctx`` for this call's record (the three inference calls do it inline), and start CUDA
        events for a graph on CUDA; its graph's input names."""
        self._context = ctx
        about = self._about = self._abouts.get(ctx)
        if about is None:
            return None
        if about[4] and self._timer is None:
            self._timer = start_timer(about[1])
        names: Sequence[str] | None = about[3]
        return names

    def _set_input(self, ctx: int, index: int, tensor: Tensor) -> None:
        if self._depth == 1:
            names = self._note(ctx)
            name = names[index] if names and 0 <= index < len(names) else index
            dims = SHAPES.get(tensor.dims) or shared_dims(tensor.dims)
            self._io = (1, name, tensor.type.name, dims, None)
        self.contexts.get(ctx).set_input(index, tensor)

    def _compute(self, ctx: int) -> None:
        if self._depth != 1:
            self.contexts.get(ctx).compute()
            return
        self._context = ctx  # noted as in _set_input_bytes, inline on the hot path
        about = self._about = self._abouts.get(ctx)
        names = None
        if about is not None:
            names = about[3]
            if about[4] and self._timer is None:
                self._timer = start_timer(about[1])
        context = self.contexts.get(ctx)
        held = context.inputs
        if len(held) == 1 and 0 in held:  # the usual case, without the loop
            t = held[0]
            dims = SHAPES.get(t.dims) or shared_dims(t.dims)
            ins: tuple[Any, ...] = (1, names[0] if names else 0, t.type.name, dims)
        else:
            ins = _io_part(
                ((names[i] if names and i < len(names) else i, t) for i, t in sorted(held.items())), len(held)
            )
        self._io = (*ins, None)  # what went in, also when the compute fails
        try:
            context.compute()
        finally:  # a reply that ended in an error (context_full, say) still produced its tokens
            self._tokens = context.tokens
        outputs, out_names = context.outputs, context.output_names
        if outputs is None:
            return
        if len(outputs) == 1:
            t = outputs[0]
            dims = SHAPES.get(t.dims) or shared_dims(t.dims)
            self._io = (*ins, 1, out_names[0] if out_names else 0, t.type.name, dims)
        else:
            self._io = ins + _io_part(_by_name(outputs, out_names), len(outputs))

    def _get_output(self, ctx: int, index: int) -> Tensor:
        if self._depth == 1:
            self._context = ctx  # noted as in _set_input_bytes, inline on the hot path (the output names come
            about = self._about = self._abouts.get(ctx)  # from the context, below)
            if about is not None and about[4] and self._timer is None:
                self._timer = start_timer(about[1])
        context = self.contexts.get(ctx)
        tensor = context.get_output(index)
        if self._depth == 1:
            names = context.output_names
            name = names[index] if names and index < len(names) else index
            dims = SHAPES.get(tensor.dims) or shared_dims(tensor.dims)
            self._io = (None, 1, name, tensor.type.name, dims)
        return tensor

    def _compute_single(self, ctx: int) -> None:
        context = self.contexts.get(ctx)
        try:
            context.compute_single()
        finally:
            if self._depth == 1:
                self._tokens = context.tokens

    def _context_op(self, ctx: int, method: str, *args: Any) -> Any:
        return getattr(self.contexts.get(ctx), method)(*args)

    def _prompt(self, ctx: int, text: str | bytes, on_token: Callable[[str], None] | None) -> str:
        context = self.contexts.get(ctx)
        if not isinstance(context, PromptContext):
            what = f"graph {context.graph.name!r} is not a prompt graph (a language model)"
            fail(ErrorCode.UNSUPPORTED_OPERATION, what)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")  # a character may span two pieces
        on_piece = None
        if on_token is not None:

            def on_piece(piece: bytes) -> None:
                chunk = decoder.decode(piece)
                if chunk:
                    on_token(chunk)

        try:
            reply = context.prompt(text, on_piece)
        finally:
            if self._depth == 1:
                self._tokens = context.tokens
        tail = decoder.decode(b"", final=True)
        if tail and on_token is not None:
            on_token(tail)
        return reply.decode("utf-8", "replace")

    def _compute_named(self, ctx: int, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        context = self.contexts.get(ctx)
        if self._depth == 1:
            self._io = (*_io_part(inputs.items(), len(inputs)), None)
        outputs = context.compute_named(inputs)
        if self._depth == 1:
            self._io = _io_part(inputs.items(), len(inputs)) + _io_part(outputs.items(), len(outputs))
            self._nbytes = sum(t.nbytes for t in inputs.values()) + sum(t.nbytes for t in outputs.values())
            self._tokens = context.tokens
        return outputs

    # -- the operations' work, unrecorded: the methods above wrap it in call() ---------------------------------

    def _load(self, builders: Sequence[Buffer], encoding: Encoding, target: Target) -> int:
        """Load guest bytes: code, so by default in this guest's sandbox worker (see :mod:`.sandbox`).

        ``builders`` may be views of guest memory: the one copy the host makes is charged to the budget first.
        """
        if self._depth == 1:
            self._nbytes, self._about = sum(len(b) for b in builders), (None, None, str(target))
        limits = self.host.limits
        mode = limits.guest_model_mode()
        if mode == "off":
            fail(ErrorCode.UNSUPPORTED_OPERATION, "this host loads no models from guest bytes; use load_by_name")
        backend = backend_for(encoding)  # invalid_encoding, naming the supported ones
        if not backend.reads_bytes:
            fail(ErrorCode.UNSUPPORTED_OPERATION, f"the {backend.name} backend loads no graphs from a guest's bytes")
        check_model_size(sum(len(b) for b in builders), limits.max_model_bytes)
        if len(builders) != 1:
            fail(
                ErrorCode.INVALID_ARGUMENT,
                f"encoding {encoding.name.lower()} takes one builder (the TorchScript archive), got {len(builders)}",
            )
        device, _ = resolve(target, self.host.cpu_fallback)
        size = len(builders[0])
        name = f"<{size} bytes>"
        self.budget.charge(size)  # the copy made below, held while it loads
        try:
            if mode == "sandbox":
                graph: Graph = self._sandbox(device).load(builders[0], encoding, name, limits)
            else:
                graph = backend.from_bytes(bytes(builders[0]), device, name, limits.max_model_bytes)
        except BaseException:
            self.budget.charge(-size)
            raise
        if mode == "sandbox":
            self.budget.charge(-size)  # the worker holds the graph now, and charges what it grows by
            size = 0
        else:  # in-process: what its weights hold, which an archive may deflate to a fraction of
            held = max(size, graph.held_bytes())
            try:
                self.budget.charge(held - size)
            except WasiNNError:
                self.budget.charge(-size)
                graph.free()
                raise
            size = held
        try:
            handle = self.graphs.insert(graph)
        except WasiNNError:
            self.budget.charge(-size)
            graph.free()
            raise
        if size:
            self._graph_bytes[handle] = size
        self._targets[handle] = str(target)
        if self._depth == 1:
            self._about = (graph.name, graph.device, str(target))
        return handle

    def _sandbox(self, device: str) -> SandboxProcess:
        """This guest's worker for ``device``, started on first use or after the last one died.

        A guest whose models crashed their worker MAX_CRASHES_PER_GUEST times gets no new one: each crash tells
        an attacker something about a memory layout, and there is no honest reason to crash a sandbox again.
        """
        process = self._sandboxes.get(device)
        if process is None or not process.alive:
            if process is not None and process.crashed:
                self.sandbox_crashes += 1
            if self.sandbox_crashes >= MAX_CRASHES_PER_GUEST:
                fail(
                    ErrorCode.SECURITY,
                    f"this guest's models crashed their sandbox {self.sandbox_crashes} times; it may load no more "
                    "(load_by_name still works)",
                )
            process = self._sandboxes[device] = SandboxProcess(
                self.budget, self.host.limits.max_guest_bytes, device, stop_check=self._stop_reason
            )
        return process

    def _stop_reason(self) -> str | None:
        return self.stop_check() if self.stop_check is not None else None

    def _unload(self, graph: int) -> None:
        loaded = self.graphs.remove(graph)
        loaded.free()
        self.budget.charge(-self._graph_bytes.pop(graph, 0))
        target = self._targets.pop(graph, None)
        if self._depth == 1:
            self._about = (loaded.name, loaded.device, target)

    def _load_by_name(self, name: str, config: str | None = None) -> int:
        if config is not None:
            try:
                parsed = json.loads(config) if config.strip() else {}
            except ValueError as exc:
                fail(ErrorCode.INVALID_ARGUMENT, f"load_by_name_with_config: config is not JSON: {exc}")
            except RecursionError:
                fail(ErrorCode.INVALID_ARGUMENT, "load_by_name_with_config: config is nested too deeply")
            if not isinstance(parsed, dict):
                fail(ErrorCode.INVALID_ARGUMENT, "load_by_name_with_config: config must be a JSON object")
        entry = self.host.registry.get(name)
        graph = entry.graph if config is None else entry.graph.configure(parsed)  # the backend decides
        handle = self.graphs.insert(graph)
        self._targets[handle] = target = str(entry.target)
        if self._depth == 1:
            self._about = (name, graph.device, target)
        return handle

    def _init_execution_context(self, graph: int) -> int:
        loaded = self.graphs.get(graph)
        context = loaded.init_execution_context(self.budget)
        if isinstance(context, PromptContext):  # a long reply stops between tokens when its guest is stopped
            context.stop_check = self._stop_reason
        ctx = self.contexts.insert(context)
        try:
            names = loaded.input_names()
        except Exception:  # noqa: BLE001 - a backend's bug: its calls report it (admit asks again); records go on
            names = None
        device = loaded.device
        on_cuda = device.startswith("cuda")
        about = (loaded.name, device, self._targets.get(graph), tuple(names) if names is not None else None, on_cuda)
        self._abouts[ctx] = about
        if self._depth == 1:
            self._about, self._context = about, ctx
        return ctx

    def _finalize_execution_context(self, ctx: int) -> None:
        self.contexts.remove(ctx).close()
        self._abouts.pop(ctx, None)  # this call's record has its own reference

    def output_tensors(self, ctx: int) -> tuple[list[Tensor], list[str] | None] | None:
        """What the last compute in ``ctx`` produced, with names where the graph gave them.

        The witx ``get_output`` tells a guest only bytes; front-ends that read a guest's outputs take the types and
        dims from here. None before a compute, or for a handle this guest does not hold.
        """
        entry = self.contexts.peek(ctx)
        if entry is None or entry.outputs is None:
            return None
        return list(entry.outputs), entry.output_names

    def close(self) -> None:
        """Free every handle this guest still holds, and end its sandbox workers. No operation works after."""
        self._closed = True
        for ctx in self.contexts.clear():
            ctx.close()
        self.graphs.clear()
        for process in self._sandboxes.values():
            process.kill()
        self._sandboxes.clear()
        self.budget.charge(-sum(self._graph_bytes.values()))
        self._graph_bytes.clear()
        self._targets.clear()
        self._abouts.clear()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
