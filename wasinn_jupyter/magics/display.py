"""What the magics show: graph and guest cards, listings, progress lines, guest output, short errors.

Every object here has a plain-text form (terminal IPython, ``%wasinn list`` in a test) and, where a table reads
better, an HTML form for notebooks. :class:`CellError` carries ``_render_traceback_`` so IPython shows its few lines
instead of a Python traceback, while the cell still fails (``Run All`` stops there, nbclient sees an error).
"""

from __future__ import annotations

import codecs
import contextvars
import html
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..host import GraphInfo, TensorInfo, WasinnError, WasiOptions

RED, BOLD, RESET = "\x1b[31m", "\x1b[1m", "\x1b[0m"


class CellError(WasinnError):
    """A cell asked for something that could not be done (a bad argument, a compile error, a trap, an errno).

    Shown as its title and details, without a traceback (``_render_traceback_``), and the cell fails: ``Run All``
    stops there and nbclient/nbconvert report an error. Bad magic arguments are CellErrors too, not IPython's
    UsageError, which a kernel shows as text on stderr rather than as the cell's error.
    """

    def __init__(self, title: str, details: str = "") -> None:
        super().__init__(f"{title}\n{details}".rstrip())
        self.title = title
        self.details = details

    def _render_traceback_(self) -> list[str]:
        lines = [f"{RED}{BOLD}wasinn:{RESET} {RED}{self.title}{RESET}"]
        if self.details:
            lines += self.details.rstrip().splitlines()
        return lines


# -- graphs and guests ----------------------------------------------------------------------------------------


def _dims(dims: Sequence[int | None] | None) -> str:
    if dims is None:
        return ""
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _tensor(t: TensorInfo) -> str:
    if t.type is None and t.dims is None:
        return f"{t.name} (type and shape not declared)"
    return f"{t.name}: {t.type or '?'} {_dims(t.dims)}".rstrip()


def _tensors(items: list[TensorInfo] | None, unknown: str) -> list[str]:
    return [_tensor(t) for t in items] if items else [unknown]


def _count(n: int | None) -> str:
    return "unknown" if n is None else f"{n:,}"


@dataclass
class GraphCard:
    """One registered graph: inputs and outputs where known, device, dtypes, parameter count.

    ``seen_outputs``: what the last ``%%wasinn compute`` of this graph gave, where the graph declares nothing.
    """

    info: GraphInfo
    seen_outputs: list[TensorInfo] | None = None

    def rows(self) -> list[tuple[str, str]]:
        i = self.info
        dtypes = f" ({', '.join(i.dtypes)})" if i.dtypes else ""
        rows = [
            ("kind", i.kind),
            ("device", i.device),
            ("parameters", _count(i.parameters) + dtypes),
            ("inputs", "; ".join(_tensors(i.inputs, "not declared"))),
            ("outputs", self._outputs()),
        ]
        if i.source:
            rows.append(("source", i.source))
        rows += [("note", n) for n in i.notes]
        return rows

    def _outputs(self) -> str:
        if self.info.outputs:
            return "; ".join(_tensors(self.info.outputs, ""))
        if self.seen_outputs:
            return "; ".join(_tensors(self.seen_outputs, "")) + " (as the last compute gave them)"
        return "known after a compute"

    def __repr__(self) -> str:
        width = max(len(k) for k, _ in self.rows())
        lines = [f"graph {self.info.name!r}"]
        lines += [f"  {k.ljust(width)}  {v}" for k, v in self.rows()]
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def _repr_html_(self) -> str:
        return _html_table(f"graph <code>{html.escape(self.info.name)}</code>", self.rows())


@dataclass
class GuestSummary:
    """What the magics know of a guest, for cards and listings."""

    name: str
    lang: str
    toolchain: str
    size: int
    kind: str  # command, reactor
    exports: list[str]
    nn_imports: list[str]
    compute: bool
    cached_at: str | None = None

    def usage(self) -> str:
        ways = []
        if self.kind == "command":
            ways.append(f"%wasinn run {self.name} [ARGS...]")
        if self.compute:
            ways.append(f"%%wasinn compute GRAPH --guest {self.name}")
        return " · ".join(ways) or "call its exports from Python"


@dataclass
class GuestCard:
    guest: GuestSummary

    def rows(self) -> list[tuple[str, str]]:
        g = self.guest
        rows = [
            ("language", f"{g.lang} ({g.toolchain})"),
            ("module", f"{_size(g.size)}, {g.kind}"),
            ("exports", ", ".join(g.exports) or "none"),
            ("wasi-nn", ", ".join(g.nn_imports) or "no wasi-nn imports"),
            ("use", g.usage()),
        ]
        if g.cached_at:
            rows.append(("cached", g.cached_at))
        return rows

    def __repr__(self) -> str:
        width = max(len(k) for k, _ in self.rows())
        return "\n".join([f"guest {self.guest.name!r}"] + [f"  {k.ljust(width)}  {v}" for k, v in self.rows()])

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def _repr_html_(self) -> str:
        return _html_table(f"guest <code>{html.escape(self.guest.name)}</code>", self.rows())


GRAPH_COLUMNS = ["name", "kind", "device", "parameters"]
GUEST_COLUMNS = ["name", "language", "kind", "size", "use"]


@dataclass
class Listing:
    """``%wasinn list``: the registered graphs and the compiled guests."""

    graphs: list[GraphInfo] = field(default_factory=list)
    guests: list[GuestSummary] = field(default_factory=list)

    def graph_rows(self) -> list[list[str]]:
        return [[g.name, g.kind, g.device, _count(g.parameters)] for g in self.graphs]

    def guest_rows(self) -> list[list[str]]:
        return [[g.name, g.lang, g.kind, _size(g.size), g.usage()] for g in self.guests]

    def __repr__(self) -> str:
        out = []
        for title, head, rows in (
            ("graphs", GRAPH_COLUMNS, self.graph_rows()),
            ("guests", GUEST_COLUMNS, self.guest_rows()),
        ):
            if not rows:
                out.append(f"{title}: none")
                continue
            rows = [head, *rows]
            widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
            out.append(f"{title}:")
            out += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        return "\n".join(out)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def _repr_html_(self) -> str:
        parts = []
        for title, head, rows in (
            ("graphs", GRAPH_COLUMNS, self.graph_rows()),
            ("guests", GUEST_COLUMNS, self.guest_rows()),
        ):
            if not rows:
                parts.append(f"<p><b>{title}</b>: none</p>")
                continue
            cells = "".join(f"<th style='text-align:left'>{h}</th>" for h in head)
            body = "".join(
                "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in r) + "</tr>"
                for r in rows
            )
            parts.append(f"<p><b>{title}</b></p><table><tr>{cells}</tr>{body}</table>")
        return "".join(parts)


def _html_table(title: str, rows: list[tuple[str, str]]) -> str:
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    return f"<p><b>{title}</b></p><table>{body}</table>"


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


# -- progress ---------------------------------------------------------------------------------------------------


class Progress:
    """One updating line: a display that is replaced in a notebook, a carriage-return line in a terminal."""

    def __init__(self, shell: Any) -> None:
        self.in_kernel = getattr(shell, "kernel", None) is not None
        self._handle: Any = None
        self._width = 0

    def __call__(self, text: str) -> None:
        if self.in_kernel:
            from IPython.display import display

            data = {"text/plain": text}
            if self._handle is None:
                self._handle = display(data, raw=True, display_id=True)
            else:
                self._handle.update(data, raw=True)
        else:
            self._width = max(self._width, len(text))
            sys.stderr.write("\r" + text.ljust(self._width))
            sys.stderr.flush()

    def close(self) -> None:
        """Take the line away: what stays is the magic's own report."""
        if self._handle is not None:
            self._handle.update({"text/plain": ""}, raw=True)
            self._handle = None
        elif self._width:
            sys.stderr.write("\r" + " " * self._width + "\r")
            sys.stderr.flush()
            self._width = 0


# -- guest output -----------------------------------------------------------------------------------------------


class GuestOutput:
    """A guest's stdout and stderr, decoded as bytes arrive and written to the cell that is running.

    wasmtime calls the sinks from the thread that runs the guest; writing inside a copy of the calling cell's
    context keeps the kernel's per-cell routing (ipykernel keeps the parent message in a context variable).
    """

    def __init__(self) -> None:
        self._decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in ("stdout", "stderr")}
        self._context: contextvars.Context | None = None
        self._depth = 0

    def options(
        self, argv: Sequence[str] = (), env: dict[str, str] | None = None, dirs: Sequence[tuple[str, str]] = ()
    ) -> WasiOptions:
        return WasiOptions(
            argv=list(argv),
            env=dict(env or {}),
            dirs=list(dirs),
            stdout=partial(self._write, "stdout"),
            stderr=partial(self._write, "stderr"),
        )

    @contextmanager
    def bound(self) -> Iterator[None]:
        """Route output to the current cell while the block runs; flush what is left at the end."""
        self._depth += 1
        if self._depth == 1:
            self._context = contextvars.copy_context()
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._finish()

    def _finish(self) -> None:
        for stream, decoder in self._decoders.items():
            self._emit(stream, decoder.decode(b"", final=True))
            decoder.reset()
        self._context = None
        sys.stdout.flush()
        sys.stderr.flush()

    def _write(self, stream: str, data: bytes) -> None:
        self._emit(stream, self._decoders[stream].decode(bytes(data)))

    def _emit(self, stream: str, text: str) -> None:
        if not text:
            return
        target = getattr(sys, stream)
        context = self._context
        if context is not None:
            try:
                context.run(target.write, text)
                return
            except RuntimeError:  # the context is already entered (a write from inside it): write directly
                pass
        target.write(text)
