"""The README's notebook snippet runs as printed: each fenced block of "In a notebook" is one cell."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_blocks(section: str) -> list[str]:
    """The ```python blocks of the README section titled ``section``."""
    text = README.read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start : end if end > 0 else None], re.S)


def test_the_notebook_snippet_runs_as_printed(run: Any, ip: Any) -> None:
    cells = readme_blocks("In a notebook")
    assert len(cells) == 3 and cells[1].startswith("%%wasinn compute")
    results = [run(cell) for cell in cells]
    for cell, result in zip(cells, results, strict=True):
        assert result.ok, (cell, result.out, result.err)
    scores = ip.user_ns["scores"]
    assert isinstance(scores, torch.Tensor) and scores.shape == (1, 10)
    assert "(as the last compute gave them)" in results[2].out
