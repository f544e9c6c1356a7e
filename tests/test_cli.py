"""The wasinn command: other hosts' command lines, translated one to one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from wasinn_jupyter.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models")
    subprocess.run([sys.executable, str(EXAMPLES / "make_model.py"), "--out", str(out)], check=True)
    return out


def expected_top_class(models: Path) -> int:
    model = torch.jit.load(str(models / "tiny_cnn.pt"))
    image = torch.frombuffer(bytearray((models / "input.bin").read_bytes()), dtype=torch.float32)
    return int(model(image.reshape(1, 3, 32, 32)).argmax())


def test_wasmedge_style_preload(models, capfd) -> None:
    # wasmedge --dir .:<models> --nn-preload cnn:PyTorch:CPU:<models>/tiny_cnn.pt classify.wasm cnn input.bin
    code = main(
        ["run", "--dir", f".:{models}", "--nn-preload", f"cnn:PyTorch:CPU:{models}/tiny_cnn.pt",
         str(EXAMPLES / "classify.wat"), "cnn", "input.bin"]
    )  # fmt: skip
    out = capfd.readouterr().out
    assert code == 0, out
    assert f"top class: {expected_top_class(models)}" in out


def test_wasmtime_style_graph_directory(models, tmp_path, capfd) -> None:
    # wasmtime run --wasi nn --wasi nn-graph=pytorch::<dir> ... : the graph is named after the directory
    graph_dir = tmp_path / "tiny"
    graph_dir.mkdir()
    shutil.copy(models / "tiny_cnn.pt", graph_dir / "model.pt")
    code = main(
        ["run", "--dir", f"{models}::.", "--nn-graph", f"PYTORCH::{graph_dir}", "--timeline",
         str(EXAMPLES / "classify.wat"), "tiny", "input.bin"]
    )  # fmt: skip
    captured = capfd.readouterr()
    assert code == 0, captured
    assert f"top class: {expected_top_class(models)}" in captured.out
    assert "compute" in captured.err  # the timeline summary


def test_guest_errors_become_exit_codes(models, tmp_path, capfd) -> None:
    assert main(["run", "--dir", str(models), str(EXAMPLES / "classify.wat"), "missing", "input.bin"]) == 1
    assert "load_by_name failed, errno 8" in capfd.readouterr().out
    trap = tmp_path / "trap.wat"
    trap.write_text('(module (func (export "_start") unreachable))')
    assert main(["run", str(trap)]) == 134
    assert "unreachable" in capfd.readouterr().err
    assert main(["run", "--nn-preload", f"x:pytorch:cpu:{tmp_path}/absent.pt", str(trap)]) == 1
    assert "cannot register graph" in capfd.readouterr().err
    assert main(["run", "--deadline", "0.2", str(_spinner(tmp_path))]) == 130


def _spinner(tmp_path: Path) -> Path:
    path = tmp_path / "spin.wat"
    path.write_text('(module (func (export "_start") (loop $l (br $l))))')
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--nn-preload", "onlyname", "x.wasm"],
        ["run", "--nn-preload", "a:klingon:cpu:m.pt", "x.wasm"],
        ["run", "--nn-preload", "a:pytorch:abacus:m.pt", "x.wasm"],
        ["run", "--nn-graph", "pytorch:/tmp", "x.wasm"],
        ["run", "--dir", "/definitely/not/here", "x.wasm"],
    ],
)
def test_usage_errors(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2


def test_echo_preload_and_errno_dialect(tmp_path, capfd) -> None:
    guest = EXAMPLES / "classify.wat"
    (tmp_path / "input.bin").write_bytes(bytes(12288))
    # the echo graph answers with the whole 12 KiB input: too large for the classifier's 4 KiB output buffer
    code = main(
        ["run", "--dir", f"{tmp_path}::.", "--nn-preload", "e:autodetect:AUTO:echo", str(guest), "e", "input.bin"]
    )
    assert code == 1 and "get_output failed, errno 7" in capfd.readouterr().out
    code = main(["run", "--errno-dialect", "wasmedge", "--dir", f"{tmp_path}::.", str(guest), "nope", "input.bin"])
    assert code == 1 and "errno 103" in capfd.readouterr().out


def test_conformance_command(tmp_path, capsys) -> None:
    assert main(["conformance", "--select", "types/", "--json", str(tmp_path / "report.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "12 passed, 0 failed"
    assert '"passed": 12' in (tmp_path / "report.json").read_text()
    assert main(["conformance", "--emit", str(tmp_path / "suite")]) == 0
    assert (tmp_path / "suite" / "cases.json").is_file() and (tmp_path / "suite" / "echo.wasm").is_file()
