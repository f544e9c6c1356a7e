"""The kernel's one workbench: what outlives ``%wasinn reset``, for widgets and a side panel to subscribe to once.

The ``%wasinn`` magics own their :class:`~wasinn_jupyter.host.Session` privately and replace it on
``%wasinn reset`` (and drop it on ``%unload_ext``): a new Host, new graphs, a new timeline. Anything that shows
the session (a widget, the JupyterLab panel) would have to find the new one each time; instead it subscribes
here, once per process::

    from wasinn_jupyter.magics import workbench

    bench = workbench()
    bench.on_session_replaced(lambda session: ...)   # the new Session, or None until the magics next need one
    bench.on_record(lambda record: ...)               # every timeline record of whichever session is current

Callbacks run on the thread that caused them (records: a guest's thread, during its calls), so they should
only queue what they get; one that raises is logged and the others still run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..host import CallRecord, Session

log = logging.getLogger(__name__)

SessionListener = Callable[["Session | None"], None]
RecordListener = Callable[["CallRecord"], None]


class Workbench:
    """The process's view of the magics' current session: which one it is, when it changes, what it records."""

    def __init__(self) -> None:
        self._session: Session | None = None
        self._generation = 0
        self._on_replaced: list[SessionListener] = []
        self._on_record: list[RecordListener] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._lock = threading.Lock()

    @property
    def session(self) -> Session | None:
        """The magics' current session (read it, do not close it); None before first use or right after a reset."""
        return self._session

    @property
    def generation(self) -> int:
        """How many times the session was replaced: a widget can tell a stale view by it."""
        return self._generation

    def on_session_replaced(self, listener: SessionListener) -> Callable[[], None]:
        """Call ``listener(new_session_or_None)`` whenever the magics replace their session; returns the
        function that unsubscribes it."""
        return self._subscribe(self._on_replaced, listener)

    def on_record(self, listener: RecordListener) -> Callable[[], None]:
        """Call ``listener(record)`` for each timeline record of the current session, across resets; returns the
        function that unsubscribes it."""
        return self._subscribe(self._on_record, listener)

    def _subscribe(self, listeners: list[Callable[..., None]], listener: Callable[..., None]) -> Callable[[], None]:
        with self._lock:
            listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in listeners:
                    listeners.remove(listener)

        return unsubscribe

    def _replace(self, session: Session | None) -> None:
        """Make ``session`` the current one and tell the listeners (the magics call this; nothing else should)."""
        with self._lock:
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            self._session = session
            self._generation += 1
            if session is not None:
                self._unsubscribe = session.host.timeline.subscribe(self._forward)
            listeners = list(self._on_replaced)
        for listener in listeners:
            try:
                listener(session)
            except Exception:
                log.exception("a session_replaced listener failed")

    def _forward(self, record: CallRecord) -> None:
        for listener in list(self._on_record):
            try:
                listener(record)
            except Exception:
                log.exception("a record listener failed")


_WORKBENCH = Workbench()


def workbench() -> Workbench:
    """The process's one :class:`Workbench` (it outlives resets and reloads of the extension)."""
    return _WORKBENCH
