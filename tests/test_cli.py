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


def test_version(capsys) -> None:
    from wasinn_jupyter import __version__

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"wasinn {__version__} (wasmtime ")


def test_a_failed_call_that_ends_the_guest_shows_the_hosts_message(models, capfd) -> None:
    preload = ["--dir", f"{models}::.", "--nn-preload", f"cnn:PyTorch:CPU:{models}/tiny_cnn.pt"]
    code = main(["run", *preload, str(EXAMPLES / "classify.wat"), "resnet", "input.bin"])  # no -v
    captured = capfd.readouterr()
    assert code == 1 and "load_by_name failed, errno 8" in captured.out
    expected = "the guest's last wasi-nn call failed: load_by_name: no graph named 'resnet' (registered: cnn)"
    assert f"wasinn: {expected}" in captured.err
    assert main(["run", *preload, str(EXAMPLES / "classify.wat"), "cnn", "input.bin"]) == 0
    assert "wasi-nn call failed" not in capfd.readouterr().err


def test_a_trap_shows_one_backtrace_with_demangled_names(tmp_path, capfd) -> None:
    guest = tmp_path / "trap.wat"
    guest.write_text(
        "(module (func $_ZN5guest5inner17h0123456789abcdefE (unreachable))"
        " (func $outer (call $_ZN5guest5inner17h0123456789abcdefE))"
        ' (func (export "_start") (call $outer)))'
    )
    assert main(["run", str(guest)]) == 134
    err = capfd.readouterr().err
    assert err.startswith("wasinn: guest trapped: wasm `unreachable` instruction executed\nguest backtrace:\n")
    assert err.count("backtrace") == 1 and "guest!guest::inner @" in err and "h0123456789abcdef" not in err


def test_a_module_that_does_not_validate_says_why(tmp_path, capfd) -> None:
    guest = tmp_path / "bad.wat"
    guest.write_text("(module (func (result i32)))")
    assert main(["run", str(guest)]) == 1
    err = capfd.readouterr().err
    assert "type mismatch" in err and "at offset" in err and err.count("\n") == 1


def test_a_conformance_run_that_tests_nothing_is_a_usage_error(capsys) -> None:
    assert main(["conformance", "--select", "NOSUCH"]) == 2
    captured = capsys.readouterr()
    assert "nothing was tested: no case name contains 'NOSUCH'" in captured.err and "--allow-empty" in captured.err
    assert main(["conformance", "--select", "NOSUCH", "--allow-empty"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "0 passed, 0 failed"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_conformance_on_gpu_without_cuda_is_a_usage_error(capsys) -> None:
    assert main(["conformance", "--target", "gpu", "--select", "types/"]) == 2
    assert "every case was skipped (target gpu: CUDA is not available here" in capsys.readouterr().err
    assert main(["conformance", "--target", "gpu", "--select", "types/", "--allow-empty"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "0 passed, 0 failed, 26 skipped"  # 12 witx, 14 WIT


def test_conformance_command(tmp_path, capsys) -> None:
    assert main(["conformance", "--select", "types/", "--json", str(tmp_path / "report.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-3:-1] == ["26 passed, 0 failed", "  over witx: 12 passed, 0 failed; over WIT: 14 passed, 0 failed"]
    assert out[-1].startswith("  note: the limit that remains over WIT")
    assert '"passed": 26' in (tmp_path / "report.json").read_text()
    assert main(["conformance", "--emit", str(tmp_path / "suite")]) == 0
    assert (tmp_path / "suite" / "cases.json").is_file() and (tmp_path / "suite" / "echo.wasm").is_file()


# -- stopping -----------------------------------------------------------------------------------------------------

# Says "computing" on stdout, then computes graph "slow" once.
SLOW_GUEST = r"""(module
  (import "wasi_ephemeral_nn" "load_by_name" (func $lbn (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "init_execution_context" (func $init (param i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "set_input" (func $set (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "compute" (func $compute (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "slow")
  (data (i32.const 16) "\01\00\00\00")
  (data (i32.const 32) "\10\00\00\00\01\00\00\00\01\00\00\00\00\01\00\00\04\00\00\00")
  (data (i32.const 300) "computing\n")
  (func (export "_start")
    (if (call $lbn (i32.const 0) (i32.const 4) (i32.const 100)) (then unreachable))
    (if (call $init (i32.load (i32.const 100)) (i32.const 104)) (then unreachable))
    (if (call $set (i32.load (i32.const 104)) (i32.const 0) (i32.const 32)) (then unreachable))
    (i32.store (i32.const 200) (i32.const 300))
    (i32.store (i32.const 204) (i32.const 10))
    (drop (call $fd_write (i32.const 1) (i32.const 200) (i32.const 1) (i32.const 208)))
    (drop (call $compute (i32.load (i32.const 104))))))
"""


class Slow(torch.nn.Module):
    """Minutes of matrix products: Ctrl-C lands inside torch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.ones(128, 128)
        for _ in range(10_000_000):
            a = torch.mm(a, a) / 128.0
        return x + a.sum()


def wasinn(*args: str, **kwargs) -> subprocess.Popen:
    """The command as a user runs it: its own process, its own interpreter shutdown."""
    return subprocess.Popen([sys.executable, "-m", "wasinn_jupyter.cli", *args], text=True, **kwargs)


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGINT")
def test_ctrl_c_during_a_long_compute_ends_with_130_every_time(tmp_path) -> None:
    import signal
    import time

    model = tmp_path / "slow.pt"
    torch.jit.save(torch.jit.script(Slow()), str(model))
    guest = tmp_path / "slow.wat"
    guest.write_text(SLOW_GUEST)
    for attempt in range(5):
        proc = wasinn("run", "--nn-preload", f"slow:pytorch:cpu:{model}", str(guest),
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "computing\n"
            time.sleep(0.3)  # inside torch by now
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
        assert proc.returncode == 130, (attempt, proc.returncode, err[-2000:])
        assert "Traceback" not in err and "interrupted" in err


def test_a_deadline_stops_a_guest_sleeping_in_wasi(tmp_path) -> None:
    import time

    guest = tmp_path / "sleep.wat"
    guest.write_text(
        """(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 16) (i32.const 1))  ;; clock: monotonic
    (i64.store (i32.const 24) (i64.const 30000000000))  ;; 30 s, relative
    (drop (call $poll (i32.const 0) (i32.const 128) (i32.const 1) (i32.const 256)))))"""
    )
    start = time.monotonic()
    proc = wasinn("run", "--deadline", "1", str(guest), stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "deadline of 1.0 s exceeded" in err
    assert time.monotonic() - start < 25  # not the 30 s asked for


@pytest.mark.skipif(sys.platform == "win32", reason="needs ulimit")
def test_deep_recursion_traps_under_a_small_stack_limit(tmp_path) -> None:
    guest = tmp_path / "recurse.wat"
    guest.write_text(
        """(module
  (func $deep (param i32) (result i32) (i32.add (call $deep (local.get 0)) (i32.const 1)))
  (func (export "_start") (drop (call $deep (i32.const 0)))))"""
    )
    command = f'ulimit -s 512 && exec {sys.executable} -m wasinn_jupyter.cli run "$0"'
    done = subprocess.run(["bash", "-c", command, str(guest)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 134, done.stderr[-2000:]
    assert "stack" in done.stderr


# -- bad input: one line, no traceback ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--dir", "::x", "g.wat"],
        ["run", "--dir", ":", "g.wat"],
        ["run", "--dir", "/tmp::", "g.wat"],
        ["run", "--dir", "\udcff", "g.wat"],
        ["run", "--env", "KEY=\udcff", "g.wat"],
        ["run", "g.wat", "ok", "\udcff"],
        ["run", "--deadline", "nan", "g.wat"],
        ["run", "--deadline", "0", "g.wat"],
        ["run", "--deadline", "-1", "g.wat"],
        ["run", "--deadline", "inf", "g.wat"],
        ["run", "--max-memory", "-1", "g.wat"],
        ["run", "--fuel", "-3", "g.wat"],
        ["run", "--nn-preload", "onlyname", "x.wasm"],
        ["run", "--nn-preload", "a:klingon:cpu:m.pt", "x.wasm"],
        ["run", "--nn-preload", "a:pytorch:abacus:m.pt", "x.wasm"],
        ["run", "--nn-graph", "pytorch:/tmp", "x.wasm"],
        ["run", "--dir", "/definitely/not/here", "x.wasm"],
    ],
)
def test_bad_arguments_are_one_line_usage_errors(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_a_guest_that_cannot_be_read_is_one_line(tmp_path, capsys) -> None:
    (tmp_path / "binary.wat").write_bytes(b"\xff\xfe\x00garbage")
    for guest, words in [
        (tmp_path / "binary.wat", "neither wasm"),
        (tmp_path, "Is a directory"),
        (tmp_path / "absent.wasm", "No such file"),
    ]:
        assert main(["run", str(guest)]) == 1
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


# -- WasmEdge's errnos -------------------------------------------------------------------------------------------

# WasmEdge's GGML model-not-found test guest, in WAT: imports only load_by_name, prints "Model not found" when
# load_by_name("default") answers WasmEdge's 103, else exits with the errno.
MODEL_NOT_FOUND = r"""(module
  (import "wasi_ephemeral_nn" "load_by_name" (func $load_by_name (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "default")
  (data (i32.const 32) "Model not found\n")
  (func ${name} (result i32) (call $load_by_name (i32.const 0) (i32.const 7) (i32.const 64)))
  (func (export "_start") (local $errno i32)
    (local.set $errno (call ${name}))
    (if (i32.ne (local.get $errno) (i32.const 103)) (then (call $proc_exit (local.get $errno))))
    (i32.store (i32.const 16) (i32.const 32))
    (i32.store (i32.const 20) (i32.const 16))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))))
"""


def test_wasmedge_model_not_found_guest(tmp_path, capfd) -> None:
    plain = tmp_path / "plain.wat"
    plain.write_text(MODEL_NOT_FOUND.replace("${name}", "$load"))
    built_with_the_crate = tmp_path / "crate.wat"
    built_with_the_crate.write_text(MODEL_NOT_FOUND.replace("${name}", "$wasmedge_wasi_nn::graph::load_by_name"))
    # wasmedge --dir .:. --nn-preload default:GGML:AUTO:model-not-found.gguf wasmedge-ggml-model-not-found.wasm
    ggml = ["--nn-preload", f"default:GGML:AUTO:{tmp_path}/model-not-found.gguf"]
    assert main(["run", *ggml, str(plain), "default"]) == 0
    captured = capfd.readouterr()
    assert "Model not found" in captured.out and "load_by_name answers not found" in captured.err
    assert main(["run", str(built_with_the_crate), "default"]) == 0  # its symbols in the name section
    assert "Model not found" in capfd.readouterr().out
    assert main(["run", str(plain)]) == 8  # a spec guest still gets not_found
    assert main(["run", "--errno-dialect", "spec", *ggml, str(built_with_the_crate)]) == 8  # the override wins


def test_guest_models_and_the_budget_reach_the_host(tmp_path, capsys) -> None:
    """`load` from guest bytes: sandboxed by default; --guest-models off refuses it; a tiny budget refuses it."""
    import io

    import torch

    from wasinn_jupyter.cli import main

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Identity()), buffer)
    archive = buffer.getvalue()
    escaped = "".join(f"\\{b:02x}" for b in archive)
    guest = tmp_path / "load.wat"
    guest.write_text(
        f"""(module
          (import "wasi_ephemeral_nn" "load" (func $load (param i32 i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") {len(archive) // 65536 + 2})
          (data (i32.const 1024) "{escaped}")
          (func (export "_start")
            (i32.store (i32.const 8) (i32.const 1024))
            (i32.store (i32.const 12) (i32.const {len(archive)}))
            (call $exit (call $load (i32.const 8) (i32.const 1) (i32.const 3) (i32.const 0) (i32.const 0)))))"""
    )
    assert main(["run", str(guest)]) == 0  # the default: loaded, in the sandbox
    assert main(["run", "--guest-models", "off", str(guest)]) == 6  # unsupported_operation
    assert main(["run", "--max-guest-bytes", "100", str(guest)]) == 7  # too_large: the copy alone is over
    assert main(["run", "--guest-models", "in-process", str(guest)]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as usage:
        main(["run", "--guest-models", "maybe", str(guest)])
    assert usage.value.code == 2 and "--guest-models" in capsys.readouterr().err
