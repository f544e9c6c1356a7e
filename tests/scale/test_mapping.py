"""wasinn map on the local pool: real worker processes, results in input order, faults confined to their input."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from wasinn_jupyter.cli import main
from wasinn_jupyter.host import Timeline
from wasinn_jupyter.scale import InputResult, MapError, Preload, map_inputs

from .conftest import BEHAVE, Classifier, behave_job, write_inputs


def test_two_workers_classify_in_input_order(classifier: Classifier) -> None:
    timeline = Timeline()
    seen: list[InputResult] = []
    summary = map_inputs(classifier.job(), classifier.images, workers=2, timeline=timeline, on_result=seen.append)
    assert [r.input for r in seen] == [str(p) for p in classifier.images]
    assert [classifier.top_class(r.stdout) for r in seen] == classifier.top
    assert summary.as_json()["ok"] == len(classifier.images) and summary.failed == 0
    assert summary.engine == "local" and summary.workers == 2
    # every worker's records reach the caller's one timeline, tagged with node and worker
    computes = [r for r in timeline.records() if r.call == "compute"]
    assert len(computes) == len(classifier.images) and all(r.ok and r.node for r in computes)
    compiles = [r for r in timeline.records() if r.call == "compile"]
    assert sorted(r.worker for r in compiles) == ["local-1", "local-2"]  # each worker compiled the guest once
    assert {r.worker for r in computes} <= {"local-1", "local-2"}
    seqs = [r.seq for r in timeline.records()]
    assert seqs == sorted(set(seqs))


def test_a_killed_worker_loses_nothing_and_repeats_nothing(tmp_path: Path) -> None:
    """A worker killed mid-map: the inputs it held run on another worker; each input is reported once."""
    paths = write_inputs(tmp_path, [f"sleep-{i}" for i in range(6)])
    seen: list[InputResult] = []
    killed: list[int] = []

    def on_result(result: InputResult) -> None:
        seen.append(result)
        if not killed:  # the worker that answered first still holds the next inputs it was handed
            killed.append(result.pid)
            os.kill(result.pid, signal.SIGKILL)

    summary = map_inputs(behave_job(), paths, workers=2, on_result=on_result)
    assert [r.stdout for r in seen] == [f"sleep-{i}" for i in range(6)]
    assert [r.index for r in seen] == list(range(6))
    assert all(r.ok for r in seen)
    assert summary.replaced == 1 and summary.retried >= 1
    retried = [r for r in seen if r.attempts > 1]
    assert retried and all(r.pid != killed[0] for r in retried)


def test_an_input_that_kills_every_worker_fails_alone(tmp_path: Path) -> None:
    """A worker dying on the same input again and again: that input fails after max_attempts; the rest are done."""
    paths = write_inputs(tmp_path, ["ok-0", "sleep-1", "ok-2"])
    victims: list[int] = []

    def on_result(result: InputResult) -> None:
        victims.append(result.pid)

    # kill whichever worker runs the sleeping input, each time: watch the pool's pids from a thread
    import threading
    import time

    from wasinn_jupyter.scale import mapping

    stop = threading.Event()
    original = mapping.LocalPool.submit

    def submit(self: mapping.LocalPool, worker: int, index: int, path: Path) -> None:
        original(self, worker, index, path)
        if path.name == "in01.txt":
            pid = self.pid(worker)
            assert pid is not None
            threading.Timer(0.1, lambda: os.kill(pid, signal.SIGKILL) if not stop.is_set() else None).start()

    mapping.LocalPool.submit = submit  # type: ignore[method-assign]
    try:
        summary = map_inputs(behave_job(), paths, workers=1, max_attempts=2, on_result=on_result)
    finally:
        mapping.LocalPool.submit = original  # type: ignore[method-assign]
        stop.set()
        time.sleep(0.2)
    assert [r.exit_code for r in summary.results] == [0, 1, 0]
    assert summary.results[1].attempts == 2
    assert summary.results[1].error is not None and "2 workers died running this input" in summary.results[1].error
    assert summary.results[2].stdout == "ok-2"


def test_a_model_that_does_not_load_stops_the_map(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    job = behave_job(preloads=[Preload("cnn", "pytorch", "cpu", str(bad))])
    with pytest.raises(MapError, match="cannot register graph"):
        map_inputs(job, write_inputs(tmp_path / "in", ["ok"]), workers=1)


def test_the_command_prints_json_lines_and_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_inputs(tmp_path / "in", ["ok-0", "trap", "loop", "ok-3"])
    code = main(["map", str(BEHAVE), "--over", str(tmp_path / "in"), "--workers", "2", "--deadline", "1", "--timeline"])
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 1  # an input failed
    results, summary = lines[:-1], lines[-1]["summary"]
    assert [Path(r["input"]).name for r in results] == ["in00.txt", "in01.txt", "in02.txt", "in03.txt"]
    assert [r["exit_code"] for r in results] == [0, 134, 130, 0]
    assert set(results[0]) == {
        "input",
        "exit_code",
        "stdout",
        "stderr",
        "time_s",
        "error",
        "node",
        "worker",
        "attempts",
    }
    assert results[3]["stdout"] == "ok-3"
    assert summary["inputs"] == 4 and summary["ok"] == 2 and summary["failed"] == 2 and summary["engine"] == "local"
    assert "\r" not in err  # no progress bar drawn when stderr is not a terminal
    assert "instantiate" not in err and "load_by_name" not in err  # (no wasi-nn calls in this guest)


def test_command_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["map", str(BEHAVE), "--over", str(tmp_path / "none")]) == 2
    assert "no such directory or file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["map", str(BEHAVE), "--over", str(tmp_path), "--workers", "0"])
    assert stop.value.code == 2


def test_workers_serve_several_maps(tmp_path: Path) -> None:
    """Workers kept between maps compile the guest once; each map's results are its own."""
    from wasinn_jupyter.scale import Workers

    timeline = Timeline()
    with Workers(behave_job(), workers=1) as pool:
        first = pool.map(write_inputs(tmp_path / "a", ["a0", "a1"]), timeline=timeline)
        second = pool.map(write_inputs(tmp_path / "b", ["b0"]), timeline=timeline)
    assert [r.stdout for r in first.results] == ["a0", "a1"] and [r.stdout for r in second.results] == ["b0"]
    assert first.startup_s > 0 and len([r for r in timeline.records() if r.call == "compile"]) == 1
    assert pool.closed


def test_without_ray_the_ray_paths_say_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where Ray is not installed
    write_inputs(tmp_path, ["ok"])
    assert main(["map", str(BEHAVE), "--over", str(tmp_path), "--ray", "auto"]) == 1
    assert "Ray is not installed; pip install 'wasinn-jupyter[ray]'" in capsys.readouterr().err
    assert main(["run", "--ray", "auto", "--nn-preload", "e:pytorch:cpu:echo", str(BEHAVE), "x"]) == 1
    assert "Ray is not installed" in capsys.readouterr().err
