"""The tutorial notebook runs, top to bottom, in a real kernel; only the cells tagged raises-exception fail."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def test_guests_and_magics_tutorial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WASINN_CACHE_DIR", str(tmp_path / "cache"))
    nb = nbformat.read(NOTEBOOKS / "01-guests-and-magics.ipynb", as_version=4)
    start = time.monotonic()
    NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    assert time.monotonic() - start < 120

    def output(first_line: str) -> str:
        (cell,) = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(first_line)]
        parts = []
        for o in cell.outputs:
            if o.output_type == "stream":
                parts.append(o.text)
            elif o.output_type == "error":
                parts.append(f"{o.ename}: {o.evalue}")
            else:
                parts.append(o.get("data", {}).get("text/plain", ""))
        return "".join(parts)

    assert "hello from WAT: load_by_name(echo) gave errno 0" in output("%wasinn run hello")
    assert "WasinnError: guest 'oops' trapped: integer divide by zero" in output("%wasinn run oops")
    assert output("%wasinn run c_echo").count("success: 16 bytes: 1.5 -2 3.25 4") == 3
    assert "parameters  212 (float32)" in output("%wasinn load mlp model")
    assert "dtype=torch.int32" in output("%%wasinn compute mlp --guest top1")
    assert "deadline of 1.0 s exceeded" in output("%config WasinnMagics.deadline = 1.0")
