"""Progress of a map: done, failed and rate, drawn in a terminal (stderr, only a tty) or as a notebook widget.

A :class:`Progress` gets ``start(total)``, ``update(done, failed)`` after each finished input and ``close()``.
The widget imports ipywidgets only when made, so the command line and the host never load it.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO

BAR = 28
REDRAW_S = 0.1


class Progress(Protocol):
    def start(self, total: int) -> None: ...
    def update(self, done: int, failed: int) -> None: ...
    def close(self) -> None: ...


def describe(done: int, total: int, failed: int, elapsed_s: float) -> str:
    """``37/100 done, 1 failed, 12.3/s, eta 5 s``: the words both bars show."""
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    text = f"{done}/{total} done, {failed} failed, {rate:.1f}/s"
    if 0 < done < total and rate > 0:
        text += f", eta {(total - done) / rate:.0f} s"
    return text


class TerminalProgress:
    """A one-line bar redrawn on ``stream`` (stderr by default); draws nothing when the stream is not a tty."""

    def __init__(self, stream: TextIO | None = None, *, force: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = force or bool(getattr(self.stream, "isatty", lambda: False)())
        self.total = 0
        self._start = 0.0
        self._drawn = 0.0
        self._last = (0, 0)

    def start(self, total: int) -> None:
        self.total = total
        self._start = time.perf_counter()
        self._draw(0, 0)

    def update(self, done: int, failed: int) -> None:
        self._last = (done, failed)
        if time.perf_counter() - self._drawn >= REDRAW_S or done == self.total:
            self._draw(done, failed)

    def _draw(self, done: int, failed: int) -> None:
        if not self.enabled:
            return
        self._drawn = time.perf_counter()
        filled = BAR * done // self.total if self.total else BAR
        bar = "#" * filled + "." * (BAR - filled)
        words = describe(done, self.total, failed, self._drawn - self._start)
        self.stream.write(f"\r\x1b[2Kmap [{bar}] {words}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(*self._last)
            self.stream.write("\n")
            self.stream.flush()


class WidgetProgress:
    """An ipywidgets bar with the same words beside it (``%wasinn map`` in a notebook); failures turn it red."""

    def __init__(self, display: Any = None) -> None:
        import ipywidgets  # type: ignore[import-untyped]  # lazily: only a notebook front-end makes one

        self.bar = ipywidgets.IntProgress(value=0, min=0, max=1, description="map", bar_style="info")
        self.label = ipywidgets.Label(value="starting workers")
        self.widget = ipywidgets.HBox([self.bar, self.label])
        self.total = 0
        self._start = 0.0
        self._drawn = 0.0
        self._last = (0, 0)
        if display is None:
            from IPython.display import display
        display(self.widget)

    def start(self, total: int) -> None:
        self.total = total
        self.bar.max = max(total, 1)
        self._start = time.perf_counter()

    def update(self, done: int, failed: int) -> None:
        self._last = (done, failed)
        if time.perf_counter() - self._drawn >= REDRAW_S or done == self.total:
            self._draw(done, failed)

    def _draw(self, done: int, failed: int) -> None:
        self._drawn = time.perf_counter()
        self.bar.value = done
        if failed:
            self.bar.bar_style = "danger"
        self.label.value = describe(done, self.total, failed, self._drawn - self._start)

    def close(self) -> None:
        done, failed = self._last
        self._draw(done, failed)
        if not failed and done == self.total:
            self.bar.bar_style = "success"
