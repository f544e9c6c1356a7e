"""Engine, guests and their limits: where wasmtime meets the Host.

A :class:`Session` owns one wasmtime Engine (compiled-code cache on, epoch interruption on) and one :class:`Host`.
Each :class:`Guest` is a Store and an instance with its own wasi-nn :class:`Client`, WASI context and limits.

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

wasmtime 50 aborts the process if WASI is linked but the store has no WASI context: a Guest always sets one
before instantiating, and no other code in the package links WASI.
"""

from __future__ import annotations

import ctypes
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import Config, Engine, ExitTrap, Linker, Module, Store, Trap, WasiConfig, WasmtimeError
from wasmtime import _ffi as ffi

from .abi.dialect import DialectHint, guest_dialect, module_hint
from .abi.witx import MODULE as WITX_MODULE
from .abi.witx import WitxBinding
from .errors import Dialect
from .host import Host
from .wasi_poll import define_poll_oneoff

log = logging.getLogger(__name__)

TICK_S = 0.01
INTERRUPT_GRACE_S = 1.0  # how long an interrupted guest blocked in a host call may take to come back
GUEST_THREAD_STACK = 16 << 20  # native stack of the threads that run watched calls
WASM_STACK = 1 << 20  # wasm's share of a native stack: a guest past it traps (stack overflow)
Output = Callable[[bytes], None]

_EPOCH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.POINTER(ffi.wasmtime_context_t),
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ctypes.c_uint8),
)
_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_NO_FINALIZER = _FINALIZER(lambda _data: None)


class GuestError(Exception):
    """A guest could not be compiled or instantiated, or it trapped."""

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


@dataclass
class WasiOptions:
    """What the guest sees of the outside: argv, environment, preopened directories, where its output goes."""

    argv: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    dirs: Sequence[tuple[str, str]] = ()  # (host path, guest path)
    stdout: Output | None = None  # None: inherit the process's stdout
    stderr: Output | None = None


class Session:
    """One Engine and one Host; guests are instantiated from here."""

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
        self._running = 0
        self._running_lock = threading.Lock()
        self._ticking = threading.Event()
        self._stopped = threading.Event()
        self._ticker: threading.Thread | None = None
        # The ticker thread holds only the engine and the two events, so a Session that is dropped is collected,
        # and collecting (or closing) it ends the thread.
        self._halt = weakref.finalize(self, _halt_ticker, self._ticking, self._stopped)
        # what each module's bytes say of the host it was built for (see abi/dialect.py)
        self._hints: weakref.WeakKeyDictionary[Module, DialectHint] = weakref.WeakKeyDictionary()

    def close(self) -> None:
        """End the epoch ticker. Guests of this session should not be called afterwards."""
        self._halt()

    # -- compiling -----------------------------------------------------------------------------------------

    def compile(self, source: bytes | str | Path) -> Module:
        """A module from WAT text, wasm bytes, or a file holding either (an OSError if it cannot be read)."""
        if isinstance(source, Path):
            source = source.read_bytes()
        if isinstance(source, bytes) and not source.startswith(b"\0asm"):
            try:
                source = source.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise GuestError(
                    f"the module is neither wasm (no \\0asm header) nor UTF-8 WAT text: byte {exc.start} is not UTF-8"
                ) from None
        try:
            wasm = bytes(wasmtime.wat2wasm(source)) if isinstance(source, str) else source
            module = Module(self.engine, wasm)
        except WasmtimeError as exc:
            raise GuestError(f"the module does not compile: {exc}") from None
        self._hints[module] = module_hint(wasm)
        return module

    # -- instantiating -------------------------------------------------------------------------------------

    def instantiate(
        self,
        module: Module,
        *,
        wasi: WasiOptions | None = None,
        limits: GuestLimits | None = None,
        dialect: Dialect | str = "auto",
        label: str | None = None,
    ) -> Guest:
        return Guest(self, module, wasi or WasiOptions(), limits or GuestLimits(), dialect, label)

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
    """A guest instance: its Store, its wasi-nn client and its WASI context."""

    def __init__(
        self,
        session: Session,
        module: Module,
        wasi: WasiOptions,
        limits: GuestLimits,
        dialect: Dialect | str,
        label: str | None,
    ) -> None:
        if limits.fuel is not None and not session.fuel:
            raise GuestError("a fuel budget needs Session(fuel=True)")
        self.session = session
        self.module = module
        self.limits = limits
        self.client = session.host.client(label)
        self.label = self.client.label
        # weakly: wasmtime keeps poll_oneoff's callback alive as long as the Store, which this Guest holds
        self.client.stop_check = stop_check = _weak_call(self._check_stop)
        nn_imports = {i.name for i in module.imports if i.module == WITX_MODULE and i.name}
        if dialect == "auto":
            dialect, why = guest_dialect(nn_imports, session._hints.get(module))
            log.debug("guest %s: %s errnos (%s)", self.label, dialect.value, why)
        self.dialect = Dialect(dialect)
        self._stop_reason: str | None = None
        self._deadline: float | None = None
        self._abandoned = False  # see _watched: never entered again
        self._busy = threading.Lock()  # held while a call runs: one call at a time
        self._export_names = frozenset(e.name for e in module.exports)

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

        linker = Linker(session.engine)
        linker.define_wasi()
        define_poll_oneoff(linker, session.engine, stop_check, wasi_origin)
        self.binding = WitxBinding(self.client, self.dialect)
        self.binding.define(linker)
        # a start function runs here: it must be stoppable like any other call
        self.instance = self._guarded(lambda: linker.instantiate(self.store, module), watch=None)
        memory = self.instance.exports(self.store).get("memory")
        if isinstance(memory, wasmtime.Memory):
            self.binding.memory.memory = memory

    # -- calling into the guest ----------------------------------------------------------------------------

    def exports(self) -> list[str]:
        return [e.name for e in self.module.exports]

    def call(self, name: str, *args: Any, watch: bool | None = None) -> Any:
        """Call an exported function. ``watch`` (default: on the main thread) runs it so Ctrl-C can stop it.

        A call while another call of this guest runs on another thread raises GuestError: one Store, one caller.
        """
        if name not in self._export_names:
            raise GuestError(f"the guest exports no function {name!r} (exports: {', '.join(self.exports())})")

        def enter() -> Any:
            func = self.instance.exports(self.store).get(name)
            if not isinstance(func, wasmtime.Func):
                raise GuestError(f"the guest's export {name!r} is not a function")
            return func(self.store, *args)

        return self._guarded(enter, watch=watch)

    def run(self, watch: bool | None = None) -> int:
        """Run a command guest's ``_start``; its exit code (0 when it returns)."""
        try:
            self.call("_start", watch=watch)
        except GuestExit as exc:
            return exc.code
        return 0

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

    def _guarded(self, fn: Callable[[], Any], watch: bool | None) -> Any:
        """Run ``fn`` (which enters the guest) with deadline, fuel and interrupt handling."""
        if self._abandoned:
            raise GuestError(
                f"guest {self.label!r} was abandoned while blocked in a host call after an interrupt; "
                "instantiate its module again"
            )
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
            try:
                self.session._enter()  # in the thread that runs the guest: ticks go on while it does
                try:
                    return self._translate(fn)
                finally:
                    self.session._leave()
            finally:
                self._busy.release()  # by the thread that ran it: an abandoned call holds it until it returns

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
            raise GuestTrap(f"guest trapped: {exc.message}", frames) from None
        except WasmtimeError as exc:
            if self._stop_reason:
                raise GuestStopped(self._stop_reason) from None
            raise GuestError(f"guest failed: {exc}") from None

    def close(self) -> None:
        """Free the guest's wasi-nn handles; the Store goes with the last reference."""
        if not self._abandoned:  # an abandoned guest's worker frees them when its host call returns
            self.client.close()

    def __enter__(self) -> Guest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
            done.set()
            if guest._abandoned:
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
            if interrupted_at is not None and not done.is_set():
                if time.monotonic() - interrupted_at > INTERRUPT_GRACE_S:
                    guest._abandoned = True
                    _ABANDONED.add(worker)
                    raise GuestStopped(
                        "interrupted (KeyboardInterrupt); the guest was blocked in a host call and is abandoned"
                    )
        except KeyboardInterrupt:
            interrupted_at = interrupted_at or time.monotonic()
            guest.interrupt("interrupted (KeyboardInterrupt)")
    if "error" in box:
        raise box["error"]
    if interrupted_at is not None:
        raise GuestStopped("interrupted (KeyboardInterrupt)")
    return box.get("value")


_ABANDONED: weakref.WeakSet[threading.Thread] = weakref.WeakSet()  # workers left inside a host call
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


def _frames(trap: Trap) -> list[str]:
    out = []
    try:
        for frame in trap.frames:
            name = frame.func_name or f"func[{frame.func_index}]"
            out.append(f"{frame.module_name or 'guest'}!{name} @ 0x{frame.module_offset:x}")
    except Exception:  # noqa: BLE001 - a backtrace is a nicety
        pass
    return out


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
