"""Check what can be checked here of the Binder image: build a clean virtual environment from exactly what
``binder/`` says, run the first tutorial in it through nbclient, and list the labextension.

repo2docker itself needs Docker, which these machines lack, and the PyTorch CPU index is not reachable from them:
so the one line that differs is torch's source (the same version, ``torch==2.13.0``, from this machine's own file).
Everything else is the files as committed: requirements.txt's other lines, postBuild run as repo2docker runs it
(with HOME pointing into the environment), start wrapping the notebook's execution.

    python scripts/check_binder.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def requirement_lines() -> list[str]:
    """binder/requirements.txt without comments; torch pinned as there, minus the CPU index's local label."""
    lines = []
    for raw in (BINDER / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("--extra-index-url") or line.startswith("--index-url"):
            continue
        lines.append(line.replace("+cpu", ""))
    return lines


def sh(command: list[str], env: dict[str, str], cwd: Path = ROOT) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, env=env, cwd=cwd, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="build the environment here and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="wasinn-binder-"))
    started = time.monotonic()
    try:
        venv = work / "venv"
        home = work / "home"
        home.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        path = f"{venv / 'bin'}:{os.environ['PATH']}"
        env = {**os.environ, "HOME": str(home), "PATH": path, "VIRTUAL_ENV": str(venv)}
        env.pop("PYTHONPATH", None)
        python = str(venv / "bin" / "python")
        sh([python, "-m", "pip", "install", "-q", *requirement_lines()], env)
        sh(["bash", str(BINDER / "postBuild")], env)
        sh([python, "-m", "pip", "install", "-q", "nbclient", "ipykernel"], env)
        first = sorted((ROOT / "notebooks").glob("01-*.ipynb"))[0]
        run = (
            "import nbformat, sys; from nbclient import NotebookClient; "
            f"nb = nbformat.read({str(first)!r}, as_version=4); "
            f"where = {{'metadata': {{'path': {str(first.parent)!r}}}}}; "
            "NotebookClient(nb, timeout=600, kernel_name='python3', resources=where).execute(); "
            "print('executed', len(nb.cells), 'cells')"
        )
        sh([str(BINDER / "start"), python, "-c", run], {**env, "WASINN_CACHE_DIR": str(work / "cache")})
        listing = subprocess.run(
            [str(venv / "bin" / "jupyter"), "labextension", "list"], env=env, capture_output=True, text=True, check=True
        )
        text = listing.stdout + listing.stderr
        print(text)
        ok = any("wasinn-jupyter" in line and "enabled" in line and "OK" in line for line in text.splitlines())
        print(f"binder check: {'OK' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s")
        return 0 if ok else 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
