"""WASI preview1 ``poll_oneoff`` that a stopped guest does not sleep through.

wasmtime's own ``poll_oneoff`` sleeps in native code: neither the epoch ticker nor Ctrl-C can reach a guest
waiting in it, so a guest that asks for a 30 s sleep under a 1 s deadline slept 30 s. This one shadows it and
waits itself, in short slices, asking the guest's ``stop_check`` between them; when the guest is stopped
(interrupted, or past its deadline) the call traps with the stop reason and the guest ends as ``GuestStopped``.

Only the waiting is ours. A call we would not wait in (no subscriptions, a subscription array outside memory, an
unknown tag, clock or flag, any fd subscription, a clock already due) goes to wasmtime's function unchanged, so
its errnos and traps are wasmtime's own; fd subscriptions are ready at once there (a guest's stdin is empty,
stdout, stderr and files are always writable). wasmtime's WASI functions find memory through their caller's
``memory`` export, so the host cannot call them directly: a forwarder instance in the guest's Store imports the
guest's memory, exports it as ``memory`` and calls wasmtime's ``poll_oneoff``.

The clock-only path matches wasmtime 50 as measured: a relative timeout counts from the call, an absolute
monotonic one from the guest's clock origin (the moment its WASI context was made, known to microseconds), an
absolute realtime one against the wall clock; the call returns when the earliest is due, with one event per due
subscription in subscription order (userdata, error 0, type clock, nbytes and flags 0, padding untouched).
Fields are written one by one, and one outside memory or misaligned fails the call in wasmtime's words.
"""

from __future__ import annotations

import ctypes
import struct
import time
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import wasmtime
import wasmtime._func as wasmtime_func
from wasmtime import Engine, FuncType, Linker, Module, Trap, ValType, WasmtimeError
from wasmtime import _ffi as ffi

from .abi.rawfunc import define_unchecked

MODULE = "wasi_snapshot_preview1"
SLICE_S = 0.01  # how often a waiting guest looks at its stop reason
MAX_SUBSCRIPTIONS = 1 << 21  # past this wasmtime answers nomem; leave those calls to it
SUBSCRIPTION = np.dtype(
    {
        "names": ["userdata", "tag", "clock_id", "timeout", "precision", "flags"],
        "formats": ["<u8", "u1", "<u4", "<u8", "<u8", "<u2"],
        "offsets": [0, 8, 16, 24, 32, 40],
        "itemsize": 48,
    }
)
EVENT_SIZE = 32
_U64, _U32, _U16, _U8 = struct.Struct("<Q"), struct.Struct("<I"), struct.Struct("<H"), struct.Struct("<B")

StopCheck = Callable[[], "str | None"]

# Calls wasmtime's poll_oneoff with the guest's memory as its caller's `memory`.
FORWARDER = """(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "guest" "memory" (memory 0))
  (export "memory" (memory 0))
  (func (export "poll") (param i32 i32 i32 i32) (result i32)
    (call $poll (local.get 0) (local.get 1) (local.get 2) (local.get 3))))"""
_forwarders: weakref.WeakKeyDictionary[Engine, Module] = weakref.WeakKeyDictionary()


class _Fault(Exception):
    """A field the guest pointed at is outside its memory or misaligned: the call traps, as wasmtime's does."""


def define_poll_oneoff(linker: Linker, engine: Engine, stop_check: StopCheck, monotonic_origin_ns: int) -> None:
    """Shadow ``poll_oneoff`` in ``linker`` (after ``define_wasi``) with one that ``stop_check`` can cut short.

    One linker per guest: the function belongs to the guest whose Store instantiates from it.
    ``monotonic_origin_ns`` is ``time.monotonic_ns()`` when the guest's WASI context was made.
    """
    forwarder = _forwarders.get(engine)
    if forwarder is None:
        forwarder = _forwarders[engine] = Module(engine, FORWARDER)
    poll = _Poll(engine, forwarder, stop_check, monotonic_origin_ns)
    linker.allow_shadowing = True
    try:
        define_unchecked(linker, MODULE, "poll_oneoff", FuncType([ValType.i32()] * 4, [ValType.i32()]), poll.callback)
    finally:
        linker.allow_shadowing = False


class _Poll:
    def __init__(self, engine: Engine, forwarder: Module, stop_check: StopCheck, origin_ns: int) -> None:
        self.engine = engine
        self.forwarder = forwarder
        self.stop_check = stop_check
        self.origin_ns = origin_ns
        self.native: wasmtime.Func | None = None  # the forwarder's `poll`, made at the first call that needs it

    def callback(self, _env: Any, caller: Any, values: Any, _count: int) -> int:
        """The raw wasmtime callback: 0 with the errno in ``values[0]``, or a trap's address."""
        try:
            args = [values[i].i32 & 0xFFFFFFFF for i in range(4)]
            plan = self._plan(caller, *args)
            if plan is None:
                return self._delegate(caller, values)
            values[0].i32 = self._wait(caller, args[1], args[3], *plan)
            return 0
        except _Fault as fault:
            return _trap(f"poll_oneoff: {fault}")
        except _Stopped as stop:
            return _trap(stop.reason)
        except BaseException as exc:  # noqa: BLE001 - nothing may escape into wasmtime
            return _trap(f"poll_oneoff failed inside the host: {type(exc).__name__}: {exc}")

    def _plan(self, caller: Any, in_ptr: int, out_ptr: int, nsubs: int, nevents_ptr: int) -> Any:
        """(userdata, deadlines) for a clock-only call that must wait; None for calls wasmtime answers at once."""
        if not 1 <= nsubs <= MAX_SUBSCRIPTIONS or in_ptr % 8:
            return None
        view = _memory(caller)
        if view is None or in_ptr + nsubs * SUBSCRIPTION.itemsize > len(view):
            return None
        subs = np.frombuffer(view, SUBSCRIPTION, count=nsubs, offset=in_ptr).copy()
        if (subs["tag"] != 0).any() or (subs["clock_id"] > 1).any() or (subs["flags"] & 0xFFFE).any():
            return None  # fd subscriptions (ready at once), or errors wasmtime reports before waiting
        now, wall = time.monotonic_ns(), time.time_ns()
        deadlines = []
        for clock_id, timeout, flags in zip(
            subs["clock_id"].tolist(), subs["timeout"].tolist(), subs["flags"].tolist(), strict=True
        ):
            if not flags & 1:
                deadlines.append(now + timeout)
            elif clock_id == 1:  # absolute monotonic: the guest's clock counts from its origin
                deadlines.append(self.origin_ns + timeout)
            else:  # absolute realtime
                deadlines.append(now + max(0, timeout - wall))
        if min(deadlines) <= now:
            return None
        return subs["userdata"].tolist(), deadlines

    def _wait(self, caller: Any, out_ptr: int, nevents_ptr: int, userdata: list[int], deadlines: list[int]) -> int:
        earliest = min(deadlines)
        while True:
            reason = self.stop_check()
            if reason is not None:
                raise _Stopped(reason)
            remaining = earliest - time.monotonic_ns()
            if remaining <= 0:
                break
            time.sleep(min(remaining / 1e9, SLICE_S))
        now = time.monotonic_ns()
        view = _memory(caller)  # afresh: nothing can have grown it, but a view must not outlive its checks
        if view is None:
            raise _Fault("the guest exports no memory")
        at = out_ptr
        count = 0
        for data, deadline in zip(userdata, deadlines, strict=True):
            if deadline > now:
                continue
            _put(view, _U64, at, 8, data)
            _put(view, _U16, at + 8, 2, 0)  # error: none
            _put(view, _U8, at + 10, 1, 0)  # type: clock
            _put(view, _U64, at + 16, 8, 0)  # fd_readwrite.nbytes
            _put(view, _U16, at + 24, 2, 0)  # fd_readwrite.flags
            at += EVENT_SIZE
            count += 1
        _put(view, _U32, nevents_ptr, 4, count)
        return 0

    def _delegate(self, caller: Any, values: Any) -> int:
        """wasmtime's own poll_oneoff with the guest's arguments: its errno, or its trap, passed on as they are."""
        if self.native is None:
            wrapped = wasmtime_func.Caller(caller)
            try:
                memory = wrapped.get("memory")
                if not isinstance(memory, wasmtime.Memory):
                    return _trap("missing required memory export")  # wasmtime's own words
                linker = Linker(self.engine)
                linker.define_wasi()
                linker.define(wrapped, "guest", "memory", memory)
                native = linker.instantiate(wrapped, self.forwarder).exports(wrapped)["poll"]
            finally:
                wrapped._invalidate()
            assert isinstance(native, wasmtime.Func)
            self.native = native
        context = ffi.wasmtime_caller_context(caller)
        args = (ffi.wasmtime_val_raw_t * 4)()
        for i in range(4):
            args[i].i32 = values[i].i32
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        error = ffi.wasmtime_func_call_unchecked(context, ctypes.byref(self.native._func), args, 4, ctypes.byref(trap))
        if error:  # wasmtime's words without the forwarder's backtrace: the guest's own comes with the trap
            message = str(WasmtimeError._from_ptr(error))
            return _trap(message.rsplit("Caused by:", 1)[-1].strip())
        if trap:
            return ctypes.cast(trap, ctypes.c_void_p).value or 0  # ownership passes to wasmtime
        values[0].i32 = args[0].i32
        return 0


class _Stopped(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _memory(caller: Any) -> memoryview | None:
    """The guest's linear memory as a writable view, valid during this host call only."""
    wrapped = wasmtime_func.Caller(caller)
    try:
        memory = wrapped.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            return None
        size = memory.data_len(wrapped)
        addr = ctypes.cast(memory.data_ptr(wrapped), ctypes.c_void_p).value or 0
    finally:
        wrapped._invalidate()
    if not size:
        return memoryview(b"")
    return memoryview((ctypes.c_ubyte * size).from_address(addr)).cast("B")


def _put(view: memoryview, fmt: struct.Struct, ptr: int, align: int, value: int) -> None:
    """Write one field, checked as wasmtime checks it (bounds, then alignment), with its words on failure."""
    if ptr + fmt.size > len(view):
        raise _Fault(f"Pointer out of bounds: Region {{ start: {ptr}, len: {fmt.size} }}")
    if ptr % align:
        raise _Fault(f"Pointer not aligned to {align}: Region {{ start: {ptr}, len: {fmt.size} }}")
    fmt.pack_into(view, ptr, value)


def _trap(message: str) -> int:
    return ctypes.cast(Trap(message)._consume(), ctypes.c_void_p).value or 0
