"""wasinn-jupyter: a Jupyter workbench for wasi-nn. The Jupyter-free core is :mod:`wasinn_jupyter.host`."""

from __future__ import annotations

from typing import Any

from ._version import __version__

__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext wasinn_jupyter``: register the ``%wasinn`` magics (imported only now: nothing heavy on import)."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext wasinn_jupyter``: remove the magics and drop their guests and graphs."""
    from .magics import unload_ipython_extension as unload

    unload(ipython)
