"""The panel ships prebuilt with the package: JupyterLab lists it enabled and OK with no other step, at the
package's version, and its kernel side starts with the extension (no browser needed here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import wasinn_jupyter

ROOT = Path(__file__).resolve().parents[2]


def test_one_version_for_python_and_typescript() -> None:
    package = json.loads((ROOT / "labextension" / "package.json").read_text())
    assert package["version"] == wasinn_jupyter.__version__
    assert package["jupyterlab"]["outputDir"] == "../wasinn_jupyter/labextension"


def installed() -> Path | None:
    """Where JupyterLab finds the built extension (None: not installed, or installed without node to build it)."""
    from jupyter_core.paths import jupyter_path

    for base in jupyter_path("labextensions"):
        if (Path(base) / "wasinn-jupyter" / "package.json").is_file():
            return Path(base) / "wasinn-jupyter"
    return None


NOT_BUILT = "the labextension was not built (no node when pip install -e . ran; install node 20 and rerun it)"


def test_jupyterlab_lists_it_enabled_and_ok() -> None:
    if installed() is None:
        pytest.skip(NOT_BUILT)
    out = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True, timeout=120
    )
    (line,) = [line for line in (out.stdout + out.stderr).splitlines() if "wasinn-jupyter" in line]
    assert f"wasinn-jupyter v{wasinn_jupyter.__version__}" in line
    assert "enabled" in line and "OK" in line and "python, wasinn-jupyter" in line, line


def test_the_installed_extension_is_the_built_one() -> None:
    where = installed()
    if where is None:
        pytest.skip(NOT_BUILT)
    meta = json.loads((where / "package.json").read_text())
    assert meta["jupyterlab"]["_build"]["load"].startswith("static/remoteEntry.")
    assert (where / meta["jupyterlab"]["_build"]["load"]).is_file()
    assert json.loads((where / "install.json").read_text())["packageName"] == "wasinn-jupyter"
    bundle = "".join(p.read_text(errors="replace") for p in (where / "static").glob("*.js"))
    assert "wasinn.timeline" in bundle  # the comm target the kernel side opens
    for cdn in ("cdn.jsdelivr", "unpkg.com", "cdnjs"):
        assert cdn not in bundle  # nothing fetched from a network
