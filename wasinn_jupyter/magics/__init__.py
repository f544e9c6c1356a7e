"""IPython magics for wasi-nn guests: ``%load_ext wasinn_jupyter``, then ``%wasinn --help``.

The magics are a thin front-end over :mod:`wasinn_jupyter.host` (Session, Host, Guest) and
:mod:`wasinn_jupyter.guests` (compilers, the compute convention); they add parsing, display and short errors.
"""

from __future__ import annotations

from typing import Any

from .core import WasinnMagics, usage
from .display import GraphCard, GuestCard, Listing, WasinnError

__all__ = [
    "GraphCard",
    "GuestCard",
    "Listing",
    "WasinnError",
    "WasinnMagics",
    "load_ipython_extension",
    "unload_ipython_extension",
    "usage",
]


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%wasinn`` on ``ipython`` and make ``%config WasinnMagics`` see its settings."""
    if any(isinstance(c, WasinnMagics) for c in ipython.configurables):
        return
    ipython.register_magics(WasinnMagics(ipython))  # Magics.__init__ adds itself to ipython.configurables


def unload_ipython_extension(ipython: Any) -> None:
    """Remove ``%wasinn``, and drop the guests and graphs it held."""
    for magics in [c for c in ipython.configurables if isinstance(c, WasinnMagics)]:
        if hasattr(magics, "guests"):  # not a half-made one (a bad %config value stops __init__ midway)
            magics.close()
        ipython.configurables.remove(magics)
    manager = ipython.magics_manager
    for kind in ("line", "cell"):
        manager.magics[kind].pop("wasinn", None)
    manager.registry.pop(WasinnMagics.__name__, None)
