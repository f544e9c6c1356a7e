"""IPython magics for wasi-nn guests: ``%load_ext wasinn_jupyter``, then ``%wasinn --help``.

The magics are a thin front-end over :mod:`wasinn_jupyter.host` (Session, Host, Guest) and
:mod:`wasinn_jupyter.guests` (compilers, the driver guest); they add parsing, display and short errors
(:class:`CellError`). Their session is private and replaced on ``%wasinn reset``; :func:`workbench` is the one
object per process that says when, and forwards the current session's timeline, for widgets and panels.
"""

from __future__ import annotations

from typing import Any

from .core import WasinnMagics, usage
from .display import CellError, GraphCard, GuestCard, Listing
from .workbench import Workbench, workbench

__all__ = [
    "CellError",
    "GraphCard",
    "GuestCard",
    "Listing",
    "WasinnMagics",
    "Workbench",
    "load_ipython_extension",
    "unload_ipython_extension",
    "usage",
    "workbench",
]


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%wasinn`` on ``ipython`` and make ``%config WasinnMagics`` see its settings."""
    if any(isinstance(c, WasinnMagics) for c in ipython.configurables):
        return
    ipython.register_magics(WasinnMagics(ipython))  # Magics.__init__ adds itself to ipython.configurables
    from ..panel import load as load_panel_feed

    load_panel_feed(ipython)  # in a kernel: the comm that feeds the JupyterLab timeline panel


def unload_ipython_extension(ipython: Any) -> None:
    """Remove ``%wasinn``, and drop the guests and graphs it held."""
    from ..panel import unload as unload_panel_feed

    unload_panel_feed(ipython)
    for magics in [c for c in ipython.configurables if isinstance(c, WasinnMagics)]:
        if hasattr(magics, "guests"):  # not a half-made one (a bad %config value stops __init__ midway)
            magics.close()
        ipython.configurables.remove(magics)
    manager = ipython.magics_manager
    for kind in ("line", "cell"):
        manager.magics[kind].pop("wasinn", None)
    manager.registry.pop(WasinnMagics.__name__, None)
