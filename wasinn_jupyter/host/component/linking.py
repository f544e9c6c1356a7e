"""A component guest in a Guest's Store: WASI preview 2 plus WIT ``wasi:nn``, and calls into its exports.

The Guest (``session.py``) gives every guest the same Store, limits, epochs, interrupts and lifecycle events; this
is the component half of ``linking.py``. Exports are named as the Guest lists them: top-level functions by name,
functions of exported interfaces as ``interface#function`` (a command's ``wasi:cli/run@0.2.x#run``).

A component instance that trapped (a host stop, ``exit``, a fault) can never be entered again: wasmtime refuses
with "cannot enter component instance". The linking remembers why it died and every later call says so, in one
line, instead. wasmtime lifts a ``list<u8>`` that a guest passes to the host with a fixed "hostcall fuel" of about
2.67 MiB that nothing in its C API raises: the trap that causes is told as such, with the way around it.
"""

from __future__ import annotations

import atexit
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import wasmtime
from wasmtime import Store, Trap, WasmtimeError
from wasmtime.component import Component, Instance, Linker

from ..module import GuestModule
from .bindings import ComponentFault, WitBinding
from .values import HostFault

if TYPE_CHECKING:
    from ..session import Guest

# wasmtime 50 lifts what a guest passes to a host function with 128 MiB of "hostcall fuel" at 48 bytes per value:
# one list<u8> of 2,796,202 bytes passes (the call's other arguments take their share), 2,796,203 do not.
GUEST_TO_HOST_LIST_LIMIT = 2_796_202
HOSTCALL_FUEL_MESSAGE = "fuel allocated for hostcalls has been exhausted"
CLI_RUN = "wasi:cli/run@"


def hostcall_fuel_hint() -> str:
    return (
        f"a list passed from the guest to the host was too large for wasmtime's component calls (list<u8> up to "
        f"{GUEST_TO_HOST_LIST_LIMIT:,} bytes, about 2.67 MiB: wasmtime's fixed hostcall fuel). Send smaller "
        "tensors, or use a core module with the witx wasi-nn ABI, which has no such limit"
    )


class WitComponent:
    """A component linked with WASI preview 2 and the WIT ``wasi:nn`` interfaces, bound to the guest's Client."""

    abi = "wit"

    def __init__(self, guest: Guest, module: GuestModule) -> None:
        self._component: Component = module._compiled
        self._linker = Linker(guest.session.engine)
        self._linker.add_wasip2()
        self.binding = WitBinding(guest.client)
        self.binding.define(self._linker)
        self.instance: Instance | None = None
        self.dead: str | None = None  # why the instance can no longer be entered
        self._label = guest.label
        self._stopping = weakref.WeakMethod(guest._check_stop)  # a host stop is told by the Guest, not here
        _STORES.add(guest.store)

    def instantiate(self, store: Store) -> Instance:
        try:
            self.instance = self._linker.instantiate(store, self._component)
        except (WasmtimeError, ComponentFault) as exc:  # a start function's fault, told like a call's
            raise _explained(exc) from None
        return self.instance

    def function(self, store: Store, name: str) -> Callable[..., Any] | None:
        if self.instance is None:
            return None
        interface, _, func_name = name.rpartition("#")
        where = None
        if interface:
            where = self.instance.get_export_index(store, interface)
            if where is None:
                return None
        index = self.instance.get_export_index(store, func_name, where)
        func = self.instance.get_func(store, index) if index is not None else None
        if func is None:
            return None

        def call(store: Store, *args: Any) -> Any:
            if self.dead is not None:
                from ..session import GuestError

                raise GuestError(
                    f"component {self._label!r} cannot be entered again: it trapped earlier ({self.dead}); "
                    "a component instance is dead after a trap, instantiate it again"
                )
            try:
                result = func(store, *args)
                func.post_return(store)
            except BaseException as exc:
                if not isinstance(exc, WasmtimeError | Trap | HostFault):
                    raise  # refused before the guest was entered (arguments of the wrong type): still alive
                check = self._stopping()
                explained = exc if check is not None and check() else _explained(exc)
                said = getattr(explained, "message", None) or str(explained).splitlines()[0]
                self.dead = said.removeprefix("guest trapped: ")
                if explained is exc:
                    raise
                raise explained from None
            return result

        return call

    def memory(self, store: Store) -> wasmtime.Memory | None:
        return None  # a component exports no memory to its host

    def release(self, store: Store) -> None:
        """The guest closed: give back its tensors' budget and close its Store now (see :func:`_close_stores`)."""
        self.binding.release_all()
        _STORES.discard(store)
        store.close()


# A component's Store holds WASI preview 2 state that wasmtime flushes and frees on tokio worker threads, which
# may call back into Python (a guest's stdout sink). Dropped while the interpreter finalizes, such a callback
# finds no Python and the process aborts ("panic in a function that cannot unwind"). So Stores are closed when
# their guest closes, and any still open when the interpreter exits are closed before it finalizes.
_STORES: weakref.WeakSet[Store] = weakref.WeakSet()


@atexit.register
def _close_stores() -> None:
    for store in list(_STORES):
        try:
            store.close()
        except Exception:  # noqa: BLE001 - exiting anyway
            pass


def _explained(exc: BaseException) -> BaseException:
    """The exception a caller should see: ours for a host fault or the hostcall-fuel trap, else ``exc`` itself."""
    from ..session import GuestTrap, one_line

    if isinstance(exc, HostFault):
        return GuestTrap(f"guest trapped: {exc}")
    if isinstance(exc, WasmtimeError) and HOSTCALL_FUEL_MESSAGE in str(exc):
        return GuestTrap(f"guest trapped: {hostcall_fuel_hint()}")
    if type(exc) is WasmtimeError:  # the component model's own checks (a bad handle, say): a trap for a guest
        return GuestTrap(f"guest trapped: {one_line(str(exc))}")
    return exc


def command_export(module: GuestModule) -> str | None:
    """The function a command component runs (``wasi:cli/run@0.2.x#run``), or None."""
    for export in module.exports:
        if export.name.startswith(CLI_RUN) and export.name.endswith("#run"):
            return export.name
    return None
