"""The README's `wasinn map` command runs as printed, where the Quickstart leaves you."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_map_command_runs_as_printed(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("\n## Past one machine: `wasinn map` and Ray\n") :]
    (command,) = re.findall(r"```sh\n(.*?)```", section[: section.index("\n## ", 1)], re.S)
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("models", "__pycache__"))
    subprocess.run([sys.executable, "examples/make_model.py"], cwd=tmp_path, check=True, capture_output=True)
    wasinn = str(Path(sys.executable).with_name("wasinn"))
    done = subprocess.run(
        command.replace("\\\n", " ").replace("wasinn map", f"{wasinn} map", 1),
        shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    *results, summary = (json.loads(line) for line in done.stdout.splitlines())
    assert [Path(r["input"]).name for r in results] == ["input.bin"]
    assert results[0]["stdout"].splitlines()[-1].startswith("top class: ")
    assert summary["summary"]["ok"] == 1
