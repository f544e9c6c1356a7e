"""Ray's core worker installs crash handlers for SIGSEGV/SIGILL/SIGFPE/SIGBUS when it connects, in front of
wasmtime's: a guest's trap then killed the whole process (a notebook's kernel after `%wasinn load --ray`). Connecting
through ray_support puts the handlers back, so a trap stays the guest's. If this regresses, the trap below ends the
test process with "Fatal Python error: Illegal instruction"."""

from __future__ import annotations

import ctypes
import signal
from typing import Any

import pytest

from wasinn_jupyter.host import GuestTrap, Session
from wasinn_jupyter.scale.ray_support import keeping_trap_handlers

TRAPS = '(module (func (export "_start") unreachable))'
OUT_OF_BOUNDS = '(module (memory 1) (func (export "_start") (drop (i32.load (i32.const 0x7fffffff)))))'


def handler(sig: int) -> int:
    action = ctypes.create_string_buffer(256)
    assert ctypes.CDLL(None).sigaction(sig, None, action) == 0
    return int(ctypes.cast(action, ctypes.POINTER(ctypes.c_size_t))[0])


def test_a_guest_trap_after_ray_connected_is_the_guests(ray_cluster: Any) -> None:
    assert ray_cluster.is_initialized()
    for wat, words in ((TRAPS, "unreachable"), (OUT_OF_BOUNDS, "out of bounds")):
        with Session() as session, pytest.raises(GuestTrap, match=words):
            session.run(wat)


def test_the_handlers_come_back_whatever_the_body_installs() -> None:
    before = {sig: handler(sig) for sig in (signal.SIGSEGV, signal.SIGILL)}
    with keeping_trap_handlers():
        signal.signal(signal.SIGILL, lambda *_: None)  # what Ray's connect does, in Python's terms
        assert handler(signal.SIGILL) != before[signal.SIGILL]
    assert {sig: handler(sig) for sig in before} == before  # (Python still lists its lambda; it is never called)
