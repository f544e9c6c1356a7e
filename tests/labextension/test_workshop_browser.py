"""``wasinn workshop`` as a workshop attendee meets it: JupyterLab opens the workshop's workspace in Debian's
Chromium with the first tutorial in front and the wasi-nn timeline panel showing; running the tutorial's first cells
puts their calls on the panel and their tensors in widgets. The screenshots are the README's
(``WASINN_README_IMAGES=1`` copies them to docs/images/)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab_harness import Lab, missing

from wasinn_jupyter import workshop

pytestmark = pytest.mark.skipif(bool(missing()), reason=missing() or "")

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


class Workshop(Lab):
    """The harness's server and browser, on the workshop's folder and layout instead of a single notebook."""

    def open(self) -> Any:
        work = self.root / "work"
        prepared = workshop.prepare(work)
        self.first = prepared.notebooks[0].name
        workshop.write_workspace(self.root / "home" / "workspaces", self.first)
        page = super().open()  # the harness's own notebook, its kernel idle: the browser and server are ready
        page.goto(f"{self.url}/lab/workspaces/{workshop.WORKSPACE}")
        page.wait_for_function(
            "name => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
            " const k = w && w.context && w.context.path === name && w.sessionContext.session"
            " && w.sessionContext.session.kernel; return k && k.status === 'idle'; }",
            arg=self.first,
            timeout=180_000,
        )
        return page


@pytest.fixture(scope="module")
def lab() -> Iterator[Workshop]:
    lab = Workshop(["1 + 1"], name="scratch.ipynb")
    lab.start()
    try:
        lab.open()
        yield lab
    except BaseException:
        print(lab.log()[-4000:])
        print("\n".join(lab.console[-50:]))
        raise
    finally:
        lab.close()


def _code_cells(path: Path) -> dict[str, int]:
    """The tutorial's code cells by their first line, with their index among all cells (as JupyterLab counts)."""
    cells = json.loads(path.read_text())["cells"]
    return {"".join(c["source"]).split("\n", 1)[0]: i for i, c in enumerate(cells) if c["cell_type"] == "code"}


def test_the_workshop_opens_the_first_tutorial_with_the_timeline_showing(lab: Workshop) -> None:
    assert lab.first == workshop.tutorials()[0].name
    visible = lab.page.evaluate(
        "() => { const p = [...window.jupyterapp.shell.widgets('right')].find(w => w.id === 'wasinn-timeline');"
        " return !!p && p.isVisible; }"
    )
    assert visible, "the timeline panel is not showing"


def test_the_first_cells_reach_the_panel_and_the_widgets(lab: Workshop) -> None:
    cells = _code_cells(lab.root / "work" / lab.first)
    for first_line in ("%load_ext wasinn_jupyter", "%wasinn load echo echo", "import numpy as np"):
        lab.run_cell(cells[first_line])
    compute = next(line for line in cells if line.startswith("%%wasinn compute echo"))
    lab.run_cell(cells[compute])
    lab.page.wait_for_function(
        "() => { const d = document.querySelector('.wasinn-timeline'); return !!d && Number(d.dataset.marks) >= 3; }",
        timeout=60_000,
    )
    lab.page.wait_for_selector(".wasinn-tensor", timeout=60_000)
    time.sleep(1.0)  # let the panel's next frame and the widget's first draw land before the pictures
    lab.screenshot("workshop")
    artifacts = lab.screenshot("workshop").parent
    handed = next(line for line in cells if line.startswith("from wasinn_jupyter.widgets import"))
    before = lab.page.locator(".wasinn-tensor").count()
    lab.run_cell(cells[handed])  # a tensor handed to the widget: an image batch, shown as images
    lab.page.wait_for_function(f"() => document.querySelectorAll('.wasinn-tensor').length > {before}", timeout=60_000)
    widget = lab.page.locator(".wasinn-tensor").last
    widget.scroll_into_view_if_needed()
    time.sleep(1.0)
    widget.screenshot(path=str(artifacts / "workshop-tensor-widget.png"))
    if os.environ.get("WASINN_README_IMAGES"):
        IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copy(artifacts / "workshop.png", IMAGES / "panel.png")
        shutil.copy(artifacts / "workshop-tensor-widget.png", IMAGES / "tensor-widget.png")
