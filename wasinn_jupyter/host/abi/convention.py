"""The compute convention: how Python hands tensors to a guest and gets tensors back, across the wasm boundary.

``%%wasinn compute GRAPH`` always goes through a guest, so what a notebook computes is what a guest would see.
A guest that exports these two functions (plus its ``memory``) can be driven; the shipped driver guest
(``wasinn_jupyter/guests/driver.wat``) does nothing but forward the tensors through the witx ABI::

    wasinn_alloc(size: u32) -> ptr                                                 ; (i32) -> i32
    wasinn_compute(name_ptr, name_len, inputs_ptr, n_inputs, result_ptr) -> errno  ; (i32 x 5) -> i32

``wasinn_alloc`` gives 0 when the guest has no memory for ``size`` bytes. Both signatures are checked before the
first call (:func:`convention_problem`).

1. The host calls ``wasinn_alloc`` once, for one arena holding: the 12-byte result record (zeroed), the graph's
   name (UTF-8), ``n_inputs`` witx tensor structs (20 bytes each, the layout ``set_input`` takes, so a guest can
   pass them straight on: ``layout.py``), then their dims and their data, each at an offset from the arena's
   start that is a multiple of 16. ``wasinn_alloc`` must return a 16-byte-aligned pointer for that data to be
   16-byte aligned in memory (wasi-libc's ``malloc`` and the shipped driver do; the host does not check).
2. It calls ``wasinn_compute``. 0 is success; anything else is reported as a wasi-nn errno, with the host's
   message for the wasi-nn call that failed during this compute (none: the guest chose the errno itself).
3. The guest has filled the result record ``{u32 n_outputs, u32 outputs_ptr, u32 ctx}``: ``n_outputs`` witx
   tensors at ``outputs_ptr``. A tensor whose type byte is 255 (``FROM_GRAPH``) carries bytes only (all that
   ``get_output`` gives a guest); its type and dims are those the graph produced for output ``i`` of execution
   context ``ctx``, which the host knows. Otherwise the guest's own type and dims are used, and checked against
   ``data_len``. The host copies every output out, so together they may not hold more bytes than the guest's
   memory (outputs may share bytes, but not thousands of times over).

The arena and the output buffers need to stay valid only until the next ``wasinn_alloc``, so a guest may free
or reuse them there; the driver simply restarts its heap. The magics give every compute a fresh instance (so
handles never pile up and a trap leaves nothing behind), but a guest should not rely on that.
``guests/bindings/wasi_nn.h`` and ``wasi_nn.rs`` declare the same record (``wasinn_result_t`` /
``ComputeResult``).

Like the witx module, this one only translates: memory layouts, errnos, and the guest's calls (through the
:class:`~..session.Guest`, which guards them).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..errors import WITX_ERRNO_NAMES, WasiNNError
from ..module import GuestModule
from ..session import Guest, GuestError
from ..tensors import BY_WITX, Tensor, TensorType
from .layout import TENSOR, TensorStruct, read_dims, read_tensor, write_dims, write_tensor
from .memory import GuestMemory

ALLOC = "wasinn_alloc"
COMPUTE = "wasinn_compute"
COMPONENT_COMPUTE = "wasinn:guest/compute#compute"  # a component's (component/compute.py)
FROM_GRAPH = 255
MAX_OUTPUTS = 4096
RESULT = struct.Struct("<III")
ALIGN = 16
# name -> (params, results) of the exports the convention calls
SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    ALLOC: (("i32",), ("i32",)),
    COMPUTE: (("i32",) * 5, ("i32",)),
}


class ComputeError(GuestError):
    """``wasinn_compute`` answered a non-zero errno, or the guest broke the convention."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


@dataclass
class Output:
    name: str | None
    tensor: Tensor


def supports_compute(exports: Sequence[str]) -> bool:
    """Whether the export names are there (see :func:`convention_problem` for their signatures too)."""
    return (ALLOC in exports and COMPUTE in exports and "memory" in exports) or COMPONENT_COMPUTE in exports


def _signature(params: Sequence[str], results: Sequence[str]) -> str:
    out = ", ".join(results) if len(results) == 1 else f"({', '.join(results)})"
    return f"({', '.join(params)}) -> {out}"


def convention_problem(module: GuestModule) -> str | None:
    """Why ``module`` cannot be driven by :func:`compute`, or None when it can.

    Checked before the first call, so a wrong export signature is one clear sentence instead of wasmtime's
    TypeError from deep inside the call.
    """
    names = module.export_names
    if not supports_compute(names):
        return f"it must export memory, {ALLOC} and {COMPUTE} (it exports {', '.join(names) or 'nothing'})"
    memory = module.export("memory")
    if memory is None or memory.kind != "memory":
        return "its export 'memory' is not a memory"
    for name, (params, results) in SIGNATURES.items():
        export = module.export(name)
        if export is None or export.kind != "func":
            return f"{name} must be a function {_signature(params, results)}, but it is not one"
        if (export.params, export.results) != (params, results):
            return f"{name} must be {_signature(params, results)}, but it is {export.signature()}"
    return None


# -- the arena -----------------------------------------------------------------------------------------------


def _align(n: int, to: int = ALIGN) -> int:
    return (n + to - 1) // to * to


@dataclass(frozen=True)
class Arena:
    """Where each part of the inputs goes, as offsets from the arena's start."""

    size: int
    name_at: int
    structs_at: int
    places: tuple[tuple[int, int], ...]  # (dims offset, data offset) per input


def plan_arena(name: bytes, inputs: Sequence[Tensor]) -> Arena:
    """The arena for ``inputs``: result record, name, tensor structs, then each tensor's dims and data."""
    at = RESULT.size
    name_at = at
    at = _align(at + len(name), 4)
    structs_at = at
    at += TENSOR.size * len(inputs)
    places = []
    for tensor in inputs:
        dims_at = at
        at = _align(at + 4 * len(tensor.dims))
        places.append((dims_at, at))
        at = _align(at + tensor.nbytes)
    return Arena(at, name_at, structs_at, tuple(places))


def write_arena(memory: GuestMemory, base: int, arena: Arena, name: bytes, inputs: Sequence[Tensor]) -> None:
    """Fill the arena at ``base`` (bounds-checked): a zeroed result record, the name, structs, dims and data."""
    span = memory.span(base, arena.size, f"the input arena from {ALLOC}")
    span[: RESULT.size] = 0
    span[arena.name_at : arena.name_at + len(name)] = np.frombuffer(name, np.uint8)
    for i, (tensor, (dims_at, data_at)) in enumerate(zip(inputs, arena.places, strict=True)):
        entry = TensorStruct(base + dims_at, len(tensor.dims), tensor.type.witx or 0, base + data_at, tensor.nbytes)
        write_tensor(span, arena.structs_at + i * TENSOR.size, entry)
        write_dims(span, dims_at, tensor.dims)
        tensor.copy_into(span[data_at : data_at + tensor.nbytes])


# -- the outputs ---------------------------------------------------------------------------------------------


@dataclass
class _Row:
    """One output as the guest described it, checked but not yet copied."""

    dims: tuple[int, ...]
    type: TensorType
    data_ptr: int
    data_len: int


Produced = tuple[list[Tensor], list[str] | None] | None


def read_outputs(memory: GuestMemory, base: int, produced: Callable[[int], Produced]) -> list[Output]:
    """The outputs the result record at ``base`` describes, checked and copied out.

    ``produced(ctx)`` is what the graph made in the context the record names (``Client.output_tensors``): the
    types and dims of ``FROM_GRAPH`` outputs, and the outputs' names.
    """
    n, table, ctx = memory.unpack(RESULT, base, "the result record")
    if n > MAX_OUTPUTS:
        raise ComputeError(f"the guest reported {n} outputs; at most {MAX_OUTPUTS} are read")
    if n:
        memory.span(table, TENSOR.size * n, "the output table")
    made = produced(ctx)
    tensors, names = made if made is not None else (None, None)
    described = []
    for i in range(n):
        entry = read_tensor(memory, table + i * TENSOR.size, "the output table")
        if entry.type_code == FROM_GRAPH:
            if tensors is None or i >= len(tensors):
                raise ComputeError(
                    f"output {i} has type {FROM_GRAPH} (as the graph made it), but execution context {ctx} "
                    "has no such output"
                )
            dims, ttype = tensors[i].dims, tensors[i].type
        else:
            known = BY_WITX.get(entry.type_code)
            if known is None:
                raise ComputeError(f"output {i} has unknown tensor type {entry.type_code}")
            ttype = known
            dims = read_dims(memory, entry, f"output {i}")
        memory.span(entry.data_ptr, entry.data_len, f"output {i} data")  # bounds only: nothing is copied yet
        described.append(_Row(tuple(dims), ttype, entry.data_ptr, entry.data_len))

    # Each span lies inside memory, but many outputs may name the same span: bound what the host copies in all.
    total = sum(row.data_len for row in described)
    if total > memory.size:
        raise ComputeError(
            f"the guest's {n} outputs add up to {total} bytes, more than its {memory.size}-byte memory; "
            "outputs may not together exceed the guest's memory"
        )
    outputs = []
    for i, row in enumerate(described):
        data = memory.span(row.data_ptr, row.data_len, f"output {i} data").copy()
        try:
            tensor = Tensor.from_bytes(row.dims, row.type, data)
        except Exception as exc:  # noqa: BLE001 - a size mismatch is the guest's error, said plainly
            raise ComputeError(f"output {i}: {getattr(exc, 'message', exc)}") from None
        outputs.append(Output(names[i] if names and i < len(names) else None, tensor))
    return outputs


# -- the call ------------------------------------------------------------------------------------------------


def compute(guest: Guest, graph: str, inputs: Sequence[Tensor], *, watch: bool | None = None) -> list[Output]:
    """Run ``graph`` on ``inputs`` through ``guest``'s ``wasinn_compute`` (the convention above); a component
    guest through its ``wasinn:guest/compute`` export (``component/compute.py``)."""
    if guest.module.kind == "component":
        from ..component.compute import compute_component

        return compute_component(guest, graph, inputs, watch=watch)
    problem = convention_problem(guest.module)
    if problem is not None:
        raise ComputeError(f"guest {guest.label!r} does not follow the compute convention: {problem}")
    for tensor in inputs:
        if tensor.type.witx is None:
            raise ComputeError(f"input of type {tensor.type} has no witx tensor type (witx has no bf16)")
    name = graph.encode()
    arena = plan_arena(name, inputs)
    if arena.size >= 1 << 32:
        raise ComputeError(f"the inputs need {arena.size} bytes, more than a 32-bit guest can address")

    base = guest.call_u32(ALLOC, arena.size, watch=watch)
    if base == 0:
        raise ComputeError(
            f"guest {guest.label!r} could not allocate {arena.size} bytes for the inputs ({ALLOC} gave 0)"
        )
    memory = guest.memory()
    with _checked():
        write_arena(memory, base, arena, name, inputs)

    client = guest.client
    client.clear_last_error()  # so an errno below shows this compute's host error, not an earlier one
    # write_arena checked that the whole arena lies in the guest's memory, so every pointer below is a u32
    args = (base + arena.name_at, len(name), base + arena.structs_at, len(inputs), base)
    errno = guest.call_u32(COMPUTE, *args, watch=watch)
    if errno:
        label = WITX_ERRNO_NAMES.get(errno, "unknown errno")
        detail = client.last_error or "the guest gave no host error (it chose this errno itself)"
        raise ComputeError(f"{COMPUTE} returned errno {errno} ({label}): {detail}", errno)
    memory.refresh(guest.store)
    with _checked():
        return read_outputs(memory, base, client.output_tensors)


@contextmanager
def _checked() -> Iterator[None]:
    """Turn the host's bounds errors (WasiNNError) into ComputeError, message kept."""
    try:
        yield
    except WasiNNError as exc:
        raise ComputeError(exc.message) from None
