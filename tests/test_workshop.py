"""``wasinn workshop``: the tutorials copied (never overwritten) and a real JupyterLab serving the workshop layout."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from wasinn_jupyter import workshop
from wasinn_jupyter.cli import main


def test_the_tutorials_are_found_in_reading_order() -> None:
    names = [p.name for p in workshop.tutorials()]
    assert names and names == sorted(names)
    assert all(name[:2].isdigit() and name.endswith(".ipynb") for name in names)


def test_prepare_copies_the_tutorials_and_keeps_what_is_there(tmp_path: Path) -> None:
    first = workshop.prepare(tmp_path / "w")
    assert [p.name for p in first.notebooks] == [p.name for p in workshop.tutorials()]
    edited = first.notebooks[0]
    edited.write_text('{"edited": true}')
    again = workshop.prepare(tmp_path / "w")
    assert again.copied == [] and edited.read_text() == '{"edited": true}'  # a workshop's edits survive a restart
    edited.unlink()
    assert [p.name for p in workshop.prepare(tmp_path / "w").copied] == [edited.name]


def test_the_workspace_opens_the_first_tutorial_and_the_timeline(tmp_path: Path) -> None:
    path = workshop.write_workspace(tmp_path, "01-x.ipynb")
    saved = json.loads(path.read_text())
    layout = saved["data"]["layout-restorer:data"]
    assert layout["main"]["current"] == "notebook:01-x.ipynb"
    assert layout["right"] == {"collapsed": False, "visible": True, "current": "wasinn-timeline",
                               "widgets": ["wasinn-timeline"]}  # fmt: skip
    assert saved["data"]["notebook:01-x.ipynb"]["data"]["path"] == "01-x.ipynb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_real_jupyterlab_serves_the_workshop_layout(tmp_path: Path) -> None:
    pytest.importorskip("jupyterlab")
    folder = tmp_path / "workshop"
    prepared = workshop.prepare(folder)
    workshop.write_workspace(folder / ".workspaces", prepared.notebooks[0].name)
    port = _free_port()
    command = workshop.lab_command(
        folder, port=port, browser=False,
        extra=["--ServerApp.token=", "--ServerApp.ip=127.0.0.1", "--ServerApp.allow_root=True"],
    )  # fmt: skip
    lab = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/lab/api/workspaces/{workshop.WORKSPACE}", timeout=5) as r:
                    served = json.load(r)
                break
            except OSError:
                assert lab.poll() is None, lab.stderr.read().decode() if lab.stderr else "jupyter lab exited"
                assert time.monotonic() < deadline, "jupyter lab did not answer in 90 s"
                time.sleep(0.5)
        assert served["data"]["layout-restorer:data"]["right"]["current"] == "wasinn-timeline"
        with urllib.request.urlopen(f"{base}/lab/workspaces/{workshop.WORKSPACE}", timeout=10) as r:
            page = r.read().decode()
        assert "wasinn-jupyter" in page  # the page config lists our prebuilt extension
        with urllib.request.urlopen(f"{base}/api/contents/{prepared.notebooks[0].name}?content=0", timeout=10) as r:
            assert json.load(r)["type"] == "notebook"
    finally:
        lab.terminate()
        lab.wait(30)


def test_the_command_reports_a_folder_it_cannot_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["workshop", str(blocker), "--no-browser"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("wasinn: error: cannot set up the workshop in") and err.count("\n") == 1
