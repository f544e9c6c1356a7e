"""Ray, optional: imported only here and only when a Ray path is asked for, with the install hint where it is absent.

``connect`` joins the cluster a front-end names: ``auto`` is Ray's own default (the cluster ``RAY_ADDRESS`` or a
``ray start`` on this machine names, else a new local one), ``local`` always starts a local one with this
machine's CPUs and no dashboard, anything else is an address (``HOST:6379``, ``ray://HOST:10001``). A process
already connected stays on its cluster.

Nodes of a cluster need this package installed (and torch); the guest, the models and the inputs travel through
Ray's object store, so they need none of the caller's files.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Iterator
from types import ModuleType

from ..host import WasinnError

INSTALL_HINT = "pip install 'wasinn-jupyter[ray]'  (or: pip install ray)"


class RayMissing(WasinnError):
    """Ray is not installed: the message says how to install it."""


# The signals wasmtime turns into guest traps (an out-of-bounds access, `unreachable`, a division by zero). Ray's
# core worker installs crash handlers for them when it connects, in front of wasmtime's: a guest's trap then ends
# the whole process (a notebook's kernel) instead of the guest's call. So the handlers in place before Ray connects
# are put back after it has; a crash of Ray's own code still reaches them and ends the process as it would.
_TRAP_SIGNALS = (signal.SIGSEGV, signal.SIGILL, signal.SIGFPE, signal.SIGBUS)
_SIGACTION_BYTES = 256  # more than any libc's struct sigaction: it is only copied out and back


@contextlib.contextmanager
def keeping_trap_handlers() -> Iterator[None]:
    """Run the body (a ``ray.init``), then restore the process's handlers of the signals wasmtime traps with."""
    libc = ctypes.CDLL(None, use_errno=True)
    saved = {}
    for sig in _TRAP_SIGNALS:
        action = ctypes.create_string_buffer(_SIGACTION_BYTES)
        if libc.sigaction(int(sig), None, action) == 0:
            saved[sig] = action
    try:
        yield
    finally:
        for sig, action in saved.items():
            libc.sigaction(int(sig), action, None)


def require_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise RayMissing(f"Ray is not installed; {INSTALL_HINT}") from None
    return ray


def connect(address: str = "auto") -> ModuleType:
    """The ``ray`` module, connected to the cluster ``address`` names (see the module docstring)."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    quiet = {"include_dashboard": False, "configure_logging": False}
    try:
        if address == "local":
            start_local()
        elif address == "auto":
            with keeping_trap_handlers():
                ray.init(**quiet)
        else:
            with keeping_trap_handlers():
                ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise WasinnError(f"cannot connect to the Ray cluster {address!r}: {exc}") from None
    return ray


def actor_died(exc: BaseException) -> bool:
    """Whether ``exc`` says an actor died or could not be reached (rather than its method raising)."""
    ray = require_ray()
    return isinstance(exc, (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError))


def start_local(num_cpus: int | None = None, attempts: int = 3) -> ModuleType:
    """Start a local Ray cluster on 127.0.0.1 (``num_cpus``: this machine's by default; no dashboard).

    Ray gives its raylet 30 s to come up, which a loaded small machine can miss: it tries ``attempts`` times.
    """
    ray = require_ray()
    for attempt in range(1, attempts + 1):
        try:
            with keeping_trap_handlers():
                ray.init(
                    address="local",
                    num_cpus=num_cpus or os.cpu_count() or 1,
                    include_dashboard=False,
                    configure_logging=False,
                    _node_ip_address="127.0.0.1",
                )
            return ray
        except Exception:
            ray.shutdown()
            if attempt == attempts:
                raise
    return ray
