"""``%wasinn timeline``: the compute timeline drawn inline with matplotlib, and its exports.

The same plot as the JupyterLab panel, for every front-end without it (Notebook 7, nbconvert, VS Code, a terminal
saving files): each wasi-nn call is one mark at its start time with its latency on a log scale, coloured by
operation (a failed call is a cross), and the guests' lifecycle events (compile, instantiate, trap, exit,
stopped) are vertical lines. ``run`` and ``close`` events, one per guest call, are left out of the drawing (they
would hide the calls) but stay in the exports. The plot is drawn on a bare :class:`matplotlib.figure.Figure`, not
through pyplot, so nothing is shown twice and no backend state changes; matplotlib is imported on first use.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from IPython.core import magic_arguments

from ..host import CallRecord, Timeline
from .display import CellError

argument = magic_arguments.argument

# One colour per operation, the same for every plot (matplotlib's tab10, then tab20's lighter half): a call keeps
# its colour whichever others are shown. Operations not listed here take the next free colour.
OPERATIONS = (
    "load",
    "load_by_name",
    "init_execution_context",
    "set_input",
    "compute",
    "get_output",
    "compute_named",
    "finalize_execution_context",
    "unload",
    "compute_single",
    "get_output_single",
    "fini_single",
    "prompt",
    "set_property",
)
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5",
)  # fmt: skip
MARKERS: dict[str, tuple[str, Any]] = {  # lifecycle event -> (colour, line style)
    "compile": ("#555555", ":"),
    "instantiate": ("#2ca02c", "--"),
    "exit": ("#1f77b4", "-."),
    "trap": ("#d62728", "-"),
    "stopped": ("#ff7f0e", "-"),
}


def color_of(call: str) -> str:
    if call in OPERATIONS:
        return PALETTE[OPERATIONS.index(call) % len(PALETTE)]
    return PALETTE[(len(OPERATIONS) + sum(map(ord, call))) % len(PALETTE)]


@magic_arguments.magic_arguments(name="wasinn timeline")
@argument("--graph", action="append", default=[], metavar="NAME", help="only calls on this graph (repeatable)")
@argument(
    "--guest", action="append", default=[], metavar="LABEL|ID",
    help="only this guest: its label (every instance) or its instance id (repeatable)",
)  # fmt: skip
@argument("--call", action="append", default=[], metavar="OP", help="only this operation, e.g. compute (repeatable)")
@argument("--last", type=int, default=None, metavar="N", help="only the last N calls (after the filters)")
@argument("--csv", default=None, metavar="FILE", help="also write the selected records as CSV")
@argument("--trace", default=None, metavar="FILE", help="also write them as Chrome trace JSON (Perfetto opens it)")
@argument("-o", "--output", default=None, metavar="VAR", help="store them in this variable as a pandas DataFrame")
@argument("--no-plot", action="store_true", help="only export: draw nothing")
def timeline_parser() -> None:
    """%wasinn timeline: every wasi-nn call's latency over time, coloured by operation, with lifecycle markers.

    The records are this session's (since the last %wasinn reset), at most WasinnMagics.timeline_size of them, the
    oldest dropped first. Filters combine; lifecycle events follow the --guest filter and the time span shown.
    --csv, --trace and -o export what is selected. The returned object's .figure is the matplotlib Figure.
    """


def _split(values: Sequence[str]) -> set[str]:
    return {v.strip() for value in values for v in value.split(",") if v.strip()}


def select(
    records: Iterable[CallRecord],
    *,
    graphs: Sequence[str] = (),
    guests: Sequence[str] = (),
    calls: Sequence[str] = (),
    last: int | None = None,
) -> list[CallRecord]:
    """The calls that pass the filters (the last ``last`` of them), with the lifecycle events of the same guests in
    the span they cover; in time order."""
    graph_set, guest_set, call_set = _split(graphs), _split(guests), _split(calls)

    def guest_ok(rec: CallRecord) -> bool:
        return not guest_set or rec.guest in guest_set or str(rec.guest_id) in guest_set

    pool = list(records)
    chosen = [
        r
        for r in pool
        if r.kind == "call"
        and guest_ok(r)
        and (not graph_set or r.graph in graph_set)
        and (not call_set or r.call in call_set)
    ]
    if last is not None:
        chosen = chosen[-last:] if last > 0 else []
    events = [r for r in pool if r.kind == "lifecycle" and guest_ok(r)]
    if chosen and (last is not None or graph_set or call_set):
        begin, end = chosen[0].start_ns, max(r.start_ns + r.duration_ns for r in chosen)
        events = [r for r in events if begin <= r.start_ns <= end]
    return sorted(chosen + events, key=lambda r: (r.start_ns, r.seq))


class TimelinePlot:
    """The drawn timeline: shown as a PNG in notebooks; ``.figure`` is the matplotlib Figure for more work."""

    def __init__(self, figure: Any, calls: int, lifecycle: int) -> None:
        self.figure = figure
        self.calls = calls
        self.lifecycle = lifecycle

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()

    def __repr__(self) -> str:
        return f"<wasi-nn timeline: {self.calls} calls, {self.lifecycle} lifecycle markers>"


def plot(records: Sequence[CallRecord], *, title: str = "wasi-nn timeline") -> TimelinePlot:
    """Draw ``records`` (calls as marks, lifecycle events as lines) on a new Figure."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import LogFormatter

    figure = Figure(figsize=(10, 4.2), layout="constrained")
    ax = figure.add_subplot()
    calls = [r for r in records if r.kind == "call"]
    events = [r for r in records if r.kind == "lifecycle" and r.call in MARKERS]
    origin = min((r.start_ns for r in records), default=0)
    ax.set_xlabel("time since the first record shown (s)")
    ax.set_ylabel("latency (µs)")
    if not calls:
        ax.text(0.5, 0.5, "no wasi-nn calls recorded (or none match)", ha="center", va="center", transform=ax.transAxes)
    ax.set_yscale("log")
    handles: list[Any] = []
    order = {op: i for i, op in enumerate(OPERATIONS)}
    for op in sorted({r.call for r in calls}, key=lambda c: (order.get(c, len(order)), c)):
        mine = [r for r in calls if r.call == op]
        color = color_of(op)
        for ok in (True, False):
            part = [r for r in mine if r.ok == ok]
            if not part:
                continue
            x = [(r.start_ns - origin) / 1e9 for r in part]
            y = [max(r.duration_ns, 1) / 1e3 for r in part]
            ax.scatter(x, y, s=14 if ok else 30, c=color, marker="o" if ok else "x", linewidths=1, alpha=0.85, gid=op)
        failed = sum(not r.ok for r in mine)
        label = f"{op} ({len(mine)}" + (f", {failed} failed)" if failed else ")")
        handles.append(Line2D([], [], color=color, marker="o", linestyle="", label=label))
    seen: set[str] = set()
    for event in events:
        color, style = MARKERS[event.call]
        ax.axvline(
            (event.start_ns - origin) / 1e9, color=color, linestyle=style, linewidth=1, alpha=0.7, gid=event.call
        )
        if event.call not in seen:
            seen.add(event.call)
            handles.append(Line2D([], [], color=color, linestyle=style, label=event.call))
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    for axis_formatter in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        axis_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))  # 20, 50: not 2x10^1
    ax.grid(True, which="major", axis="y", alpha=0.3)
    ax.set_title(title, fontsize="medium", loc="left")
    return TimelinePlot(figure, len(calls), len(events))


def timeline_command(timeline: Timeline | None, args: argparse.Namespace, user_ns: dict[str, Any]) -> Any:
    """What ``%wasinn timeline`` does with its parsed arguments: select, export, draw."""
    if args.last is not None and args.last < 0:
        raise CellError(f"--last {args.last}: a number of calls from 0")
    if args.output is not None and not args.output.isidentifier():
        raise CellError(f"-o {args.output}: not a Python variable name")
    held = timeline.records() if timeline is not None else []
    records = select(held, graphs=args.graph, guests=args.guest, calls=args.call, last=args.last)
    exporter = timeline if timeline is not None else Timeline(0)
    for path, write in ((args.csv, exporter.to_csv), (args.trace, exporter.to_chrome_trace)):
        if path is not None:
            target = Path(path).expanduser()
            try:
                write(target, records)
            except OSError as exc:
                raise CellError(f"could not write {target}: {exc.strerror or exc}") from None
            print(f"wrote {len(records)} records to {target}")
    if args.output is not None:
        try:
            user_ns[args.output] = exporter.to_dataframe(records)
        except ImportError as exc:
            raise CellError(str(exc)) from None
    if args.no_plot:
        return None
    calls = sum(r.kind == "call" for r in records)
    guests = len({r.guest_id for r in records if r.kind == "call"})
    title = f"wasi-nn timeline: {calls} call(s) from {guests} guest instance(s)"
    dropped = timeline.dropped if timeline is not None else 0
    if dropped:
        title += f"; {dropped} older record(s) dropped (WasinnMagics.timeline_size)"
    return plot(records, title=title)
