"""What a guest holds: handle tables for its graphs and contexts, and a byte budget for its input tensors.

Handles count up from 0, as in wasmtime, and are never reused within one table, so a stale handle is an error and
not a different object. Each table has a size limit, and the bytes a guest has handed over in inputs are counted
against a budget: a guest that opens contexts or sets inputs and never frees them meets ``too_large`` instead of
taking the host's memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import ErrorCode, fail

T = TypeVar("T")


@dataclass
class Limits:
    """Bounds on what one guest can make the host hold. Defaults suit a notebook; the CLI and magics expose them."""

    max_graphs: int = 1024  # open graph handles per guest
    max_contexts: int = 4096  # open execution contexts per guest
    max_model_bytes: int = 2 << 30  # a model from guest bytes or a file, unpacked
    max_input_bytes: int = 4 << 30  # input tensors held for one guest, over all its contexts
    guest_models: bool = True  # may guests hand over model bytes (`load`)? TorchScript from guests is code


U32_MAX = 0xFFFFFFFF


class HandleTable(Generic[T]):
    def __init__(self, kind: str, limit: int) -> None:
        self.kind = kind
        self.limit = limit
        self._items: dict[int, T] = {}
        self._next = 0

    def insert(self, item: T) -> int:
        if len(self._items) >= self.limit:
            fail(
                ErrorCode.TOO_LARGE,
                f"too many open {self.kind}s ({self.limit}); free some before opening more",
            )
        if self._next > U32_MAX:
            fail(ErrorCode.TOO_LARGE, f"{self.kind} handles are exhausted")
        handle = self._next
        self._next += 1
        self._items[handle] = item
        return handle

    def get(self, handle: int) -> T:
        try:
            return self._items[handle]
        except KeyError:
            fail(ErrorCode.INVALID_ARGUMENT, self._unknown(handle))

    def peek(self, handle: int) -> T | None:
        return self._items.get(handle)

    def remove(self, handle: int) -> T:
        try:
            return self._items.pop(handle)
        except KeyError:
            fail(ErrorCode.INVALID_ARGUMENT, self._unknown(handle))

    def _unknown(self, handle: int) -> str:
        if handle < self._next:
            return f"{self.kind} handle {handle} was already freed"
        return f"no {self.kind} has handle {handle}"

    def clear(self) -> list[T]:
        items = list(self._items.values())
        self._items.clear()
        return items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[tuple[int, T]]:
        return iter(list(self._items.items()))


class ByteBudget:
    """Bytes held on a guest's behalf, with a ceiling (shared by all of one guest's contexts)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def check(self, delta: int) -> None:
        if self.used + delta > self.limit:
            fail(
                ErrorCode.TOO_LARGE,
                f"inputs held for this guest would reach {self.used + delta} bytes, over the limit of {self.limit} "
                "(max_input_bytes); finalize contexts you no longer need",
            )

    def charge(self, delta: int) -> None:
        self.check(delta)
        self.used += delta
