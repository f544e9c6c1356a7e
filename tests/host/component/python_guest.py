"""The one Python guest the tests build (componentize-py: ~18 MB, seconds), shared through one cache directory."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

CELL = """\
import os
import sys

import nn

print("argv", sys.argv[1:], "env", os.environ.get("GREETING"))
if os.path.isdir("/data"):
    print("files", sorted(os.listdir("/data")))
if sys.argv[1:] == ["fail"]:
    raise RuntimeError("asked to fail")
graph = nn.load_by_name("echo")
out = nn.compute(graph, {"x": nn.tensor([2, 3], "FP32", bytes(range(24)))})
print("echo", out["x"].dimensions(), out["x"].ty().name, bytes(out["x"].data()) == bytes(range(24)))
try:
    nn.load_by_name("no-such-graph")
except nn.WasiNNError as exc:
    print("error", exc.code)
"""

CACHE = Path(
    os.environ.get("WASINN_TEST_PYGUEST_CACHE")
    or Path(tempfile.gettempdir()) / f"wasinn-test-python-guest-{os.getpid()}"
)


def needs_componentize_py() -> None:
    if shutil.which("componentize-py") is None:
        pytest.skip("componentize-py is not installed (pip install componentize-py)")
