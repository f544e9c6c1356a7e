"""WIT ``wasi:nn@0.2.0-rc-2024-10-28`` for components: the four resources and their functions, on a Client.

Like ``abi/witx.py`` for core modules, this layer only converts values, keeps handle tables and maps errors; the
wasi-nn operations are the guest's :class:`~wasinn_jupyter.host.host.Client` (so every call is recorded, budgeted
and closed with the guest). wasmtime keeps the guest's handles; the host's side of each resource is a ``rep``
(an int) into one of the tables below:

- tensor: a host :class:`Tensor`, or what a constructor was given that is no valid tensor (the constructor has no
  error result, so the error is kept and ``compute`` answers it as ``invalid-argument``);
- graph and graph-execution-context: the Client's handles; error: the :class:`WasiNNError`.

A resource the guest drops reaches its table's destructor; a tensor passed into ``compute`` is consumed there
(its destructor never runs), so ``compute`` frees its entry. Every borrowed ``self`` is released in the call
that receives it (wasmtime fails the call otherwise). Errors carry the WIT ``error-code`` (numbered apart from
the witx errnos: :func:`~wasinn_jupyter.host.errors.wit_code`) and the host's message as ``data``.

Graph properties (wasi-nn PR 80) are the graph methods ``list-properties``, ``get-property`` and ``set-property``
as the proposal's WIT declares them, and the prompt interface (PR 79) is ``init(graph) -> context`` and
``context.compute(string) -> result<string, string>`` (``wit/phase3``); guests built from the plain WIT never
see either.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
from wasmtime.component import Linker, ResourceAny, ResourceHost, ResourceType

from ..abi.extensions import MAX_PROPERTY_VALUE, MAX_TENSOR_NAME
from ..abi.witx import MAX_NAME
from ..errors import ErrorCode, WasiNNError, WasinnError, fail, wit_code
from ..tensors import BY_WIT, MAX_RANK, Tensor
from .values import Err, HostFault, Ok, add_func

if TYPE_CHECKING:
    from ..host import Client

log = logging.getLogger(__name__)

VERSION = "0.2.0-rc-2024-10-28"
PACKAGE = f"wasi:nn@{VERSION}"
# wasmtime names a host resource type by a number; these are ours (any u32 not used by another host resource).
TENSOR_TYPE, GRAPH_TYPE, CONTEXT_TYPE, ERROR_TYPE, PROMPT_TYPE = (0x6E6E0001 + i for i in range(5))
MAX_TENSORS = 1 << 16  # live tensors per guest: a bound on host objects a guest can make
MAX_ERRORS = 1 << 12  # live error resources per guest (a guest that never drops them stops here)
MAX_ERROR_DATA = 4096  # characters of a kept error's message: it may quote a guest's megabyte name
TENSOR_OVERHEAD = 256  # bytes charged per tensor on top of its data, so empty tensors are not free
# tensor.data() hands wasmtime one 32-byte value per byte (values.py): 32 MiB of data is 1 GiB held while it is
# lowered. Bigger outputs, or ones the guest's budget cannot cover 32 times over, are refused with a trap.
MAX_DATA_TO_GUEST = 32 << 20
VALUE_BYTES = 32

T = TypeVar("T")


def interface(name: str) -> str:
    """The import name of one wasi:nn interface: ``wasi:nn/tensor@0.2.0-rc-2024-10-28``."""
    return f"wasi:nn/{name}@{VERSION}"


class ComponentFault(HostFault, WasinnError):
    """A guest did what no wasi-nn result can answer (too many live resources): its instance traps with this."""


class _Table(Generic[T]):
    """Host values by rep. Reps count up from 1 and are never reused within a guest."""

    def __init__(self, what: str, limit: int) -> None:
        self.what = what
        self.limit = limit
        self.items: dict[int, T] = {}
        self._reps = itertools.count(1)

    def add(self, value: T) -> int:
        if len(self.items) >= self.limit:
            raise ComponentFault(f"this guest holds {self.limit} live {self.what} resources; drop some first")
        rep = next(self._reps)
        self.items[rep] = value
        return rep

    def get(self, rep: int) -> T:
        try:
            return self.items[rep]
        except KeyError:  # wasmtime checks handles; a miss means the host freed it (the guest was closed)
            raise ComponentFault(f"{self.what} {rep} is no longer held by the host") from None

    def pop(self, rep: int) -> T | None:
        return self.items.pop(rep, None)


def _bounded(text: str, limit: int, what: str) -> None:
    """invalid_argument for a guest's string past ``limit`` UTF-8 bytes (what the witx ABI bounds too)."""
    size = len(text.encode("utf-8"))
    if size > limit:
        fail(ErrorCode.INVALID_ARGUMENT, f"{what} is {size} bytes, over the limit of {limit}")


class BadTensor:
    """What a tensor constructor was given that is no valid tensor: kept so that ``compute`` can say why."""

    __slots__ = ("dims", "error", "type_name")

    def __init__(self, dims: tuple[int, ...], type_name: str, error: WasiNNError) -> None:
        # compact, and charged (``nbytes``): a guest may give millions of dims, which a tuple holds at 8+ bytes each
        self.dims = np.asarray(dims, dtype=np.uint32)
        self.type_name = type_name
        self.error = error


class WitBinding:
    """One component guest's wasi-nn: its resource tables over its Client, defined into a component Linker."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.tensors: _Table[Tensor | BadTensor] = _Table("tensor", MAX_TENSORS)
        self.graphs: _Table[int] = _Table("graph", MAX_TENSORS)
        self.contexts: _Table[int] = _Table("graph-execution-context", MAX_TENSORS)
        self.errors: _Table[WasiNNError] = _Table("error", MAX_ERRORS)
        self.prompts: _Table[int | WasiNNError] = _Table("prompt context", MAX_TENSORS)
        self._charged: dict[int, int] = {}  # tensor rep -> bytes charged to the budget

    # -- defining -----------------------------------------------------------------------------------------------

    def define(self, linker: Linker, *, properties: bool = True) -> None:
        """The four interfaces into ``linker``; with ``properties``, the proposals too (graph properties, prompt)."""
        with linker.root() as root:
            with root.add_instance(interface("errors")) as errors:
                errors.add_resource("error", ResourceType.host(ERROR_TYPE), self._drop_error)
                add_func(errors, "[method]error.code", self.error_code)
                add_func(errors, "[method]error.data", self.error_data)
            with root.add_instance(interface("tensor")) as tensor:
                tensor.add_resource("tensor", ResourceType.host(TENSOR_TYPE), self._drop_tensor)
                add_func(tensor, "[constructor]tensor", self.tensor_new)
                add_func(tensor, "[method]tensor.dimensions", self.tensor_dimensions)
                add_func(tensor, "[method]tensor.ty", self.tensor_ty)
                add_func(tensor, "[method]tensor.data", self.tensor_data)
            with root.add_instance(interface("inference")) as inference:
                inference.add_resource("graph-execution-context", ResourceType.host(CONTEXT_TYPE), self._drop_context)
                add_func(inference, "[method]graph-execution-context.compute", self.compute)
            with root.add_instance(interface("graph")) as graph:
                graph.add_resource("graph", ResourceType.host(GRAPH_TYPE), self._drop_graph)
                add_func(graph, "[method]graph.init-execution-context", self.init_execution_context)
                add_func(graph, "load", self.load)
                add_func(graph, "load-by-name", self.load_by_name)
                if properties:
                    add_func(graph, "[method]graph.list-properties", self.list_properties)
                    add_func(graph, "[method]graph.get-property", self.get_property)
                    add_func(graph, "[method]graph.set-property", self.set_property)
            if properties:
                with root.add_instance(interface("prompt")) as prompt:
                    prompt.add_resource("context", ResourceType.host(PROMPT_TYPE), self._drop_prompt)
                    add_func(prompt, "init", self.prompt_init)
                    add_func(prompt, "[method]context.compute", self.prompt_compute)

    # -- helpers ------------------------------------------------------------------------------------------------

    def _error(self, err: WasiNNError) -> Err:
        if len(err.message) > MAX_ERROR_DATA:  # kept until the guest drops it: bounded, uncharged
            note = f"... (cut: {len(err.message):,} characters)"
            err = WasiNNError(err.code, err.message[: MAX_ERROR_DATA - len(note)] + note)
        return Err(ResourceHost.own(self.errors.add(err), ERROR_TYPE))

    def _attempt(self, fn: Callable[[], Any]) -> Ok | Err:
        """Ok(fn()) or the error resource for the wasi-nn error it raised."""
        try:
            return Ok(fn())
        except WasiNNError as err:
            return self._error(err)

    @staticmethod
    def _rep(store: Any, handle: ResourceAny) -> int:
        """The rep behind a resource argument; releases a borrow (wasmtime fails a call that keeps one)."""
        return int(handle.to_host(store).rep)

    def _keep_tensor(self, tensor: Tensor | BadTensor) -> ResourceHost:
        cost = TENSOR_OVERHEAD + (tensor.nbytes if isinstance(tensor, Tensor) else tensor.dims.nbytes)
        try:
            self.client.budget.charge(cost)
        except WasiNNError as err:
            raise ComponentFault(f"tensor not created: {err.message}") from None
        try:
            rep = self.tensors.add(tensor)
        except ComponentFault:
            self.client.budget.charge(-cost)
            raise
        self._charged[rep] = cost
        return ResourceHost.own(rep, TENSOR_TYPE)

    def _release_tensor(self, rep: int) -> Tensor | BadTensor | None:
        tensor = self.tensors.pop(rep)
        self.client.budget.charge(-self._charged.pop(rep, 0))
        return tensor

    # -- errors -------------------------------------------------------------------------------------------------

    def error_code(self, store: Any, handle: ResourceAny) -> str:
        return wit_code(self.errors.get(self._rep(store, handle)))

    def error_data(self, store: Any, handle: ResourceAny) -> str:
        return self.errors.get(self._rep(store, handle)).message

    def _drop_error(self, _store: Any, rep: int) -> None:
        self.errors.pop(rep)

    # -- tensors ------------------------------------------------------------------------------------------------

    def tensor_new(self, _store: Any, dims: tuple[int, ...], ty: str, data: np.ndarray) -> ResourceHost:
        ttype = BY_WIT.get(ty)
        try:
            if ttype is None:
                raise WasiNNError(ErrorCode.INVALID_ARGUMENT, f"unknown tensor type {ty!r}")
            if len(dims) > MAX_RANK:
                raise WasiNNError(ErrorCode.INVALID_ARGUMENT, f"tensor rank {len(dims)} is over {MAX_RANK}")
            made: Tensor | BadTensor = Tensor.from_bytes(dims, ttype, data)
        except WasiNNError as err:
            made = BadTensor(dims, ty, err)
        return self._keep_tensor(made)

    def tensor_dimensions(self, store: Any, handle: ResourceAny) -> tuple[int, ...] | np.ndarray:
        return self.tensors.get(self._rep(store, handle)).dims

    def tensor_ty(self, store: Any, handle: ResourceAny) -> str:
        tensor = self.tensors.get(self._rep(store, handle))
        return tensor.type.wit if isinstance(tensor, Tensor) else tensor.type_name

    def tensor_data(self, store: Any, handle: ResourceAny) -> np.ndarray:
        tensor = self.tensors.get(self._rep(store, handle))
        if isinstance(tensor, BadTensor):
            raise ComponentFault(f"tensor.data on a tensor that was never made: {tensor.error.message}")
        way = "read outputs this large through a core module (witx), which copies them straight into guest memory"
        if tensor.nbytes > MAX_DATA_TO_GUEST:
            raise ComponentFault(
                f"tensor.data: {tensor.nbytes:,} bytes is over the {MAX_DATA_TO_GUEST:,} a WIT list "
                f"may carry here (each byte is a 32-byte value in wasmtime's C API); {way}"
            )
        try:
            self.client.budget.check(VALUE_BYTES * tensor.nbytes)
        except WasiNNError as err:
            raise ComponentFault(
                f"tensor.data: wasmtime's copy would be {VALUE_BYTES} bytes per byte: {err.message}; {way}"
            ) from None
        return tensor.raw_numpy()

    def _drop_tensor(self, _store: Any, rep: int) -> None:
        self._release_tensor(rep)

    # -- graphs -------------------------------------------------------------------------------------------------

    def load(self, _store: Any, builders: list[np.ndarray], encoding: str, target: str) -> Ok | Err:
        return self._attempt(lambda: self._graph(self.client.load(builders, encoding, target)))

    def load_by_name(self, _store: Any, name: str) -> Ok | Err:
        def load() -> ResourceHost:
            _bounded(name, MAX_NAME, "load-by-name: the name")  # it is recorded on the timeline, as witx's
            return self._graph(self.client.load_by_name(name))

        return self._attempt(load)

    def _graph(self, handle: int) -> ResourceHost:
        try:
            rep = self.graphs.add(handle)
        except ComponentFault:
            self.client.unload(handle)
            raise
        return ResourceHost.own(rep, GRAPH_TYPE)

    def init_execution_context(self, store: Any, handle: ResourceAny) -> Ok | Err:
        graph = self.graphs.get(self._rep(store, handle))

        def init() -> ResourceHost:
            ctx = self.client.init_execution_context(graph)
            try:
                rep = self.contexts.add(ctx)
            except ComponentFault:
                self.client.finalize_execution_context(ctx)
                raise
            return ResourceHost.own(rep, CONTEXT_TYPE)

        return self._attempt(init)

    def _drop_graph(self, _store: Any, rep: int) -> None:
        handle = self.graphs.pop(rep)
        if handle is not None and not self.client._closed:
            self._quietly(self.client.unload, handle)

    # -- graph properties (PR 80) ----------------------------------------------------------------------------------

    def list_properties(self, store: Any, handle: ResourceAny) -> list[str]:
        graph = self.graphs.get(self._rep(store, handle))
        try:
            return list(self.client.list_properties(graph))
        except WasiNNError:
            return []

    def get_property(self, store: Any, handle: ResourceAny, name: str) -> str | None:
        graph = self.graphs.get(self._rep(store, handle))
        try:
            return self.client.get_property(graph, name)
        except WasiNNError:
            return None

    def set_property(self, store: Any, handle: ResourceAny, name: str, value: str) -> Ok | Err:
        graph = self.graphs.get(self._rep(store, handle))
        try:
            _bounded(name, MAX_TENSOR_NAME, "set-property: the name")  # the bounds witx's set_property has
            _bounded(value, MAX_PROPERTY_VALUE, "set-property: the value")
            self.client.set_property(graph, name, value)
        except WasiNNError as err:
            return Err(err.message)
        return Ok(None)

    # -- inference ----------------------------------------------------------------------------------------------

    def compute(self, store: Any, handle: ResourceAny, inputs: list[tuple[str, ResourceAny]]) -> Ok | Err:
        ctx = self.contexts.get(self._rep(store, handle))
        # Take every input first: each is an owned handle that is ours now, whatever the outcome.
        taken = [(name, self._release_tensor(self._rep(store, tensor))) for name, tensor in inputs]
        named: dict[str, Tensor] = {}
        for name, tensor in taken:
            if tensor is None:
                raise ComponentFault(f"input {name!r}: tensor no longer held by the host")
            if isinstance(tensor, BadTensor):
                return self._error(WasiNNError(tensor.error.code, f"input {name!r}: {tensor.error.message}"))
            if len(name.encode("utf-8")) > MAX_TENSOR_NAME:  # names are recorded on the timeline
                return self._error(
                    WasiNNError(ErrorCode.INVALID_ARGUMENT, f"an input name is over {MAX_TENSOR_NAME} bytes")
                )
            if name in named:
                return self._error(WasiNNError(ErrorCode.INVALID_ARGUMENT, f"input {name!r} is named twice"))
            named[name] = tensor
        try:
            outputs = self.client.compute_named(ctx, named)
        except WasiNNError as err:
            return self._error(err)
        return Ok([(name, self._keep_tensor(tensor)) for name, tensor in outputs.items()])

    def _drop_context(self, _store: Any, rep: int) -> None:
        ctx = self.contexts.pop(rep)
        if ctx is not None and not self.client._closed:
            self._quietly(self.client.finalize_execution_context, ctx)

    # -- prompt (PR 79) ------------------------------------------------------------------------------------------

    def prompt_init(self, store: Any, handle: ResourceAny) -> ResourceHost:
        """A prompt context on the graph. A failure to make one is kept and told by its first ``compute``."""
        graph = self.graphs.get(self._rep(store, handle))
        made: int | WasiNNError
        try:
            made = self.client.init_execution_context(graph)
        except WasiNNError as err:
            made = err
        try:
            rep = self.prompts.add(made)
        except ComponentFault:
            if isinstance(made, int):
                self.client.finalize_execution_context(made)
            raise
        return ResourceHost.own(rep, PROMPT_TYPE)

    def prompt_compute(self, store: Any, handle: ResourceAny, text: str) -> Ok | Err:
        ctx = self.prompts.get(self._rep(store, handle))
        if isinstance(ctx, WasiNNError):
            return Err(f"{wit_code(ctx)}: {ctx.message}")
        try:
            return Ok(self.client.prompt(ctx, text))
        except WasiNNError as err:
            return Err(f"{wit_code(err)}: {err.message}")

    def _drop_prompt(self, _store: Any, rep: int) -> None:
        ctx = self.prompts.pop(rep)
        if isinstance(ctx, int) and not self.client._closed:
            self._quietly(self.client.finalize_execution_context, ctx)

    # -- closing ------------------------------------------------------------------------------------------------

    def release_all(self) -> None:
        """Give back what the guest's tensors held (its Client closes its graphs and contexts itself)."""
        for rep in list(self.tensors.items):
            self._release_tensor(rep)
        self.errors.items.clear()
        self.graphs.items.clear()
        self.contexts.items.clear()
        self.prompts.items.clear()

    @staticmethod
    def _quietly(fn: Callable[[int], None], handle: int) -> None:
        try:
            fn(handle)
        except WasiNNError as err:  # a destructor has nobody to answer to: log it
            log.debug("wasi-nn resource drop: %s", err)
