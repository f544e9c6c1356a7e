"""Every tutorial in notebooks/ runs top to bottom in a real kernel, on the CPU, and says what it should.

A notebook runs from a copy of notebooks/ in a temporary folder, with its own compile cache; only cells tagged
``raises-exception`` may fail. Each tutorial then has a few of its key outputs checked (``CHECKS``): a notebook
without checks of its own must at least show something from every section. The committed notebooks carry no outputs
and no execution counts (``jupyter nbconvert --clear-output --inplace notebooks/*.ipynb`` clears them).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient

from .test_tutorials_5_6 import check_05, check_06

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
TUTORIALS = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))


class Ran:
    """An executed notebook, read the way a person reads it: a cell's outputs as text, by its first line."""

    def __init__(self, nb: nbformat.NotebookNode, seconds: float) -> None:
        self.nb = nb
        self.seconds = seconds

    def cells(self, first_line: str) -> list[nbformat.NotebookNode]:
        # a first line ending in a newline is that whole line (the cell may hold nothing else)
        found = [c for c in self.nb.cells if c.cell_type == "code" and (c.source + "\n").startswith(first_line)]
        assert found, f"no code cell starts with {first_line!r}"
        return found

    def output(self, first_line: str, index: int = 0) -> str:
        return text_of(self.cells(first_line)[index])

    def mimetypes(self, first_line: str, index: int = 0) -> set[str]:
        return {m for o in self.cells(first_line)[index].outputs for m in o.get("data", {})}


def text_of(cell: nbformat.NotebookNode) -> str:
    parts = []
    for o in cell.outputs:
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type == "error":
            parts.append(f"{o.ename}: {o.evalue}")
        else:
            parts.append(o.get("data", {}).get("text/plain", ""))
    return "".join(parts)


WIDGET = "application/vnd.jupyter.widget-view+json"


def check_01(ran: Ran) -> None:
    card = ran.output("%%wasinn compute echo")
    assert "in: image: f32[2, 3] cpu" in card and "out: output1: i64[1] cpu" in card
    assert WIDGET in ran.mimetypes("%%wasinn compute echo")
    assert "hello from WAT: load_by_name(echo) gave errno 0" in ran.output("%wasinn run hello")
    assert "CellError: guest 'oops' trapped: integer divide by zero" in ran.output("%wasinn run oops")
    assert "parameters  212 (float32)" in ran.output("%wasinn load mlp model")
    assert "the same as calling the model directly" in ran.output("torch.testing.assert_close(y, model(x))")
    widget = ran.output("from wasinn_jupyter.widgets import")
    assert "stripes: f32[2, 3, 24, 24]" in widget and "16 NaN" in widget
    assert WIDGET in ran.mimetypes("from wasinn_jupyter.widgets import")
    assert re.search(r"<wasi-nn timeline: [1-9]\d* calls, [1-9]\d* lifecycle markers>", ran.output("%wasinn timeline"))
    assert "image/png" in ran.mimetypes("%wasinn timeline")
    records = ran.output("from wasinn_jupyter.magics import workbench")
    assert re.search(r"set_input +[\d.]+ µs  ok +\[\(5, 8\)\]", records), records
    assert re.search(r"get_output +[\d.]+ µs  ok +\[\(5, 4\)\]", records), records
    assert "invalid_argument" in records or "invalid-argument" in records
    assert ran.output("%wasinn run c_echo").count("success: 16 bytes: 1.5 -2 3.25 4") == 3
    assert "dtype=torch.int32" in ran.output("%%wasinn compute mlp --guest top1")
    assert "deadline of 1.0 s exceeded" in ran.output("%config WasinnMagics.deadline = 1.0")


def check_02(ran: Ran) -> None:
    accuracy = re.search(r"accuracy on 256 new pictures: ([\d.]+)%", ran.output("model = torch.nn.Sequential("))
    assert accuracy and float(accuracy.group(1)) >= 90, ran.output("model = torch.nn.Sequential(")
    assert "training pictures: f32[8, 3, 16, 16]" in ran.output("from wasinn_jupyter.widgets import")
    assert "/images/ring.ppm: class 3 (ring)" in ran.output("labels = ")
    every = ran.output("for label in LABELS:")
    for k, label in enumerate(["vertical stripes", "horizontal stripes", "square", "ring"]):
        assert f"/images/{label.replace(' ', '-')}.ppm: class {k} ({label})" in every
    bad = ran.output('(work / "notes.ppm")')
    assert "/images/notes.ppm: not an 8-bit binary PPM" in bad and "exited with code 1" in bad
    assert "ring.ppm as the guest sends it: f32[1, 3, 16, 16]" in ran.output("def read_ppm")
    assert WIDGET in ran.mimetypes("def read_ppm")
    assert "top class: ring" in ran.output('print("top class:"')
    assert "precision = fp32 (choice)" in ran.output("params = %wasinn params shapes")
    assert "precision = fp16 (choice)" in ran.output('params.set("precision", "fp16")')
    compared = ran.output('print(f"fp32 {scores.tolist()}')
    change = re.search(r"largest change ([\d.e+-]+);", compared)
    assert change and 0 < float(change.group(1)) < 0.1, compared  # fp16 moved the scores, not the answer
    assert "dtype back to the guest: torch.float32" in compared and "same class: True" in compared
    assert "/images/square.ppm: class 2 (square)" in ran.output("%wasinn run --dir {work}::/images classify shapes_on")
    on_target = ran.output("from wasinn_jupyter.magics import workbench")
    if torch.cuda.is_available():
        assert "CUDA:" in ran.output("import copy")
        assert re.search(r"compute on cuda\S*: \d+ µs wall, \d+ µs on", on_target)
    else:
        assert "no CUDA here: the CPU path" in ran.output("import copy")
        assert re.fullmatch(r"compute on cpu: \d+ µs wall\n", on_target), on_target


def check_03(ran: Ran) -> None:
    assert "app.wasm" in ran.output("!{sys.executable} -m ziglang") and "app-wasmedge.wasm" in ran.output("!{sys")
    answer = "means: red 0.20 green 0.90 blue 0.40 -> green"
    from_bytes = ran.output("!wasinn run --dir .:. app.wasm model.pt")
    assert "Read torchscript binaries, size in bytes:" in from_bytes and answer in from_bytes  # load, sandboxed
    preloaded = ran.output("!wasinn run --dir .:. --nn-preload default:PyTorch:CPU:model.pt")
    assert "Read torchscript" not in preloaded and answer in preloaded
    graph_dir = ran.output("!wasinn run --nn-graph pytorch::fixture")
    assert answer in graph_dir and re.search(r"load_by_name\s+1\s+0", graph_dir)
    peer = ran.output("import subprocess")
    assert "unsupported backend: pytorch" in peer or "no wasmtime CLI here" in peer
    spec = ran.output("!wasinn run --dir .:. app.wasm resnet")
    assert "loading resnet: errno 8 (not_found)" in spec and "no graph named 'resnet'" in spec
    assert "exit status 1" in spec
    wasmedge = ran.output("!wasinn run --dir .:. app-wasmedge.wasm resnet")
    assert "loading resnet: errno 103 (model_not_found)" in wasmedge and "load_by_name_with_config" in wasmedge
    assert "errno 103 (model_not_found)" in ran.output("!wasinn run --errno-dialect wasmedge")


def check_04(ran: Ran) -> None:
    one_group = ran.output("!wasinn conformance --select shapes")
    assert re.search(r"shapes/f32\[2,3,4\]\s+pass", one_group) and "\x1b[K" not in one_group
    assert re.search(r"\n(\d+) passed, 0 failed", one_group)
    summary = ran.output("import importlib.util")
    peers = importlib.util.find_spec("wasmtime_cli") is not None and importlib.util.find_spec("openvino") is not None
    if peers:  # wasmtime 49.0.3 + OpenVINO: facts about that build (tests/conformance/test_peers.py holds more)
        assert re.search(r"wasinn: wasinn-jupyter .*\n(  .*\n)*  all: \d+ passed, 0 failed", summary), summary
        assert "wasmtime: wasmtime 49" in summary and "handles: 0 passed, 8 failed" in summary
        assert "exit status 1" in summary and "not expressible" in summary
    else:  # this host alone, and how to add the peer
        assert "pip install 'wasinn-jupyter[peers]'" in summary and "exit status 0" in summary
        assert re.search(r"\n\d+ passed, 0 failed\n", summary), summary
    (report,) = [o for o in ran.cells("from IPython.display import Markdown")[0].outputs if "data" in o]
    markdown = report["data"]["text/markdown"]
    assert "## Side by side" in markdown and "| **all** |" in markdown
    assert "## Cases whose outcomes differ" not in markdown
    if peers:
        assert "| handles | 8 passed, 0 failed | 0 passed, 8 failed |" in markdown
        assert "| wasmtime | the host crashed |" in markdown
    reasons = ran.output("import json")
    assert re.search(r"wasinn: \{'pass': \d+\}", reasons)
    if peers:
        assert "an OpenVINO input has one element type and one rank" in reasons
    assert re.search(r"\d+ cases; \['RUNNING.md', 'cases.json'", ran.output("!wasinn conformance --emit"))


def check_07(ran: Ran) -> None:
    runs = ran.output("%wasinn run bench net 30 1")
    assert "30 rounds of [1,3,32,32] through net: 40 bytes out" in runs
    assert "30 rounds of [32,3,32,32] through net: 1280 bytes out" in runs
    drawn = re.search(r"<wasi-nn timeline: (\d+) calls", ran.output("%wasinn timeline --graph net\n"))
    assert drawn and int(drawn.group(1)) >= 2 * (2 + 30 * 3), ran.output("%wasinn timeline --graph net\n")
    assert "image/png" in ran.mimetypes("%wasinn timeline --graph net\n")
    columns = ran.output("%wasinn timeline --graph net --no-plot")
    assert all(f"'{c}'" in columns for c in ("call", "duration_ns", "nbytes", "inputs", "outputs", "device_ns"))
    table = ran.output('calls["batch"]')
    assert re.search(r"\n1 +[\d.]+ +[\d.]+ +[\d.]+ +\d+%\n32 +[\d.]+", table), table
    # 30 rounds of 1 and 30 of 32 images of 3x32x32 f32: 11.6 MiB crossed set_input
    assert "set_input moved 11.6 MiB at" in ran.output('moved = rounds[rounds["call"] == "set_input"]')
    assert "30 rounds of [32,3,32,32] through net_dev: 1280 bytes out" in ran.output("%wasinn load net_dev")
    devices = ran.output("%wasinn timeline --call compute")
    assert "net_dev" in devices and ("cuda" if torch.cuda.is_available() else "cpu") in devices
    both = ran.output("card = %wasinn info bench")
    assert both.count("30 rounds of [1,3,32,32] through model.pt: 40 bytes out") == 2, both
    assert len(re.findall(r"\nload +1 +0 ", both)) == 2 and len(re.findall(r"\ncompute +30 +0 ", both)) == 2
    trace = ran.output("%wasinn timeline --trace")
    assert re.search(r"wrote \d+ records to .*trace\.json", trace)
    assert "'ph': 'X'" in trace and "'cat': 'wasi-nn'" in trace and "call slices" in trace


CHECKS: dict[str, Callable[[Ran], None]] = {
    "01-getting-started.ipynb": check_01,
    "02-image-classification.ipynb": check_02,
    "03-guests-from-other-hosts.ipynb": check_03,
    "04-conformance.ipynb": check_04,
    "05-prompts.ipynb": check_05,  # tutorials 5 and 6: their checks are in test_tutorials_5_6.py
    "06-components.ipynb": check_06,
    "07-performance.ipynb": check_07,
}


def execute(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Ran, Path]:
    """Run ``path`` from a copy of notebooks/ (so that nothing it writes lands in the repository)."""
    work = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    monkeypatch.setenv("WASINN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "agg")
    nb = nbformat.read(work / path.name, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(work)}}).execute()
    seconds = time.perf_counter() - start
    print(f"{path.name}: {seconds:.1f} s")
    return Ran(nb, seconds), work


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_and_says_what_it_should(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = {p.name for p in NOTEBOOKS.iterdir()}
    ran, work = execute(path, tmp_path, monkeypatch)
    for cell in ran.nb.cells:
        if cell.cell_type == "code" and "raises-exception" not in cell.metadata.get("tags", []):
            assert not [o for o in cell.outputs if o.output_type == "error"], cell.source
    # Generated files go to a temporary folder, not next to the notebooks (which binder and the workshop serve).
    assert {p.name for p in work.iterdir()} == before, "the notebook wrote files next to itself"
    check = CHECKS.get(path.name)
    if check is not None:
        check(ran)
    else:  # another helper's tutorial without checks yet: every code cell that should speak did
        silent = [c.source for c in ran.nb.cells if c.cell_type == "code" and not c.outputs]
        assert len(silent) < sum(c.cell_type == "code" for c in ran.nb.cells), "nothing came out of it"


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_committed_tutorial_carries_no_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    stale = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not stale, f"{path.name}: cells with outputs or counts (run jupyter nbconvert --clear-output): {stale}"
    assert all("execution" not in c.metadata for c in nb.cells), f"{path.name}: cells carry execution timings"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


def test_tutorials_are_numbered_in_reading_order() -> None:
    numbers = [int(p.name[:2]) for p in TUTORIALS]
    assert numbers == sorted(set(numbers)) and numbers[0] == 1, [p.name for p in TUTORIALS]
    assert (NOTEBOOKS / "01-getting-started.ipynb").exists()  # binder/postBuild opens it
