"""The witx tensor struct, read and written in one place for every ABI that lays tensors out in guest memory.

wasi-nn-abi.md: a tensor is 20 bytes ``{u32 dims_ptr, u32 dims_len, u8 type, 3 bytes padding, u32 data_ptr,
u32 data_len}``, its dims ``dims_len`` u32s at ``dims_ptr``. Only the type byte is read, never the padding (older
guests leave garbage there). The witx ABI reads it in ``set_input``; the compute convention (``convention.py``)
writes it for a guest's inputs and reads it for the outputs a guest describes. Both go through here, so the
layout and its bounds checks cannot drift apart.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from ..errors import ErrorCode, fail
from ..tensors import MAX_RANK
from .memory import GuestMemory

TENSOR = struct.Struct("<IIB3xII")
DIMS = [struct.Struct(f"<{n}I") for n in range(MAX_RANK + 1)]


class TensorStruct(NamedTuple):
    """The five fields of a witx tensor struct, as u32 (the type as its byte)."""

    dims_ptr: int
    dims_len: int
    type_code: int
    data_ptr: int
    data_len: int


def read_tensor(memory: GuestMemory, ptr: int, what: str) -> TensorStruct:
    """The tensor struct at ``ptr``; a struct outside memory is ``invalid_argument`` naming ``what``."""
    return TensorStruct._make(memory.unpack(TENSOR, ptr, what))


def read_dims(memory: GuestMemory, tensor: TensorStruct, what: str) -> tuple[int, ...]:
    """The tensor's dims: ``invalid_argument`` for a rank over :data:`MAX_RANK` or dims outside memory.

    ``what`` names the call or the output (``set_input``, ``output 2``): errors read ``set_input: rank 17 ...``.
    """
    rank = tensor.dims_len
    if rank > MAX_RANK:
        fail(ErrorCode.INVALID_ARGUMENT, f"{what}: rank {rank} is over the maximum of {MAX_RANK}")
    if not rank:
        return ()
    dims: tuple[int, ...] = memory.unpack(DIMS[rank], tensor.dims_ptr, f"{what}: tensor dims")
    return dims


def write_tensor(buffer: Any, offset: int, tensor: TensorStruct) -> None:
    """Write a tensor struct at ``offset`` of a writable buffer (a view of guest memory); the padding is zeroed."""
    TENSOR.pack_into(buffer, offset, *tensor)


def write_dims(buffer: Any, offset: int, dims: tuple[int, ...]) -> None:
    """Write ``dims`` as u32 at ``offset`` of a writable buffer."""
    DIMS[len(dims)].pack_into(buffer, offset, *dims)
