"""The README's "From Python" snippet runs as printed, where the Quickstart leaves you, on a machine without CUDA."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_python_snippet_runs_as_printed(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("\n## From Python\n") :]
    section = section[: section.index("\n## ", 1)]
    (snippet,) = re.findall(r"```python\n(.*?)```", section, re.S)
    # the Quickstart's state: the repository's examples, and `python examples/make_model.py` run
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("models", "__pycache__"))
    subprocess.run([sys.executable, "examples/make_model.py"], cwd=tmp_path, check=True, capture_output=True)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # as on a machine without CUDA
    done = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("top class: ") for line in lines), done.stdout
    assert lines[-1].startswith("0 {'load_by_name'")  # the exit code and the timeline summary
