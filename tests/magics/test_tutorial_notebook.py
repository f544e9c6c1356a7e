"""The C guest tutorial 1 teaches, taken from the notebook and run against edge cases it does not show.

The notebooks themselves are executed by tests/notebooks/test_tutorials.py.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from wasinn_jupyter.guests import ComputeError, as_tensors, compile_source, compute
from wasinn_jupyter.host import Host, Session

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def test_the_tutorial_top1_guest_guards_its_input(tmp_path: Path, host: Host, session: Session) -> None:
    """The C guest the tutorial teaches: a rank-0 input is one row, and no rows is an errno, not a trap."""
    nb = nbformat.read(NOTEBOOKS / "01-getting-started.ipynb", as_version=4)
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
