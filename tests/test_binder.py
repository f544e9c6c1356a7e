"""binder/ as repo2docker reads it: the files parse, torch is the CPU build of the version the README installs, and
what postBuild opens exists. (scripts/check_binder.py builds a clean environment from it: minutes, not run here.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def test_requirements_parse_and_pin_the_cpu_build_of_torch() -> None:
    options, requirements = [], []
    for raw in (BINDER / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            (options if line.startswith("--") else requirements).append(line)
    assert options == ["--extra-index-url https://download.pytorch.org/whl/cpu"]
    (torch,) = [Requirement(r) for r in requirements]
    assert torch.name == "torch" and str(torch.specifier) == "==2.13.0+cpu"  # the README's torch==2.13.0, CPU-only


def test_the_scripts_are_executable_bash_that_parses() -> None:
    for name in ("postBuild", "start"):
        path = BINDER / name
        assert path.stat().st_mode & 0o111, f"binder/{name} is not executable"
        subprocess.run(["bash", "-n", str(path)], check=True)
    assert (BINDER / "start").read_text().rstrip().endswith('exec "$@"')  # repo2docker's contract for start


def test_postbuild_installs_the_package_and_opens_a_tutorial_that_exists() -> None:
    text = (BINDER / "postBuild").read_text()
    assert re.search(r"^pip install --no-cache-dir '\.\[python-guests\]'", text, re.M)
    (url,) = re.findall(r'default_url = "/lab/tree/(.+?)"', text)
    assert (ROOT / url).is_file()
