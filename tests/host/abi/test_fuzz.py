"""A short run of scripts/fuzz_abi.py: random calls through a real guest return errnos, never crash."""

from __future__ import annotations

import importlib.util
import resource
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "fuzz_abi.py"


def load_fuzzer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_abi", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_random_abi_calls_return_errnos_and_memory_stays_bounded(torchscript_identity) -> None:
    fuzz = load_fuzzer()
    fuzzer = fuzz.Fuzzer(fuzz.make_session(torchscript_identity))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fuzz.property_for(fuzzer, examples=300, derandomize=True)()
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert fuzzer.calls > 1500
    assert 0 in fuzzer.outcomes and len(fuzzer.outcomes) >= 3  # success and several distinct errnos were reached
    assert grown_mib < 256, f"peak RSS grew by {grown_mib:.0f} MiB"
