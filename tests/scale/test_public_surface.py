"""wasinn_jupyter.scale sits on the host's public surface, as the other front-ends do, and never on wasmtime."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import wasinn_jupyter.host as host

SCALE = Path(__file__).resolve().parents[2] / "wasinn_jupyter" / "scale"


@pytest.mark.parametrize("path", sorted(SCALE.glob("*.py")), ids=lambda p: p.name)
def test_scale_imports_only_the_public_surface(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            assert not any(a.name.startswith(("wasmtime", "wasinn_jupyter.host")) for a in node.names), path.name
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            module = node.module if not node.level else "." * node.level + node.module
            assert not module.startswith("wasmtime"), path.name
            if module.startswith(("..host", "wasinn_jupyter.host")):
                assert module in ("..host", "wasinn_jupyter.host"), f"{path.name} imports from {module}"
                names = {a.name for a in node.names}
                assert names <= set(host.__all__), f"{path.name}: {sorted(names - set(host.__all__))} not exported"
