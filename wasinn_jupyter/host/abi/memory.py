"""Bounds-checked, zero-copy access to a guest's linear memory.

Pointers and lengths arrive as u32 (``rawfunc`` reads the arguments so, and struct fields unpack so); every span
is checked against the memory's current size, with Python's unbounded ints (no wrap-around): a wild pointer
becomes ``invalid_argument``, never a read outside the guest. The numpy view over linear memory is rebuilt only when the
memory's base or size changed (it goes stale when memory grows), and no view outlives the host call that made it:
whatever the host keeps is copied out.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any

import numpy as np
from wasmtime import Memory

from ..errors import ErrorCode, fail

U32 = 0xFFFFFFFF
_U32 = struct.Struct("<I")


class GuestMemory:
    def __init__(self) -> None:
        self.memory: Any = None  # the guest's exported wasmtime Memory, set after instantiation
        self._size = -1
        self._bytes: np.ndarray = np.empty(0, np.uint8)
        self._view: memoryview = memoryview(b"")

    def refresh(self, caller: Any) -> None:
        """Re-validate the view at the start of a host call (the guest may have grown its memory since).

        Within one host call the guest cannot run, so its memory can neither grow nor move.
        """
        memory = self.memory
        if memory is None:
            memory = caller.get("memory")
            if not isinstance(memory, Memory):
                what = "nothing" if memory is None else f"a {type(memory).__name__.lower()}, not a memory"
                fail(ErrorCode.MISSING_MEMORY, f"the guest exports {what} named 'memory'")
            self.memory = memory
        size = memory.data_len(caller)
        if size != self._size:  # memory only moves when it grows, and growing changes its size
            addr = ctypes.cast(memory.data_ptr(caller), ctypes.c_void_p).value or 0
            raw = (ctypes.c_ubyte * size).from_address(addr)
            self._bytes = np.frombuffer(raw, dtype=np.uint8)
            self._view = memoryview(raw).cast("B")
            self._size = size

    @property
    def size(self) -> int:
        return self._size

    def _check(self, ptr: int, length: int, what: str) -> tuple[int, int]:
        if ptr < 0 or length < 0 or ptr + length > self._size:
            fail(
                ErrorCode.INVALID_ARGUMENT,
                f"{what}: {length} bytes at 0x{ptr:x} run past the end of linear memory ({self._size} bytes)",
            )
        return ptr, length

    def span(self, ptr: int, length: int, what: str) -> np.ndarray:
        """A writable uint8 view of guest bytes, valid only during this host call."""
        ptr, length = self._check(ptr, length, what)
        return self._bytes[ptr : ptr + length]

    def read_bytes(self, ptr: int, length: int, what: str) -> bytes:
        ptr, length = self._check(ptr, length, what)
        return bytes(self._view[ptr : ptr + length])

    def unpack(self, fmt: struct.Struct, ptr: int, what: str) -> tuple[Any, ...]:
        ptr, _ = self._check(ptr, fmt.size, what)
        return fmt.unpack_from(self._view, ptr)

    def check_u32(self, ptr: int, what: str) -> None:
        """Fail now if an out-pointer is wild, before doing the work whose result it would receive."""
        self._check(ptr, 4, what)

    def write_u32(self, ptr: int, value: int, what: str) -> None:
        ptr, _ = self._check(ptr, 4, what)
        _U32.pack_into(self._view, ptr, value & U32)
