"""wasinn-jupyter's extensions to ``wasi_ephemeral_nn``: the phase-3 proposals, for core (witx) guests.

One call over named tensors (PR 77), graph properties (PR 80) and chaining an output into another context's input
without a copy through linear memory (tensor residence, PR 69/70). The ABI, with every layout, is written down in
``docs/abi/wasinn-extensions.md``; the C declarations are in ``guests/bindings/wasi_nn.h``. Like ``witx.py``, this
only reads and writes guest memory and calls the guest's Client; :class:`ExtensionCalls` is mixed into
``WitxBinding``, which links these functions next to the witx ones.

Layouts (little-endian, wasm32):

- ``named_tensor``, 28 bytes: +0 name_ptr, +4 name_len (UTF-8, no NUL needed), +8 the 20-byte witx tensor.
- ``named_tensors`` (what the host writes for outputs): +0 u32 count, +4 ``count`` named_tensor records whose
  pointers point into the same buffer, then each name (NUL-terminated, 4-aligned), its dims (u32) and its data
  (16-aligned, by absolute address).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ..errors import ErrorCode, fail
from ..tensors import BY_NAME, Tensor, TensorType, check_type_code, element_count
from .layout import TENSOR, TensorStruct, read_dims

if TYPE_CHECKING:
    from ..host import Client
    from .memory import GuestMemory

NAMED_TENSOR = struct.Struct("<II")  # name_ptr, name_len; the tensor struct follows
NAMED_SIZE = NAMED_TENSOR.size + TENSOR.size  # 28
MAX_NAMED_TENSORS = 256  # tensors in one compute_named call (too_large past it)
MAX_TENSOR_NAME = 256  # bytes in a tensor or property name (invalid_argument past it)
MAX_PROPERTY_VALUE = 4096
BF16_CODE = 6  # bf16 has no witx number: these functions read and write it as 6 (the WIT enum has BF16)

# name -> number of i32 parameters, as in witx.SIGNATURES; each returns an errno.
EXTENSION_SIGNATURES: dict[str, int] = {
    "compute_named": 6,
    "get_named_outputs": 4,
    "list_properties": 4,
    "get_property": 6,
    "set_property": 5,
    "set_input_from_output": 4,
}
EXTENSION_CONTEXT_FIRST = frozenset({"compute_named", "get_named_outputs", "set_input_from_output"})


def _type(code: int) -> TensorType:
    return BY_NAME["bf16"] if code == BF16_CODE else check_type_code(code)


def _code(ttype: TensorType) -> int:
    return BF16_CODE if ttype.witx is None else ttype.witx


def _align(n: int, to: int) -> int:
    return (n + to - 1) // to * to


class ExtensionCalls:
    """The extension functions; ``WitxBinding`` supplies ``client`` and ``memory``."""

    client: Client
    memory: GuestMemory

    def _text(self, ptr: int, length: int, limit: int, what: str) -> str:
        if length > limit:
            fail(ErrorCode.INVALID_ARGUMENT, f"{what}: {length} bytes is over the limit of {limit}")
        raw = self.memory.read_bytes(ptr, length, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            fail(ErrorCode.INVALID_ARGUMENT, f"{what}: not UTF-8")

    def _out_bytes(self, call: str, data: bytes, out_ptr: int, out_max: int, out_written: int) -> None:
        """``data`` into the guest's buffer; too_large (with the size needed in bytes_written) when it is short."""
        m = self.memory
        if len(data) > out_max:
            m.write_u32(out_written, len(data), f"{call}: bytes-written out-pointer")
            fail(ErrorCode.TOO_LARGE, f"{call}: {len(data)} bytes do not fit the buffer of {out_max}")
        m.span(out_ptr, len(data), f"{call}: buffer")[:] = memoryview(data)
        m.write_u32(out_written, len(data), f"{call}: bytes-written out-pointer")

    # -- single-call compute over named tensors (PR 77) ------------------------------------------------------

    def compute_named(
        self, ctx: int, inputs_ptr: int, inputs_len: int, out_ptr: int, out_max: int, out_written: int
    ) -> None:
        m = self.memory
        client = self.client
        device = client.contexts.get(ctx).graph.input_device  # a bad handle is reported first
        m.check_u32(out_written, "compute_named: bytes-written out-pointer")
        if inputs_len > MAX_NAMED_TENSORS:
            fail(ErrorCode.TOO_LARGE, f"compute_named: {inputs_len} tensors; at most {MAX_NAMED_TENSORS} per call")
        m.span(inputs_ptr, inputs_len * NAMED_SIZE, "compute_named: named tensor array")
        found: list[tuple[str, tuple[int, ...], TensorType, int, int]] = []
        for i in range(inputs_len):
            at = inputs_ptr + i * NAMED_SIZE
            what = f"compute_named: tensor {i}"
            name_ptr, name_len = m.unpack(NAMED_TENSOR, at, what)
            name = self._text(name_ptr, name_len, MAX_TENSOR_NAME, f"{what}: name")
            if any(name == f[0] for f in found):
                fail(ErrorCode.INVALID_ARGUMENT, f"{what}: the name {name!r} is given twice")
            tensor = TensorStruct._make(m.unpack(TENSOR, at + NAMED_TENSOR.size, what))
            ttype = _type(tensor.type_code)
            dims = read_dims(m, tensor, f"{what} ({name})")
            m.span(tensor.data_ptr, tensor.data_len, f"{what} ({name}): data")
            need = element_count(dims) * ttype.itemsize
            if need != tensor.data_len:  # every input checked before any is copied
                fail(
                    ErrorCode.INVALID_ARGUMENT,
                    f"{what} ({name}): dims {list(dims)} of {ttype} need {need} bytes, data is {tensor.data_len}",
                )
            found.append((name, dims, ttype, tensor.data_ptr, tensor.data_len))
        client.budget.check(sum(f[4] for f in found))  # before the one copy each input gets
        tensors = {
            name: Tensor.from_guest(dims, ttype, m.span(ptr, length, name), device)
            for name, dims, ttype, ptr, length in found
        }
        outputs = client.compute_named(ctx, tensors)
        self._write_named("compute_named", outputs, out_ptr, out_max, out_written)

    def get_named_outputs(self, ctx: int, out_ptr: int, out_max: int, out_written: int) -> None:
        """The last compute's outputs, laid out as compute_named writes them (a retry after too_large, or after
        the indexed calls)."""
        self.memory.check_u32(out_written, "get_named_outputs: bytes-written out-pointer")
        self._write_named("get_named_outputs", self.client.named_outputs(ctx), out_ptr, out_max, out_written)

    def _write_named(self, call: str, outputs: dict[str, Tensor], out_ptr: int, out_max: int, out_written: int) -> None:
        m = self.memory
        pos = out_ptr + 4 + NAMED_SIZE * len(outputs)
        plan = []
        for name, tensor in outputs.items():
            raw = name.encode("utf-8")
            name_at, pos = pos, _align(pos + len(raw) + 1, 4)
            dims_at, pos = pos, pos + 4 * len(tensor.dims)
            data_at = _align(pos, 16)
            pos = data_at + tensor.nbytes
            plan.append((raw, name_at, dims_at, data_at, tensor))
        size = pos - out_ptr
        if size > out_max:
            m.write_u32(out_written, min(size, 0xFFFFFFFF), f"{call}: bytes-written out-pointer")
            fail(
                ErrorCode.TOO_LARGE,
                f"{call}: the outputs take {size} bytes, the buffer {out_max}; the size needed is in bytes_written "
                "(get_named_outputs reads them again without a recompute)",
            )
        buf = m.span(out_ptr, size, f"{call}: output buffer")
        view = buf.data  # the same bytes, as a buffer struct writes into
        struct.pack_into("<I", view, 0, len(plan))
        for i, (raw, name_at, dims_at, data_at, tensor) in enumerate(plan):
            record = TensorStruct(dims_at, len(tensor.dims), _code(tensor.type), data_at, tensor.nbytes)
            NAMED_TENSOR.pack_into(view, 4 + i * NAMED_SIZE, name_at, len(raw))
            TENSOR.pack_into(view, 4 + i * NAMED_SIZE + NAMED_TENSOR.size, *record)
            start = name_at - out_ptr
            view[start : start + len(raw) + 1] = raw + b"\0"
            struct.pack_into(f"<{len(tensor.dims)}I", view, dims_at - out_ptr, *tensor.dims)
            tensor.copy_into(buf[data_at - out_ptr : data_at - out_ptr + tensor.nbytes])
        m.write_u32(out_written, size, f"{call}: bytes-written out-pointer")

    # -- graph properties (PR 80) ---------------------------------------------------------------------------

    def list_properties(self, graph: int, out_ptr: int, out_max: int, out_written: int) -> None:
        """The names, each followed by a NUL byte."""
        self.memory.check_u32(out_written, "list_properties: bytes-written out-pointer")
        names = self.client.list_properties(graph)
        data = b"".join(n.encode("utf-8") + b"\0" for n in names)
        self._out_bytes("list_properties", data, out_ptr, out_max, out_written)

    def get_property(
        self, graph: int, name_ptr: int, name_len: int, out_ptr: int, out_max: int, out_written: int
    ) -> None:
        """The value's UTF-8 bytes (no NUL); not_found for a property the graph does not have."""
        self.memory.check_u32(out_written, "get_property: bytes-written out-pointer")
        name = self._text(name_ptr, name_len, MAX_TENSOR_NAME, "get_property: name")
        value = self.client.get_property(graph, name)
        if value is None:
            have = ", ".join(self.client.list_properties(graph)) or "none"
            fail(ErrorCode.NOT_FOUND, f"get_property: the graph has no property {name!r} (it has: {have})")
        self._out_bytes("get_property", value.encode("utf-8"), out_ptr, out_max, out_written)

    def set_property(self, graph: int, name_ptr: int, name_len: int, value_ptr: int, value_len: int) -> None:
        name = self._text(name_ptr, name_len, MAX_TENSOR_NAME, "set_property: name")
        value = self._text(value_ptr, value_len, MAX_PROPERTY_VALUE, "set_property: value")
        self.client.set_property(graph, name, value)

    # -- chaining (tensor residence) -------------------------------------------------------------------------

    def set_input_from_output(self, ctx: int, index: int, src_ctx: int, src_index: int) -> None:
        self.client.set_input_from_output(ctx, index, src_ctx, src_index)
