"""Component values between wasmtime's C API and Python, with ``list<u8>`` (and ``list<u32>``) moved in bulk.

wasmtime-py's own host functions (``LinkerInstance.add_func``) rebuild the function's types on every call and
convert ``list<u8>`` one element at a time in Python (about 0.8 MB/s). The C API has no flat-bytes path: a list
is an array of ``wasmtime_component_val_t`` (32 bytes each: a kind byte, then the value at offset 8). So this
module fills and reads those arrays with numpy, strided, in one operation each, and builds each function's
converters once from its type (:func:`converter`). What remains is wasmtime's own per-element work behind its
C API (see ``benchmarks/wit_throughput.py`` for the figures).

Python representations, chosen for the host functions in ``bindings.py``:

- ``list<u8>``: in, a numpy ``uint8`` array this side owns; out, anything with the buffer protocol (``bytes``, a
  numpy array). ``list<u32>``: in, a tuple of ints; out, any sequence of ints.
- ``result<T, E>``: ``Ok(value)`` or ``Err(value)`` (never ambiguous, unlike wasmtime-py's untagged results).
- ``option<T>``: None or the value. ``tuple``: a tuple. Enums, strings, numbers and resources as wasmtime-py has
  them (enum cases as strings; resources as ``ResourceAny`` in, ``ResourceHost`` or ``ResourceAny`` out).

Everything a host function raises is turned into a trap by wasmtime-py's ``catch_exceptions``, and the exception
reaches whoever called into the guest, as with wasmtime-py's own functions.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime.component import _types as wt
from wasmtime.component._enter import catch_exceptions
from wasmtime.component._linker import LinkerInstance

from ..errors import WasinnError

log = logging.getLogger(__name__)
_VAL_SIZE = ctypes.sizeof(ffi.wasmtime_component_val_t)  # 32 in wasmtime 50
_PAYLOAD = ffi.wasmtime_component_val_t.of.offset  # 8
_KIND_U8 = ffi.WASMTIME_COMPONENT_U8.value
_KIND_U32 = ffi.WASMTIME_COMPONENT_U32.value
_KIND_LIST = ffi.WASMTIME_COMPONENT_LIST.value
_KIND_TUPLE = ffi.WASMTIME_COMPONENT_TUPLE.value
_KIND_RESULT = ffi.WASMTIME_COMPONENT_RESULT.value
_KIND_OPTION = ffi.WASMTIME_COMPONENT_OPTION.value
_KIND_BOOL = ffi.WASMTIME_COMPONENT_BOOL

ValPtr = Any  # ctypes.POINTER(wasmtime_component_val_t)
FromC = Callable[[Any], Any]  # a wasmtime_component_val_t -> its Python value (and frees what it owned)
ToC = Callable[[Any, Any, ValPtr], None]  # (store, value, destination pointer)


class HostFault(WasinnError):
    """A host function could not answer: the guest traps with this message (see ``linking.py``)."""


@dataclass(frozen=True)
class Ok:
    value: Any = None


@dataclass(frozen=True)
class Err:
    value: Any = None


def _entries(data: Any, count: int, stride_bytes: int = _VAL_SIZE) -> np.ndarray:
    """The ``count`` 32-byte value entries at ``data`` (a ctypes pointer) as a (count, 32) uint8 array, no copy."""
    address = ctypes.cast(data, ctypes.c_void_p).value
    if not count or not address:
        return np.empty((0, stride_bytes), dtype=np.uint8)
    buffer = (ctypes.c_uint8 * (count * stride_bytes)).from_address(address)
    return np.ctypeslib.as_array(buffer).reshape(count, stride_bytes)


def bytes_from_c(c: Any) -> np.ndarray:
    """A ``list<u8>`` value as a new uint8 array (one strided copy), and the C list freed."""
    lst = c.of.list
    try:
        out: np.ndarray = _entries(lst.data, lst.size)[:, _PAYLOAD].copy()
        return out
    finally:
        ffi.wasmtime_component_vallist_delete(ctypes.byref(lst))


def bytes_to_c(_store: Any, value: Any, ptr: ValPtr) -> None:
    """Write a ``list<u8>`` value from anything with the buffer protocol: two strided numpy writes."""
    try:
        data = np.frombuffer(value, dtype=np.uint8) if not isinstance(value, np.ndarray) else value.reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(f"list<u8> takes bytes or a uint8 array, not {type(value).__name__}") from None
    if data.dtype != np.uint8:
        data = data.view(np.uint8)
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(ctypes.byref(raw), data.size)
    entries = _entries(raw.data, data.size)
    entries[:, 0] = _KIND_U8
    entries[:, _PAYLOAD] = data
    ptr.contents.kind = _KIND_LIST
    ptr.contents.of.list = raw


def u32s_from_c(c: Any) -> tuple[int, ...]:
    lst = c.of.list
    try:
        column = _entries(lst.data, lst.size)[:, _PAYLOAD : _PAYLOAD + 4]
        return tuple(int(v) for v in np.ascontiguousarray(column).view("<u4").reshape(-1))
    finally:
        ffi.wasmtime_component_vallist_delete(ctypes.byref(lst))


def u32s_to_c(_store: Any, value: Sequence[int], ptr: ValPtr) -> None:
    data = np.asarray(value, dtype=np.int64).reshape(-1)
    if data.size and (data.min() < 0 or data.max() > 0xFFFFFFFF):
        raise ValueError("list<u32>: a value is out of range")
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(ctypes.byref(raw), data.size)
    entries = _entries(raw.data, data.size)
    entries[:, 0] = _KIND_U32
    entries[:, _PAYLOAD : _PAYLOAD + 4] = data.astype("<u4").view(np.uint8).reshape(-1, 4)
    ptr.contents.kind = _KIND_LIST
    ptr.contents.of.list = raw


def _clear(entry: Any) -> None:
    """Mark a value whose contents were taken, so that freeing its container frees nothing twice."""
    entry.kind = _KIND_BOOL
    entry.of.boolean = False


def converter(ty: wt.ValType) -> tuple[FromC, ToC]:
    """The pair of conversions for values of ``ty``, built once (types are walked here, not on every call)."""
    if isinstance(ty, wt.ListType):
        element = ty.element
        if isinstance(element, wt.U8):
            return bytes_from_c, bytes_to_c
        if isinstance(element, wt.U32):
            return u32s_from_c, u32s_to_c
        return _list(*converter(element))
    if isinstance(ty, wt.TupleType):
        return _tuple([converter(e) for e in ty.elements])
    if isinstance(ty, wt.ResultType):
        ok, err = ty.ok, ty.err
        return _result(converter(ok) if ok is not None else None, converter(err) if err is not None else None)
    if isinstance(ty, wt.OptionType):
        return _option(converter(ty.payload))
    return ty.convert_from_c, ty.convert_to_c  # numbers, strings, enums, resources: wasmtime-py's own


def _list(from_c: FromC, to_c: ToC) -> tuple[FromC, ToC]:
    def lift(c: Any) -> list[Any]:
        lst = c.of.list
        out = []
        try:
            for i in range(lst.size):
                entry = lst.data[i]
                out.append(from_c(entry))
                _clear(entry)
        finally:
            ffi.wasmtime_component_vallist_delete(ctypes.byref(lst))
        return out

    def lower(store: Any, value: Sequence[Any], ptr: ValPtr) -> None:
        raw = ffi.wasmtime_component_vallist_t()
        ffi.wasmtime_component_vallist_new_uninit(ctypes.byref(raw), len(value))
        done = 0
        try:
            for item in value:
                to_c(store, item, ctypes.pointer(raw.data[done]))
                done += 1
        except BaseException:
            for j in range(done, len(value)):
                _clear(raw.data[j])
            ffi.wasmtime_component_vallist_delete(ctypes.byref(raw))
            raise
        ptr.contents.kind = _KIND_LIST
        ptr.contents.of.list = raw

    return lift, lower


def _tuple(parts: list[tuple[FromC, ToC]]) -> tuple[FromC, ToC]:
    def lift(c: Any) -> tuple[Any, ...]:
        tup = c.of.tuple
        out = []
        try:
            for i, (from_c, _) in enumerate(parts[: tup.size]):
                entry = tup.data[i]
                out.append(from_c(entry))
                _clear(entry)
        finally:
            ffi.wasmtime_component_valtuple_delete(ctypes.byref(tup))
        return tuple(out)

    def lower(store: Any, value: Sequence[Any], ptr: ValPtr) -> None:
        if len(value) != len(parts):
            raise TypeError(f"expected a tuple of {len(parts)}, got {len(value)} values")
        raw = ffi.wasmtime_component_valtuple_t()
        ffi.wasmtime_component_valtuple_new_uninit(ctypes.byref(raw), len(parts))
        done = 0
        try:
            for (_, to_c), item in zip(parts, value, strict=True):
                to_c(store, item, ctypes.pointer(raw.data[done]))
                done += 1
        except BaseException:
            for j in range(done, len(parts)):
                _clear(raw.data[j])
            ffi.wasmtime_component_valtuple_delete(ctypes.byref(raw))
            raise
        ptr.contents.kind = _KIND_TUPLE
        ptr.contents.of.tuple = raw

    return lift, lower


def _boxed(to_c: ToC, store: Any, value: Any) -> Any:
    """A heap value (what result and option payloads point to) holding ``value``."""
    scratch = ffi.wasmtime_component_val_t()
    to_c(store, value, ctypes.pointer(scratch))
    return ffi.wasmtime_component_val_new(ctypes.byref(scratch))


def _unboxed(from_c: FromC, boxed: Any) -> Any:
    value = from_c(boxed.contents)
    _clear(boxed.contents)
    ffi.wasmtime_component_val_delete(boxed)
    return value


def _result(ok: tuple[FromC, ToC] | None, err: tuple[FromC, ToC] | None) -> tuple[FromC, ToC]:
    def lift(c: Any) -> Ok | Err:
        res = c.of.result
        side = ok if res.is_ok else err
        value = _unboxed(side[0], res.val) if side is not None and res.val else None
        return Ok(value) if res.is_ok else Err(value)

    def lower(store: Any, value: Ok | Err, ptr: ValPtr) -> None:
        if not isinstance(value, Ok | Err):
            raise TypeError(f"a result is Ok(...) or Err(...), not {type(value).__name__}")
        side = ok if isinstance(value, Ok) else err
        boxed = _boxed(side[1], store, value.value) if side is not None else None
        ptr.contents.kind = _KIND_RESULT
        ptr.contents.of.result.is_ok = isinstance(value, Ok)
        ptr.contents.of.result.val = boxed

    return lift, lower


def _option(some: tuple[FromC, ToC]) -> tuple[FromC, ToC]:
    def lift(c: Any) -> Any:
        return _unboxed(some[0], c.of.option) if c.of.option else None

    def lower(store: Any, value: Any, ptr: ValPtr) -> None:
        ptr.contents.kind = _KIND_OPTION
        ptr.contents.of.option = _boxed(some[1], store, value) if value is not None else None

    return lift, lower


# -- host functions with these conversions ------------------------------------------------------------------------

HostFunc = Callable[..., Any]  # f(store, *args) -> result


class _Registered:
    """One host function and its conversions, built from its type on its first call."""

    __slots__ = ("fn", "lifts", "lower", "name", "ready")

    def __init__(self, name: str, fn: HostFunc) -> None:
        self.name = name
        self.fn = fn
        self.ready = False
        self.lifts: list[FromC] = []
        self.lower: ToC | None = None

    def prepare(self, ty_raw: Any, store: Any) -> None:
        with wt.FuncType._from_ptr(ty_raw, owner=store) as fty:
            self.lifts = [converter(ty)[0] for _, ty in fty.params]
            result = fty.result
            self.lower = converter(result)[1] if result is not None else None
        self.ready = True


_FUNCS: dict[int, _Registered] = {}
_NEXT = [1]


@ffi.wasmtime_component_func_callback_t  # type: ignore[untyped-decorator]
def _trampoline(idx: Any, context: Any, ty_raw: Any, args: Any, nargs: int, results: Any, nresults: int) -> Any:
    def run(store: Any) -> None:
        entry = _FUNCS[idx or 0]
        if not entry.ready:
            entry.prepare(ty_raw, store)
        if nargs != len(entry.lifts):
            raise TypeError(f"{entry.name}: called with {nargs} arguments, its type has {len(entry.lifts)}")
        try:
            values = [lift(args[i]) for i, lift in enumerate(entry.lifts)]
            result = entry.fn(store, *values)
            if entry.lower is not None and nresults:
                entry.lower(store, result, results)
        except HostFault:
            raise
        except Exception as exc:  # a host bug, or a guest that imported the function with another type
            log.exception("component host function %s failed", entry.name)
            raise HostFault(f"the host could not serve {entry.name}: {type(exc).__name__}: {exc}") from exc

    return catch_exceptions(context, run)


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # type: ignore[untyped-decorator]
def _finalize(idx: Any) -> None:
    _FUNCS.pop(idx or 0, None)


def add_func(instance: LinkerInstance, name: str, fn: HostFunc) -> None:
    """Define ``name`` in a linker instance as ``fn(store, *args)``, with this module's conversions.

    The conversions are built from the type the importing component gives it, on its first call: one linker
    serves one component instance here (``linking.py``), so a function's type never changes after that.
    """
    instance._assert_not_locked()
    idx = _NEXT[0]
    _NEXT[0] += 1
    _FUNCS[idx] = _Registered(name, fn)
    encoded = name.encode("utf-8")
    err = ffi.wasmtime_component_linker_instance_add_func(
        instance.ptr(), ctypes.create_string_buffer(encoded), len(encoded), _trampoline, idx, _finalize
    )
    if err:
        _FUNCS.pop(idx, None)
        raise WasmtimeError._from_ptr(err)
