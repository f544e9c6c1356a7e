"""The tutorial notebook runs, top to bottom, in a real kernel; only the cells tagged raises-exception fail."""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from nbclient import NotebookClient

from wasinn_jupyter.guests import ComputeError, as_tensors, compile_source, compute
from wasinn_jupyter.host import Host, Session

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def test_guests_and_magics_tutorial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WASINN_CACHE_DIR", str(tmp_path / "cache"))
    nb = nbformat.read(NOTEBOOKS / "01-guests-and-magics.ipynb", as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()

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
    assert "CellError: guest 'oops' trapped: integer divide by zero" in output("%wasinn run oops")
    assert output("%wasinn run c_echo").count("success: 16 bytes: 1.5 -2 3.25 4") == 3
    assert "parameters  212 (float32)" in output("%wasinn load mlp model")
    assert "dtype=torch.int32" in output("%%wasinn compute mlp --guest top1")
    assert "deadline of 1.0 s exceeded" in output("%config WasinnMagics.deadline = 1.0")


def test_the_tutorial_top1_guest_guards_its_input(tmp_path: Path, host: Host, session: Session) -> None:
    """The C guest the tutorial teaches: a rank-0 input is one row, and no rows is an errno, not a trap."""
    nb = nbformat.read(NOTEBOOKS / "01-guests-and-magics.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("%%wasinn guest top1")]
    source = cell.source.split("\n", 1)[1]
    compiled = compile_source(source, "c", name="top1", cache_dir=tmp_path)

    class Scores(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.reshape(-1, 1) * torch.arange(4.0)  # 4 scores per element; the best is 3 where x > 0

    host.register("scores", Scores())
    with session.instantiate(session.compile(compiled.wasm)) as guest:
        guest.call("_initialize")
        (out,) = compute(guest, "scores", as_tensors(np.float32(2.0)))  # rank 0: there is no dims[0] to read
        assert out.tensor.dims == (1,) and out.tensor.to_torch().tolist() == [3]
        (out,) = compute(guest, "scores", as_tensors(np.ones(5, np.float32)))
        assert out.tensor.to_torch().tolist() == [3] * 5
        with pytest.raises(ComputeError, match=r"errno 1 \(invalid_argument\)"):
            compute(guest, "echo", as_tensors(np.ones((0, 3), np.float32)))  # no rows: no division by zero
