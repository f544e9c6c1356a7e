"""``%wasinn timeline``: the inline matplotlib plot (one mark per call, lifecycle lines), its filters and exports,
in a real IPython shell and in a real kernel run by nbclient (what Notebook 7 and nbconvert do)."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from wasinn_jupyter.host import CallRecord
from wasinn_jupyter.magics import CellError, WasinnMagics
from wasinn_jupyter.magics.timeline_plot import MARKERS, TimelinePlot, color_of

Run = Callable[[str], Any]
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

TRAP = """%%wasinn guest boom
(module (func (export "_start") unreachable))
"""


def magics(ip: Any) -> WasinnMagics:
    return next(c for c in ip.configurables if isinstance(c, WasinnMagics))


def records(ip: Any) -> list[CallRecord]:
    session = magics(ip)._session
    assert session is not None
    return session.host.timeline.records()


def marks(plot: TimelinePlot) -> int:
    (ax,) = plot.figure.axes
    return sum(len(c.get_offsets()) for c in ax.collections)


def lines(plot: TimelinePlot) -> list[str]:
    (ax,) = plot.figure.axes
    return [line.get_gid() for line in ax.lines]


@pytest.fixture
def computed(run: Run, ip: Any) -> list[CallRecord]:
    """Two graphs computed through the driver guest, one compute failing, and a guest that traps."""
    assert run("%wasinn load echo echo").ok
    assert run("import torch\nlin = torch.nn.Linear(4, 2)").ok
    assert run("%wasinn load lin lin").ok
    for graph, value in (("echo", "[1.0, 2.0]"), ("echo", "[[1, 2], [3, 4]]"), ("lin", "torch.ones(3, 4)")):
        assert run(f"%%wasinn compute {graph}\n{value}").ok
    assert not run("%%wasinn compute lin\ntorch.ones(3, 5)").ok  # the model refuses: a failed compute
    assert run(TRAP).ok
    assert not run("%wasinn run boom").ok
    return records(ip)


def test_the_plot_has_a_mark_per_call_and_a_line_per_lifecycle_event(
    run: Run, ip: Any, computed: list[CallRecord]
) -> None:
    cell = run("%wasinn timeline")
    assert cell.ok
    plot = cell.value
    assert isinstance(plot, TimelinePlot)
    calls = [r for r in computed if r.kind == "call"]
    assert marks(plot) == len(calls) == plot.calls
    drawn = [r.call for r in computed if r.kind == "lifecycle" and r.call in MARKERS]
    assert sorted(lines(plot)) == sorted(drawn) and "trap" in drawn and "compile" in drawn
    (ax,) = plot.figure.axes
    assert ax.get_yscale() == "log" and "latency" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(label.startswith("compute (4, 1 failed)") for label in labels), labels
    assert "trap" in labels
    colors = {c.get_gid(): tuple(c.get_facecolor()[0][:3]) for c in ax.collections if c.get_gid() == "compute"}
    from matplotlib.colors import to_rgb

    assert colors["compute"] == pytest.approx(to_rgb(color_of("compute")))  # one colour per operation, always
    png = plot._repr_png_()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_filters_pick_the_calls(run: Run, ip: Any, computed: list[CallRecord]) -> None:
    calls = [r for r in computed if r.kind == "call"]
    assert marks(run("%wasinn timeline --call compute").value) == sum(r.call == "compute" for r in calls) == 4
    assert marks(run("%wasinn timeline --graph lin").value) == sum(r.graph == "lin" for r in calls)
    assert marks(run("%wasinn timeline --graph lin,echo --call set_input").value) == sum(
        r.call == "set_input" for r in calls
    )
    first_driver = next(r.guest_id for r in calls)
    assert marks(run(f"%wasinn timeline --guest {first_driver}").value) == sum(
        r.guest_id == first_driver for r in calls
    )
    assert marks(run("%wasinn timeline --guest driver").value) == len(calls)  # every instance of the label
    assert marks(run("%wasinn timeline --last 3 --call get_output").value) == 3
    empty = run("%wasinn timeline --graph nothing").value
    assert marks(empty) == 0 and "none match" in empty.figure.axes[0].texts[0].get_text()


def test_exports_write_what_is_selected(run: Run, ip: Any, computed: list[CallRecord], tmp_path: Path) -> None:
    csv_path, trace_path = tmp_path / "t.csv", tmp_path / "t.json"
    cell = run(f"%wasinn timeline --call compute --csv {csv_path} --trace {trace_path} -o frame --no-plot")
    assert cell.ok and cell.value is None
    assert f"to {csv_path}" in cell.out
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    call_rows = [r for r in rows if r["kind"] == "call"]
    assert len(call_rows) == 4 and {r["call"] for r in call_rows} == {"compute"}
    assert sorted(r["outcome"] for r in call_rows) == ["ok", "ok", "ok", "runtime-error"]
    trace = json.loads(trace_path.read_text())
    assert trace["displayTimeUnit"] == "ns"
    assert sum(e["name"] == "compute" and e["ph"] == "X" for e in trace["traceEvents"]) == 4
    frame = ip.user_ns["frame"]
    assert len(frame) == len(rows) and (frame[frame["kind"] == "call"]["call"] == "compute").all()
    assert frame[frame["call"] == "compute"]["inputs"].iloc[0][0]["shape"] == [2]


def test_bad_arguments_fail_the_cell(run: Run, computed: list[CallRecord], tmp_path: Path) -> None:
    for line, fragment in (
        ("%wasinn timeline --last -1", "--last -1"),
        ("%wasinn timeline -o 1x", "not a Python variable name"),
        (f"%wasinn timeline --csv {tmp_path}/missing/dir/t.csv", "could not write"),
    ):
        cell = run(line)
        assert not cell.ok and isinstance(cell.error, CellError) and fragment in str(cell.error), (line, cell.error)


def test_before_any_call_and_the_size_setting(run: Run, ip: Any, caplog: pytest.LogCaptureFixture) -> None:
    plot = run("%wasinn timeline").value
    assert marks(plot) == 0 and magics(ip)._session is None  # nothing is started just to draw nothing
    run("%config WasinnMagics.timeline_size = 5")
    run("%wasinn load echo echo")
    run("%%wasinn compute echo\n[1.0]")
    assert len(records(ip)) == 5
    assert "6 older record(s) dropped" in run("%wasinn timeline").value.figure.axes[0].get_title(loc="left")
    run("%config WasinnMagics.timeline_size = -1")  # %config logs the TraitError
    assert "timeline_size must be a number of records from 0" in caplog.text and magics(ip).timeline_size == 5


def test_the_plot_shows_inline_in_a_kernel_run_by_nbclient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Notebook 7 and nbconvert: the cell's output is a PNG, once; its object tells how many marks it drew."""
    monkeypatch.setenv("WASINN_CACHE_DIR", str(tmp_path / "cache"))
    cells = [
        "%load_ext wasinn_jupyter\n%wasinn load echo echo",
        "%%wasinn compute echo\n[1.0, 2.0, 3.0]",
        "%wasinn timeline",
        "p = _\nprint(sum(len(c.get_offsets()) for c in p.figure.axes[0].collections), p.calls)",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[2].outputs
    assert len(outputs) == 1 and outputs[0].output_type == "execute_result"
    png = base64.b64decode(outputs[0].data["image/png"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert "wasi-nn timeline" in outputs[0].data["text/plain"]
    count, calls = nb.cells[3].outputs[0].text.split()
    assert int(count) == int(calls) >= 5  # load_by_name, init, set_input, compute, get_output...
