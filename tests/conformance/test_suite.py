"""The echo-model conformance suite: it passes on our host, it can fail, and what it emits runs elsewhere.

The suite is only worth something if it sees a wrong host, so half of these tests break the host on purpose (a
graph that flips a byte, an errno mapping that lies, a bytes_written that lies, a guest that traps) and check
that the suite says so in words.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import wasmtime

from wasinn_jupyter.conformance import CaseResult, Report, emit, run_suite, runner
from wasinn_jupyter.host import Host, Session
from wasinn_jupyter.host.abi import witx
from wasinn_jupyter.host.backends.base import Graph, GraphInfo
from wasinn_jupyter.host.devices import cuda_available
from wasinn_jupyter.host.tensors import Tensor

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

GROUPS = {"types", "shapes", "multi", "reuse", "handles", "names", "tensors", "outputs", "buffers", "pointers", "load"}


@pytest.fixture(scope="module")
def cpu_report() -> Report:
    return run_suite("cpu")


def failures(report: Report) -> dict[str, str]:
    return {r.name: r.detail for r in report.results if r.status == "fail"}


def register_graph(host: Host, graph: Graph) -> None:
    """Put ``graph`` under the name echo."""
    host.register("echo", graph)


# -- our host ----------------------------------------------------------------------------------------------------


def test_whole_suite_passes_on_cpu(cpu_report: Report) -> None:
    print(cpu_report.table())
    print(cpu_report.summary_line(), f"in {cpu_report.duration_s:.2f} s")
    assert not failures(cpu_report), failures(cpu_report)
    assert cpu_report.skipped == 0
    assert len(cpu_report.results) >= 120
    assert {r.group for r in cpu_report.results} == GROUPS
    assert len({r.name for r in cpu_report.results}) == len(cpu_report.results)


def test_cases_cover_what_the_working_group_asked_for() -> None:
    table = runner.cases()
    echoed = [c for c in table if c.export == "echo"]
    assert {c.args[0] for c in echoed} == set(runner.TYPES.values())
    assert {c.args[1] for c in echoed} == {0, 1, 2, 3, 4, 5}
    assert any(0 in c.args[2 : 2 + c.args[1]] for c in echoed), "a zero-sized tensor"
    assert {c.args[0] for c in table if c.export == "load_echo"} == {3, 5}
    assert all(c.needs == ("pytorch",) for c in table if c.guest == "load")
    assert any(c.export == "padded" for c in table), "garbage in the tensor struct's padding"


def test_summary_line_format(cpu_report: Report) -> None:
    report = Report("cpu", [CaseResult("a", "g", "pass", "", 0.0), CaseResult("b", "g", "fail", "why", 0.0)])
    assert report.summary_line() == "1 passed, 1 failed"
    assert not report.ok
    report.results.append(CaseResult("c", "g", "skip", "no CUDA", 0.0))
    assert report.summary_line() == "1 passed, 1 failed, 1 skipped"
    assert re.fullmatch(r"\d+ passed, \d+ failed", cpu_report.summary_line())


def test_table_and_json(cpu_report: Report) -> None:
    lines = cpu_report.table().splitlines()
    assert lines[0].split() == ["case", "status", "detail"]
    assert len(lines) == len(cpu_report.results) + 2
    status_column = lines[0].index("status")
    assert all(line[status_column:].split()[0] in ("pass", "fail", "skip") for line in lines[2:])
    data = json.loads(json.dumps(cpu_report.to_json()))
    assert data["target"] == "cpu"
    assert data["counts"] == {
        "passed": cpu_report.passed,
        "failed": cpu_report.failed,
        "not_expressible": 0,
        "skipped": 0,
        "total": len(cpu_report.results),
    }
    assert data["host"]["name"] == "wasinn-jupyter" and data["host"]["wasmtime"]
    assert data["host_label"] == "wasinn" and data["groups"]["types"]["passed"] == 12
    assert data["cases"][0].keys() == {"name", "group", "status", "detail", "duration_s", "kind", "code", "basis"}


def test_select_and_progress() -> None:
    seen: list[CaseResult] = []
    report = run_suite(select="types/", progress=seen.append)
    assert [r.name for r in report.results] == [r.name for r in seen]
    assert len(seen) == 12 and all(r.group == "types" and r.status == "pass" for r in seen)


def test_gpu_target_skips_cleanly_without_cuda() -> None:
    report = run_suite("gpu")
    if cuda_available():
        assert not failures(report), failures(report)
        assert report.passed >= 100
    else:
        assert report.failed == 0 and report.passed == 0
        assert report.skipped == len(runner.cases("gpu"))
        assert all("CUDA" in r.detail for r in report.results)
        assert report.summary_line().endswith(f", {report.skipped} skipped")
        assert report.ok


# -- emitted for other hosts -------------------------------------------------------------------------------------


def test_emit_writes_modules_wasmtime_compiles(tmp_path: Path) -> None:
    paths = emit(tmp_path)
    assert {p.relative_to(tmp_path).as_posix() for p in paths} == {
        "echo.wasm",
        "load.wasm",
        "echo/model.pt",
        "cases.json",
        "RUNNING.md",
    }
    engine = wasmtime.Engine()
    exports = {}
    for name in ("echo.wasm", "load.wasm"):
        module = wasmtime.Module(engine, (tmp_path / name).read_bytes())
        assert {(i.module, i.name) for i in module.imports} <= {(witx.MODULE, n) for n in witx.SIGNATURES}
        assert {i.name for i in module.imports} <= {
            "load",
            "load_by_name",
            "init_execution_context",
            "set_input",
            "compute",
            "get_output",
        }
        exports[name] = {e.name for e in module.exports}
        assert "memory" in exports[name]
    listing = json.loads((tmp_path / "cases.json").read_text())
    assert len(listing["cases"]) == len(runner.cases())
    for case in listing["cases"]:
        assert case["export"] in exports[case["wasm"]]
        assert case["expected_result"] == 0
        assert all(-(2**31) <= a < 2**31 for a in case["args"])
    running = (tmp_path / "RUNNING.md").read_text()
    for needle in ("--invoke", "--reactor", "`echo`", "nn-preload", "nn-graph=pytorch::./echo"):
        assert needle in running


def test_emitted_cases_give_the_same_verdicts_on_our_host(tmp_path: Path) -> None:
    emit(tmp_path)
    session = Session(Host())
    session.host.register("echo", "echo")
    modules = {name: session.compile(tmp_path / name) for name in ("echo.wasm", "load.wasm")}
    failed = []
    for case in json.loads((tmp_path / "cases.json").read_text())["cases"]:
        with session.instantiate(modules[case["wasm"]]) as guest:
            if guest.call(case["export"], *case["args"]) != case["expected_result"]:
                failed.append(case["name"])
    assert not failed


# -- hosts that are wrong on purpose: the suite must fail them, and say why ----------------------------------------


class FlipFirstByte(Graph):
    """An echo that flips the lowest bit of every output's first byte."""

    name = "echo"
    device = "cpu"

    def run(self, inputs: list[Tensor]) -> list[Tensor]:
        outputs = []
        for tensor in inputs:
            raw = np.array(tensor.raw(), dtype=np.uint8, copy=True)
            if raw.size:
                raw[0] ^= 1
            outputs.append(Tensor(tensor.dims, tensor.type, raw))
        return outputs

    def info(self) -> GraphInfo:
        return GraphInfo(self.name, "flip-first-byte", self.device)


def test_an_echo_that_flips_a_byte_fails_the_equality_cases() -> None:
    session = Session(Host())
    register_graph(session.host, FlipFirstByte())
    report = run_suite(session=session, select="/")
    by_name = {r.name: r for r in report.results}
    assert by_name["types/f32[2,3]"].status == "fail"
    assert by_name["types/f32[2,3]"].detail == "get_output (tensor 0): output bytes differ at offset 0"
    assert all(by_name[f"types/{t}[17]"].status == "fail" for t in runner.TYPES)
    assert by_name["multi/6-inputs-every-type"].status == "fail"
    assert "after" in by_name["handles/graph-never-issued"].detail  # the still-works check sees it too
    assert by_name["shapes/i32[2,0,3]"].status == "pass"  # nothing to flip in a zero-sized tensor
    assert by_name["load/pytorch-f32"].status == "pass"  # a model from bytes is not the registered echo
    assert report.failed > 80 and not report.ok


def test_a_host_that_answers_the_wrong_errno_fails_the_error_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(witx, "witx_errno", lambda error, dialect=None: 5)  # every failure: runtime_error
    report = run_suite(select="/")
    by_name = {r.name: r for r in report.results}
    assert by_name["handles/graph-0xffffffff"].detail.startswith(
        "init_execution_context (the call under test) answered runtime_error (5); expected invalid_argument (1)"
    )
    assert "(host: " in by_name["handles/graph-0xffffffff"].detail
    assert by_name["names/no-such-graph"].detail.startswith(
        "load_by_name (the call under test) answered runtime_error (5); expected not_found (8) or model_not_found"
    )
    assert "expected too_large (7)" in by_name["buffers/f32[2,3]-1-bytes-short"].detail
    assert "expected invalid_encoding (2)" in by_name["load/garbage-bytes-pytorch"].detail
    refusals = [r for r in report.results if r.group in {"handles", "names", "outputs", "buffers", "pointers"}]
    refusals += [r for r in report.results if r.group == "tensors" and "garbage-padding" not in r.name]
    assert refusals and all(r.status == "fail" for r in refusals)
    round_trips = [r for r in report.results if r.group in {"types", "shapes", "multi", "reuse"}]
    assert round_trips and all(r.status == "pass" for r in round_trips)


def test_a_host_that_misreports_bytes_written_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    honest = witx.WitxBinding.get_output

    def lying(self: Any, ctx: int, index: int, out_ptr: int, out_max: int, out_written: int) -> None:
        honest(self, ctx, index, out_ptr, out_max, out_written)
        self.memory.write_u32(out_written, 12345, "bytes_written")

    monkeypatch.setattr(witx.WitxBinding, "get_output", lying)
    report = run_suite(select="types/")
    assert report.failed == 12
    assert report.results[0].detail == "get_output (tensor 0): bytes_written is 12345 instead of the output's size"


def test_a_trapping_guest_is_a_failure_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    trapping = """(module (memory (export "memory") 1)
      (func (export "echo") (param i32 i32 i32 i32 i32 i32 i32) (result i32) unreachable))"""
    monkeypatch.setattr(runner, "guest_wat", lambda guest, model=None: trapping)
    report = run_suite(select="types/")
    assert report.failed == 12
    assert all("trap" in r.detail and "unreachable" in r.detail for r in report.results)


def test_result_codes_in_words() -> None:
    case = runner.Case("g/x", "g", "echo", "bad_type", (6,), expect="invalid_argument (1)")
    assert (
        runner.describe(1 * 10**8 + 94 * 10**6 + 0, case)
        == "set_input (the call under test) answered success (0); expected invalid_argument (1)"
    )
    assert runner.describe(1 * 10**8 + 85 * 10**6 + 5, case) == (
        "compute (afterwards, checking the guest still works) answered runtime_error (5); expected success"
    )
    multi = runner.Case("g/m", "g", "echo", "multi", (), counts="tensor")
    differ = runner.describe(3 * 10**8 + 36 * 10**6 + 7, multi)
    assert differ == "get_output (tensor 3): output bytes differ at offset 7"
    assert runner.describe(4 * 10**8 + 6 * 10**6 + 24, multi) == (
        "get_output (tensor 0): the host wrote past the output, at buffer offset 24"
    )
    assert "never written" in runner.describe(2 * 10**8 + 6 * 10**6 + 999_999, multi)
    assert runner.describe(9 * 10**8 + 2, multi).startswith("bad case")
    assert runner.describe(-7, multi) == "unexpected result code -7"


def test_load_cases_skip_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_torch() -> bytes:
        raise ImportError("No module named 'torch'")

    monkeypatch.setattr(runner, "identity_torchscript", no_torch)
    report = run_suite(select="load")
    needs_torch = {c.name for c in runner.cases() if "pytorch" in c.needs}
    skipped = {r.name for r in report.results if r.status == "skip"}
    assert skipped == needs_torch and report.failed == 0 and report.passed  # load_by_name cases still run
    assert all(r.detail.startswith("needs a PyTorch backend") for r in report.results if r.status == "skip")


def test_the_readme_table_holds_what_our_host_measures(cpu_report: Report) -> None:
    """The README's side-by-side table (between its conformance markers) has our host's column as it is now: when
    the cases change, regenerate it with the command the README gives."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    region = readme.split("<!-- conformance:begin -->", 1)[1].split("<!-- conformance:end -->", 1)[0]
    table = region.strip().split("\n\n", 1)[0]  # the first table: groups by hosts
    rows = [line.split("|")[1:-1] for line in table.splitlines() if not line.startswith("|---")]
    header, body = [c.strip() for c in rows[0]], rows[1:]
    column = header.index("wasinn")
    ours = {r[0].strip(): r[column].strip().strip("*") for r in body}
    regenerate = "regenerate it: wasinn conformance --host wasinn --host wasmtime --markdown README.md"
    expected = {group: counts.line() for group, counts in cpu_report.groups().items()}
    assert {g: ours.get(g) for g in expected} == expected, regenerate
    # over both ABIs the table has a row per ABI; the witx one is this run's (run_suite: the witx cases)
    assert ours.get("**over witx**", ours["**all**"]) == cpu_report.summary_line(), regenerate
