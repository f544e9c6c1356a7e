"""Run one hostile archive the way a guest would, in this (throwaway) process, and report what happened.

    python attack.py spec.json

``test_hostile_models.py`` writes the spec and runs this script in a fresh process, so that a crash or a hang of
the host shows up as a failing test instead of a dead pytest. The spec names the archive, the path the attack
takes into the host (``client``: the Python ``Client`` API; ``wat``: a real wasm guest run by wasmtime through the
witx ABI), extra ``Limits`` fields, and the guest's deadline. The script prints ``STEP <call>`` before each wasi-nn
call (so a crash or hang can be placed) and, at the end, one ``RESULT <json>`` line:

- ``steps``: each call made, with its outcome (``ok`` or an errno name and the host's message), or ``stopped`` for a
  guest the host stopped;
- ``outputs``: the output bytes the guest received, hex;
- ``rss_growth_mib``: the most this process's resident memory rose above its level before the attack (a soft
  ``RLIMIT_DATA`` and a sampling thread that ends the process with status 3 bound it to ``rss_kill_mib``, so a
  test run on a host that lets guest code take its memory fails fast instead of taking the machine down);
- ``background_cpu_s``: CPU time this process used in the half second after the attack, while its main thread
  slept;
- ``python_ran``: whether the Python kernel the ``python_kernel`` archive reaches ran in this process;
- ``rng_changed``: whether torch's global random generator in this process is not where it was before the attack;
- ``recovered``: a benign load and compute afterwards, by the same guest, gave the right numbers.

With ``heap_secret`` the script first fills heap memory next to small free blocks with that text (see
:func:`leave_in_heap`), as a kernel holding its user's data (or a host that served another guest) would.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

PAGE = 65536
IN_DIMS, IN_DATA = 4, bytes(16)  # every attack's input: float32 zeros(4)
OUT_MAX = 1 << 16
QUIET_S = 0.5  # how long the host is watched for CPU it uses after the attack


# -- the wasm guest -----------------------------------------------------------------------------------------------

# Guest memory layout: results of one run at RESULTS (+0 load, +4 init, +8 set_input, +12 compute, +16 get_output
# errnos, 0xFFFFFFFF where a call was not reached; +20 bytes_written; +24 graph; +28 context), a second block at
# RESULTS + 64 for the benign run; the input tensor struct at TENSOR, its dims and data after it; builder arrays
# {ptr, len} at BUILDERS; outputs at OUT and OUT + OUT_MAX; the archives from ARCHIVES on.
RESULTS, BUILDERS, TENSOR = 1024, 1280, 2048
OUT = TENSOR + 65536  # room for an input of up to 64 KiB - 64 bytes
ARCHIVES = OUT + 2 * OUT_MAX
NOT_REACHED = 0xFFFFFFFF
CALLS = ("load", "init_execution_context", "set_input", "compute", "get_output")


def wat_escape(data: bytes) -> str:
    return "".join(f"\\{b:02x}" for b in data)


def guest_wat(attack: bytes, benign: bytes, dims: tuple[int, ...] = (IN_DIMS,), data: bytes = IN_DATA) -> str:
    """A guest exporting ``attack`` and ``benign`` (and each in two calls, ``*_open`` and ``*_run``, as a reactor
    guest that keeps its graph between calls would): each loads its archive (one builder; encoding 3 = pytorch,
    target 0 = cpu), sets input 0 to float32 ``dims`` holding ``data`` (zeros(4) by default), computes and reads
    output 0 (up to OUT_MAX bytes), storing every errno; returns the first nonzero."""
    benign_at = ARCHIVES + len(attack) + 64
    pages = (benign_at + len(benign)) // PAGE + 2
    results = " ".join(["\\ff" * 4] * 5)
    lines = [
        "(module",
        '  (import "wasi_ephemeral_nn" "load" (func $load (param i32 i32 i32 i32 i32) (result i32)))',
        '  (import "wasi_ephemeral_nn" "init_execution_context" (func $init (param i32 i32) (result i32)))',
        '  (import "wasi_ephemeral_nn" "set_input" (func $set_input (param i32 i32 i32) (result i32)))',
        '  (import "wasi_ephemeral_nn" "compute" (func $compute (param i32) (result i32)))',
        '  (import "wasi_ephemeral_nn" "get_output" (func $get_output (param i32 i32 i32 i32 i32) (result i32)))',
        f'  (memory (export "memory") {pages})',
        # the tensor struct: dims at TENSOR + 32, data at TENSOR + 64, type 1 = f32
        f'  (data (i32.const {TENSOR}) "{wat_escape(_u32(TENSOR + 32, len(dims)) + bytes([1, 0, 0, 0]))}'
        f'{wat_escape(_u32(TENSOR + 64, len(data)))}")',
        f'  (data (i32.const {TENSOR + 32}) "{wat_escape(_u32(*dims))}")',
        f'  (data (i32.const {TENSOR + 64}) "{wat_escape(data)}")',
        f'  (data (i32.const {BUILDERS}) "{wat_escape(_u32(ARCHIVES, len(attack), benign_at, len(benign)))}")',
        f'  (data (i32.const {RESULTS}) "{results.replace(" ", "")}")',
        f'  (data (i32.const {RESULTS + 64}) "{results.replace(" ", "")}")',
        f'  (data (i32.const {ARCHIVES}) "{wat_escape(attack)}")',
        f'  (data (i32.const {benign_at}) "{wat_escape(benign)}")',
        # $open: load + init_execution_context; $run: set_input, compute, get_output on the context $open made
        "  (func $open (param $builders i32) (param $res i32) (result i32) (local $e i32)",
        "    (local.set $e (call $load (local.get $builders) (i32.const 1) (i32.const 3) (i32.const 0)",
        "      (i32.add (local.get $res) (i32.const 24))))",
        "    (i32.store (local.get $res) (local.get $e))",
        "    (if (local.get $e) (then (return (local.get $e))))",
        "    (local.set $e (call $init (i32.load offset=24 (local.get $res))",
        "      (i32.add (local.get $res) (i32.const 28))))",
        "    (i32.store offset=4 (local.get $res) (local.get $e))",
        "    (local.get $e))",
        "  (func $run (param $res i32) (param $out i32) (result i32) (local $e i32)",
        "    (local.set $e (call $set_input (i32.load offset=28 (local.get $res)) (i32.const 0)",
        f"      (i32.const {TENSOR})))",
        "    (i32.store offset=8 (local.get $res) (local.get $e))",
        "    (if (local.get $e) (then (return (local.get $e))))",
        "    (local.set $e (call $compute (i32.load offset=28 (local.get $res))))",
        "    (i32.store offset=12 (local.get $res) (local.get $e))",
        "    (if (local.get $e) (then (return (local.get $e))))",
        f"    (local.set $e (call $get_output (i32.load offset=28 (local.get $res)) (i32.const 0) (local.get $out)"
        f"      (i32.const {OUT_MAX}) (i32.add (local.get $res) (i32.const 20))))",
        "    (i32.store offset=16 (local.get $res) (local.get $e))",
        "    (local.get $e))",
    ]
    blocks = (("attack", BUILDERS, RESULTS, OUT), ("benign", BUILDERS + 8, RESULTS + 64, OUT + OUT_MAX))
    for export, builders, res, out in blocks:
        lines += [
            f'  (func (export "{export}") (result i32) (local $e i32)',
            f"    (local.set $e (call $open (i32.const {builders}) (i32.const {res})))",
            "    (if (local.get $e) (then (return (local.get $e))))",
            f"    (call $run (i32.const {res}) (i32.const {out})))",
            f'  (func (export "{export}_open") (result i32) (call $open (i32.const {builders}) (i32.const {res})))',
            f'  (func (export "{export}_run") (result i32) (call $run (i32.const {res}) (i32.const {out})))',
        ]
    lines += [
        ")",
    ]
    return "\n".join(lines)


def _u32(*values: int) -> bytes:
    return b"".join(v.to_bytes(4, "little") for v in values)


# -- measuring this process ---------------------------------------------------------------------------------------


class Watchdog:
    """Bounds and measures this process's memory during the attack.

    Two guards, because guest code may hold the GIL (``torch.jit.load`` does): a soft ``RLIMIT_DATA`` of the
    private memory at the start plus ``kill_mib`` makes allocations past it fail in the kernel, and a thread samples
    resident memory and ends the process (status 3) past ``kill_mib`` above the baseline. Without them, a host that
    runs guest code in-process is taken by the kernel's out-of-memory killer, and other processes with it.
    """

    def __init__(self, kill_mib: float) -> None:
        self.kill = int(kill_mib * (1 << 20))
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.baseline = self.rss()
        self.peak = 0
        self.maxrss_before = 0
        self.saved_limit: tuple[int, int] | None = None
        self._armed = False
        threading.Thread(target=self._watch, name="rss-watchdog", daemon=True).start()

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    @staticmethod
    def data_bytes() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
        return 0

    def start(self) -> None:
        self.baseline, self.peak = self.rss(), 0
        self.maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.saved_limit = resource.getrlimit(resource.RLIMIT_DATA)
        soft = self.data_bytes() + self.kill
        hard = self.saved_limit[1]
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
        self._armed = True

    def stop(self) -> None:
        """Lift the memory limit again (the recovery step runs under the limits the process had)."""
        self._armed = False
        self.growth_mib()
        if self.saved_limit is not None:
            resource.setrlimit(resource.RLIMIT_DATA, self.saved_limit)

    def growth_mib(self) -> float:
        """The most resident memory rose above the baseline, sampled, or known from the peak the kernel kept."""
        self.peak = max(self.peak, self.rss() - self.baseline)
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if maxrss > self.maxrss_before:  # the attack set a new peak (possibly while the sampler could not run)
            self.peak = max(self.peak, maxrss - self.baseline)
        return self.peak / (1 << 20)

    def _watch(self) -> None:
        while True:
            grown = self.rss() - self.baseline
            if self._armed:
                self.peak = max(self.peak, grown)
            if self._armed and grown > self.kill:
                say("KILLED", f"resident memory rose {grown >> 20} MiB during the attack, past the watchdog's "
                              f"{self.kill >> 20} MiB: guest code is allocating in this process")  # fmt: skip
                os._exit(3)
            time.sleep(0.01)


def say(tag: str, text: str) -> None:
    sys.stdout.write(f"{tag} {text}\n")
    sys.stdout.flush()


# -- the two paths ------------------------------------------------------------------------------------------------


def make_host(spec: dict[str, Any]) -> Any:
    """A default Host, with the spec's ``limits`` applied where this version of Limits has the field."""
    from wasinn_jupyter.host import Host, Limits

    known = {f.name for f in dataclasses.fields(Limits)}
    wanted = spec.get("limits", {})
    applied = {k: v for k, v in wanted.items() if k in known}
    if wanted:
        say("LIMITS", json.dumps({"applied": applied, "unknown": sorted(set(wanted) - known)}))
    return Host(limits=Limits(**applied))


def errno_name(code: Any) -> str:
    return str(code.value).replace("-", "_")


def run_client(client: Any, archive: bytes, steps: list[dict[str, Any]]) -> list[bytes]:
    """load, init, set_input, compute, get_output through the Client; stops at the first error."""
    from wasinn_jupyter.host import Tensor, WasiNNError

    values: dict[str, Any] = {}
    calls = (
        ("load", lambda: client.load([archive], "pytorch", "cpu")),
        ("init_execution_context", lambda: client.init_execution_context(values["load"])),
        ("set_input", lambda: client.set_input(values["init_execution_context"], 0,
                                               Tensor.from_value(np.zeros(IN_DIMS, np.float32)))),
        ("compute", lambda: client.compute(values["init_execution_context"])),
        ("get_output", lambda: client.get_output(values["init_execution_context"], 0)),
    )  # fmt: skip
    for call, fn in calls:
        say("STEP", call)
        try:
            values[call] = fn()
        except WasiNNError as err:
            steps.append({"call": call, "errno": errno_name(err.code), "message": err.message[:2000]})
            return []
        steps.append({"call": call, "outcome": "ok"})
    out = values["get_output"]
    return [out.to_numpy().tobytes()]


def run_wat(guest: Any, export: str, block: int, out_at: int, steps: list[dict[str, Any]]) -> list[bytes]:
    """Call the guest's ``attack`` or ``benign`` export and read what each wasi-nn call answered from its memory."""
    from wasinn_jupyter.host import GuestStopped
    from wasinn_jupyter.host.errors import WITX_ERRNO_NAMES

    say("STEP", f"{export} (a wasm guest: {', '.join(CALLS)})")
    stopped = None
    try:
        guest.call(export)
    except GuestStopped as exc:
        stopped = str(exc)
    memory = guest.instance.exports(guest.store)["memory"]

    def u32(at: int) -> int:
        return int.from_bytes(bytes(memory.read(guest.store, at, at + 4)), "little")

    outputs: list[bytes] = []
    for i, call in enumerate(CALLS):
        errno = u32(block + 4 * i)
        if errno == NOT_REACHED:
            break
        if errno:
            steps.append({"call": call, "errno": WITX_ERRNO_NAMES.get(errno, str(errno)),
                          "message": (guest.client.last_error or "")[:2000]})  # fmt: skip
            break
        steps.append({"call": call, "outcome": "ok"})
        if call == "get_output":
            written = u32(block + 20)
            outputs.append(bytes(memory.read(guest.store, out_at, out_at + min(written, OUT_MAX))))
    if stopped is not None:
        steps.append({"call": "guest", "outcome": "stopped", "message": stopped})
    return outputs


HELD: list[Any] = []


def leave_in_heap(secret: bytes, blocks: int = 4096) -> None:
    """Put ``secret`` in this process's heap as a kernel holding a user's data would: ``blocks`` live 4 KiB tensors
    holding it, each allocated right after a 1-byte tensor that is then freed. The holes are the size libtorch
    allocates for a 1-byte storage record, so a short-storage archive's tensor starts in one and reads on into the
    secret after it (16 MiB held)."""
    import torch

    pattern = torch.frombuffer(bytearray(secret * (4096 // len(secret) + 1))[:4096], dtype=torch.uint8)
    holes = []
    for _ in range(blocks):
        holes.append(torch.empty(1, dtype=torch.uint8))
        HELD.append(pattern.clone())
    del holes


def rng_state() -> bytes:
    """torch's global CPU random generator state in this process (nothing in the host draws from it)."""
    import torch

    return torch.get_rng_state().numpy().tobytes()


def expected_output(benign: bytes) -> np.ndarray:
    """What the benign model computes for the attacks' input, by torch directly (the benign archive is trusted)."""
    import io

    import torch

    with torch.inference_mode():
        return torch.jit.load(io.BytesIO(benign))(torch.zeros(IN_DIMS)).numpy()


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    attack = Path(spec["archive"]).read_bytes()
    benign = Path(spec["benign"]).read_bytes()
    marker = spec.get("python_kernel_marker", "torch._dynamo.testing")
    if spec.get("register_host_op"):
        sys.path.insert(0, str(Path(__file__).parent))
        import hostile

        hostile.register_host_op()
    from wasinn_jupyter.host import GuestLimits, Session

    # the benign model's numbers, from the spec (the test computes them): loading it here first would change how
    # this process's heap looks to the attack
    expected = np.asarray(spec["expected"], np.float32) if "expected" in spec else None
    host = make_host(spec)
    watchdog = Watchdog(spec.get("rss_kill_mib", 768))
    result: dict[str, Any] = {"steps": [], "outputs": [], "recovered": None}
    session = guest = client = None
    if spec["path"] == "wat":
        session = Session(host)
        module = session.compile(guest_wat(attack, benign))
        guest = session.instantiate(module, limits=GuestLimits(deadline_s=spec.get("guest_deadline_s")))
        if spec.get("heap_secret"):  # last, so that little else allocates between it and the attack
            # in a thread that ends: its malloc arena goes to the next new thread, the one the guest call runs on
            # (as an earlier guest call's or another guest's data would)
            sprayer = threading.Thread(target=leave_in_heap, args=(spec["heap_secret"].encode(),))
            sprayer.start()
            sprayer.join()
        rng_before = rng_state()
        watchdog.start()
        outputs = run_wat(guest, "attack", RESULTS, OUT, result["steps"])
    else:
        client = host.client()
        if spec.get("heap_secret"):
            leave_in_heap(spec["heap_secret"].encode())
        rng_before = rng_state()
        watchdog.start()
        outputs = run_client(client, attack, result["steps"])
    watchdog.stop()
    result["outputs"] = [o.hex() for o in outputs]
    result["rss_growth_mib"] = round(watchdog.growth_mib(), 1)
    say("STEP", "quiet half second")
    cpu = time.process_time()
    time.sleep(QUIET_S)
    result["background_cpu_s"] = round(time.process_time() - cpu, 3)
    result["python_ran"] = marker in sys.modules
    result["rng_changed"] = rng_state() != rng_before

    say("STEP", "recovery: a benign load and compute by the same guest")
    if expected is None:
        expected = expected_output(benign)
    steps: list[dict[str, Any]] = []
    try:
        if guest is not None:
            got = run_wat(guest, "benign", RESULTS + 64, OUT + OUT_MAX, steps)
        else:
            got = run_client(client, benign, steps)
        ok = bool(got) and np.allclose(np.frombuffer(got[0], np.float32), expected.reshape(-1), atol=1e-5)
        result["recovered"] = {"ok": ok, "steps": steps}
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the test says what broke
        result["recovered"] = {"ok": False, "steps": steps, "error": "".join(traceback.format_exception(exc))[-2000:]}
    say("RESULT", json.dumps(result))
    if guest is not None:
        guest.close()
    if client is not None:
        client.close()
    say("STEP", "exit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
