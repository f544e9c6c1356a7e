"""A guest's ``load`` bytes are code: every hostile archive ends as an errno, and the host lives and recovers.

Each attack (``hostile.py``) runs as a guest would run it, in a fresh Python process (``attack.py``), through two
paths: the ``Client`` API (``load``, ``init_execution_context``, ``set_input``, ``compute``, ``get_output``) and a
real wasm guest whose data segment holds the archive, calling ``wasi_ephemeral_nn`` through wasmtime. So a segfault
or a hang of the host is a failing test with the step it happened in, never a dead pytest. The processes start
together on a small pool when the first of these tests runs, and each test waits for its own.

What every attack must leave true (issue 8, item 1):

- the host process lives: the script exits 0, within its time limit;
- the harmful call ends in an errno a guest can act on (or, for a wasm guest past its deadline, a stopped guest):
  at ``load`` for an archive that does harm while it loads, at ``load`` or ``compute`` for one that does harm in
  ``forward``; going past the memory budget is ``too_large`` (item 2);
- no host file is read into the guest's outputs, created or changed; no Python runs in the host; no host memory
  comes back in an output; the host's global random generator is where it was;
- the host's resident memory stays bounded, and it is quiet (no CPU) once the call returned;
- the same guest's next, benign ``load`` and ``compute`` give the right numbers.

The attacks that hang are given short time limits (``Limits.sandbox_load_s`` / ``sandbox_compute_s`` for the
Client path, the guest's own deadline for the wasm path), and the ones that hoard memory a small budget
(``Limits.max_guest_bytes``), so the suite stays fast; ``attack.py`` applies only the ``Limits`` fields the host
has. The positive control, a benign conv net handed to ``load`` as bytes (WasmEdge's mobilenet guest pattern), runs
in this process and must keep working by default.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import attack as runner
import hostile
import numpy as np
import pytest

from wasinn_jupyter.host import Host, Session, Tensor

PATHS = ("client", "wat")
# Errors that mean "refused" for a hostile archive. A witx guest sees security as invalid_argument (1), timeout as
# runtime_error (5): wasi_ephemeral_nn has no numbers for them.
REFUSED = {
    "client": {"invalid_encoding", "runtime_error", "security", "too_large", "unsupported_operation", "timeout"},
    "wat": {"invalid_argument", "invalid_encoding", "runtime_error", "too_large", "unsupported_operation"},
}
TOO_LARGE = frozenset({"too_large"})
RSS_BOUND_MIB = 256  # what the host may grow by during one attack
RSS_KILL_MIB = 512  # the runner's watchdog ends the process past this (a host without a sandbox)
QUIET_CPU_S = 0.15  # CPU the host may use in the half second after the attack, while its main thread sleeps
TIME_LIMIT_S = 3.0  # the load/compute time limit, or guest deadline, given to the attacks that hang
HANG_TIMEOUT_S = 30  # a run of one of those, start to exit
TIMEOUT_S = 120  # any other run
MEMORY_BUDGET = 192 << 20  # max_guest_bytes for the attacks that hoard memory (first touches of memory are slow)
WORKERS = max(4, min(8, os.cpu_count() or 4))  # runs spend much of their time waiting on workers and sleeps


@dataclass(frozen=True)
class Attack:
    name: str
    build: Callable[[Path], bytes]  # the archive, given the run's directory
    phase: str  # "load": the harm happens inside torch.jit.load; "forward": in compute
    refused: bool = True  # must the harmful call answer an errno? (no, where running it confined is harmless)
    errnos: frozenset[str] | None = None  # the errnos that call may answer, where one is right (else REFUSED)
    hangs: bool = False
    hoards: bool = False
    prepare: Callable[[Path], None] | None = None  # files the attack targets, made before it runs
    check: Callable[[Path, Run], None] | None = None  # the harm it does today must not have happened

    @property
    def slow(self) -> bool:
        return self.hangs or self.hoards


@dataclass
class Run:
    attack: Attack
    path: str
    workdir: Path
    returncode: int | None = None
    timed_out: bool = False
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    result: dict[str, Any] | None = None
    steps: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """What happened to the host process, in words, with the step it was in."""
        where = self.steps[-1] if self.steps else "start-up"
        if self.timed_out:
            what = f"hung in step {where!r}: killed after {self.seconds:.0f} s"
        elif self.returncode is not None and self.returncode < 0:
            name = signal.Signals(-self.returncode).name
            what = f"crashed with {name} (rc={self.returncode}) in step {where!r} after {self.seconds:.0f} s"
        elif self.returncode == 3 and "KILLED" in self.stdout:
            what = next(line for line in self.stdout.splitlines() if line.startswith("KILLED"))
        else:
            what = f"exited {self.returncode} after step {where!r}, {self.seconds:.0f} s"
        tail = self.stderr.strip().splitlines()[-12:]
        return f"{self.attack.name} via {self.path}: {what}\n" + "\n".join(tail)

    def outputs(self) -> list[bytes]:
        return [bytes.fromhex(h) for h in (self.result or {}).get("outputs", [])]


# -- what each attack must not have done --------------------------------------------------------------------------

SECRET = ("wasinn-secret-" + secrets.token_hex(8)).encode()


def _secret_file(workdir: Path) -> None:
    (workdir / "secret").write_bytes(SECRET)


def _secret_not_leaked(workdir: Path, run: Run) -> None:
    for out in run.outputs():
        assert SECRET not in out, f"the guest read the host file {workdir / 'secret'}: its output holds the secret"
    assert SECRET.decode() not in run.stdout + run.stderr, "the secret reached the host's messages"


def _passwd_head() -> bytes:
    try:
        return Path("/etc/passwd").read_bytes()[:16]
    except OSError:
        return b""


def _passwd_not_leaked(workdir: Path, run: Run) -> None:
    head = _passwd_head()
    for out in run.outputs():
        assert not head or head not in out, f"the guest read /etc/passwd: its output is {out!r}"


def _not_created(name: str) -> Callable[[Path, Run], None]:
    def check(workdir: Path, run: Run) -> None:
        target = workdir / name
        assert not target.exists(), f"the guest's archive created the host file {target}: {target.read_bytes()[:64]!r}"

    return check


ORIGINAL = b"the user's file, which no guest may change\n" * 4


def _original_file(workdir: Path) -> None:
    (workdir / "victim.txt").write_bytes(ORIGINAL)


def _unchanged(workdir: Path, run: Run) -> None:
    now = (workdir / "victim.txt").read_bytes()
    assert now == ORIGINAL, f"the guest's archive changed the host file {workdir / 'victim.txt'}: now {now[:64]!r}"


def _no_python(workdir: Path, run: Run) -> None:
    assert run.result is not None
    assert not run.result["python_ran"], (
        f"the archive ran a Python operator in the host process ({hostile.PYTHON_KERNEL_MARKER} was imported)"
    )


def _rng_untouched(workdir: Path, run: Run) -> None:
    assert run.result is not None
    assert not run.result["rng_changed"], "the archive reseeded the host process's global random generator"


HEAP_SECRET = "wasinn-heap-" + secrets.token_hex(8)


def _no_heap_secret(workdir: Path, run: Run) -> None:
    for out in run.outputs():
        assert HEAP_SECRET.encode() not in out, (
            "the guest's output holds the host's heap memory: a secret the host process holds, read out of bounds"
        )


PAYLOAD = b"import os  # planted by a guest: IPython would run this file at its next start\n"

ATTACKS = [
    Attack("read_secret", lambda d: hostile.read_file(str(d / "secret"), len(SECRET)), "forward",
           prepare=_secret_file, check=_secret_not_leaked),
    Attack("read_etc_passwd", lambda d: hostile.read_file("/etc/passwd", 16), "forward", check=_passwd_not_leaked),
    Attack("write_on_load", lambda d: hostile.write_file_on_load(str(d / "startup.py"), PAYLOAD), "load",
           check=_not_created("startup.py")),
    Attack("write_in_forward", lambda d: hostile.write_file_in_forward(str(d / "victim.txt"), PAYLOAD), "forward",
           prepare=_original_file, check=_unchanged),
    Attack("save_in_forward", lambda d: hostile.save_in_forward(str(d / "saved.pt")), "forward",
           check=_not_created("saved.pt")),
    Attack("call_host_op", lambda d: hostile.call_host_op(str(d / "touched")), "forward",
           check=_not_created("touched")),
    Attack("python_kernel", lambda d: hostile.python_kernel(), "forward", refused=False, check=_no_python),
    Attack("reseed_rng", lambda d: hostile.reseed_rng(), "forward", refused=False, check=_rng_untouched),
    Attack("stale_heap", lambda d: hostile.stale_heap(), "forward", refused=False, check=_no_heap_secret),
    Attack("deep_nesting", lambda d: hostile.deep_nesting(), "load"),
    Attack("empty_storage", lambda d: hostile.empty_storage(), "forward"),
    Attack("spin_on_load", lambda d: hostile.spin_on_load(), "load", hangs=True),
    Attack("spin_in_forward", lambda d: hostile.spin_in_forward(), "forward", hangs=True),
    Attack("detached_spin", lambda d: hostile.detached_spin(), "forward", refused=False, hangs=True),
    # issue 8, item 2: what guest graph code allocates counts against the guest's budget, and past it is too_large
    Attack("hoard_on_load", lambda d: hostile.hoard_on_load(), "load", hoards=True, errnos=TOO_LARGE),
    Attack("hoard_in_forward", lambda d: hostile.hoard_in_forward(), "forward", hoards=True, errnos=TOO_LARGE),
    Attack("huge_allocation", lambda d: hostile.huge_allocation(), "forward", errnos=TOO_LARGE),
]  # fmt: skip
BY_NAME = {a.name: a for a in ATTACKS}


# -- running them -------------------------------------------------------------------------------------------------


def spec_for(attack: Attack, path: str, workdir: Path, benign: Path, expected: list[float]) -> dict[str, Any]:
    archive = workdir / "attack.pt"
    archive.write_bytes(attack.build(workdir))
    spec: dict[str, Any] = {
        "path": path,
        "archive": str(archive),
        "benign": str(benign),
        "expected": expected,
        "limits": {},
        "rss_kill_mib": RSS_KILL_MIB,
        "python_kernel_marker": hostile.PYTHON_KERNEL_MARKER,
        "register_host_op": attack.name == "call_host_op",
        "heap_secret": HEAP_SECRET if attack.name == "stale_heap" else None,
    }
    if attack.hangs:
        if path == "wat":
            spec["guest_deadline_s"] = TIME_LIMIT_S  # the guest's own deadline must stop a graph that hangs
        else:
            spec["limits"].update(sandbox_load_s=TIME_LIMIT_S, sandbox_compute_s=TIME_LIMIT_S)
    if attack.hoards:
        spec["limits"]["max_guest_bytes"] = MEMORY_BUDGET
    return spec


def execute(attack: Attack, path: str, workdir: Path, benign: Path, expected: list[float]) -> Run:
    workdir.mkdir(parents=True)
    if attack.prepare is not None:
        attack.prepare(workdir)
    spec_file = workdir / "spec.json"
    spec_file.write_text(json.dumps(spec_for(attack, path, workdir, benign, expected)))
    run = Run(attack, path, workdir)
    timeout = HANG_TIMEOUT_S if attack.hangs else TIMEOUT_S
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", str(Path(runner.__file__)), str(spec_file)],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: a timeout ends it and anything it started
    )
    try:
        run.stdout, run.stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        run.timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        run.stdout, run.stderr = proc.communicate()
    run.seconds = time.monotonic() - start
    run.returncode = proc.returncode
    for line in run.stdout.splitlines():
        tag, _, rest = line.partition(" ")
        if tag == "STEP":
            run.steps.append(rest)
        elif tag == "RESULT":
            run.result = json.loads(rest)
    return run


class Runs:
    """Every selected (attack, path) run, started together on a pool; ``get`` waits for one."""

    def __init__(self, wanted: list[tuple[str, str]], root: Path) -> None:
        benign = root / "benign.pt"
        benign.write_bytes(hostile.benign_linear())
        self._expected = runner.expected_output(benign.read_bytes()).reshape(-1).tolist()
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="attack")
        self._futures: dict[tuple[str, str], Future[Run]] = {}
        self._lock = threading.Lock()
        # the hangs first: they take longest on a host that does not stop them
        for name, path in sorted(wanted, key=lambda k: not BY_NAME[k[0]].slow):
            self._futures[name, path] = self._pool.submit(
                execute, BY_NAME[name], path, root / f"{name}-{path}", benign, self._expected
            )
        self._root = root
        self._benign = benign

    def get(self, name: str, path: str) -> Run:
        with self._lock:
            if (name, path) not in self._futures:  # not collected up front (a rerun, a plugin): start it now
                workdir = self._root / f"{name}-{path}"
                self._futures[name, path] = self._pool.submit(
                    execute, BY_NAME[name], path, workdir, self._benign, self._expected
                )
        return self._futures[name, path].result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    wanted = []
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.module is request.module and "attack" in params and "path" in params:
            wanted.append((params["attack"], params["path"]))
    runs = Runs(wanted, tmp_path_factory.mktemp("hostile"))
    yield runs
    runs.close()


def attack_params() -> list[Any]:
    return [pytest.param(a.name, marks=[pytest.mark.slow] if a.slow else [], id=a.name) for a in ATTACKS]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("attack", attack_params())
def test_hostile_archive_is_refused_and_the_host_lives(runs: Runs, attack: str, path: str) -> None:
    run = runs.get(attack, path)
    spec = BY_NAME[attack]
    assert not run.timed_out and run.returncode == 0 and run.result is not None, run.describe()

    if spec.check is not None:  # first: the harm it does on a host without a sandbox
        spec.check(run.workdir, run)
    assert run.result["rss_growth_mib"] < RSS_BOUND_MIB, (
        f"{attack} via {path}: the host's resident memory grew {run.result['rss_growth_mib']} MiB"
    )
    assert run.result["background_cpu_s"] < QUIET_CPU_S, (
        f"{attack} via {path}: the host burned {run.result['background_cpu_s']} s of CPU in the half second after "
        "the call returned (guest code still running on a host thread)"
    )
    steps = run.result["steps"]
    refusals = [s for s in steps if "errno" in s or s.get("outcome") == "stopped"]
    if spec.refused:
        assert refusals, f"{attack} via {path}: every call succeeded: {[s['call'] for s in steps]}"
        first = refusals[0]
        allowed_calls = ("load", "guest") if spec.phase == "load" else ("load", "compute", "guest")
        assert first["call"] in allowed_calls, f"{attack} via {path}: refused only at {first['call']}: {first}"
        if "errno" in first:
            assert first["errno"] in (spec.errnos or REFUSED[path]), f"{attack} via {path}: {first}"
    recovered = run.result["recovered"]
    assert recovered["ok"], f"{attack} via {path}: the next benign load and compute failed: {recovered}"


# -- the positive control: guest-supplied models keep working by default ------------------------------------------


def convnet_case() -> tuple[bytes, np.ndarray, np.ndarray]:
    archive = hostile.benign_convnet()
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    import torch

    with torch.inference_mode():
        expected = hostile.benign_module(archive)(torch.from_numpy(x)).numpy()
    return archive, x, expected


def test_a_benign_model_from_guest_bytes_computes_like_torch_through_the_client() -> None:
    archive, x, expected = convnet_case()
    with Host().client() as client:
        graph = client.load([archive], "pytorch", "cpu")
        ctx = client.init_execution_context(graph)
        client.set_input(ctx, 0, Tensor.from_value(x))
        client.compute(ctx)
        got = client.get_output(ctx, 0).to_numpy()
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        # a second context on the same graph, and a second graph, work as well
        ctx2 = client.init_execution_context(graph)
        client.set_input(ctx2, 0, Tensor.from_value(x[:1]))
        client.compute(ctx2)
        np.testing.assert_allclose(client.get_output(ctx2, 0).to_numpy(), expected[:1], rtol=1e-5, atol=1e-6)
        linear = client.load([hostile.benign_linear()], "autodetect", "cpu")
        ctx3 = client.init_execution_context(linear)
        client.set_input(ctx3, 0, Tensor.from_value(np.zeros(4, np.float32)))
        client.compute(ctx3)
        assert client.get_output(ctx3, 0).dims == (3,)


def test_a_benign_model_from_guest_bytes_computes_like_torch_through_a_wasm_guest() -> None:
    """WasmEdge's mobilenet guest pattern: the archive bytes in guest memory, handed to ``load``, then compute; and a
    reactor guest's: load in one call into the guest, compute in the next (each call from the main thread runs on
    its own thread, so nothing the host keeps for a graph may die with the thread that loaded it)."""
    archive, x, expected = convnet_case()
    session = Session(Host())
    module = session.compile(runner.guest_wat(archive, hostile.benign_linear(), dims=x.shape, data=x.tobytes()))
    guest = session.instantiate(module)
    memory = guest.instance.exports(guest.store)["memory"]

    def output() -> np.ndarray:
        written = int.from_bytes(bytes(memory.read(guest.store, runner.RESULTS + 20, runner.RESULTS + 24)), "little")
        assert written == expected.nbytes
        got = np.frombuffer(bytes(memory.read(guest.store, runner.OUT, runner.OUT + written)), np.float32)
        return got.reshape(expected.shape)

    try:
        assert guest.call("attack") == 0, guest.client.last_error
        np.testing.assert_allclose(output(), expected, rtol=1e-5, atol=1e-6)
        memory.write(guest.store, bytes(4), runner.RESULTS + 20)
        assert guest.call("attack_open") == 0, guest.client.last_error
        time.sleep(0.2)  # the thread that ran the call has ended
        assert guest.call("attack_run") == 0, guest.client.last_error
        np.testing.assert_allclose(output(), expected, rtol=1e-5, atol=1e-6)
        assert guest.call("attack_run") == 0, guest.client.last_error  # the same context again, a third call
    finally:
        guest.close()
        session.close()


def test_a_graph_from_guest_bytes_outlives_the_thread_that_loaded_it() -> None:
    """Front-ends call into guests from worker threads (one per call from the main thread): a graph loaded on one
    must still compute once that thread has ended."""
    archive = hostile.benign_linear()
    with Host().client() as client:
        handles: dict[str, int] = {}

        def load() -> None:
            handles["graph"] = client.load([archive], "pytorch", "cpu")

        loader = threading.Thread(target=load)
        loader.start()
        loader.join()
        time.sleep(0.2)
        ctx = client.init_execution_context(handles["graph"])
        client.set_input(ctx, 0, Tensor.from_value(np.zeros(4, np.float32)))
        client.compute(ctx)
        expected = runner.expected_output(archive)
        np.testing.assert_allclose(client.get_output(ctx, 0).to_numpy(), expected, rtol=1e-5, atol=1e-6)


def test_the_builders_make_real_torchscript_archives() -> None:
    """Every hostile archive is a valid TorchScript zip that the host's archive check admits (so the attacks reach
    torch.jit.load); nothing here loads one."""
    from wasinn_jupyter.host.backends.torch import TORCHSCRIPT, archive_kind

    for attack in ATTACKS:
        data = attack.build(Path("/nonexistent-wasinn-test-dir"))
        assert archive_kind(data, 1 << 30) == TORCHSCRIPT, attack.name
        assert hostile.code_entries(data), attack.name
    assert len(hostile.deep_nesting()) < 4096  # the segfault fits in a few KB of guest memory
