"""Engine, guests and their limits: where wasmtime meets the Host.

A :class:`Session` owns one wasmtime Engine (compiled-code cache on, epoch interruption on) and one :class:`Host`.
``Session.compile`` gives a :class:`~.module.GuestModule` (core module or component, its exports, the wasi-nn it
imports and the errno dialect that implies). Each :class:`Guest` is a Store and an instance with its own wasi-nn
:class:`Client`, WASI context and limits. A Guest is what every guest has (the Store, limits, epochs,
interrupts, the worker thread, lifecycle events on the host's timeline); how its module is linked is the
per-ABI part (:mod:`.linking`: witx core modules today). A Session is a context manager: closing it closes its
guests and its host.

Stopping guests: the Session's ticker advances the engine's epoch every ``TICK_S`` while a guest runs, and each
Store's epoch callback decides for its own guest only: stop (interrupted, or past its deadline) or carry on. So
interrupting one guest never disturbs another on the same engine. A call made from the main thread runs in a worker
thread while the main thread waits, so Ctrl-C (or the notebook's interrupt button) reaches Python and stops the
guest instead of waiting for it.

A guest blocked in a host call cannot be stopped by epochs. WASI's ``poll_oneoff`` (a guest's sleep) is ours, and
waits in slices that look at the stop reason (:mod:`.wasi_poll`); the wasi-nn Client gets the same check as
``client.stop_check``. Watched calls run on threads with a known stack (``GUEST_THREAD_STACK``), well above
wasm's own limit (``WASM_STACK``), so deep recursion traps instead of overflowing a small native stack. One Guest
runs one call at a time: a call while another runs on a different thread is refused (a wasmtime Store must not
be entered from two threads at once).

wasmtime's errors arrive as paragraphs (a backtrace, then "Caused by:" and numbered causes): guest errors keep
the innermost cause as one line and the frames apart (``GuestError.frames``, Rust names demangled), so a front-end
shows one message and one backtrace.

wasmtime 50 aborts the process if WASI is linked but the store has no WASI context: a Guest always sets one
before instantiating, and no other code in the package links WASI.
"""

from __future__ import annotations

import ctypes
import logging
import math
import re
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import Config, Engine, ExitTrap, Store, Trap, WasiConfig, WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime import component as wasm_component

from .abi.memory import GuestMemory
from .errors import Dialect, WasinnError
from .host import Host
from .linking import Linking, linking_for
from .module import COMPONENT, GuestModule, describe, is_component
from .wasi import Output, WasiOptions

log = logging.getLogger(__name__)

TICK_S = 0.01
INTERRUPT_GRACE_S = 1.0  # how long an interrupted guest blocked in a host call may take to come back
GUEST_THREAD_STACK = 16 << 20  # native stack of the threads that run watched calls
WASM_STACK = 1 << 20  # wasm's share of a native stack: a guest past it traps (stack overflow)

_EPOCH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.POINTER(ffi.wasmtime_context_t),
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ctypes.c_uint8),
)
_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_NO_FINALIZER = _FINALIZER(lambda _data: None)

__all__ = [
    "Guest",
    "GuestError",
    "GuestExit",
    "GuestLimits",
    "GuestStopped",
    "GuestTrap",
    "Output",
    "Session",
    "WasiOptions",
    "abandoned_workers",
    "demangle",
]


class GuestError(WasinnError):
    """A guest could not be compiled or instantiated, or it trapped: ``message`` in one line, ``frames`` apart."""

    def __init__(self, message: str, frames: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.frames = frames or []

    def __str__(self) -> str:
        if not self.frames:
            return self.message
        return self.message + "\nguest backtrace:\n" + "\n".join(f"  {f}" for f in self.frames)


class GuestTrap(GuestError):
    """The guest trapped (unreachable, out-of-bounds access, stack overflow...). The instance may be unusable."""


class GuestExit(GuestError):
    """The guest called WASI ``proc_exit``: not an error for a command guest, whose ``run`` returns the code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"guest exited with code {code}")
        self.code = code


class GuestStopped(GuestError):
    """The host stopped a guest: interrupted, past its deadline or out of fuel. The guest is reusable."""

    def __init__(self, reason: str, frames: list[str] | None = None) -> None:
        super().__init__(f"guest stopped: {reason}", frames)
        self.reason = reason


@dataclass
class GuestLimits:
    """Per-guest resource bounds. ``None`` means unbounded for deadline and fuel."""

    memory_bytes: int = 2 << 30  # linear memory; growth past it fails inside the guest
    tables: int = 16
    table_elements: int = 1_000_000
    instances: int = 16
    deadline_s: float | None = None  # wall-clock budget for one call into the guest
    fuel: int | None = None  # instructions-ish budget per call; needs Session(fuel=True)

    def __post_init__(self) -> None:
        """A NaN, infinite or non-positive deadline, or a negative size, would silently mean "no limit"."""
        if self.deadline_s is not None and not (math.isfinite(self.deadline_s) and self.deadline_s > 0):
            raise ValueError(f"deadline_s must be a finite number of seconds above 0 or None, not {self.deadline_s}")
        for name in ("memory_bytes", "tables", "table_elements", "instances"):
            if not 0 <= getattr(self, name) < 1 << 63:
                raise ValueError(f"{name} must be at least 0, not {getattr(self, name)}")
        if self.fuel is not None and not 0 <= self.fuel < 1 << 63:
            raise ValueError(f"fuel must be at least 0 or None, not {self.fuel}")


class Session:
    """One Engine and one Host; guests are compiled and instantiated from here.

    ``with Session() as session:`` closes, on the way out, every guest it instantiated and its host (the graphs it
    holds, their memory and workers), and ends the epoch ticker.
    """

    def __init__(self, host: Host | None = None, *, cache: bool = True, fuel: bool = False) -> None:
        self.host = host or Host()
        config = Config()
        config.epoch_interruption = True
        config.consume_fuel = fuel
        config.max_wasm_stack = WASM_STACK
        if cache:
            try:
                config.cache = True
            except WasmtimeError as exc:  # a read-only home must not stop the session
                log.warning("wasmtime compilation cache is off: %s", exc)
        self.fuel = fuel
        self.engine = Engine(config)
        self.closed = False
        self._guests: weakref.WeakSet[Guest] = weakref.WeakSet()
        self._running = 0
        self._running_lock = threading.Lock()
        self._ticking = threading.Event()
        self._stopped = threading.Event()
        self._ticker: threading.Thread | None = None
        # The ticker thread holds only the engine and the two events, so a Session that is dropped is collected,
        # and collecting (or closing) it ends the thread.
        self._halt = weakref.finalize(self, _halt_ticker, self._ticking, self._stopped)

    def close(self) -> None:
        """Close every guest of this session and its host, and end the epoch ticker. Idempotent."""
        if self.closed:
            return
        self.closed = True
        for guest in list(self._guests):
            guest.close()
        self.host.close()
        self._halt()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- compiling -----------------------------------------------------------------------------------------

    def compile(self, source: bytes | str | Path, *, name: str | None = None) -> GuestModule:
        """A module (or component) from WAT text, wasm bytes, or a file holding either (OSError if unreadable).

        ``name`` names it in messages and on the timeline (default: the file's name, else ``module``).
        """
        start = time.perf_counter_ns()
        if name is None:
            name = source.name if isinstance(source, Path) else "module"
        if isinstance(source, Path):
            source = source.read_bytes()
        try:
            module = self._compile(source, name)
        except GuestError as exc:
            self.host.timeline.event("compile", name, 0, start_ns=start, outcome="error", detail=exc.message)
            raise
        detail = f"{module.kind}, {module.size} bytes, {module.dialect.value} errnos"
        self.host.timeline.event("compile", name, 0, start_ns=start, detail=detail)
        return module

    def _compile(self, source: bytes | str, name: str) -> GuestModule:
        if isinstance(source, bytes) and not source.startswith(b"\0asm"):
            try:
                source = source.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise GuestError(
                    f"the module is neither wasm (no \\0asm header) nor UTF-8 WAT text: byte {exc.start} is not UTF-8"
                ) from None
        try:
            wasm = bytes(wasmtime.wat2wasm(source)) if isinstance(source, str) else source
            if is_component(wasm):
                compiled: Any = wasm_component.Component(self.engine, wasm)
            else:
                compiled = wasmtime.Module(self.engine, wasm)
        except WasmtimeError as exc:
            raise GuestError(f"the module does not compile: {one_line(str(exc))}") from None
        return describe(compiled, wasm, name, self.engine)

    # -- instantiating -------------------------------------------------------------------------------------

    def instantiate(
        self,
        module: GuestModule,
        *,
        wasi: WasiOptions | None = None,
        limits: GuestLimits | None = None,
        dialect: Dialect | str = "auto",
        label: str | None = None,
    ) -> Guest:
        """A new instance of ``module`` with its own Store, Client and WASI context (see :class:`Guest`).

        ``dialect`` "auto" takes the module's (``module.dialect``); ``label`` names it on the timeline.
        """
        if not isinstance(module, GuestModule):
            raise TypeError(f"instantiate takes what Session.compile returns, not {type(module).__name__}")
        if self.closed:
            raise GuestError("this Session is closed")
        guest = Guest(self, module, wasi or WasiOptions(), limits or GuestLimits(), dialect, label)
        self._guests.add(guest)
        return guest

    def run(self, source: bytes | str | Path, wasi: WasiOptions | None = None, **kwargs: Any) -> int:
        """Compile, instantiate and run a command guest; its exit code."""
        guest = self.instantiate(self.compile(source), wasi=wasi, **kwargs)
        try:
            return guest.run()
        finally:
            guest.close()

    # -- the epoch ticker: advances only while some guest runs -----------------------------------------------

    def _enter(self) -> None:
        with self._running_lock:
            self._running += 1
            self._ticking.set()
            if self._ticker is None:
                self._ticker = threading.Thread(
                    target=_tick, args=(self.engine, self._ticking, self._stopped), name="wasinn-epoch", daemon=True
                )
                self._ticker.start()

    def _leave(self) -> None:
        with self._running_lock:
            self._running -= 1
            if not self._running:
                self._ticking.clear()


def _tick(engine: Engine, ticking: threading.Event, stopped: threading.Event) -> None:
    while True:
        ticking.wait()
        if stopped.is_set():
            return
        time.sleep(TICK_S)
        engine.increment_epoch()


def _halt_ticker(ticking: threading.Event, stopped: threading.Event) -> None:
    stopped.set()
    ticking.set()


class Guest:
    """A guest instance: its Store and limits, its wasi-nn client, its WASI context, and the calls into it.

    Every call runs guarded (deadline, fuel, interrupts; on a worker thread when made from the main thread) and
    is recorded on the host's timeline as lifecycle events: ``instantiate``, ``run`` (each call, timed), and how
    a call ended where it did not return (``exit``, ``trap``, ``stopped``), then ``close``. ``client.id`` tells
    this instance apart from others with the same label.
    """

    def __init__(
        self,
        session: Session,
        module: GuestModule,
        wasi: WasiOptions,
        limits: GuestLimits,
        dialect: Dialect | str,
        label: str | None,
    ) -> None:
        start = time.perf_counter_ns()
        if limits.fuel is not None and not session.fuel:
            raise GuestError("a fuel budget needs Session(fuel=True)")
        self.session = session
        self.module = module
        self.limits = limits
        self.client = session.host.client(label)
        self.label = self.client.label
        self.id = self.client.id
        self._timeline = session.host.timeline
        self._closed = False
        # weakly: wasmtime keeps poll_oneoff's callback alive as long as the Store, which this Guest holds
        self.client.stop_check = stop_check = _weak_call(self._check_stop)
        if dialect == "auto":
            dialect = module.dialect
            log.debug("guest %s: %s errnos (%s)", self.label, dialect.value, module.dialect_reason)
        self.dialect = Dialect(dialect)
        self._stop_reason: str | None = None
        self._deadline: float | None = None
        self._abandoned = False  # see _watched: never entered again
        self._busy = threading.Lock()  # held while a call runs: one call at a time

        self.store = Store(session.engine)
        self.store.set_wasi(_wasi_config(wasi))  # before anything links WASI: see the module docstring
        wasi_origin = time.monotonic_ns()  # the guest's monotonic clock counts from here (within microseconds)
        self.store.set_limits(
            memory_size=limits.memory_bytes,
            table_elements=limits.table_elements,
            instances=limits.instances,
            tables=limits.tables,
            memories=1,
        )
        self._callback = _EPOCH_CALLBACK(self._on_epoch)
        ffi.wasmtime_store_epoch_deadline_callback(self.store.ptr(), self._callback, None, _NO_FINALIZER)

        detail = f"{module.name}, {self.dialect.value} errnos"
        linking = linking_for(self, module, stop_check, wasi_origin)
        if isinstance(linking, str):
            self.client.close()
            self._event("instantiate", start, outcome="error", detail=linking)
            raise GuestError(linking)
        self._linking: Linking = linking
        try:
            # a start function runs here: it must be stoppable like any other call
            self.instance = self._guarded(lambda: linking.instantiate(self.store), watch=None, export=None)
        except BaseException as exc:
            if not self._abandoned:  # an abandoned start function's worker closes the client when it returns
                self.client.close()
            self._event("instantiate", start, outcome=_outcome(exc), detail=detail)
            raise
        self._event("instantiate", start, detail=detail)

    # -- calling into the guest ----------------------------------------------------------------------------

    def exports(self) -> list[str]:
        return self.module.export_names

    def call(self, name: str, *args: Any, watch: bool | None = None) -> Any:
        """Call an exported function. ``watch`` (default: on the main thread) runs it so Ctrl-C can stop it.

        A call while another call of this guest runs on another thread raises GuestError: one Store, one caller.
        """
        export = self.module.export(name)
        if export is None:
            raise GuestError(f"the guest exports no function {name!r} (exports: {', '.join(self.exports())})")
        if export.kind != "func":
            raise GuestError(f"the guest's export {name!r} is not a function")

        def enter() -> Any:
            func = self._linking.function(self.store, name)
            if func is None:
                raise GuestError(f"the guest's export {name!r} is not a function")
            return func(self.store, *args)

        return self._guarded(enter, watch=watch, export=name)

    def call_u32(self, name: str, *args: int, watch: bool | None = None) -> int:
        """Call an export whose i32 parameters and result mean u32 (pointers, sizes, handles, errnos).

        Arguments from 0 to 2**32 - 1 go in as the i32 wasmtime takes, the result comes out as u32: the one place
        calls into a guest convert, as ``rawfunc`` is for calls out of it.
        """
        if self.module.kind == COMPONENT:  # a component's u32 is a u32 already
            return int(self.call(name, *args, watch=watch))
        result = self.call(name, *(_as_i32(a) for a in args), watch=watch)
        return int(result) & 0xFFFFFFFF

    def run(self, watch: bool | None = None) -> int:
        """Run a command guest's ``_start`` (a component's ``wasi:cli/run`` ``run``); its exit code (0 when it
        returns; 1 when a component's ``run`` returns its error)."""
        entry = "_start"
        if self.module.kind == COMPONENT:
            from .component.linking import command_export

            entry = command_export(self.module) or "wasi:cli/run@0.2.0#run"
        try:
            result = self.call(entry, watch=watch)
        except GuestExit as exc:
            return exc.code
        code = 1 if getattr(result, "tag", None) == "err" else 0  # wasi:cli/run returns result (a Variant)
        self._event("exit", outcome="ok" if code == 0 else f"exit {code}", detail=f"code {code}")
        return code

    def failed_last_call(self) -> str | None:
        """``call: message`` when this guest's last wasi-nn call failed, else None.

        A guest that ends badly right after a failed call most likely ended because of it, and printed only an
        errno; the host knows why (``load_by_name: no graph named 'resnet' (registered: cnn)``). Read from the
        timeline: cheap enough for an error path, not for every call.
        """
        record = self._timeline.last_call(self.id)  # read back from the newest row: no record made for the others
        if record is None or record.ok:
            return None
        return f"{record.call}: {self.client.last_error or record.outcome}"

    def memory(self) -> GuestMemory:
        """Bounds-checked views of the guest's exported ``memory``, valid until the guest next runs.

        A guest without one is a GuestError. Call ``refresh(guest.store)`` on it after the guest has run again.
        """
        exported = self._linking.memory(self.store)
        if exported is None:
            raise GuestError(f"guest {self.label!r} exports no memory")
        memory = GuestMemory()
        memory.memory = exported
        memory.refresh(self.store)
        return memory

    def interrupt(self, reason: str = "interrupted") -> None:
        """Stop the running call at the next epoch tick (from any thread)."""
        self._stop_reason = reason

    def _check_stop(self) -> str | None:
        """Why the running call must stop (interrupted, or past its deadline), or None. Any thread may ask."""
        reason = self._stop_reason
        if reason is None and self._deadline is not None and time.monotonic() > self._deadline:
            reason = self._stop_reason = f"deadline of {self.limits.deadline_s} s exceeded"
        return reason

    def _on_epoch(self, _ctx: Any, _data: Any, delta: Any, kind: Any) -> int:
        try:
            reason = self._check_stop()
            if reason is not None:
                err = ffi.wasmtime_error_new(reason.encode())
                return ctypes.cast(err, ctypes.c_void_p).value or 0
        except BaseException:  # noqa: BLE001 - nothing may escape into wasmtime
            pass
        delta[0] = 1
        kind[0] = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE
        return 0

    def _guarded(self, fn: Callable[[], Any], watch: bool | None, export: str | None) -> Any:
        """Run ``fn`` (which enters the guest) with deadline, fuel and interrupt handling.

        ``export`` names the function a call enters, for its ``run`` event (None: instantiation, recorded apart).
        """
        if self._abandoned:
            raise GuestError(
                f"guest {self.label!r} was abandoned while blocked in a host call after an interrupt; "
                "instantiate its module again"
            )
        if self._closed or self.session.closed:  # a closed session's ticker is gone: nothing could stop the guest
            raise GuestError(f"guest {self.label!r} is closed (or its session is); instantiate its module again")
        if not self._busy.acquire(blocking=False):
            raise GuestError(
                f"guest {self.label!r} is already running a call on another thread; a guest runs one call at a "
                "time (instantiate its module again for another thread)"
            )
        try:
            if watch is None:
                watch = threading.current_thread() is threading.main_thread()
            self._stop_reason = None
            limits = self.limits
            self._deadline = time.monotonic() + limits.deadline_s if limits.deadline_s else None
            if limits.fuel is not None:
                self.store.set_fuel(limits.fuel)
            elif self.session.fuel:
                self.store.set_fuel(2**63 - 1)
            self.store.set_epoch_deadline(1)
        except BaseException:
            self._busy.release()
            raise

        def call() -> Any:
            start = time.perf_counter_ns()
            try:
                self.session._enter()  # in the thread that runs the guest: ticks go on while it does
                try:
                    result = self._translate(fn)
                finally:
                    self.session._leave()
            except BaseException as exc:
                if export is not None:
                    self._event("run", start, outcome=_outcome(exc), detail=export)
                self._ended(exc)
                raise
            finally:
                self._busy.release()  # by the thread that ran it: an abandoned call holds it until it returns
            if export is not None:
                self._event("run", start, detail=export)
            return result

        return _watched(call, self) if watch else call()

    def _translate(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except ExitTrap as exc:
            raise GuestExit(exc.code) from None
        except Trap as exc:
            frames = _frames(exc)
            if exc.trap_code is wasmtime.TrapCode.OUT_OF_FUEL:
                raise GuestStopped(f"fuel budget of {self.limits.fuel} exhausted", frames) from None
            if exc.trap_code is wasmtime.TrapCode.INTERRUPT or self._stop_reason:
                raise GuestStopped(self._stop_reason or "interrupted", frames) from None
            raise GuestTrap(f"guest trapped: {one_line(exc.message)}", frames) from None
        except WasmtimeError as exc:
            if self._stop_reason:
                raise GuestStopped(self._stop_reason) from None
            raise GuestError(f"guest failed: {one_line(str(exc))}") from None

    # -- lifecycle events on the host's timeline ---------------------------------------------------------------

    def _event(self, event: str, start_ns: int | None = None, outcome: str = "ok", detail: str | None = None) -> None:
        try:
            self._timeline.event(event, self.label, self.id, start_ns=start_ns, outcome=outcome, detail=detail)
        except Exception:
            log.exception("timeline event %s failed", event)

    def _ended(self, exc: BaseException) -> None:
        """The event for how a call ended when it did not return: exit, trap or stopped."""
        if isinstance(exc, GuestExit):
            self._event("exit", outcome="ok" if exc.code == 0 else f"exit {exc.code}", detail=f"code {exc.code}")
        elif isinstance(exc, GuestTrap):
            self._event("trap", outcome="trap", detail=exc.message)
        elif isinstance(exc, GuestStopped):
            self._event("stopped", outcome="stopped", detail=exc.reason)

    def close(self) -> None:
        """Free the guest's wasi-nn handles; the Store goes with the last reference. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if not self._abandoned:  # an abandoned guest's worker frees them when its host call returns
            self.client.close()
            release = getattr(getattr(self, "_linking", None), "release", None)
            if release is not None:  # a component closes its Store now (component/linking.py says why)
                release(self.store)
        self._event("close")

    def __enter__(self) -> Guest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_i32(value: int) -> int:
    """A u32 as the signed i32 wasmtime takes (ValueError outside 0 to 2**32 - 1)."""
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{value} is not a u32")
    return value - (1 << 32) if value >= 1 << 31 else value


def _outcome(exc: BaseException) -> str:
    """How a call that raised ended, for its event's outcome."""
    if isinstance(exc, GuestExit):
        return "exit"
    if isinstance(exc, GuestTrap):
        return "trap"
    if isinstance(exc, GuestStopped | KeyboardInterrupt):
        return "stopped"
    return "error"


def _watched(fn: Callable[[], Any], guest: Guest) -> Any:
    """Run ``fn`` in a worker thread while this (main) thread waits, so Ctrl-C reaches Python and stops the guest.

    Epoch interruption stops a guest only while it runs wasm. One blocked inside a host call (a long model, a WASI
    sleep) gets ``INTERRUPT_GRACE_S`` to come back; after that it is abandoned: this thread returns at once, the
    worker finishes the host call on its own, the guest traps at its next epoch check, and the Guest refuses any
    further call. The user gets the notebook back either way.
    """
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = exc
        finally:
            with _ABANDON_LOCK:  # against the waiting thread deciding to abandon it at this very moment
                done.set()
                abandoned = guest._abandoned
            if abandoned:
                guest.client.close()

    try:
        worker = _guest_thread(work)
    except BaseException:
        guest._busy.release()  # fn never ran, so nothing else will
        raise
    interrupted_at: float | None = None
    while True:
        try:  # the whole body: Ctrl-C may land on any line of it
            if done.is_set():
                break
            done.wait(0.05)
            if interrupted_at is not None and time.monotonic() - interrupted_at > INTERRUPT_GRACE_S:
                with _ABANDON_LOCK:
                    if done.is_set():
                        continue
                    guest._abandoned = True
                    _ABANDONED.add(worker)
                reason = "interrupted (KeyboardInterrupt); the guest was blocked in a host call and is abandoned"
                guest._event("stopped", outcome="stopped", detail=reason)
                raise GuestStopped(reason)
        except KeyboardInterrupt:
            interrupted_at = interrupted_at or time.monotonic()
            guest.interrupt("interrupted (KeyboardInterrupt)")
    if "error" in box:
        raise box["error"]
    if interrupted_at is not None:
        raise GuestStopped("interrupted (KeyboardInterrupt)")
    return box.get("value")


_ABANDONED: weakref.WeakSet[threading.Thread] = weakref.WeakSet()  # workers left inside a host call
_ABANDON_LOCK = threading.Lock()  # abandoning a worker and its finishing are one or the other, never both
_STACK_LOCK = threading.Lock()


def abandoned_workers() -> list[threading.Thread]:
    """Worker threads of abandoned guests that are still inside their host call.

    A process should not shut its interpreter down under one (a torch forward running while Python finalizes
    ends in SIGABRT or SIGSEGV): the ``wasinn`` command leaves with ``os._exit`` while any is alive.
    """
    return [t for t in list(_ABANDONED) if t.is_alive()]


def _guest_thread(target: Callable[[], None]) -> threading.Thread:
    """Start ``target`` on a daemon thread with ``GUEST_THREAD_STACK`` of native stack, whatever ``ulimit -s`` is.

    The stack size is process-wide state in ``threading``: set it for this one start and put it back.
    """
    with _STACK_LOCK:
        previous = threading.stack_size(GUEST_THREAD_STACK)
        try:
            thread = threading.Thread(target=target, name="wasinn-guest", daemon=True)
            thread.start()
        finally:
            threading.stack_size(previous)
    return thread


def _weak_call(method: Callable[[], str | None]) -> Callable[[], str | None]:
    """``method`` through a weak reference (None once its object is gone), for callbacks wasmtime holds on to."""
    ref = weakref.WeakMethod(method)

    def call() -> str | None:
        bound = ref()
        return bound() if bound is not None else None

    return call


# -- wasmtime's words, made short -------------------------------------------------------------------------------

_GENERIC_HEADS = ("error while executing at wasm backtrace", "failed to compile")
_FUNCTION = re.compile(r"function\[(\d+)\]")
_WAT_POSITION = re.compile(r"-->\s*\S*?:(\d+):(\d+)")


def one_line(text: str) -> str:
    """wasmtime's error text as one line: its innermost cause, with the head where it says more than "failed".

    ``failed to compile: wasm[0]::function[0] / Caused by: 0: WebAssembly translation error / 1: Invalid input
    WebAssembly code at offset 24: type mismatch ...`` becomes ``Invalid input WebAssembly code at offset 24: type
    mismatch ... (function 0)``; a trap's backtrace and ``wasm trap:`` prefix go (the frames are kept apart); WAT
    that does not parse says its line and column instead of drawing a caret.
    """
    head, sep, causes = text.partition("Caused by:")
    where = _WAT_POSITION.search(head)
    head = head.strip().splitlines()[0].strip() if head.strip() else ""
    if not sep:
        if where:  # WAT text that does not parse: wasmtime points at it with a caret; say where in words
            return f"{head} (line {where.group(1)}, column {where.group(2)})"
        return head or text.strip()
    lines = [re.sub(r"^\d+:\s*", "", line.strip()) for line in causes.strip().splitlines() if line.strip()]
    cause = (lines[-1] if lines else head).removeprefix("wasm trap: ")
    if head.startswith("failed to compile"):
        function = _FUNCTION.search(head)
        return f"{cause} (function {function.group(1)})" if function else cause
    if not head or head.rstrip(":").startswith(_GENERIC_HEADS):
        return cause
    return f"{head.rstrip(':')}: {cause}"


def _frames(trap: Trap) -> list[str]:
    out = []
    try:
        for frame in trap.frames:
            name = demangle(frame.func_name) if frame.func_name else f"func[{frame.func_index}]"
            out.append(f"{frame.module_name or 'guest'}!{name} @ 0x{frame.module_offset:x}")
    except Exception:  # noqa: BLE001 - a backtrace is a nicety
        pass
    return out


_HASH = re.compile(r"h[0-9a-f]{16}")
_ESCAPES = {"SP": "@", "BP": "*", "RF": "&", "LT": "<", "GT": ">", "LP": "(", "RP": ")", "C": ","}


def demangle(name: str) -> str:
    """A Rust symbol (legacy mangling, ``_ZN...E``) as Rust writes the path, without its hash; others unchanged.

    ``_ZN3std2rt10lang_start28_$u7b$$u7b$closure$u7d$$u7d$17h07e5726c01e9a053E.llvm.2410`` is
    ``std::rt::lang_start::{{closure}}``. C names pass through; so do v0 (``_R``) and C++ names, which are left
    as the compiler wrote them rather than guessed at.
    """
    symbol = name.split(".llvm.", 1)[0]
    for prefix in ("__ZN", "_ZN", "ZN"):
        if symbol.startswith(prefix) and symbol.endswith("E"):
            body = symbol[len(prefix) : -1]
            break
    else:
        return name
    parts: list[str] = []
    at = 0
    while at < len(body):
        digits = at
        while digits < len(body) and body[digits].isdigit():
            digits += 1
        if digits == at:
            return name
        length = int(body[at:digits])
        part = body[digits : digits + length]
        if len(part) != length or not part:
            return name
        parts.append(part)
        at = digits + length
    if len(parts) > 1 and _HASH.fullmatch(parts[-1]):
        parts.pop()
    try:
        return "::".join(_unescape(p) for p in parts)
    except ValueError:
        return name


def _unescape(part: str) -> str:
    """One path segment of a legacy Rust symbol: ``$LT$`` and ``$u7b$`` escapes, ``..`` for ``::``."""
    if part.startswith("_$"):
        part = part[1:]
    out = []
    at = 0
    while at < len(part):
        char = part[at]
        if char == "." and part[at + 1 : at + 2] == ".":
            out.append("::")
            at += 2
        elif char == "$":
            end = part.find("$", at + 1)
            if end < 0:
                raise ValueError(part)
            escape = part[at + 1 : end]
            if escape in _ESCAPES:
                out.append(_ESCAPES[escape])
            elif escape.startswith("u"):
                out.append(chr(int(escape[1:], 16)))
            else:
                raise ValueError(part)
            at = end + 1
        else:
            out.append(char)
            at += 1
    return "".join(out)


# -- WASI -------------------------------------------------------------------------------------------------------


def _wasi_config(opts: WasiOptions) -> WasiConfig:
    """wasmtime's WASI context; what it cannot take (text that is not UTF-8, a directory it cannot open) is a
    GuestError naming the culprit, not an exception from deep inside wasmtime-py."""
    config = WasiConfig()
    for what, value in [
        *((f"argument {i}", a) for i, a in enumerate(opts.argv)),
        *((f"environment variable {k!r}", f"{k}={v}") for k, v in opts.env.items()),
        *((f"directory {h!r}", f"{h}{g}") for h, g in opts.dirs),
    ]:
        try:
            str(value).encode("utf-8")
        except UnicodeEncodeError:
            raise GuestError(f"{what} is not valid UTF-8: {value!r} (WASI passes UTF-8 text)") from None
    config.argv = list(opts.argv)
    config.env = list(opts.env.items())
    for host_dir, guest_dir in opts.dirs:
        try:
            config.preopen_dir(str(host_dir), guest_dir)
        except WasmtimeError as exc:
            raise GuestError(f"cannot preopen {str(host_dir)!r} as {guest_dir!r}: {exc}") from None
    if opts.stdout is None:
        config.inherit_stdout()
    else:
        config.stdout_custom = _writer(opts.stdout)
    if opts.stderr is None:
        config.inherit_stderr()
    else:
        config.stderr_custom = _writer(opts.stderr)
    return config


def _writer(out: Output) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        try:
            out(data)
        except Exception:
            log.exception("guest output sink failed")

    return write
