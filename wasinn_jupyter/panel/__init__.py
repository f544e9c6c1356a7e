"""The kernel side of the JupyterLab "wasi-nn timeline" panel (the TypeScript side is the top-level labextension/).

``%load_ext wasinn_jupyter`` calls :func:`load` in a kernel: it registers the comm target :data:`TARGET` and
starts the :class:`TimelineFeed` that streams the magics' timeline records to the panel (see :mod:`.feed` for the
protocol). In a shell without a kernel (terminal IPython, tests) it does nothing.
"""

from __future__ import annotations

from typing import Any

from .feed import TARGET, TimelineFeed, encode

__all__ = ["TARGET", "TimelineFeed", "encode", "feed", "load", "unload"]

_FEED: TimelineFeed | None = None


def feed() -> TimelineFeed | None:
    """The kernel's running feed, if the extension is loaded in a kernel."""
    return _FEED


def load(ipython: Any) -> TimelineFeed | None:
    """Start the feed for ``ipython``'s kernel (once per process; a second call returns the running one)."""
    global _FEED
    kernel = getattr(ipython, "kernel", None)
    manager = getattr(kernel, "comm_manager", None)
    if manager is None:
        return None
    if _FEED is None:
        from ..magics.workbench import workbench

        _FEED = TimelineFeed(workbench())
        manager.register_target(TARGET, _FEED.on_comm_open)
        _FEED.start(announce=True)
    return _FEED


def unload(ipython: Any) -> None:
    """Stop the feed and unregister the target (``%unload_ext``)."""
    global _FEED
    if _FEED is None:
        return
    _FEED.stop()
    manager = getattr(getattr(ipython, "kernel", None), "comm_manager", None)
    if manager is not None:
        manager.unregister_target(TARGET, _FEED.on_comm_open)
    _FEED = None
