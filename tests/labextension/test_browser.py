"""The "wasi-nn timeline" panel as a person uses it: a real JupyterLab, Debian's Chromium, a notebook whose WAT
guests send tensors through the echo graph. The tests run in file order on one server, page and kernel (a module
fixture): the panel shows the calls, hover details, filters, pause, clear and CSV export, the tensor widget
renders, the panel follows `%wasinn reset` and a kernel restart, the status bar counts calls while a guest runs,
and the 100,000-call figures are printed (tests assert what is drawn, never how fast). Screenshots go to
``tests/labextension/artifacts/`` (or ``$WASINN_TEST_ARTIFACTS``)."""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab_harness import Lab, calls_for, echo_loop_wat, missing, notebook

SMALL = 200  # rounds: 602 calls
BIG = 33_333  # rounds: 100,001 calls

CELLS = [
    "%load_ext wasinn_jupyter\n%wasinn load echo echo",  # 0
    f"%%wasinn guest small --lang wat\n{echo_loop_wat(SMALL)}",  # 1
    "%wasinn run small",  # 2
    "from wasinn_jupyter.magics import workbench\n"  # 3: what the kernel recorded
    "_recs = workbench().session.host.timeline.records()\n"
    "print('CALLS', sum(r.kind == 'call' for r in _recs), 'RECORDS', len(_recs))",
    # 4: the tensor widget
    "import torch\nfrom wasinn_jupyter.widgets import show\nshow(torch.linspace(-1, 1, 48).reshape(4, 12), 'ramp')",
    "%wasinn reset",  # 5
    "%wasinn load echo echo",  # 6
    f"%%wasinn guest big --lang wat\n{echo_loop_wat(BIG)}",  # 7
    "%wasinn run big",  # 8
]

pytestmark = pytest.mark.skipif(bool(missing()), reason=missing() or "")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    started = time.monotonic()
    lab = Lab(CELLS).start()
    try:
        lab.open()
        print(f"\nJupyterLab up and the notebook's kernel idle in {time.monotonic() - started:.1f} s")
        yield lab
    except BaseException:
        print(lab.log()[-4000:])
        print("\n".join(lab.console[-50:]))
        raise
    finally:
        lab.close()


def wait_for(lab: Lab, predicate: str, timeout_ms: int = 60_000) -> None:
    """Wait until ``predicate`` holds of the panel's node ``d``; on a timeout, say what the panel showed."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        lab.page.wait_for_function(
            f"() => {{ const d = document.querySelector('.wasinn-timeline'); return !!d && ({predicate}); }}",
            timeout=timeout_ms,
        )
    except PlaywrightTimeout:
        info = lab.page.locator(".wasinn-timeline-info").inner_text()
        shown = f"the panel shows {lab.stats()} ({info}); page errors {lab.console}"
        raise AssertionError(f"not {predicate}: {shown}") from None


def kernel_counts(lab: Lab) -> tuple[int, int]:
    lab.run_cell(3)
    match = re.search(r"CALLS (\d+) RECORDS (\d+)", lab.text(3))
    assert match, lab.text(3)
    return int(match[1]), int(match[2])


def test_panel_shows_each_call(lab: Lab) -> None:
    for i in (0, 1):
        lab.run_cell(i)
    lab.run_cell(2)
    assert "echoed 200" in lab.text(2)
    calls, records = kernel_counts(lab)
    assert calls == calls_for(SMALL)
    lab.page.evaluate("() => window.jupyterapp.commands.execute('wasinn-timeline:open')")
    wait_for(lab, f"d.dataset.records === '{records}'")
    stats = lab.stats()
    assert int(stats["marks"]) == calls  # one mark per call
    assert int(stats["markers"]) >= 3  # lifecycle: compile, instantiate, run, exit...
    legend = lab.page.locator(".wasinn-timeline-legend").inner_text()
    for op in ("set_input", "compute", "get_output"):
        assert op in legend
    lab.screenshot("01-panel-small-run")


def test_hover_shows_every_field(lab: Lab) -> None:
    mark = lab.panel("panel.plot.mark(panel.plot.marks - 1)")
    box = lab.page.locator(".wasinn-timeline-canvas").bounding_box()
    lab.page.mouse.move(box["x"] + mark["x"], box["y"] + mark["y"])
    tip = lab.page.locator(".wasinn-timeline-tooltip")
    tip.wait_for(state="visible")
    text = tip.inner_text()
    for field in ("seq", "call", "guest", "graph", "duration_ns", "outcome", "guest_id", "kind", "start_ns"):
        assert field in text, text
    assert "small" in text and "echo" in text
    lab.screenshot("02-hover")
    lab.page.mouse.move(0, 0)


def test_filters_pause_clear_and_csv(lab: Lab, tmp_path: Path) -> None:
    lab.page.select_option(".wasinn-timeline-filter-op", "compute")
    wait_for(lab, f"d.dataset.marks === '{SMALL}'")
    with lab.page.expect_download() as download:
        lab.page.click(".wasinn-timeline-export")
    path = tmp_path / "timeline.csv"
    download.value.save_as(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert len(rows) == SMALL
    assert {r["call"] for r in rows} == {"compute"}
    assert {"start_ns", "duration_ns", "wall_time", "seq", "guest", "graph", "outcome"} <= set(rows[0])
    assert all(float(r["duration_ns"]) > 0 for r in rows)
    lab.page.select_option(".wasinn-timeline-filter-op", "")
    lab.page.select_option(".wasinn-timeline-filter-guest", "small")
    wait_for(lab, f"d.dataset.marks === '{calls_for(SMALL)}'")
    lab.page.select_option(".wasinn-timeline-filter-guest", "")

    lab.page.click(".wasinn-timeline-pause")
    records = int(lab.stats()["records"])
    lab.run_cell(2)  # another run while paused: received, not drawn
    lab.page.wait_for_function(
        f"() => {{ const p = {Lab.PANEL}; return p.feed.model.size > {records}; }}", timeout=60_000
    )
    assert int(lab.stats()["records"]) == records
    assert "paused" in lab.page.locator(".wasinn-timeline-info").inner_text()
    lab.page.click(".wasinn-timeline-pause")
    wait_for(lab, f"Number(d.dataset.marks) === {2 * calls_for(SMALL)}")

    lab.page.click(".wasinn-timeline-clear")
    wait_for(lab, "d.dataset.records === '0'")


def test_tensor_widget_renders(lab: Lab) -> None:
    outputs = lab.run_cell(4)
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs), outputs
    view = lab.page.locator(".jp-Notebook .wasinn-tensor").first  # the widget's view (wasinn_jupyter.widgets)
    view.wait_for(state="visible", timeout=60_000)
    head = view.locator(".wt-head").inner_text()
    assert "ramp" in head and "4, 12" in head, head
    view.scroll_into_view_if_needed()  # the picture is of the widget, not of the cells above it
    lab.screenshot("03-tensor-widget")


def test_reset_status_bar_and_100k_calls(lab: Lab) -> None:
    markers = int(lab.stats()["markers"])
    lab.run_cell(5)  # %wasinn reset
    wait_for(lab, f"Number(d.dataset.markers) > {markers}")
    lab.run_cell(6)
    lab.run_cell(7)
    # Frame intervals while 100,000 calls stream in, measured by the page's own animation frames.
    lab.page.evaluate(
        """() => { window.__frames = []; let last = performance.now();
           const tick = now => { window.__frames.push(now - last); last = now;
             if (window.__frames.length < 100000 && !window.__stopFrames) requestAnimationFrame(tick); };
           window.__stopFrames = false; requestAnimationFrame(tick); }"""
    )
    started = time.monotonic()
    lab.run_cell(8, wait=False)
    status = lab.page.locator(".wasinn-timeline-status")
    status.wait_for(state="visible", timeout=60_000)
    lab.page.wait_for_function(
        "() => Number(document.querySelector('.wasinn-timeline-status').dataset.rate) > 0", timeout=60_000
    )
    status_text = status.inner_text()
    assert re.search(r"wasi-nn \d+ calls/s · last [\d.]+ (ns|µs|ms|s)", status_text), status_text
    lab.screenshot("04-streaming-status-bar")
    lab.wait_run()
    guest_s = time.monotonic() - started
    assert f"echoed {BIG}" in lab.text(8)
    calls = calls_for(BIG)  # more than the kernel's timeline ring keeps (100,000 records): the panel has them all
    wait_for(lab, f"Number(d.dataset.marks) >= {calls}", timeout_ms=120_000)
    all_shown_s = time.monotonic() - started
    frames = lab.page.evaluate("() => { window.__stopFrames = true; return window.__frames; }")
    stats = lab.stats()
    assert int(stats["marks"]) >= calls  # this session's calls, and any before the reset not cleared
    # A full redraw of everything held, ten times.
    render_ms = lab.full_redraws(10)
    frames = sorted(frames[5:]) or [0.0]
    print(
        f"\n100k-call panel: {int(stats['marks'])} marks; guest ran {guest_s:.1f} s, all shown {all_shown_s:.1f} s "
        f"after it started; full redraw median {statistics.median(render_ms):.1f} ms (max {max(render_ms):.1f}); "
        f"frame interval while streaming median {statistics.median(frames):.1f} ms, "
        f"p95 {frames[int(len(frames) * 0.95) - 1]:.1f} ms, max {frames[-1]:.1f} ms over {len(frames)} frames; "
        f"status bar said {status_text!r}"
    )
    lab.screenshot("05-100k-calls")


def test_follows_a_kernel_restart(lab: Lab) -> None:
    markers = int(lab.stats()["markers"])
    records = int(lab.stats()["records"])
    lab.page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()")
    wait_for(lab, f"Number(d.dataset.markers) > {markers}")
    lab.page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'", timeout=60_000
    )
    for i in (0, 1, 2):
        lab.run_cell(i)
    assert "echoed 200" in lab.text(2)
    wait_for(lab, f"Number(d.dataset.records) >= {records + calls_for(SMALL)}")
    lab.screenshot("06-after-kernel-restart")


def test_follows_the_active_notebook(lab: Lab) -> None:
    first = int(lab.stats()["records"])
    other = lab.root / "work" / "other.ipynb"
    other.write_text(json.dumps(notebook(CELLS[:3])))
    lab.page.evaluate("() => window.jupyterapp.commands.execute('docmanager:open', {path: 'other.ipynb'})")
    lab.page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " return w && w.context && w.context.path === 'other.ipynb'"
        " && w.sessionContext.session && w.sessionContext.session.kernel"
        " && w.sessionContext.session.kernel.status === 'idle'; }",
        timeout=120_000,
    )
    wait_for(lab, "d.dataset.records === '0'")  # its own kernel: nothing yet
    for i in (0, 1, 2):
        lab.run_cell(i)
    wait_for(lab, f"Number(d.dataset.marks) === {calls_for(SMALL)}")
    lab.screenshot("07-second-notebook")
    lab.page.evaluate("() => window.jupyterapp.commands.execute('docmanager:open', {path: 'timeline.ipynb'})")
    wait_for(lab, f"Number(d.dataset.records) === {first}")  # back to the first notebook's calls
