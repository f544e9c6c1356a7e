"""%wasinn map in a real IPython shell: real worker processes, results and records in the kernel; the widget bar;
%wasinn load --ray on a real local Ray cluster."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wasinn_jupyter.magics import workbench

Run = Callable[[str], Any]
BEHAVE = Path(__file__).resolve().parents[1] / "scale" / "behave.wat"


def test_map_runs_a_guest_over_a_folder(run: Run, tmp_path: Path) -> None:
    for i, text in enumerate(["a", "trap", "c"]):
        (tmp_path / f"in{i}.txt").write_text(text)
    assert run(f"%%wasinn guest behave\n{BEHAVE.read_text()}").ok
    assert run("%wasinn load echo echo").ok
    cell = run(f"%wasinn map behave --over {tmp_path} --workers 2 -o mapped -- {{}}")
    assert cell.ok, cell.err
    assert "in1.txt: exit 134" in cell.out and "unreachable" in cell.out  # the failed input, said in one line
    summary = run("mapped").value
    assert [r.exit_code for r in summary.results] == [0, 134, 0]
    assert [r.stdout for r in summary.results] == ["a", "", "c"]  # it traps before printing
    assert "3 inputs: 2 ok, 1 failed" in repr(summary)
    session = workbench().session
    assert session is not None
    tagged = [r for r in session.host.timeline.records() if r.worker is not None]
    assert {r.worker for r in tagged if r.call == "compile"} == {"local-1", "local-2"}


def test_map_usage_errors_fail_the_cell(run: Run, tmp_path: Path) -> None:
    assert run(f"%%wasinn guest behave\n{BEHAVE.read_text()}").ok
    cell = run(f"%wasinn map behave --over {tmp_path / 'none'}")
    assert not cell.ok and "no such directory or file" in cell.out + cell.err
    cell = run(f"%wasinn map nobody --over {tmp_path}")
    assert not cell.ok and "no guest named 'nobody'" in cell.out + cell.err


def test_the_widget_bar_says_done_failed_and_rate() -> None:
    from wasinn_jupyter.scale.progress import WidgetProgress

    shown: list[Any] = []
    bar = WidgetProgress(display=shown.append)
    assert shown == [bar.widget]
    bar.start(4)
    bar.update(2, 0)
    bar.update(4, 1)
    bar.close()
    assert bar.bar.value == 4 and bar.bar.max == 4 and bar.bar.bar_style == "danger"
    assert bar.label.value.startswith("4/4 done, 1 failed, ") and "/s" in bar.label.value


def test_load_ray_serves_a_graph_by_actors(run: Run, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="Ray is not installed; pip install 'wasinn-jupyter[ray]'")
    if not ray.is_initialized():  # the cluster stays for the session's other Ray tests (tests/scale)
        from wasinn_jupyter.scale.ray_support import start_local

        start_local(num_cpus=2)
    cell = run("%wasinn load remote echo --ray")
    assert cell.ok, cell.err
    assert run("import numpy as np").ok
    cell = run("%%wasinn compute remote -o out\nnp.arange(6, dtype=np.float32)")
    assert cell.ok, cell.err
    assert run("out.tolist()").value == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    session = workbench().session
    assert session is not None
    split = [r.call for r in session.host.timeline.records() if r.kind == "remote"]
    assert split == ["transfer", "remote_compute"]
    run("%wasinn unload remote")
