"""The compute convention: how Python hands tensors to a guest and gets tensors back, across the wasm boundary.

``%%wasinn compute GRAPH`` always goes through a guest, so what a notebook computes is what a guest would see.
A guest that exports these two functions (plus its ``memory``) can be driven; the shipped ``driver.wat`` does
nothing but forward the tensors through the witx ABI, and is used when no ``--guest`` is named::

    wasinn_alloc(size: u32) -> ptr                                                 ; (i32) -> i32
    wasinn_compute(name_ptr, name_len, inputs_ptr, n_inputs, result_ptr) -> errno  ; (i32 x 5) -> i32

``wasinn_alloc`` gives 0 when the guest has no memory for ``size`` bytes. Both signatures are checked before the
first call.

1. The host calls ``wasinn_alloc`` once, for one arena holding: the 12-byte result record (zeroed), the graph's
   name (UTF-8), ``n_inputs`` witx tensor structs (20 bytes each, the layout ``set_input`` takes, so a guest can
   pass them straight on), then their dims and their data, each at an offset from the arena's start that is a
   multiple of 16. ``wasinn_alloc`` must return a 16-byte-aligned pointer for that data to be 16-byte aligned in
   memory (wasi-libc's ``malloc`` and the shipped driver do; the host does not check).
2. It calls ``wasinn_compute``. 0 is success; anything else is reported as a wasi-nn errno, with the host's
   last error message.
3. The guest has filled the result record ``{u32 n_outputs, u32 outputs_ptr, u32 ctx}``: ``n_outputs`` witx
   tensors at ``outputs_ptr``. A tensor whose type byte is 255 (``FROM_GRAPH``) carries bytes only (all that
   ``get_output`` gives a guest); its type and dims are those the graph produced for output ``i`` of execution
   context ``ctx``, which the host knows. Otherwise the guest's own type and dims are used, and checked against
   ``data_len``. The host copies every output out, so together they may not hold more bytes than the guest's
   memory (outputs may share bytes, but not thousands of times over).

The arena and the output buffers need to stay valid only until the next ``wasinn_alloc``, so a guest may free
or reuse them there; the driver simply restarts its heap. The magics give every compute a fresh instance (so
handles never pile up and a trap leaves nothing behind), but a guest should not rely on that.
``bindings/wasi_nn.h`` and ``bindings/wasi_nn.rs`` declare the same record (``wasinn_result_t`` /
``ComputeResult``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import wasmtime

from ..host import Guest, GuestError, Tensor, WasiNNError
from ..host.abi.memory import GuestMemory
from ..host.abi.witx import DIMS, TENSOR
from ..host.errors import WITX_ERRNO_NAMES
from ..host.tensors import BY_WITX, MAX_RANK, TensorType

ALLOC = "wasinn_alloc"
COMPUTE = "wasinn_compute"
FROM_GRAPH = 255
MAX_OUTPUTS = 4096
RESULT = struct.Struct("<III")
ALIGN = 16
# name -> (params, results) of the exports the convention calls
SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    ALLOC: (("i32",), ("i32",)),
    COMPUTE: (("i32",) * 5, ("i32",)),
}


def driver_wat() -> str:
    """The WAT text of the shipped driver guest."""
    return resources.files(__package__).joinpath("driver.wat").read_text()


def supports_compute(exports: Sequence[str]) -> bool:
    """Whether the export names are there (see :func:`convention_problem` for their signatures too)."""
    return ALLOC in exports and COMPUTE in exports and "memory" in exports


def _signature(params: Sequence[str], results: Sequence[str]) -> str:
    """A function type as errors show it: ``(i32, i32) -> i32``."""
    out = ", ".join(results) if len(results) == 1 else f"({', '.join(results)})"
    return f"({', '.join(params)}) -> {out}"


def convention_problem(module: wasmtime.Module) -> str | None:
    """Why ``module`` cannot be driven by :func:`compute`, or None when it can.

    Checked before the first call, so a wrong export signature is one clear sentence instead of wasmtime's
    TypeError from deep inside the call.
    """
    types = {e.name: e.type for e in module.exports}
    if not supports_compute(list(types)):
        return f"it must export memory, {ALLOC} and {COMPUTE} (it exports {', '.join(types) or 'nothing'})"
    if not isinstance(types["memory"], wasmtime.MemoryType):
        return "its export 'memory' is not a memory"
    for name, (params, results) in SIGNATURES.items():
        kind = types[name]
        if not isinstance(kind, wasmtime.FuncType):
            return f"{name} must be a function {_signature(params, results)}, but it is not one"
        got = tuple(str(p) for p in kind.params), tuple(str(r) for r in kind.results)
        if got != (params, results):
            return f"{name} must be {_signature(params, results)}, but it is {_signature(*got)}"
    return None


class ComputeError(GuestError):
    """``wasinn_compute`` answered a non-zero errno, or broke the convention."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


@dataclass
class Output:
    name: str | None
    tensor: Tensor


def _align(n: int, to: int = ALIGN) -> int:
    return (n + to - 1) // to * to


def compute(guest: Guest, graph: str, inputs: Sequence[Tensor], *, watch: bool | None = None) -> list[Output]:
    """Run ``graph`` on ``inputs`` through ``guest``'s ``wasinn_compute`` (the convention above)."""
    problem = convention_problem(guest.module)
    if problem is not None:
        raise ComputeError(f"guest {guest.label!r} does not follow the compute convention: {problem}")
    for tensor in inputs:
        if tensor.type.witx is None:
            raise ComputeError(f"input of type {tensor.type} has no witx tensor type (witx has no bf16)")
    name = graph.encode()

    # The arena: result record, name, tensor structs, then each tensor's dims and data.
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
    size = at
    if size >= 1 << 32:
        raise ComputeError(f"the inputs need {size} bytes, more than a 32-bit guest can address")

    base = guest.call(ALLOC, _i32(size), watch=watch) & 0xFFFFFFFF
    if base == 0:
        raise ComputeError(f"guest {guest.label!r} could not allocate {size} bytes for the inputs ({ALLOC} gave 0)")
    memory = _memory(guest)
    with _checked():
        arena = memory.span(base, size, f"the input arena from {ALLOC}")
        arena[: RESULT.size] = 0
        arena[name_at : name_at + len(name)] = np.frombuffer(name, np.uint8)
        for i, (tensor, (dims_at, data_at)) in enumerate(zip(inputs, places, strict=True)):
            entry = TENSOR.pack(base + dims_at, len(tensor.dims), tensor.type.witx or 0, base + data_at, tensor.nbytes)
            arena[structs_at + i * TENSOR.size : structs_at + (i + 1) * TENSOR.size] = np.frombuffer(entry, np.uint8)
            dims = np.asarray(tensor.dims, dtype="<u4").view(np.uint8)
            arena[dims_at : dims_at + dims.nbytes] = dims
            tensor.copy_into(arena[data_at : data_at + tensor.nbytes])
        del arena  # stale once the guest runs (its memory may grow)

    guest.client.last_error = None  # so an errno below shows this call's host error, not an earlier one
    errno = guest.call(
        COMPUTE, _i32(base + name_at), len(name), _i32(base + structs_at), len(inputs), _i32(base), watch=watch
    )
    errno &= 0xFFFFFFFF
    if errno:
        label = WITX_ERRNO_NAMES.get(errno, "unknown errno")
        detail = guest.client.last_error or "the guest gave no host error (it chose this errno itself)"
        raise ComputeError(f"{COMPUTE} returned errno {errno} ({label}): {detail}", errno)
    memory.refresh(guest.store)
    with _checked():
        return _outputs(guest, memory, base)


@dataclass
class _Row:
    """One output as the guest described it, checked but not yet copied."""

    dims: tuple[int, ...]
    type: TensorType
    data_ptr: int
    data_len: int


def _outputs(guest: Guest, memory: GuestMemory, base: int) -> list[Output]:
    n, table, ctx = memory.unpack(RESULT, base, "the result record")
    if n > MAX_OUTPUTS:
        raise ComputeError(f"the guest reported {n} outputs; at most {MAX_OUTPUTS} are read")
    rows = memory.read_bytes(table, TENSOR.size * n, "the output table") if n else b""
    produced, names = _graph_outputs(guest, ctx)
    described = []
    for i in range(n):
        dims_ptr, dims_len, code, data_ptr, data_len = TENSOR.unpack_from(rows, i * TENSOR.size)
        if code == FROM_GRAPH:
            if produced is None or i >= len(produced):
                raise ComputeError(
                    f"output {i} has type {FROM_GRAPH} (as the graph made it), but execution context {ctx} "
                    "has no such output"
                )
            dims, ttype = produced[i].dims, produced[i].type
        else:
            known = BY_WITX.get(code)
            if known is None:
                raise ComputeError(f"output {i} has unknown tensor type {code}")
            ttype = known
            if dims_len > MAX_RANK:
                raise ComputeError(f"output {i} has rank {dims_len}; at most {MAX_RANK} is accepted")
            dims = memory.unpack(DIMS[dims_len], dims_ptr, f"output {i} dims")
        memory.span(data_ptr, data_len, f"output {i} data")  # bounds only: nothing is copied before the total
        described.append(_Row(tuple(dims), ttype, data_ptr, data_len))

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


def _graph_outputs(guest: Guest, ctx: int) -> tuple[list[Tensor] | None, list[str] | None]:
    """What the graph produced in ``ctx`` for this guest: the host's knowledge, which get_output cannot pass on."""
    found = guest.client.output_tensors(ctx)
    return (None, None) if found is None else found


def _memory(guest: Guest) -> GuestMemory:
    """Bounds-checked views of the guest's memory, valid until the guest next runs (then ``refresh`` again)."""
    exported = guest.instance.exports(guest.store).get("memory")
    if not isinstance(exported, wasmtime.Memory):
        raise ComputeError(f"guest {guest.label!r} exports no memory")
    memory = GuestMemory()
    memory.memory = exported
    memory.refresh(guest.store)
    return memory


@contextmanager
def _checked() -> Iterator[None]:
    """Turn the host's bounds errors (WasiNNError) into this module's ComputeError, message kept."""
    try:
        yield
    except WasiNNError as exc:
        raise ComputeError(exc.message) from None


def _i32(value: int) -> int:
    """A u32 as the signed i32 wasmtime takes."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def as_tensors(value: Any, names: Sequence[str] | None = None) -> list[Tensor]:
    """Inputs from a cell's value: one array or tensor, a list/tuple of them, or a dict of name to array/tensor.

    A dict is put in the graph's declared input order when ``names`` is known, else in its own order.
    """
    if isinstance(value, dict):
        if names is not None:
            unknown = [k for k in value if k not in names]
            missing = [n for n in names if n not in value]
            if unknown or missing:
                raise ComputeError(f"the graph takes inputs {list(names)}; unknown {unknown}, missing {missing}")
            value = [value[n] for n in names]
        else:
            value = list(value.values())
    elif isinstance(value, (list, tuple)) and value and all(_is_array(v) for v in value):
        value = list(value)
    else:
        value = [value]
    tensors = []
    for i, item in enumerate(value):
        try:
            tensors.append(Tensor.from_value(item))
        except Exception as exc:  # noqa: BLE001 - say which input, in one line
            raise ComputeError(f"input {i} ({type(item).__name__}) is not a tensor: {exc}") from None
    return tensors


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or (hasattr(value, "detach") and hasattr(value, "dtype"))
