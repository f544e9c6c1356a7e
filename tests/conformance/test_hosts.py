"""Hosts under test run as processes: what a crash, a hang, an error or silence of the process becomes, the
command templates, the per-case OpenVINO models, the side-by-side reports and the CLI around them.

The processes here are real (``sh`` scripts that misbehave on purpose); the real wasmtime is in test_peers.py.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from wasinn_jupyter import cli
from wasinn_jupyter.conformance import CommandHost, WasinnHost, emit, hosts, openvino_models, report, run_host, runner

SCRIPT = r"""#!/bin/sh
mode=$1; shift
case "$mode" in
  hang) sleep 60 ;;
  segv) kill -SEGV $$ ;;
  panic) printf "warning: experimental\n\nthread 'main' (7) panicked at src/lib.rs:3:5:\nboom here\n" >&2
         echo "note: run with RUST_BACKTRACE=1" >&2; kill -ABRT $$ ;;
  error) printf "Error: failed to run main module\n\nCaused by:\n    0: failed to invoke \`echo\`\n" >&2
         echo "    1: Failed while accessing backend" >&2; exit 1 ;;
  silent) ;;
  code) echo "$2" ;;
  argv) printf '%s\n' "$@" > "$(dirname "$0")/argv.txt"; echo 0 ;;
esac
"""


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "host.sh"
    path.write_text(SCRIPT)
    return path


def case(name: str = "types/f32[2,3]") -> runner.Case:
    return next(c for c in runner.cases() if c.name == name)


def run_one(template: str, name: str = "types/f32[2,3]", timeout_s: float = 30.0) -> report.CaseResult:
    (result,) = run_host(CommandHost(template, timeout_s=timeout_s), chosen=[case(name)]).results
    return result


def test_a_hung_host_is_killed_and_fails_its_case(script: Path) -> None:
    result = run_one(f"sh {script} hang {{invoke}}", timeout_s=0.5)
    assert (result.status, result.kind) == ("fail", "timeout")
    assert result.detail == "timed out after 0.5 s (the host was killed)"
    assert result.duration_s < 10


def test_a_crash_is_one_failed_case_with_its_message(script: Path) -> None:
    first, second = runner.cases()[:2]
    template = f"sh {script} {{invoke}} {{args}}"  # export "echo": not a mode, so the script prints nothing
    panicking = CommandHost(template.replace("{invoke}", "panic"))
    results = run_host(panicking, chosen=[first, second]).results
    assert [r.kind for r in results] == ["crash", "crash"]  # the run went on after the first
    assert results[0].detail == "host crashed (killed by SIGABRT): panicked at src/lib.rs:3:5: boom here"
    segv = run_one(f"sh {script} segv")
    assert (segv.kind, segv.detail) == ("crash", "host crashed (killed by SIGSEGV)")


def test_an_error_exit_and_silence_say_what_the_host_said(script: Path) -> None:
    error = run_one(f"sh {script} error")
    assert error.kind == "host-error"
    assert error.detail == "host error (exit 1): Error: failed to run main module (Failed while accessing backend)"
    silent = run_one(f"sh {script} silent")
    assert (silent.kind, silent.detail) == ("no-result", "the host printed no result (stdout: 'nothing')")


def test_the_guests_result_code_is_decoded(script: Path) -> None:
    code = 1 * 10**8 + 93 * 10**6 + 6  # errno 6 from init_execution_context, the call under test
    result = run_one(f"sh {script} code {{invoke}} {code}", name="handles/graph-never-issued")
    assert (result.status, result.kind, result.code) == ("fail", "errno", code)
    assert result.detail == (
        "init_execution_context (the call under test) answered unsupported_operation (6); expected invalid_argument (1)"
    )
    assert run_one(f"sh {script} code {{invoke}} 0").status == "pass"


def test_placeholders_fill_the_command_line(script: Path, tmp_path: Path) -> None:
    template = f"sh {script} argv {{wasm}} {{invoke}} {{args}} {{graph}}:{{Encoding}}:{{TARGET}}:{{model}} {{dir}}"
    chosen = case("tensors/u8[0x80000001,2]-element-count-wraps-to-2")
    assert run_one(template, name=chosen.name).status == "pass"
    words = (tmp_path / "argv.txt").read_text().splitlines()
    assert Path(words[0]).name == "echo.wasm" and words[1] == "bad_dims"
    assert words[2:6] == ["3", str(0x80000001 - 2**32), "2", "2"]  # one word each, signed as wasm's i32
    graph, model_dir = words[6], Path(words[7])
    assert graph.startswith("echo:PyTorch:CPU:") and graph.endswith("/echo/model.pt")
    assert Path(graph.split(":", 3)[3]).parent.parent == model_dir


def test_templates_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown placeholder"):
        CommandHost("wasmedge {wasm} {nope}")
    with pytest.raises(ValueError, match="empty"):
        CommandHost("  ")
    assert "{model_dir}" in hosts.WASMTIME_TEMPLATE and "--nn-preload" in hosts.WASMEDGE_TEMPLATE
    CommandHost(hosts.WASMEDGE_TEMPLATE)  # every placeholder it uses is known


def test_what_each_model_format_cannot_express() -> None:
    table = {c.name: c for c in runner.cases()}
    assert openvino_models.not_expressible(table["types/f16[17]"]) is None
    assert openvino_models.not_expressible(table["multi/8-inputs-mixed"]) is None  # one (type, rank) per input
    assert "rank" in (openvino_models.not_expressible(table["reuse/2-contexts-from-1-graph"]) or "")
    assert "TorchScript" in (openvino_models.not_expressible(table["load/pytorch-f32"]) or "")
    torch_host = CommandHost("true {invoke}")
    assert torch_host.verdict(table["multi/2-inputs-f32[2,3]"]) == (
        "not expressible",
        "the TorchScript identity this suite supplies takes one input",
    )
    assert torch_host.verdict(table["reuse/8-rounds-every-rank"]) is None


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="needs openvino: pip install -e '.[peers]'")
def test_openvino_identity_models_echo(tmp_path: Path) -> None:
    import numpy as np
    import openvino as ov

    models = openvino_models.IdentityModels(tmp_path)
    chosen = case("multi/3-inputs-zero-sized")  # f32 rank 1, f64 rank 3, u8 rank 2
    directory = models.for_case(chosen)
    assert directory.name == "echo" and models.for_case(chosen) == directory  # written once
    compiled = ov.Core().compile_model(str(directory / "model.xml"), "CPU")
    inputs = [np.arange(5, dtype=np.float32), np.zeros((2, 0, 3), np.float64), np.full((4, 2), 7, np.uint8)]
    outputs = compiled(inputs)
    for i, given in enumerate(inputs):
        got = outputs[compiled.output(i)]
        assert got.dtype == given.dtype and got.shape == given.shape and np.array_equal(got, given)
    env = openvino_models.runtime_env(tmp_path, {"LD_LIBRARY_PATH": "/x"})
    first = Path(env["LD_LIBRARY_PATH"].split(":")[0])
    assert (first / "libopenvino_c.so").exists() or (openvino_models.library_dir() / "libopenvino_c.so").exists()
    assert env["LD_LIBRARY_PATH"].endswith(":/x")


def test_cases_json_says_needs_inputs_and_choices(tmp_path: Path) -> None:
    emit(tmp_path)
    listing = json.loads((tmp_path / "cases.json").read_text())
    by_name = {c["name"]: c for c in listing["cases"]}
    assert set(listing["needs"]) == set(runner.NEEDS)
    assert by_name["multi/6-inputs-every-type"]["needs"] == ["several-inputs"]
    assert len(by_name["multi/6-inputs-every-type"]["inputs"]) == 6
    assert by_name["outputs/3-outputs-index-0x3"]["needs"] == ["several-inputs"]
    assert "any-rank-per-input" in by_name["reuse/8-rounds-every-rank"]["needs"]
    assert by_name["types/f32[2,3]"]["needs"] == [] and by_name["types/f32[2,3]"]["basis"] == "spec"
    assert by_name["types/f32[2,3]"]["inputs"] == [[{"type": "f32", "rank": 2}]]
    assert by_name["pointers/set_input-tensor-at-end-of-memory"]["basis"] == "choice"
    assert "wasmtime traps" in by_name["pointers/set_input-tensor-at-end-of-memory"]["why"]
    assert by_name["buffers/f32[2,3]-1-bytes-short"]["basis"] == "choice"
    assert "why" not in by_name["handles/graph-never-issued"]
    needing_several = {n for n, c in by_name.items() if len(c["inputs"]) > 1}
    assert needing_several == {n for n, c in by_name.items() if "several-inputs" in c["needs"]}


def test_side_by_side_and_markdown(script: Path) -> None:
    chosen = [case("types/f32[2,3]"), case("multi/2-inputs-f32[2,3]"), case("handles/graph-never-issued")]
    ours = run_host(WasinnHost(), chosen=chosen)
    theirs = run_host(CommandHost(f"sh {script} silent {{invoke}}"), chosen=chosen)
    text = report.side_by_side([ours, theirs])
    lines = text.splitlines()
    assert lines[0].split() == ["case", "wasinn", "sh"]
    assert lines[2].split() == ["types/f32[2,3]", "pass", "FAIL"]
    assert lines[3].split() == ["multi/2-inputs-f32[2,3]", "pass", "n/e"]
    assert "  all: 0 passed, 2 failed, 1 not expressible, in " in text
    md = report.markdown([ours, theirs])
    assert "| types | 1 passed, 0 failed | 0 passed, 1 failed |" in md
    assert "| **all** | **3 passed, 0 failed** | **0 passed, 2 failed, 1 not expressible** |" in md
    assert "| `handles/graph-never-issued` | pass | fail: the host printed no result" in md
    assert "| sh | no result printed | 2 | `types/f32[2,3]`: the host printed no result (stdout: 'nothing') |" in md
    assert "| sh | not expressible | 1 | `multi/2-inputs-f32[2,3]`: the TorchScript identity" in md
    assert "## sh" in md and "Command per case: `sh " in md


def test_cli_hosts_markdown_and_json(script: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nbefore\n<!-- conformance:begin -->\nold table\n<!-- conformance:end -->\nafter\n")
    argv = ["conformance", "--select", "types/f32", "--host", "wasinn", "--host-command", f"sh {script} silent"]
    code = cli.main([*argv, "--markdown", str(readme), "--json", str(tmp_path / "r.json")])
    assert code == 1  # a host failed cases
    out = capsys.readouterr().out.splitlines()
    # wasinn runs the cases over witx and over WIT (the WIT ones are not expressible on a command-line host)
    assert out.count("  over witx: 2 passed, 0 failed; over WIT: 2 passed, 0 failed") == 1  # in the side by side
    assert out[-3] == "wasinn: 4 passed, 0 failed"
    assert out[-2].startswith("  note: the limit that remains over WIT")
    assert out[-1] == "sh: 0 passed, 2 failed, 2 not expressible"
    text = readme.read_text()
    assert text.startswith("# x\n\nbefore\n<!-- conformance:begin -->\n| group | wasinn | sh |")
    assert text.endswith("<!-- conformance:end -->\nafter\n") and "old table" not in text
    data = json.loads((tmp_path / "r.json").read_text())
    assert [h["host_label"] for h in data["hosts"]] == ["wasinn", "sh"]
    assert cli.main(["conformance", "--select", "types/f32[2", "--markdown", "-"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("# wasi-nn echo-model conformance") and "2 passed, 0 failed" in captured.err


def test_cli_host_errors_are_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["conformance", "--host", "wasmedge"]) == 2
    assert "unknown host 'wasmedge'" in capsys.readouterr().err
    assert cli.main(["conformance", "--host", f"wasmtime={tmp_path / 'none'}"]) == 2
    assert "host wasmtime cannot run: no wasmtime at" in capsys.readouterr().err
    assert cli.main(["conformance", "--host-command", "x {bad}"]) == 2
    assert "unknown placeholder(s) bad" in capsys.readouterr().err
