"""The README's widget snippet runs as printed (outside a kernel, show() prints the widget's text)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_widgets_snippet_runs_as_printed() -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("\n## Widgets: tensors and parameters\n") :]
    section = section[: section.index("\n## ", 1)]
    (snippet,) = re.findall(r"```python\n(.*?)```", section, re.S)
    done = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, check=True, timeout=300)
    assert done.stdout.startswith("f32[8, 3, 224, 224] · cpu · min ")
