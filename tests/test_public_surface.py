"""Front-ends (the CLI, the magics, the guests, the conformance suite) use the host's public surface only:
what ``wasinn_jupyter.host`` exports, and ``wasinn_jupyter.host.abi`` for guest-memory layouts; never wasmtime."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import wasinn_jupyter.host as host
import wasinn_jupyter.host.abi as abi

PACKAGE = Path(__file__).resolve().parent.parent / "wasinn_jupyter"
FRONT_ENDS = [
    PACKAGE / "cli.py",
    *sorted(p for d in ("magics", "guests", "conformance") for p in (PACKAGE / d).glob("*.py")),
]
ALLOWED = {"wasinn_jupyter.host": host, "wasinn_jupyter.host.abi": abi}


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module, names) of every import in ``path``."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            module = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            found.append((module if node.level else node.module or "", [a.name for a in node.names]))
    return found


@pytest.mark.parametrize("path", FRONT_ENDS, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_front_ends_import_only_the_public_surface(path: Path) -> None:
    for module, names in _imports(path):
        assert not module.startswith("wasmtime"), f"{path.name} imports {module}"
        if module.startswith("wasinn_jupyter.host"):
            assert module in ALLOWED, f"{path.name} imports from {module}"
            exported = ALLOWED[module].__all__
            assert set(names) <= set(exported), f"{path.name}: {sorted(set(names) - set(exported))} not exported"


def test_every_exported_name_resolves() -> None:
    for module in ALLOWED.values():
        for name in module.__all__:
            assert getattr(module, name) is not None
