"""Host functions as raw wasmtime callbacks: the wasi-nn imports sit on every inference's path.

wasmtime-py's ``Linker.define_func`` goes through a generic trampoline that builds ``Val`` objects and compares
``FuncType``s on every call: about 5.4 of the 7 µs a guest-to-host call costs (benchmarks/echo_roundtrip.py).
Every witx function takes i32s and returns one i32, so we register an *unchecked* callback instead, which reads
the raw argument slots directly.

This uses two wasmtime-py internals, ``_func.LAST_EXCEPTION`` (how an exception raised in a host function reaches
the caller of the guest) and ``Trap._consume``; pyproject pins wasmtime below 51 for that reason. The handlers
given here already turn every error into an errno, so the exception path is a last resort.
"""

from __future__ import annotations

import ctypes
import itertools
from collections.abc import Callable
from typing import Any

import wasmtime
import wasmtime._func as wasmtime_func
from wasmtime import FuncType, Linker, Trap, ValType
from wasmtime import _ffi as ffi

_U32 = ctypes.POINTER(ctypes.c_uint32)
_SLOT = ctypes.sizeof(ffi.wasmtime_val_raw_t) // 4  # raw values are 16 bytes; an i32 sits at the start of one

# Callbacks stay alive for as long as wasmtime holds a function made from them: it calls _release when the last
# one (in the linker or in any store) is dropped.
_LIVE: dict[int, Any] = {}
_keys = itertools.count(1)


def _release_key(key: int | None) -> None:
    _LIVE.pop(key or 0, None)


_release = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(_release_key)


class RawCaller:
    """What ``Memory.data_len`` / ``data_ptr`` and ``Caller.get`` need of a caller, made only when used."""

    __slots__ = ("_context_ptr", "_ptr")

    def __init__(self, ptr: Any) -> None:
        self._ptr = ptr
        self._context_ptr: Any = None

    def _context(self) -> Any:
        if self._context_ptr is None:
            self._context_ptr = ffi.wasmtime_caller_context(self._ptr)
        return self._context_ptr

    def get(self, name: str) -> Any:
        caller = wasmtime_func.Caller(self._ptr)
        try:
            return caller.get(name)
        finally:
            caller._invalidate()


HostFn = Callable[..., int]


def define_u32_func(linker: Linker, module: str, name: str, arity: int, fn: HostFn) -> None:
    """Define ``module.name`` as ``(i32 x arity) -> i32``, calling ``fn(caller, *args)`` with the arguments read
    as unsigned: the one place u32 arguments are made (every witx parameter is a pointer, length, handle, index
    or enum, all u32), so no handler masks."""
    offsets = [_SLOT * i for i in range(arity)]
    cast = ctypes.cast

    def callback(_env: Any, caller: Any, values: Any, _count: int) -> int:
        try:
            slots = cast(values, _U32)
            slots[0] = fn(RawCaller(caller), *[slots[o] for o in offsets]) & 0xFFFFFFFF
            return 0
        except BaseException as exc:  # noqa: BLE001 - re-raised by wasmtime-py in the caller of the guest
            wasmtime_func.LAST_EXCEPTION = exc  # type: ignore[assignment]
            return cast(Trap("python exception")._consume(), ctypes.c_void_p).value or 0

    define_unchecked(linker, module, name, FuncType([ValType.i32()] * arity, [ValType.i32()]), callback)


RawCallback = Callable[[Any, Any, Any, int], int]


def define_unchecked(linker: Linker, module: str, name: str, ty: FuncType, callback: RawCallback) -> None:
    """Define ``module.name`` in ``linker`` as a raw unchecked ``callback(env, caller, values, count)``, which
    returns 0 (results written into ``values``) or a trap's address. It is kept alive for as long as wasmtime
    holds a function made from it."""
    raw = ffi.wasmtime_func_unchecked_callback_t(callback)
    key = next(_keys)
    _LIVE[key] = (raw, callback)
    module_b, name_b = module.encode(), name.encode()
    error = ffi.wasmtime_linker_define_func_unchecked(
        linker.ptr(),
        ctypes.create_string_buffer(module_b),
        len(module_b),
        ctypes.create_string_buffer(name_b),
        len(name_b),
        ty.ptr(),
        raw,
        key,
        _release,
    )
    if error:
        _LIVE.pop(key, None)
        raise wasmtime.WasmtimeError._from_ptr(error)
