"""The hostile-archive builders (``hostile.py``) and the attack runner (``attack.py``) are plain modules of this
folder: importable by the tests here as ``hostile`` and ``attack``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: an attack that hangs or fills memory on a host without a sandbox")
