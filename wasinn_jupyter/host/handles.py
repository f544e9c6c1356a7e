"""What a guest holds: handle tables for its graphs and contexts, and the one memory budget for all of it.

Handles count up from 0, as in wasmtime, and are never reused within one table, so a stale handle is an error and
not a different object. Each table has a size limit, and every byte a guest makes the host hold is charged to one
:class:`ByteBudget` per guest (``Limits.max_guest_bytes``): input tensors, output tensors (charged on their own
even where they alias an input), the copy of ``load`` bytes while it is made, graphs loaded in-process from guest
bytes, and what the sandbox worker running its models has grown by. A guest that goes past it meets ``too_large``
instead of taking the host's memory.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .errors import ErrorCode, fail

T = TypeVar("T")


def default_guest_bytes() -> int:
    """A quarter of the machine's memory, at most 4 GiB: one guest never takes the kernel's memory with it."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        physical = 16 << 30
    return min(4 << 30, physical // 4)


GUEST_MODEL_MODES = ("sandbox", "in-process", "off")


@dataclass
class Limits:
    """Bounds on what one guest can make the host hold. Defaults suit a notebook; the CLI and magics expose them.

    ``guest_models`` says what happens to model bytes a guest hands to ``load`` (TorchScript is code): ``"sandbox"``
    (the default) loads and runs them in a confined worker process; ``"in-process"`` runs them in the host, for
    guests as trusted as the user; ``"off"`` refuses them (``load_by_name`` only). True and False mean ``"sandbox"``
    and ``"off"``.
    """

    max_graphs: int = 1024  # open graph handles per guest
    max_contexts: int = 4096  # open execution contexts per guest
    max_model_bytes: int = 2 << 30  # a model from guest bytes or a file, unpacked
    max_guest_bytes: int = field(default_factory=default_guest_bytes)  # everything a guest makes the host hold
    guest_models: str | bool = "sandbox"
    sandbox_load_s: float = 60.0  # one `load` in the sandbox worker
    sandbox_compute_s: float | None = 600.0  # one compute of a guest-supplied graph; None: until the guest stops
    guests_set_shared_properties: bool = False  # may a guest change a registered (shared) graph's properties?

    def __post_init__(self) -> None:
        self.guest_models = self.guest_model_mode()

    def guest_model_mode(self) -> str:
        """``guest_models`` as one of :data:`GUEST_MODEL_MODES` (it may have been set to a bool after creation)."""
        mode = self.guest_models
        if isinstance(mode, bool):
            mode = "sandbox" if mode else "off"
        if mode not in GUEST_MODEL_MODES:
            raise ValueError(f"guest_models must be one of {', '.join(GUEST_MODEL_MODES)}, not {mode!r}")
        return str(mode)


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
    """Bytes held on a guest's behalf, with a ceiling (shared by all of one guest's contexts, graphs and workers)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()  # a sandbox worker killed from another thread refunds its share

    def check(self, delta: int) -> None:
        if self.used + delta > self.limit:
            fail(
                ErrorCode.TOO_LARGE,
                f"memory held for this guest would reach {self.used + delta} bytes, over its budget of {self.limit} "
                "(max_guest_bytes); finalize contexts and unload graphs you no longer need",
            )

    def charge(self, delta: int) -> None:
        with self._lock:
            self.check(delta)
            self.used += delta
