"""Guests under the Session: WASI, traps, and stopping runaway guests without losing the host."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from wasinn_jupyter.host import GuestError, GuestLimits, GuestStopped, GuestTrap, Host, Session, WasiOptions

WASI = '(import "wasi_snapshot_preview1" "{0}" (func ${0} {1}))'

ECHO_ARGS = (
    "(module\n"
    + WASI.format("args_sizes_get", "(param i32 i32) (result i32)")
    + WASI.format("args_get", "(param i32 i32) (result i32)")
    + WASI.format("environ_sizes_get", "(param i32 i32) (result i32)")
    + WASI.format("environ_get", "(param i32 i32) (result i32)")
    + WASI.format("fd_write", "(param i32 i32 i32 i32) (result i32)")
    + WASI.format("proc_exit", "(param i32)")
    + r"""
  (memory (export "memory") 1)
  ;; writes the argv buffer to stdout and the environ buffer to stderr (NULs and all), exits with argc
  (func (export "_start")
    (drop (call $args_sizes_get (i32.const 0) (i32.const 4)))
    (drop (call $args_get (i32.const 64) (i32.const 1024)))
    (i32.store (i32.const 16) (i32.const 1024))
    (i32.store (i32.const 20) (i32.load (i32.const 4)))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
    (drop (call $environ_sizes_get (i32.const 8) (i32.const 12)))
    (drop (call $environ_get (i32.const 64) (i32.const 2048)))
    (i32.store (i32.const 16) (i32.const 2048))
    (i32.store (i32.const 20) (i32.load (i32.const 12)))
    (drop (call $fd_write (i32.const 2) (i32.const 16) (i32.const 1) (i32.const 24)))
    (call $proc_exit (i32.load (i32.const 0))))
)"""
)

RUNAWAY = r"""(module
  (memory (export "memory") 1 65536)
  (func (export "spin") (loop $l (br $l)))
  (func $deep (export "deep") (param i32) (result i32) (i32.add (call $deep (local.get 0)) (i32.const 1)))
  (func (export "boom") (unreachable))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
)"""


def test_argv_env_and_streamed_output(session: Session) -> None:
    out: list[bytes] = []
    err: list[bytes] = []
    wasi = WasiOptions(argv=["prog", "a b", "ü"], env={"MODEL": "echo"}, stdout=out.append, stderr=err.append)
    assert session.run(ECHO_ARGS, wasi) == 3
    assert b"".join(out) == "prog\0a b\0ü\0".encode()
    assert b"".join(err) == b"MODEL=echo\0"


def test_preopened_directory(session: Session, tmp_path) -> None:
    (tmp_path / "input.bin").write_bytes(b"hello")
    guest_src = (
        "(module\n"
        + WASI.format("path_open", "(param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)")
        + WASI.format("fd_read", "(param i32 i32 i32 i32) (result i32)")
        + WASI.format("fd_write", "(param i32 i32 i32 i32) (result i32)")
        + r"""
  (memory (export "memory") 1)
  (data (i32.const 100) "input.bin")
  (func (export "_start")
    (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 9) (i32.const 0)
                         (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 0)) (then unreachable))
    (i32.store (i32.const 16) (i32.const 200))
    (i32.store (i32.const 20) (i32.const 64))
    (drop (call $fd_read (i32.load (i32.const 0)) (i32.const 16) (i32.const 1) (i32.const 24)))
    (i32.store (i32.const 20) (i32.load (i32.const 24)))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24))))
)"""
    )
    out: list[bytes] = []
    assert session.run(guest_src, WasiOptions(dirs=[(str(tmp_path), ".")], stdout=out.append)) == 0
    assert b"".join(out) == b"hello"


def test_trap_has_a_backtrace_and_the_session_goes_on(session: Session) -> None:
    guest = session.instantiate(session.compile(RUNAWAY))
    with pytest.raises(GuestTrap) as err:
        guest.call("boom")
    assert "unreachable" in str(err.value) and err.value.frames
    with pytest.raises(GuestTrap, match="stack"):
        guest.call("deep", 1)
    assert session.instantiate(session.compile(RUNAWAY)).call("add", 2, 3) == 5


def test_interrupt_stops_one_guest_and_not_the_other(session: Session) -> None:
    module = session.compile(RUNAWAY)
    spinner, other = session.instantiate(module), session.instantiate(module)
    results: dict[str, object] = {}

    def spin() -> None:
        try:
            spinner.call("spin", watch=False)
        except GuestStopped as exc:
            results["spin"] = exc

    def work() -> None:
        total = 0
        for _ in range(2000):
            total += other.call("add", 1, 1, watch=False)
        results["work"] = total

    threads = [threading.Thread(target=spin), threading.Thread(target=work)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    spinner.interrupt()
    for t in threads:
        t.join(10)
    assert isinstance(results["spin"], GuestStopped)
    assert results["work"] == 4000
    assert spinner.call("add", 2, 2) == 4  # the stopped guest is usable again


def test_deadline_and_fuel(host) -> None:
    session = Session(host, fuel=True)
    module = session.compile(RUNAWAY)
    slow = session.instantiate(module, limits=GuestLimits(deadline_s=0.2))
    start = time.monotonic()
    with pytest.raises(GuestStopped, match="deadline"):
        slow.call("spin")
    assert time.monotonic() - start < 5
    hungry = session.instantiate(module, limits=GuestLimits(fuel=100_000))
    with pytest.raises(GuestStopped, match="fuel"):
        hungry.call("spin")
    assert hungry.call("add", 1, 2) == 3  # fuel is refilled per call


def test_fuel_needs_a_fuel_session(session: Session) -> None:
    with pytest.raises(GuestError, match="fuel"):
        session.instantiate(session.compile(RUNAWAY), limits=GuestLimits(fuel=10))


def test_memory_limit_makes_growth_fail_inside_the_guest(session: Session) -> None:
    guest = session.instantiate(session.compile(RUNAWAY), limits=GuestLimits(memory_bytes=4 << 20))
    assert guest.call("grow", 16) == 1  # 1 MiB more: fine
    assert guest.call("grow", 1000) == -1  # past 4 MiB: refused, the guest sees -1


@pytest.mark.skipif(os.name != "posix", reason="needs SIGINT")
def test_ctrl_c_on_the_main_thread_stops_a_watched_guest(session: Session) -> None:
    guest = session.instantiate(session.compile(RUNAWAY))
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(GuestStopped, match="KeyboardInterrupt"):
        guest.call("spin")  # main thread: watched
    assert guest.call("add", 40, 2) == 42


def test_compile_errors_and_missing_exports(session: Session) -> None:
    with pytest.raises(GuestError, match="does not compile"):
        session.compile('(module (func (export "f") (result i32)))')
    guest = session.instantiate(session.compile(RUNAWAY))
    with pytest.raises(GuestError, match="no function 'nope'"):
        guest.call("nope")


def test_unknown_imports_fail_instantiation_cleanly(session: Session) -> None:
    module = session.compile('(module (import "somewhere" "else" (func)))')
    with pytest.raises(GuestError, match="unknown import"):
        session.instantiate(module)


@pytest.mark.skipif(os.name != "posix", reason="needs SIGINT")
def test_ctrl_c_stops_a_start_function_that_never_returns(session: Session) -> None:
    module = session.compile("(module (func $s (loop $l (br $l))) (start $s))")
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(GuestStopped, match="KeyboardInterrupt"):
        session.instantiate(module)
    timer.join()


@pytest.mark.skipif(os.name != "posix", reason="needs SIGINT")
def test_ctrl_c_abandons_a_guest_blocked_in_a_host_call(session: Session) -> None:
    import torch

    class Slow(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            time.sleep(3)
            return x

    session.host.register("slow", Slow())
    guest_src = r"""(module
      (import "wasi_ephemeral_nn" "load_by_name" (func $lbn (param i32 i32 i32) (result i32)))
      (import "wasi_ephemeral_nn" "init_execution_context" (func $init (param i32 i32) (result i32)))
      (import "wasi_ephemeral_nn" "set_input" (func $set (param i32 i32 i32) (result i32)))
      (import "wasi_ephemeral_nn" "compute" (func $compute (param i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 0) "slow")
      (data (i32.const 16) "\01\00\00\00")
      (data (i32.const 32) "\10\00\00\00\01\00\00\00\01\00\00\00\00\01\00\00\04\00\00\00")
      (func (export "go") (result i32)
        (drop (call $lbn (i32.const 0) (i32.const 4) (i32.const 100)))
        (drop (call $init (i32.load (i32.const 100)) (i32.const 104)))
        (drop (call $set (i32.load (i32.const 104)) (i32.const 0) (i32.const 32)))
        (drop (call $compute (i32.load (i32.const 104))))
        (loop $l (br $l))
        (i32.const 0)))"""
    guest = session.instantiate(session.compile(guest_src))
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    start = time.monotonic()
    with pytest.raises(GuestStopped, match="abandoned"):
        guest.call("go")
    assert time.monotonic() - start < 2.5  # back before the 3 s host call ends
    timer.join()
    with pytest.raises(GuestError, match="abandoned"):
        guest.call("go")
    deadline = time.monotonic() + 10
    while len(guest.client.contexts) and time.monotonic() < deadline:  # the worker frees them when it comes back
        time.sleep(0.1)
    assert len(guest.client.contexts) == 0


def test_closing_or_dropping_a_session_ends_its_ticker(host) -> None:
    import gc
    import weakref

    session = Session(host)
    session.instantiate(session.compile(RUNAWAY)).call("add", 1, 2, watch=False)
    ticker = session._ticker
    assert ticker is not None and ticker.is_alive()
    session.close()
    ticker.join(1)
    assert not ticker.is_alive()

    dropped = Session(Host())  # closing a session closes its host: the next one needs its own
    dropped.instantiate(dropped.compile(RUNAWAY)).call("add", 1, 2, watch=False)
    ticker, ref = dropped._ticker, weakref.ref(dropped)
    del dropped
    gc.collect()
    assert ref() is None
    assert ticker is not None
    ticker.join(1)
    assert not ticker.is_alive()


def test_the_client_is_told_when_its_guest_must_stop(session: Session) -> None:
    guest = session.instantiate(session.compile(RUNAWAY), limits=GuestLimits(deadline_s=0.2))
    check = guest.client.stop_check
    assert check is not None and check() is None
    guest.interrupt("enough")
    assert check() == "enough"
    assert guest.call("add", 1, 1) == 2  # a new call starts afresh
    assert check() is None
    guest._deadline = time.monotonic() - 1  # as if a call ran past its deadline, blocked in a host call
    assert "deadline of 0.2 s exceeded" in (check() or "")


CONCURRENT = r"""
import sys, threading
from wasinn_jupyter.host import GuestError, Session
session = Session(cache=False)
guest = session.instantiate(session.compile(sys.argv[1]))
counts = {"ok": 0, "refused": 0}
lock = threading.Lock()
def work(base):
    for i in range(3000):
        try:
            result = guest.call("add", base, i, watch=False)
            assert result == base + i, result
            key = "ok"
        except GuestError as exc:
            assert "already running a call" in str(exc), exc
            key = "refused"
        with lock:
            counts[key] += 1
threads = [threading.Thread(target=work, args=(n * 100000,)) for n in range(3)]
for t in threads: t.start()
for t in threads: t.join()
print(counts["ok"], counts["refused"])
"""


def test_one_guest_called_from_threads_at_once_refuses_not_crashes() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", CONCURRENT, RUNAWAY], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ok, refused = map(int, done.stdout.split())
    assert ok + refused == 9000 and ok > 0


def test_a_call_while_another_runs_is_refused_with_a_clear_error(session: Session) -> None:
    guest = session.instantiate(session.compile(RUNAWAY))
    stopped: list[BaseException] = []

    def spin() -> None:
        try:
            guest.call("spin", watch=False)
        except GuestStopped as exc:
            stopped.append(exc)

    spinner = threading.Thread(target=spin)
    spinner.start()
    deadline = time.monotonic() + 10
    while not guest._busy.locked() and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(GuestError, match="already running a call on another thread"):
        guest.call("add", 1, 2, watch=False)
    guest.interrupt()
    spinner.join(10)
    assert stopped and guest.call("add", 1, 2) == 3  # free again once the first call ended


def test_limits_that_would_mean_no_limit_are_refused() -> None:
    for bad in (float("nan"), float("inf"), 0, -1):
        with pytest.raises(ValueError, match="deadline_s"):
            GuestLimits(deadline_s=bad)
    with pytest.raises(ValueError, match="memory_bytes"):
        GuestLimits(memory_bytes=-1)
    with pytest.raises(ValueError, match="fuel"):
        GuestLimits(fuel=-5)
    assert GuestLimits(deadline_s=0.5, fuel=0).deadline_s == 0.5


def test_what_wasmtime_cannot_take_is_a_guest_error(session: Session, tmp_path) -> None:
    binary = tmp_path / "guest.wat"
    binary.write_bytes(b"\xff\xfe(module)")
    with pytest.raises(GuestError, match=r"neither wasm .* nor UTF-8 WAT"):
        session.compile(binary)
    module = session.compile(ECHO_ARGS)
    with pytest.raises(GuestError, match="argument 1 is not valid UTF-8"):
        session.instantiate(module, wasi=WasiOptions(argv=["prog", "\udcff"]))
    with pytest.raises(GuestError, match="environment variable 'K' is not valid UTF-8"):
        session.instantiate(module, wasi=WasiOptions(env={"K": "\udcff"}))


@pytest.mark.skipif(os.name != "posix", reason="needs ulimit")
def test_deep_recursion_traps_on_a_small_native_stack(tmp_path) -> None:
    import subprocess
    import sys

    script = (
        "import sys\nfrom wasinn_jupyter.host import GuestTrap, Session\n"
        "s = Session(cache=False)\ng = s.instantiate(s.compile(sys.argv[1]))\n"
        "try:\n    g.call('deep', 1, watch=True)\nexcept GuestTrap as exc:\n    print('trapped:', exc.message)\n"
    )
    command = f'ulimit -s 512 && exec {sys.executable} -c "$0" "$1"'
    done = subprocess.run(["bash", "-c", command, script, RUNAWAY], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trapped:" in done.stdout and "stack" in done.stdout


# -- the module type, lifecycle events, closing (issue 9, items 4 to 6) --------------------------------------------

NN_GUEST = """(module
  (import "wasi_ephemeral_nn" "load_by_name" (func (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "unload" (func (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
  (memory (export "memory") 1)
  (func (export "f") (param i32 i64) (result f32) (f32.const 0)))"""


def test_compile_returns_our_module_type(session: Session) -> None:
    from wasinn_jupyter.host import Dialect, GuestModule

    module = session.compile(NN_GUEST, name="nn")
    assert isinstance(module, GuestModule) and module.kind == "core" and module.name == "nn"
    assert module.nn_imports == ("load_by_name", "unload") and module.nn_abi == "witx"
    assert module.dialect is Dialect.WASMEDGE and "unload" in module.dialect_reason  # a WasmEdge-only import
    assert module.export_names == ["memory", "f"] and not module.is_command
    f = module.export("f")
    assert f is not None and (f.kind, f.params, f.results) == ("func", ("i32", "i64"), ("f32",))
    assert f.signature() == "(i32, i64) -> f32"
    assert module.export("memory").kind == "memory"  # type: ignore[union-attr]
    plain = session.compile(RUNAWAY)
    assert plain.nn_imports == () and plain.nn_abi is None and plain.dialect is Dialect.SPEC


def test_a_component_is_described_and_linked_over_wit(session: Session) -> None:
    component = session.compile(
        '(component (import "wasi:nn/graph@0.2.0-rc-2024-10-28" (instance)) '
        '(core module $m (func (export "f"))) (core instance $i (instantiate $m)) '
        '(func (export "hello") (canon lift (core func $i "f"))))',
        name="comp",
    )
    assert component.kind == "component" and component.nn_abi == "wit"
    assert component.nn_imports == ("wasi:nn/graph@0.2.0-rc-2024-10-28",)
    assert component.export_names == ["hello"]
    with session.instantiate(component) as guest:  # WIT wasi:nn (tests/host/component has the rest)
        assert guest.call("hello", watch=False) is None


def test_a_validation_error_keeps_its_cause(session: Session) -> None:
    with pytest.raises(GuestError) as err:
        session.compile("(module (func (result i32)))")
    message = err.value.message
    assert "type mismatch" in message and "at offset" in message and "\n" not in message
    assert "WebAssembly translation error" not in message


def test_a_trap_has_one_backtrace_with_demangled_rust_names(session: Session) -> None:
    guest = session.instantiate(
        session.compile(
            "(module (func $_ZN5guest5inner17h0123456789abcdefE (unreachable))"
            " (func $_ZN3std2rt10lang_start28_$u7b$$u7b$closure$u7d$$u7d$17h07e5726c01e9a053E.llvm.123"
            " (call $_ZN5guest5inner17h0123456789abcdefE))"
            ' (func (export "boom")'
            " (call $_ZN3std2rt10lang_start28_$u7b$$u7b$closure$u7d$$u7d$17h07e5726c01e9a053E.llvm.123)))"
        )
    )
    with pytest.raises(GuestTrap) as err:
        guest.call("boom")
    assert err.value.message == "guest trapped: wasm `unreachable` instruction executed"
    names = [frame.split(" @ ")[0] for frame in err.value.frames]
    assert names == ["guest!guest::inner", "guest!std::rt::lang_start::{{closure}}", "guest!func[2]"]
    shown = str(err.value)
    assert shown.count("backtrace") == 1 and "h0123456789abcdef" not in shown


@pytest.mark.parametrize(
    ("mangled", "plain"),
    [
        ("_ZN5guest5outer17h6b458dda0214072cE", "guest::outer"),
        ("_ZN4core3ptr85drop_in_place$LT$std..rt..lang_start$LT$$LP$$RP$$GT$..$u7b$$u7b$closure$u7d$$u7d$$GT$"
         "17h0000000000000000E", "core::ptr::drop_in_place<std::rt::lang_start<()>::{{closure}}>"),
        ("_ZN3foo3bar3baz", "_ZN3foo3bar3baz"),  # not a whole symbol: left alone
        ("main", "main"),
        ("_RNvCs1234_7mycrate3foo", "_RNvCs1234_7mycrate3foo"),  # v0 mangling is left as written
    ],
)  # fmt: skip
def test_demangle(mangled: str, plain: str) -> None:
    from wasinn_jupyter.host.session import demangle

    assert demangle(mangled) == plain


def test_lifecycle_events_name_each_instance(session: Session) -> None:
    timeline = session.host.timeline
    module = session.compile(RUNAWAY, name="runaway")
    first = session.instantiate(module, label="same")
    second = session.instantiate(module, label="same")
    assert first.id != second.id and first.label == second.label == "same"
    assert first.call("add", 1, 2) == 3
    with pytest.raises(GuestTrap):
        first.call("boom")
    stopped = session.instantiate(module, label="same", limits=GuestLimits(deadline_s=0.1))
    with pytest.raises(GuestStopped):
        stopped.call("spin", watch=False)
    first.close()
    first.close()  # idempotent: one close event
    exits = session.instantiate(session.compile(ECHO_ARGS, name="args"), wasi=WasiOptions(argv=["a", "b"]))
    assert exits.run() == 2
    events = [(r.call, r.guest_id, r.outcome, r.detail) for r in timeline.records() if r.kind == "lifecycle"]
    assert events[0] == ("compile", 0, "ok", f"core, {module.size} bytes, spec errnos")
    assert ("instantiate", first.id, "ok", "runaway, spec errnos") in events
    assert ("instantiate", second.id, "ok", "runaway, spec errnos") in events
    assert ("run", first.id, "ok", "add") in events and ("run", first.id, "trap", "boom") in events
    assert ("trap", first.id, "trap", "guest trapped: wasm `unreachable` instruction executed") in events
    assert ("stopped", stopped.id, "stopped", "deadline of 0.1 s exceeded") in events
    assert events.count(("close", first.id, "ok", None)) == 1
    assert ("run", exits.id, "exit", "_start") in events and ("exit", exits.id, "exit 2", "code 2") in events
    compile_record = next(r for r in timeline.records() if r.call == "compile")
    assert compile_record.duration_ns > 0
    with pytest.raises(GuestError):
        session.compile("(module (func (result i32)))", name="bad")
    assert timeline.records()[-1].call == "compile" and timeline.records()[-1].outcome == "error"


def test_a_session_closes_its_guests_and_its_host() -> None:
    from wasinn_jupyter.host import WasinnError

    with Session(Host()) as session:
        session.host.register("echo", "echo")
        guest = session.instantiate(session.compile(RUNAWAY))
        guest.client.load_by_name("echo")
        assert len(guest.client.graphs) == 1
        ticker_before = session._ticker
    assert session.closed and session.host.closed and session.host.graphs() == {}
    assert len(guest.client.graphs) == 0  # the guest's handles are freed
    if ticker_before is not None:
        ticker_before.join(2)
        assert not ticker_before.is_alive()  # closing the session ended its epoch ticker
    with pytest.raises(GuestError, match="closed"):
        guest.call("spin", watch=False)  # a closed session's guest could no longer be stopped: refused
    with pytest.raises(GuestError, match="closed"):
        session.instantiate(session.compile(RUNAWAY))
    session.close()  # idempotent
    assert issubclass(GuestError, WasinnError)


def test_guest_memory_and_the_last_failed_call(session: Session) -> None:
    from wasinn_jupyter.host import WasiNNError

    guest = session.instantiate(session.compile(NN_GUEST))
    memory = guest.memory()
    assert memory.size == 65536 and memory.read_bytes(0, 4, "test") == bytes(4)
    assert guest.failed_last_call() is None
    with pytest.raises(WasiNNError):
        guest.client.load_by_name("nope")
    assert guest.failed_last_call() == "load_by_name: no graph named 'nope' (registered: echo)"
    guest.client.load_by_name("echo")
    assert guest.failed_last_call() is None  # it recovered: the failure is not the last call
    with pytest.raises(GuestError, match="exports no memory"):
        session.instantiate(session.compile('(module (func (export "f")))')).memory()


def test_call_u32_converts_both_ways(session: Session) -> None:
    guest = session.instantiate(session.compile(RUNAWAY))
    assert guest.call("add", -1, 0) == -1  # call takes and gives what wasmtime does: i32
    assert guest.call_u32("add", 0xFFFFFFFF, 0) == 0xFFFFFFFF  # call_u32: u32 in, u32 out
    assert guest.call_u32("add", 0x80000000, 0x80000000) == 0  # wraps as the guest's i32.add does
    with pytest.raises(ValueError, match="not a u32"):
        guest.call_u32("add", -1, 0)


def test_wat_that_does_not_parse_says_where(session: Session) -> None:
    with pytest.raises(GuestError) as err:
        session.compile("(module\n  (func (i32.nonsense)))")
    assert err.value.message == "the module does not compile: unknown operator or unexpected token (line 2, column 10)"
