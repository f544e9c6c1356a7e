"""The magics through a real IPython shell: help, guests in every CI toolchain, run, load, compute, errors,
interrupts, settings."""

from __future__ import annotations

import _thread
import gc
import importlib.util
import io
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from wasinn_jupyter.host import Session
from wasinn_jupyter.magics import CellError, GraphCard, GuestCard, Listing, WasinnMagics, workbench
from wasinn_jupyter.magics.core import SUBCOMMANDS

Run = Callable[[str], Any]
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

HELLO_WAT = """%%wasinn guest hello
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from wat\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 15))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""

TRAP_WAT = """%%wasinn guest trap
(module
  (func $inner (unreachable))
  (func $outer (call $inner))
  (func (export "_start") (call $outer)))
"""


def magics(ip: Any) -> WasinnMagics:
    return next(c for c in ip.configurables if isinstance(c, WasinnMagics))


def assert_short_error(cell: Any, *fragments: str) -> None:
    """The cell failed with our error, showed its message and no Python traceback."""
    assert not cell.ok
    assert isinstance(cell.error, CellError), cell.error
    shown = cell.out + cell.err
    assert "Traceback" not in shown and 'File "' not in shown
    for fragment in fragments:
        assert fragment in shown, shown


# -- the extension and its help ----------------------------------------------------------------------------------


def test_load_and_unload_the_extension(shell: Any) -> None:
    shell.run_line_magic("load_ext", "wasinn_jupyter")
    assert "wasinn" in shell.magics_manager.magics["line"] and "wasinn" in shell.magics_manager.magics["cell"]
    assert sum(isinstance(c, WasinnMagics) for c in shell.configurables) == 1
    shell.run_line_magic("unload_ext", "wasinn_jupyter")
    assert "wasinn" not in shell.magics_manager.magics["line"]
    assert not any(isinstance(c, WasinnMagics) for c in shell.configurables)


def test_importing_the_package_stays_light() -> None:
    import subprocess
    import sys

    code = "import sys, wasinn_jupyter; print(sorted(m for m in ('torch', 'IPython', 'wasmtime') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_help_lists_every_subcommand(run: Run) -> None:
    for line in ("%wasinn", "%wasinn --help", "%wasinn -h"):
        cell = run(line)
        assert cell.ok
        for name, (_, takes_cell) in SUBCOMMANDS.items():
            assert f"{'%%' if takes_cell else '%'}wasinn {name}" in cell.out


@pytest.mark.parametrize("sub", list(SUBCOMMANDS))
def test_every_subcommand_has_help(run: Run, sub: str) -> None:
    cell = run(f"%wasinn {sub} --help")
    assert cell.ok
    assert cell.out.lstrip().startswith(f"%{'%' if SUBCOMMANDS[sub][1] else ''}wasinn {sub}")
    assert "usage" not in cell.err.lower()


def test_bad_usage_fails_the_cell(run: Run) -> None:
    # the cell's error, not a note on stderr: Run All and nbconvert stop there
    assert_short_error(run("%wasinn frob"), "unknown subcommand 'frob'")
    assert_short_error(run("%wasinn guest x"), "cell magic")
    assert_short_error(run("%%wasinn list\n1"), "line magic")
    assert_short_error(run("%wasinn load onlyname"), "%wasinn load: the following arguments are required")
    assert_short_error(run("%wasinn load x echo --bogus"), "unrecognized arguments: --bogus")


# -- guests: compile, cache, run ---------------------------------------------------------------------------------


def test_a_wat_guest_runs_and_its_output_reaches_the_cell(run: Run) -> None:
    cell = run(HELLO_WAT)
    assert cell.ok and "guest 'hello': wat" in cell.out and "%wasinn run hello" in cell.out
    cell = run("%wasinn run hello")
    assert cell.ok and cell.out == "hello from wat\n"


def test_compiles_are_cached_and_f_forces(run: Run) -> None:
    source = '%%wasinn guest cached{}\n(module (func (export "_start")))'
    assert "compiled in" in run(source.format("")).out
    assert "from the cache" in run(source.format("")).out
    assert "compiled in" in run(source.format(" -f")).out


def test_a_c_guest_gets_argv_and_streams_stdout_and_stderr(run: Run, sources: dict[str, str]) -> None:
    cell = run("%%wasinn guest args --lang c\n" + sources["c_args"])
    assert cell.ok, cell.out + cell.err
    cell = run('%wasinn run args one "two words"')
    assert cell.ok
    assert cell.out == "arg 1: one\narg 2: two words\n" and cell.err == "done\n"


def test_a_nonzero_exit_fails_the_cell(run: Run, sources: dict[str, str]) -> None:
    run("%%wasinn guest args --lang c\n" + sources["c_args"])
    assert_short_error(run("%wasinn run args fail"), "guest 'args' exited with code 3")


def test_a_compile_error_is_short(run: Run) -> None:
    cell = run("%%wasinn guest broken --lang c\nint main(void) { return oops; }\n")
    assert_short_error(cell, "c guest 'broken' did not compile (zig cc", "broken.c:1:", "undeclared identifier")
    assert "broken" not in run("%wasinn list").out


def test_a_wat_error_is_short(run: Run) -> None:
    assert_short_error(run("%%wasinn guest w\n(module (func (i32.nonsense)))"), "the WAT does not parse")


def test_a_trap_shows_the_guest_backtrace(run: Run) -> None:
    run(TRAP_WAT)
    cell = run("%wasinn run trap")
    assert_short_error(cell, "guest 'trap' trapped: wasm `unreachable` instruction executed", "guest backtrace:")
    assert cell.out.index("inner") < cell.out.index("outer")


def test_an_unknown_import_fails_at_compile_time(run: Run) -> None:
    cell = run('%%wasinn guest odd\n(module (import "nowhere" "f" (func)))')
    assert_short_error(cell, "guest 'odd'", "nowhere")


def test_running_what_is_not_a_command(run: Run, sources: dict[str, str]) -> None:
    run("%%wasinn guest spinc\n" + sources["spin_compute"])
    assert_short_error(run("%wasinn run spinc"), "is not a command")
    assert_short_error(run("%wasinn run ghost"), "no guest named 'ghost'")


def test_run_preopens_directories_and_sets_the_environment(run: Run, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("from a file\n")
    source = r"""%%wasinn guest cat --lang c
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "r");
    char line[64];
    if (!f || !fgets(line, sizeof line, f)) return 1;
    printf("%s%s\n", line, getenv("GREETING"));
    return 0;
}
"""
    assert run(source).ok
    cell = run(f"%wasinn run --dir {tmp_path}::/data --env GREETING=hi cat /data/data.txt")
    assert cell.ok, cell.out + cell.err
    assert cell.out == "from a file\nhi\n"


def need(lang: str) -> None:
    from wasinn_jupyter.guests import ToolchainMissing
    from wasinn_jupyter.guests.compile import toolchain

    try:
        toolchain(lang).identity()
    except ToolchainMissing as exc:
        pytest.skip(exc.message)


def test_a_rust_guest(run: Run) -> None:
    need("rust")
    source = """%%wasinn guest rs --lang rust
mod wasi_nn;
fn main() {
    let graph = wasi_nn::load_by_name("echo").unwrap();
    let mut ctx = graph.init_execution_context().unwrap();
    ctx.set_input(0, wasi_nn::TensorType::U8, &[3], &[7, 8, 9]).unwrap();
    ctx.compute().unwrap();
    println!("rust guest got {:?}", ctx.get_output_vec(0).unwrap());
}
"""
    run("%wasinn load echo echo")
    assert run(source).ok
    assert run("%wasinn run rs").out == "rust guest got [7, 8, 9]\n"
    assert_short_error(run("%%wasinn guest rbad --lang rust\nfn main() { nope() }"), "rbad.rs:1", "nope")


def test_an_assemblyscript_guest(run: Run) -> None:
    need("assemblyscript")
    source = """%%wasinn guest as1 --lang assemblyscript
@external("wasi_snapshot_preview1", "proc_exit")
declare function proc_exit(code: u32): void;
export function _start(): void { proc_exit(5); }
"""
    assert run(source).ok
    assert_short_error(run("%wasinn run as1"), "exited with code 5")


def test_the_default_language_is_a_setting(
    run: Run, ip: Any, sources: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    run("%config WasinnMagics.lang = 'c'")
    assert run("%%wasinn guest args\n" + sources["c_args"]).ok
    run("%config WasinnMagics.lang = 'cobol'")  # %config logs the TraitError
    assert "unknown guest language 'cobol'" in caplog.text
    assert magics(ip).lang == "c"
    assert "WasinnMagics.cache_dir" in run("%config WasinnMagics").out


# -- stopping runaway guests -----------------------------------------------------------------------------------


class _Watch(io.TextIOBase):
    """Stands in for sys.stdout: passes everything on, and notes when ``marker`` is written."""

    def __init__(self, real: Any, marker: str) -> None:
        self.real = real
        self.marker = marker
        self.seen = threading.Event()

    def write(self, text: str) -> int:
        if self.marker in text:
            self.seen.set()
        return self.real.write(text)

    def flush(self) -> None:
        self.real.flush()


@contextmanager
def interrupt_when_printed(marker: str = "spinning") -> Iterator[None]:
    """Press the interrupt button (KeyboardInterrupt in the main thread) once the guest has printed ``marker``.

    The guests print it right before looping forever, so the interrupt lands while the guest runs, never before
    it starts or after it ends; the presser thread is stopped and joined on the way out, so it cannot fire into a
    later test.
    """
    watch = _Watch(sys.stdout, marker)
    leave = threading.Event()

    def press() -> None:
        while not leave.is_set():
            if watch.seen.wait(0.05):
                _thread.interrupt_main()
                return

    presser = threading.Thread(target=press, name="test-interrupt", daemon=True)
    sys.stdout = watch
    presser.start()
    try:
        yield
    finally:
        leave.set()
        presser.join()
        sys.stdout = watch.real


def test_an_interrupt_stops_a_runaway_guest(run: Run, sources: dict[str, str]) -> None:
    run("%%wasinn guest spin\n" + sources["spin"])
    with interrupt_when_printed():
        cell = run("%wasinn run spin")
    assert cell.out.startswith("spinning\n")
    assert_short_error(cell, "guest 'spin' stopped: interrupted")
    assert run("%wasinn run hello_missing").error is not None  # the shell is usable
    assert run("1 + 1").value == 2


def test_an_interrupt_stops_a_runaway_compute(run: Run, sources: dict[str, str]) -> None:
    run("%%wasinn guest spinc\n" + sources["spin_compute"])
    run("%wasinn load echo echo")
    with interrupt_when_printed():
        cell = run("%%wasinn compute echo --guest spinc\n[1.0, 2.0]")
    assert_short_error(cell, "through guest 'spinc'", "stopped: interrupted")
    assert run("%%wasinn compute echo\n[1.0, 2.0]").value.tolist() == [1.0, 2.0]


def test_a_deadline_stops_a_runaway_guest(run: Run, sources: dict[str, str]) -> None:
    run("%config WasinnMagics.deadline = 0.3")
    run("%%wasinn guest spin\n" + sources["spin"])
    assert_short_error(run("%wasinn run spin"), "deadline of 0.3 s exceeded")


# -- graphs ------------------------------------------------------------------------------------------------------


def test_load_echo_and_show_it(run: Run) -> None:
    cell = run("%wasinn load e echo")
    assert cell.ok and isinstance(cell.value, GraphCard)
    assert "graph 'e'" in cell.out and "kind        echo" in cell.out
    assert "<table>" in cell.value._repr_html_()


def test_load_a_module_from_a_variable(run: Run, ip: Any) -> None:
    ip.user_ns["net"] = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()).eval()
    cell = run("%wasinn load mlp net")
    assert cell.ok
    assert "parameters  15 (float32)" in cell.out and "nn.Module" in cell.out and "device      cpu" in cell.out


def test_load_an_exported_program_and_a_script_module(run: Run, ip: Any) -> None:
    model = torch.nn.Linear(3, 2).eval()
    ip.user_ns["program"] = torch.export.export(model, (torch.ones(1, 3),))
    ip.user_ns["scripted"] = torch.jit.script(model)
    cell = run("%wasinn load exported program")
    assert cell.ok and "torch.export" in cell.out and "f32 [1, 3]" in cell.out
    cell = run("%wasinn load scripted scripted")
    assert cell.ok and "torchscript" in cell.out


def test_load_from_a_file_and_a_directory(run: Run, tmp_path: Path) -> None:
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "model.pt")
    assert run(f"%wasinn load byfile {tmp_path / 'model.pt'}").ok
    assert run(f"%wasinn load bydir {tmp_path}").ok
    assert run(f"%wasinn load typed {tmp_path} --encoding pytorch --target cpu").ok


def test_load_errors_are_short(run: Run, tmp_path: Path) -> None:
    assert_short_error(run("%wasinn load x no_such_thing"), "is not a notebook variable, 'echo', or an existing")
    torch.save({"weights": 1}, tmp_path / "pickle.pt")
    assert_short_error(run(f"%wasinn load x {tmp_path / 'pickle.pt'}"), "pickle")
    assert_short_error(run("%wasinn load x echo --target gpu"), "target gpu needs CUDA")
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "model.pt")
    assert_short_error(run(f"%wasinn load x {tmp_path / 'model.pt'} --encoding onnx"), "invalid-encoding", "onnx")
    assert_short_error(run("%wasinn load x echo --encoding klingon"), "unknown graph encoding 'klingon'")


def test_gpu_falls_back_where_asked(run: Run) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    run("%config WasinnMagics.cpu_fallback = True")
    run("%wasinn reset")
    cell = run("%wasinn load x echo --target gpu")
    assert cell.ok and "running on the CPU" in cell.out


# -- compute -----------------------------------------------------------------------------------------------------


def test_compute_echo_with_one_a_list_and_a_dict(run: Run, ip: Any) -> None:
    run("%wasinn load echo echo")
    ip.user_ns["np"] = np
    value = run("%%wasinn compute echo\nnp.arange(6, dtype=np.float32).reshape(2, 3)").value
    assert isinstance(value, torch.Tensor) and value.shape == (2, 3) and value.dtype == torch.float32
    value = run("%%wasinn compute echo\n[np.ones(2, np.int64), np.zeros((1, 1), np.uint8)]").value
    assert [v.dtype for v in value] == [torch.int64, torch.uint8]
    value = run("%%wasinn compute echo -o out\n{\n  'a': np.ones(3),\n  'b': np.zeros(2),\n}").value
    assert [v.shape for v in value] == [(3,), (2,)]
    assert ip.user_ns["out"] is value


def test_compute_a_module_matches_calling_it(run: Run, ip: Any) -> None:
    torch.manual_seed(0)
    ip.user_ns["net"] = net = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Tanh()).eval()
    ip.user_ns["x"] = x = torch.randn(5, 8)
    run("%wasinn load net net")
    cell = run("%%wasinn compute net -o y\nx")
    assert cell.ok and "tensor(" in cell.out
    torch.testing.assert_close(ip.user_ns["y"], net(x))
    assert magics(ip).last_compute_s is not None


def test_compute_through_a_c_guest(run: Run, ip: Any, sources: dict[str, str]) -> None:
    torch.manual_seed(0)
    ip.user_ns["net"] = net = torch.nn.Linear(6, 4).eval()
    ip.user_ns["x"] = x = torch.randn(7, 6)
    run("%wasinn load net net")
    assert run("%%wasinn guest top1 --lang c\n" + sources["c_top1"]).ok
    cell = run("%%wasinn compute net --guest top1\nx")
    assert cell.ok, cell.out
    assert cell.value.dtype == torch.int32 and cell.value.tolist() == net(x).argmax(1).tolist()


def test_compute_dict_inputs_follow_the_graph_names(run: Run, ip: Any) -> None:
    ip.user_ns["torch"] = torch

    class Sub(torch.nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return a - b

    ip.user_ns["sub"] = Sub()
    run("%wasinn load sub sub")
    assert run("%%wasinn compute sub\n{'b': torch.ones(2), 'a': torch.full((2,), 5.0)}").value.tolist() == [4.0, 4.0]
    assert_short_error(run("%%wasinn compute sub\n{'a': torch.ones(2)}"), "missing ['b']")


def test_compute_errors_are_short(run: Run, ip: Any) -> None:
    ip.user_ns["torch"] = torch
    assert_short_error(run("%%wasinn compute nothing\n1"), "no graph named 'nothing'")
    run("%wasinn load echo echo")
    assert_short_error(run("%%wasinn compute echo\nx = 1"), "one Python expression")
    assert_short_error(run("%%wasinn compute echo -o 1x\n1"), "-o 1x: not a Python variable name")
    assert_short_error(run("%%wasinn compute echo\n   "), "the cell must be")
    assert_short_error(run("%%wasinn compute echo --guest ghost\n1"), "no guest named 'ghost'")
    ip.user_ns["bad"] = torch.nn.Linear(3, 3)
    run("%wasinn load bad bad")
    assert_short_error(run("%%wasinn compute bad\ntorch.ones(2, 2)"), "errno 5 (runtime_error)", "mat1 and mat2")


def test_compute_refuses_tensors_without_dense_data(run: Run, ip: Any) -> None:
    ip.user_ns["torch"] = torch
    run("%wasinn load echo echo")
    assert_short_error(run('%%wasinn compute echo\ntorch.empty(2, device="meta")'), "input 0 is on the meta device")
    assert_short_error(run("%%wasinn compute echo\ntorch.eye(2).to_sparse()"), "input 0 is a sparse_coo tensor")
    cell = run("%%wasinn compute echo\n[torch.ones(2), torch.eye(2).to_sparse_csr()]")
    assert_short_error(cell, "input 1 is a sparse_csr tensor", ".to_dense()")
    assert run("%%wasinn compute echo\ntorch.eye(2).to_sparse().to_dense()").value.tolist() == [[1, 0], [0, 1]]


def test_limits_that_mean_nothing_are_refused(run: Run, ip: Any, caplog: pytest.LogCaptureFixture) -> None:
    for setting in ("deadline = -1", "deadline = float('nan')", "memory_limit = -1", "max_model_bytes = -5"):
        run(f"%config WasinnMagics.{setting}")  # %config logs the TraitError
        assert setting.split(" =")[0] in caplog.text
        caplog.clear()
    assert magics(ip).deadline == 0.0 and magics(ip).memory_limit == 2 << 30


def test_compute_through_a_guest_without_the_convention(run: Run) -> None:
    run(HELLO_WAT)
    run("%wasinn load echo echo")
    assert_short_error(run("%%wasinn compute echo --guest hello\n1"), "does not follow the compute convention")


def test_a_wrong_export_signature_is_a_short_error(run: Run) -> None:
    run("%wasinn load echo echo")
    cell = run(
        "%%wasinn guest badsig\n"
        '(module (memory (export "memory") 1)\n'
        '  (func (export "wasinn_alloc") (param i64) (result i32) (i32.const 1024))\n'
        '  (func (export "wasinn_compute") (param i32 i32 i32 i32 i32) (result i32) (i32.const 0)))'
    )
    assert cell.ok and "%%wasinn compute" not in cell.out  # not offered as a compute guest
    assert_short_error(
        run("%%wasinn compute echo --guest badsig\n1"),
        "does not follow the compute convention: wasinn_alloc must be (i32) -> i32, but it is (i64) -> i32",
    )


# -- list, info, unload, reset -----------------------------------------------------------------------------------


def test_list_info_unload_reset(run: Run) -> None:
    assert run("%wasinn list").out.endswith("graphs: none\nguests: none\n")
    run("%wasinn load e echo")
    run(HELLO_WAT)
    cell = run("%wasinn list")
    assert isinstance(cell.value, Listing)
    assert "e     echo  cpu     0" in cell.out and "hello  wat       command" in cell.out
    assert "<table>" in cell.value._repr_html_()
    info = run("%wasinn info hello")
    assert isinstance(info.value, GuestCard) and "exports   memory, _start" in info.out
    assert isinstance(run("%wasinn info e").value, GraphCard)
    assert_short_error(run("%wasinn info zzz"), "no graph or guest named 'zzz'")
    assert "graph 'e' unregistered" in run("%wasinn unload e").out
    assert "guest 'hello' dropped" in run("%wasinn unload hello").out
    assert_short_error(run("%wasinn unload e"), "nothing named 'e'")
    run("%wasinn load same echo")
    run('%%wasinn guest same\n(module (func (export "_start")))')
    assert_short_error(run("%wasinn unload same"), "names both a graph and a guest")
    assert "graph 'same'" in run("%wasinn unload same --graph").out
    run("%wasinn load other echo")
    assert "reset: 1 guest(s) and 1 graph(s) dropped" in run("%wasinn reset").out
    assert run("%wasinn list").out.endswith("graphs: none\nguests: none\n")


def test_unloading_the_extension_drops_guests(run: Run, shell: Any) -> None:
    run(HELLO_WAT)
    shell.run_line_magic("unload_ext", "wasinn_jupyter")
    shell.run_line_magic("load_ext", "wasinn_jupyter")
    assert "hello" not in run("%wasinn list").out


def tickers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "wasinn-epoch"}


def busy_session(run: Run, ip: Any) -> Session:
    """The magics' session after a graph, a guest and a compute: its epoch ticker runs."""
    before = tickers()
    ip.user_ns["net"] = torch.nn.Linear(3, 2)
    ip.user_ns["torch"] = torch
    run("%wasinn load net net")
    run(HELLO_WAT)
    assert run("%wasinn run hello").ok
    assert run("%%wasinn compute net\ntorch.ones(1, 3)").ok
    session = workbench().session
    assert session is not None and session._ticker is not None and session._ticker not in before
    return session


def assert_freed(session: Session) -> None:
    """Even while something still holds the Session, its models are gone and its ticker has ended."""
    assert session.host.graphs() == {}
    assert session._ticker is not None
    session._ticker.join(timeout=30)  # it ends at its next tick once stopped: wait for that, no fixed sleep
    assert not session._ticker.is_alive()


@pytest.mark.parametrize("how", ["reset", "unload_ext"])
def test_reset_and_unload_free_the_session(run: Run, ip: Any, how: str) -> None:
    before = tickers()
    session = busy_session(run, ip)
    if how == "reset":
        assert run("%wasinn reset").ok
    else:  # through run_cell: run_line_magic would keep a snapshot of this frame's locals, session included
        assert run("%unload_ext wasinn_jupyter").ok and run("%load_ext wasinn_jupyter").ok
    assert_freed(session)  # as if an old traceback kept it
    gone = weakref.ref(session)
    del session
    gc.collect()
    assert gone() is None
    for ticker in tickers() - before:
        ticker.join(timeout=30)
    assert not {t for t in tickers() - before if t.is_alive()}
    assert_short_error(run("%%wasinn compute net\ntorch.ones(1, 3)"), "no graph named 'net'")  # gone with it


# -- CUDA, where there is one ----------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_graph_on_the_gpu_computes_through_guests(run: Run, ip: Any, sources: dict[str, str]) -> None:
    torch.manual_seed(0)
    ip.user_ns["net"] = net = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU()).eval()
    ip.user_ns["x"] = x = torch.randn(4, 16)
    cell = run("%wasinn load g net --target gpu")
    assert cell.ok and "device      cuda" in cell.out
    y = run("%%wasinn compute g\nx").value
    assert y.device.type == "cpu"  # the bytes came out of the guest's memory
    torch.testing.assert_close(y, net(x), rtol=1e-4, atol=1e-4)
    run("%wasinn load echo_gpu echo --target gpu")
    big = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)
    ip.user_ns["big"] = big
    np.testing.assert_array_equal(run("%%wasinn compute echo_gpu\nbig").value.numpy(), big)
    if importlib.util.find_spec("ziglang") is not None:  # a guest between the notebook and the GPU graph
        run("%%wasinn guest top1 --lang c\n" + sources["c_top1"])
        top = run("%%wasinn compute g --guest top1\nx").value
        assert top.tolist() == net(x).argmax(1).tolist()


def test_guest_models_and_the_budget_are_settings(run: Run, ip: Any, caplog: pytest.LogCaptureFixture) -> None:
    run("%wasinn load e echo")
    assert workbench().session.host.limits.guest_model_mode() == "sandbox"  # the default: guest bytes sandboxed
    run("%config WasinnMagics.guest_models = 'off'")
    run("%config WasinnMagics.max_guest_bytes = 1 << 20")
    run("%wasinn reset")
    run("%wasinn load e echo")
    limits = workbench().session.host.limits
    assert (limits.guest_model_mode(), limits.max_guest_bytes) == ("off", 1 << 20)
    run("%config WasinnMagics.guest_models = 'sometimes'")  # %config logs the TraitError
    assert "guest_models must be one of sandbox, in-process, off" in caplog.text
    assert magics(ip).guest_models == "off"


# -- what a new user hit (issue 9, item 9) -----------------------------------------------------------------------


def test_a_comment_on_a_magic_line_is_a_comment(run: Run, ip: Any) -> None:
    assert run("%wasinn load e echo  # the built-in echo model").ok
    ip.user_ns["np"] = np
    cell = run("%%wasinn compute e -o out  # the cell is an expression\nnp.ones(2)")
    assert cell.ok and ip.user_ns["out"].tolist() == [1.0, 1.0]
    assert run("%wasinn info e # '#' starts a comment only at a word's start").ok


def test_a_wat_that_does_not_validate_keeps_its_cause(run: Run) -> None:
    cell = run("%%wasinn guest bad\n(module (func (result i32)))")
    assert_short_error(cell, "guest 'bad': the module does not compile:", "type mismatch", "at offset")
    assert "WebAssembly translation error" not in cell.out + cell.err


def test_an_exception_in_a_compute_cell_shows_no_magics_frames(run: Run, ip: Any) -> None:
    run("%wasinn load echo echo")
    cell = run("%%wasinn compute echo\nnothing_here + 1")
    assert_short_error(cell, "the cell's inputs could not be evaluated: NameError: name 'nothing_here' is not defined")
    assert "core.py" not in cell.out + cell.err and "interactiveshell" not in cell.out + cell.err

    def inner() -> None:
        raise ValueError("bad input")

    ip.user_ns["inner"] = inner
    cell = run("%%wasinn compute echo\ninner()")
    shown = cell.out + cell.err
    assert isinstance(cell.error, CellError) and "ValueError: bad input" in shown
    assert "in inner" in shown and "core.py" not in shown and "interactiveshell" not in shown


def test_a_model_error_leads_with_its_message(run: Run, ip: Any) -> None:
    ip.user_ns["torch"] = torch
    ip.user_ns["scripted"] = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU()))
    run("%wasinn load scripted scripted")
    cell = run("%%wasinn compute scripted\ntorch.ones(2, 2)")
    assert isinstance(cell.error, CellError)
    (shown,) = (cell.out + cell.err).strip().splitlines()  # one line: the message first, then where in the model
    assert "errno 5 (runtime_error): RuntimeError: mat1 and mat2 shapes cannot be multiplied" in shown
    assert "TorchScript" not in shown and "Traceback" not in shown


def test_info_shows_the_outputs_a_compute_gave(run: Run, ip: Any) -> None:
    ip.user_ns["torch"] = torch
    ip.user_ns["net"] = torch.nn.Linear(4, 3)
    run("%wasinn load net net")
    assert "known after a compute" in run("%wasinn info net").out
    assert run("%%wasinn compute net\ntorch.ones(2, 4)").ok
    out = run("%wasinn info net").out
    assert "known after a compute" not in out and "output0: f32 [2, 3] (as the last compute gave them)" in out
    run("%wasinn load net net")  # a new graph under the name: nothing seen yet
    assert "known after a compute" in run("%wasinn info net").out


def test_a_trap_shows_one_backtrace_with_demangled_names(run: Run) -> None:
    run(
        "%%wasinn guest rusty\n(module (func $_ZN5guest5inner17h0123456789abcdefE (unreachable))"
        ' (func (export "_start") (call $_ZN5guest5inner17h0123456789abcdefE)))'
    )
    cell = run("%wasinn run rusty")
    trapped = "guest 'rusty' trapped: wasm `unreachable` instruction executed"
    assert_short_error(cell, trapped, "at guest!guest::inner @")
    assert (cell.out + cell.err).count("backtrace") == 1 and "h0123456789abcdef" not in cell.out + cell.err


def test_an_exit_after_a_failed_call_shows_the_hosts_message(run: Run) -> None:
    run("%wasinn load echo echo")
    run(
        "%%wasinn guest miss\n(module\n"
        '  (import "wasi_ephemeral_nn" "load_by_name" (func $lbn (param i32 i32 i32) (result i32)))\n'
        '  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))\n'
        '  (memory (export "memory") 1) (data (i32.const 0) "resnet")\n'
        '  (func (export "_start") (call $exit (call $lbn (i32.const 0) (i32.const 6) (i32.const 16)))))'
    )
    assert_short_error(
        run("%wasinn run miss"),
        "guest 'miss' exited with code 8",
        "its last wasi-nn call failed: load_by_name: no graph named 'resnet' (registered: echo)",
    )


def test_the_workbench_outlives_a_reset(run: Run, ip: Any) -> None:
    bench = workbench()
    sessions: list[Any] = []
    records: list[Any] = []
    unsubscribe = [bench.on_session_replaced(sessions.append), bench.on_record(records.append)]
    try:
        ip.user_ns["np"] = np
        run("%wasinn load echo echo")
        first = bench.session
        assert sessions == [first] and first is not None
        for _ in range(2):
            assert run("%%wasinn compute echo\nnp.ones(2)").ok
        drivers = {r.guest_id for r in records if r.guest == "driver" and r.call == "instantiate"}
        assert len(drivers) == 2  # two driver instances, told apart
        kinds = {r.call for r in records if r.kind == "lifecycle"}
        assert {"compile", "instantiate", "run", "close"} <= kinds
        run("%wasinn reset")
        assert sessions[-1] is None and bench.session is None and first.closed
        records.clear()
        run("%wasinn load echo echo")
        assert run("%%wasinn compute echo\nnp.ones(2)").ok
        assert bench.session is not None and bench.session is not first and sessions[-1] is bench.session
        assert any(r.call == "compute" for r in records)  # subscribed once, fed by the new session
        assert magics(ip)._session is bench.session
    finally:
        for stop in unsubscribe:
            stop()
