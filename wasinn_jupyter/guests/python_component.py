"""Python guests: a cell becomes a WebAssembly component with componentize-py (PyPI ``componentize-py``).

The component's world (``python/guest.wit``) imports wasi:nn over WIT, with the phase-3 proposals this host
serves (``host/component/wit/phase3``), and exports ``wasi:cli/run``, so ``%wasinn run`` and ``wasinn run`` run
it like any command. The cell is the body of ``run`` (``python/app.py`` reads it at build time and executes it at
run time); ``python/nn.py`` gives it ``import nn`` (``nn.load_by_name``, ``nn.compute``, ``nn.tensor``, ``nn.ask``)
besides the generated bindings (``wit_world.imports``). A build takes seconds and makes an ~18 MB component; the
guest cache keeps it, and wasmtime's compiled-code cache keeps its machine code.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from ..host import PHASE3_WIT_DIR, WIT_DIR
from .compile import Toolchain, ToolchainMissing

PYTHON_DIR = Path(__file__).parent / "python"
WORLD = "command"
CELL_MODULE = "wasinn_cell"


class ComponentizePy(Toolchain):
    lang = "python"
    suffix = ".py"
    program = "componentize-py"
    HINT = "Python guests need componentize-py: pip install componentize-py"

    def _executable(self) -> str:
        beside = Path(sys.executable).parent / "componentize-py"  # a kernel's PATH may lack its own bin
        found = str(beside) if beside.is_file() else shutil.which("componentize-py")
        if found is None:
            raise ToolchainMissing(self.HINT)
        return found

    def identity(self) -> str:
        try:
            version = metadata.version("componentize-py")
        except metadata.PackageNotFoundError:
            raise ToolchainMissing(self.HINT) from None
        self._executable()
        support = hashlib.sha256()  # the world, the wrapper and nn.py are part of every build
        for path in sorted([*PYTHON_DIR.iterdir(), PHASE3_WIT_DIR / "wasi-nn.wit", WIT_DIR / "compute.wit"]):
            if path.is_file():
                support.update(path.name.encode() + b"\0" + path.read_bytes())
        return f"componentize-py {version} support {support.hexdigest()[:16]}"

    def is_command(self, source: str) -> bool:
        return True  # every Python guest exports wasi:cli/run

    def source_name(self, stem: str) -> str:
        return f"{CELL_MODULE}.py"  # the name app.py reads; errors name it cell.py

    def prepare(self, workdir: Path) -> None:
        deps = workdir / "wit" / "deps"
        deps.mkdir(parents=True)
        shutil.copy(PYTHON_DIR / "guest.wit", workdir / "wit" / "guest.wit")
        shutil.copy(WIT_DIR / "compute.wit", workdir / "wit" / "compute.wit")  # the same package: wasinn:guest
        shutil.copy(PYTHON_DIR / "cli.wit", deps / "cli.wit")
        shutil.copy(PHASE3_WIT_DIR / "wasi-nn.wit", deps / "wasi-nn.wit")
        for name in ("app.py", "nn.py"):
            shutil.copy(PYTHON_DIR / name, workdir / name)

    def command(self, src: Path, out: Path, flags: Sequence[str], is_command: bool) -> list[str]:
        return [self._executable(), "-d", "wit", "-w", WORLD, *flags, "componentize", "-p", ".", "app", "-o", str(out)]

    def slow_note(self) -> str | None:
        return "componentize-py builds an ~18 MB component (seconds; cached afterwards)"
