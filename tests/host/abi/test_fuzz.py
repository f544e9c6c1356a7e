"""Short runs of scripts/fuzz_abi.py: random calls through a real guest return errnos, never crash; mutated
TorchScript archives handed to `load` never take the host process down."""

from __future__ import annotations

import importlib.util
import json
import resource
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "fuzz_abi.py"


def load_fuzzer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_abi", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fuzz_abi", module)  # dataclasses and TorchScript look a class's module up by name
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


def test_mutated_torchscript_archives_never_take_the_host_down() -> None:
    """The load arm, 50 archives derandomized (every mutation operator, every seed, the 100,000-paren segfault
    among them), in a fresh process: on a host that runs guest TorchScript in-process one of them kills it."""
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", str(SCRIPT), "--examples", "0", "--loads", "50", "--seed", "0",
         "--max-rss-growth-mib", "128", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        pytest.fail(f"the fuzzing host process died with {name} (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr[-3000:]
    summary = json.loads(lines[-1])
    assert proc.returncode == 0 and summary["ok"], summary["problems"] or proc.stderr[-3000:]
    assert summary["loads"] == 50
    fuzz = load_fuzzer()
    assert len(summary["operators"]) >= 13, summary["operators"]  # every mutation operator ran (one may not apply)
    loads = summary["outcomes"]["load"]
    assert loads.get("success", 0) >= 1 and len(loads) >= 3, loads  # some archives load, others fail in ways
    assert set(loads) <= set(fuzz.WITX_ERRNO_NAMES.values()), loads
    assert summary["rss_mib"]["peak"] - summary["rss_mib"]["baseline"] < 128
