"""The per-ABI half of a guest: how its module is linked into the guest's Store, and how its exports are reached.

A :class:`~.session.Guest` is what every guest has (a Store with its limits, epochs and interrupts, the worker
thread that runs calls, the lifecycle events); it hands the linking to one of these, chosen by the module's kind:

- :class:`WitxCore`: a core module, with WASI preview 1 (our stoppable ``poll_oneoff`` over wasmtime's) and the
  legacy witx wasi-nn functions (``abi/witx.py``) bound to the guest's Client. Every guest today.
- :class:`~.component.linking.WitComponent`: a component, with WASI preview 2 and the WIT ``wasi:nn`` interfaces
  (``component/bindings.py``).

Each class only links and looks things up; calls into the guest go through the Guest, which guards them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import wasmtime
from wasmtime import Linker, Store

from .abi.witx import WitxBinding
from .module import CORE, GuestModule
from .wasi_poll import define_poll_oneoff

if TYPE_CHECKING:
    from .session import Guest


class Linking(Protocol):
    """What a Guest needs from the ABI side: instantiate once, then find exported functions and the memory."""

    abi: str

    def instantiate(self, store: Store) -> Any:
        """Link and instantiate the module in ``store`` (a start function runs here, inside the Guest's guard)."""
        ...

    def function(self, store: Store, name: str) -> Callable[..., Any] | None:
        """The export ``name`` as a callable ``f(store, *args)``, or None if it is not a function."""
        ...

    def memory(self, store: Store) -> wasmtime.Memory | None:
        """The exported linear memory named ``memory``, if any."""
        ...


class WitxCore:
    """A core module linked with WASI preview 1 and the witx ``wasi_ephemeral_nn`` functions."""

    abi = "witx"

    def __init__(self, guest: Guest, module: GuestModule, stop_check: Callable[[], str | None], origin_ns: int) -> None:
        engine = guest.session.engine
        self._module: wasmtime.Module = module._compiled
        self._linker = Linker(engine)
        self._linker.define_wasi()
        define_poll_oneoff(self._linker, engine, stop_check, origin_ns)
        self.binding = WitxBinding(guest.client, guest.dialect)
        self.binding.define(self._linker)
        self.instance: wasmtime.Instance | None = None

    def instantiate(self, store: Store) -> wasmtime.Instance:
        self.instance = self._linker.instantiate(store, self._module)
        memory = self.memory(store)
        if memory is not None:
            self.binding.memory.memory = memory
        return self.instance

    def function(self, store: Store, name: str) -> Callable[..., Any] | None:
        found = self.instance.exports(store).get(name) if self.instance is not None else None
        return found if isinstance(found, wasmtime.Func) else None

    def memory(self, store: Store) -> wasmtime.Memory | None:
        found = self.instance.exports(store).get("memory") if self.instance is not None else None
        return found if isinstance(found, wasmtime.Memory) else None


def linking_for(
    guest: Guest, module: GuestModule, stop_check: Callable[[], str | None], origin_ns: int
) -> Linking | str:
    """The linking for ``module``'s kind, or why this host cannot instantiate it (a sentence)."""
    if module.kind == CORE:
        return WitxCore(guest, module, stop_check, origin_ns)
    from .component.linking import WitComponent  # WASI preview 2 and WIT wasi:nn

    return WitComponent(guest, module)
