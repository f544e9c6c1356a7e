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
from collections.abc import Callable, Mapping, Sequence
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
from .timeline import DEFAULT_SIZE, RawTensor, Timeline, start_timer

log = logging.getLogger(__name__)
R = TypeVar("R")
_client_ids = itertools.count(1)  # unique in the process: a front-end's record stream outlives any one Host


_now = time.perf_counter_ns


def _noted(tensors: Sequence[Tensor] | None, names: Sequence[str] | None) -> tuple[RawTensor, ...] | None:
    """Tensors as the timeline keeps them (see Timeline.writer); one tensor, the usual case, skips the loop."""
    if tensors is None:
        return None
    if len(tensors) == 1:
        t = tensors[0]
        return ((names[0] if names else 0, t.dims, t.type.name, t.nbytes),)
    return tuple(
        (names[i] if names and i < len(names) else i, t.dims, t.type.name, t.nbytes) for i, t in enumerate(tensors)
    )


def _noted_inputs(held: dict[int, Tensor], names: Sequence[str] | None) -> tuple[RawTensor, ...]:
    """A context's inputs by index, as :func:`_noted` keeps them (in index order, whatever order they were set)."""
    if len(held) == 1:
        ((i, t),) = held.items()
        return ((names[i] if names and i < len(names) else i, t.dims, t.type.name, t.nbytes),)
    return tuple(
        (names[i] if names and i < len(names) else i, t.dims, t.type.name, t.nbytes) for i, t in sorted(held.items())
    )


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
        self._next_seq, self._append = host.timeline.writer()
        self._sandboxes: dict[str, SandboxProcess] = {}  # device -> this guest's worker for its `load` models
        self.sandbox_crashes = 0  # workers of this guest that its models crashed
        self._graph_bytes: dict[int, int] = {}  # handle -> bytes charged for a graph loaded in-process
        self._targets: dict[int, str] = {}  # graph handle -> the target it was loaded for, for the timeline
        # 1 inside a recorded call, 2 inside an unrecorded one: the operations it makes are not recorded again
        self._depth = 0
        self._closed = False
        # What the current recorded call is about, noted by graph_name() and by the operations it makes (only at
        # depth 1), for its record: plain attributes, reset after each call, so recording stays cheap.
        self._device: str | None = None
        self._target: str | None = None
        self._context: int | None = None
        self._named: str | None = None  # the graph's name, where the call learns it (load, init_execution_context)
        self._inputs: tuple[RawTensor, ...] | None = None
        self._outputs: tuple[RawTensor, ...] | None = None
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
            self._device = self._target = self._context = None
            fail(ErrorCode.RUNTIME_ERROR, f"{call}: this guest's wasi-nn is closed (its guest or host was closed)")
        recording = self.recording
        if recording:
            start = _now()
            device = self._device
            timer = None if device is None or device == "cpu" else start_timer(device)  # CUDA events on CUDA only
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
            if recording:  # one plain tuple in Timeline FIELDS order (see Timeline.writer)
                device_ns = timer.stop() if timer is not None else None
                self._append(
                    (
                        self._next_seq(), call, self.label, graph or self._named, start, _now() - start, outcome,
                        self._nbytes or nbytes, self._device, self.id, "call", None, self._context, self._target,
                        self._inputs, self._outputs, device_ns, self._tokens, None, None,
                    )
                )  # fmt: skip
                self._device = self._target = self._context = self._named = self._tokens = None
                self._inputs = self._outputs = None
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
        entry = self.contexts.peek(ctx)
        if entry is None:
            return None
        self._device = entry.graph.device
        self._target = entry.target
        return entry.graph.name

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
        """Change a property of ``graph`` from its next compute (a registered graph is shared: every guest sees it)."""
        self._on_graph("set_property", graph, lambda g: g.set_property(name, value))

    def _on_graph(self, call: str, graph: int, fn: Callable[[Graph], R]) -> R:
        """An operation on graph handle ``graph``, recorded under the graph's name."""
        entry = self.graphs.peek(graph)
        if entry is not None:
            self._device = entry.device
            self._target = self._targets.get(graph)
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
        context = self.contexts.get(ctx)
        if self._depth == 1:  # noted first: a refused input's record says what the guest tried to set
            names = context.graph.input_names()
            name = names[index] if names and 0 <= index < len(names) else index
            self._inputs = ((name, dims, ttype.name, len(data)),)
            self._nbytes = len(data)
        context.set_input_bytes(index, dims, ttype, data)

    def _set_input(self, ctx: int, index: int, tensor: Tensor) -> None:
        context = self.contexts.get(ctx)
        if self._depth == 1:
            names = context.graph.input_names()
            name = names[index] if names and 0 <= index < len(names) else index
            self._inputs = ((name, tensor.dims, tensor.type.name, tensor.nbytes),)
        context.set_input(index, tensor)

    def _compute(self, ctx: int) -> None:
        context = self.contexts.get(ctx)
        if self._depth != 1:
            context.compute()
            return
        self._inputs = _noted_inputs(context.inputs, context.graph.input_names())
        try:
            context.compute()
        finally:  # a reply that ended in an error (context_full, say) still produced its tokens
            self._tokens = context.tokens
        self._outputs = _noted(context.outputs, context.output_names)

    def _get_output(self, ctx: int, index: int) -> Tensor:
        context = self.contexts.get(ctx)
        tensor = context.get_output(index)
        if self._depth == 1:
            names = context.output_names
            name = names[index] if names and index < len(names) else index
            self._outputs = ((name, tensor.dims, tensor.type.name, tensor.nbytes),)
            self._nbytes = tensor.nbytes
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
            self._inputs = tuple((name, t.dims, t.type.name, t.nbytes) for name, t in inputs.items())
        outputs = context.compute_named(inputs)
        if self._depth == 1:
            self._outputs = tuple((name, t.dims, t.type.name, t.nbytes) for name, t in outputs.items())
            self._nbytes = sum(t.nbytes for t in inputs.values()) + sum(t.nbytes for t in outputs.values())
            self._tokens = context.tokens
        return outputs

    # -- the operations' work, unrecorded: the methods above wrap it in call() ---------------------------------

    def _load(self, builders: Sequence[Buffer], encoding: Encoding, target: Target) -> int:
        """Load guest bytes: code, so by default in this guest's sandbox worker (see :mod:`.sandbox`).

        ``builders`` may be views of guest memory: the one copy the host makes is charged to the budget first.
        """
        if self._depth == 1:
            self._nbytes, self._target = sum(len(b) for b in builders), str(target)
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
            self._named, self._device, self._target = graph.name, graph.device, str(target)
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
            self._named, self._device, self._target = loaded.name, loaded.device, target

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
            self._named, self._device, self._target = name, graph.device, target
        return handle

    def _init_execution_context(self, graph: int) -> int:
        loaded = self.graphs.get(graph)
        context = loaded.init_execution_context(self.budget)
        context.target = target = self._targets.get(graph)
        if isinstance(context, PromptContext):  # a long reply stops between tokens when its guest is stopped
            context.stop_check = self._stop_reason
        ctx = self.contexts.insert(context)
        if self._depth == 1:
            self._named, self._device, self._target, self._context = loaded.name, loaded.device, target, ctx
        return ctx

    def _finalize_execution_context(self, ctx: int) -> None:
        self.contexts.remove(ctx).close()

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

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
