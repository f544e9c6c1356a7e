"""``wasinn workshop``: JupyterLab on the tutorials, the first one open and the wasi-nn timeline showing.

The working group's demos start from one command on a laptop or a lent machine. The tutorials are copied into a
folder of the user's (``./wasinn-workshop`` by default) so that edits made during a workshop never touch the
installed package, and a notebook already there is never overwritten: running the command again resumes. The
layout (first tutorial in the main area, the timeline panel open on the right) is a JupyterLab workspace written
next to the copies; JupyterLab opens it by URL, so a user's own default workspace is left alone.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WORKSPACE = "wasinn-workshop"
PANEL_ID = "wasinn-timeline"  # the side panel's widget id (labextension/src/panel.ts)


def tutorials_dir() -> Path:
    """The tutorial notebooks: ``notebooks/`` of a source checkout, else the copy the wheel carries."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "notebooks", package / "tutorials"):
        if any(candidate.glob("[0-9][0-9]-*.ipynb")):
            return candidate
    raise FileNotFoundError(f"no tutorial notebooks found next to {package} (a broken install?)")


def tutorials(source: Path | None = None) -> list[Path]:
    """The tutorials in reading order (their names start with a two-digit number)."""
    return sorted((source or tutorials_dir()).glob("[0-9][0-9]-*.ipynb"))


@dataclass(frozen=True)
class Prepared:
    folder: Path
    notebooks: list[Path]  # every tutorial in the folder, in reading order
    copied: list[Path]  # the ones this call copied (the rest were there already and are kept as they are)


def prepare(folder: Path, source: Path | None = None) -> Prepared:
    """Copy the tutorials (and the files they read) into ``folder``, keeping any that are already there."""
    source = source or tutorials_dir()
    folder.mkdir(parents=True, exist_ok=True)
    copied = []
    for item in sorted(source.iterdir()):
        if item.name.startswith(".") or item.name.startswith("__") or item.name == "README.md":
            continue
        target = folder / item.name
        if target.exists():
            continue
        if item.is_dir():
            shutil.copytree(item, target)
        else:
            shutil.copy2(item, target)
        copied.append(target)
    notebooks = tutorials(folder)
    if not notebooks:
        raise FileNotFoundError(f"{folder} holds no tutorial notebooks after copying from {source}")
    return Prepared(folder, notebooks, copied)


def workspace(first: str) -> dict[str, Any]:
    """A JupyterLab 4 workspace: ``first`` open in the main area, the timeline panel open on the right."""
    doc = f"notebook:{first}"
    return {
        "data": {
            "layout-restorer:data": {
                "main": {"dock": {"type": "tab-area", "currentIndex": 0, "widgets": [doc]}, "current": doc},
                "left": {"collapsed": False, "visible": True, "current": "filebrowser", "widgets": ["filebrowser"]},
                "right": {"collapsed": False, "visible": True, "current": PANEL_ID, "widgets": [PANEL_ID]},
            },
            doc: {"data": {"path": first, "factory": "Notebook"}},
        },
        "metadata": {"id": WORKSPACE},
    }


def write_workspace(workspaces_dir: Path, first: str) -> Path:
    """Save the workshop's workspace where JupyterLab reads workspaces (through its own manager, so its format)."""
    from jupyterlab_server.workspaces_handler import WorkspacesManager

    return Path(WorkspacesManager(str(workspaces_dir)).save(WORKSPACE, json.dumps(workspace(first))))


def lab_command(
    folder: Path, *, port: int | None = None, browser: bool = True, extra: list[str] | None = None
) -> list[str]:
    """The ``jupyter lab`` command line that serves ``folder`` and opens the workshop's workspace."""
    command = [
        sys.executable, "-m", "jupyterlab",
        f"--ServerApp.root_dir={folder}",
        f"--LabApp.workspaces_dir={folder / '.workspaces'}",
        f"--LabApp.default_url=/lab/workspaces/{WORKSPACE}",
    ]  # fmt: skip
    if port is not None:
        command.append(f"--ServerApp.port={port}")
    if not browser:
        command.append("--no-browser")
    return command + list(extra or [])


def start(folder: Path, *, port: int | None = None, browser: bool = True, extra: list[str] | None = None) -> int:
    """Prepare ``folder`` and run JupyterLab on it until it is stopped; returns JupyterLab's exit status."""
    try:
        prepared = prepare(folder)
        write_workspace(folder / ".workspaces", prepared.notebooks[0].name)
    except (OSError, ImportError) as exc:
        print(f"wasinn: error: cannot set up the workshop in {folder}: {exc}", file=sys.stderr)
        return 1
    print(
        f"wasinn workshop: {len(prepared.notebooks)} tutorials in {folder}"
        + (f" ({len(prepared.copied)} copied now)" if prepared.copied else " (kept as they were)"),
        file=sys.stderr,
    )
    try:
        return subprocess.call(lab_command(folder, port=port, browser=browser, extra=extra))
    except KeyboardInterrupt:
        return 130
