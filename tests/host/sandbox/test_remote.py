"""Guest-supplied graphs in their sandbox worker: results, the worker's failures, its time limits, stopping it."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import torch

from wasinn_jupyter.host import ErrorCode, Host, Limits, Tensor, WasiNNError
from wasinn_jupyter.host.sandbox import protocol, remote
from wasinn_jupyter.host.sandbox.remote import RemoteGraph


def archive(module: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


class Spin(torch.nn.Module):
    """Computes until stopped: what a hostile archive's forward can do."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        while bool(x.sum() > -1.0):
            x = x * 1.0
        return x


class Named(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"sum": a + b, "product": (a * b).to(torch.float64)}


def run(client, graph: int, *inputs: np.ndarray) -> list[Tensor]:
    ctx = client.init_execution_context(graph)
    for i, x in enumerate(inputs):
        client.set_input(ctx, i, Tensor.from_value(x))
    client.compute(ctx)
    return list(client.contexts.get(ctx).outputs or [])


def test_a_guest_model_runs_in_a_confined_worker_and_matches_torch() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(16, 5))
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4), dtype=np.float32)
    with Host().client() as client:
        graph = client.load([archive(model)], "pytorch", "cpu")
        assert isinstance(client.graphs.get(graph), RemoteGraph)
        process = client._sandboxes["cpu"]
        assert process.pid != os.getpid() and "seccomp" in process.confinement
        (out,) = run(client, graph, x)
        np.testing.assert_allclose(out.to_numpy(), model(torch.from_numpy(x)).detach().numpy(), rtol=1e-5)
        info = client.graphs.get(graph).info()
        assert info.kind == "torchscript (sandboxed)" and info.parameters == sum(p.numel() for p in model.parameters())
        # named outputs, types the worker chose, and several inputs by position
        named = client.load([archive(Named())], "autodetect", "cpu")
        a, b = np.arange(3, dtype=np.float32), np.full(3, 2, dtype=np.float32)
        ctx = client.init_execution_context(named)
        assert client.compute_named(ctx, {"a": Tensor.from_value(a), "b": Tensor.from_value(b)}).keys() == {
            "sum",
            "product",
        }
        outs = client.contexts.get(ctx).outputs or []
        assert [t.type.name for t in outs] == ["f32", "f64"]
        np.testing.assert_array_equal(outs[1].to_numpy(), a * b)
    assert process.dead is not None and process.exit_status(wait_s=10) is not None  # closing the client ended it
    assert client.budget.used == 0


def test_a_worker_that_dies_fails_the_call_and_its_graphs_and_the_next_load_starts_another() -> None:
    with Host().client() as client:
        identity = archive(torch.nn.Identity())
        graph = client.load([identity], "pytorch", "cpu")
        first = client._sandboxes["cpu"]
        os.kill(first.pid, signal.SIGSEGV)
        assert first.exit_status(wait_s=10) == -signal.SIGSEGV
        with pytest.raises(WasiNNError) as err:
            run(client, graph, np.zeros(2, np.float32))
        assert err.value.code is ErrorCode.RUNTIME_ERROR and "SIGSEGV" in err.value.message
        with pytest.raises(WasiNNError, match="crashed with SIGSEGV"):  # the graph stays stopped
            run(client, graph, np.zeros(2, np.float32))
        again = client.load([identity], "pytorch", "cpu")
        assert client._sandboxes["cpu"] is not first
        np.testing.assert_array_equal(run(client, again, np.ones(2, np.float32))[0].to_numpy(), np.ones(2))


def test_a_compute_past_its_time_limit_kills_the_worker() -> None:
    with Host(limits=Limits(sandbox_compute_s=1.0)).client() as client:
        graph = client.load([archive(Spin())], "pytorch", "cpu")
        started = time.monotonic()
        with pytest.raises(WasiNNError) as err:
            run(client, graph, np.zeros(2, np.float32))
        assert err.value.code is ErrorCode.TIMEOUT and "1.0 s" in err.value.message
        assert time.monotonic() - started < 30
        assert client._sandboxes["cpu"].exit_status(wait_s=10) == -signal.SIGKILL


def test_a_stopped_guest_stops_its_model_compute() -> None:
    with Host().client() as client:
        graph = client.load([archive(Spin())], "pytorch", "cpu")
        stop = threading.Event()
        client.stop_check = lambda: "interrupted" if stop.is_set() else None
        threading.Timer(0.5, stop.set).start()
        with pytest.raises(WasiNNError, match="interrupted"):
            run(client, graph, np.zeros(2, np.float32))


def test_outputs_past_the_budget_are_refused_before_the_host_holds_them() -> None:
    class Grow(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(1 << 24)  # 64 MiB: the worker holds it (charged), the host's copy would pass 100 MiB

    with Host(limits=Limits(max_guest_bytes=100 << 20)).client() as client:
        graph = client.load([archive(Grow())], "pytorch", "cpu")
        with pytest.raises(WasiNNError) as err:
            run(client, graph, np.zeros(1, np.float32))
        assert err.value.code is ErrorCode.TOO_LARGE and "max_guest_bytes" in err.value.message
        held_by_host = client.budget.used - client._sandboxes["cpu"].charged
        assert held_by_host < 1 << 20  # nothing of the refused outputs (the worker's memory is charged apart)
        client.budget.limit = 1 << 30
        assert run(client, graph, np.zeros(1, np.float32))[0].nbytes == 64 << 20  # the worker still serves


def test_graph_code_that_allocates_past_the_budget_gets_too_large_and_the_host_lives() -> None:
    class Hog(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.ones(1 << 30, dtype=torch.uint8).sum().reshape(1).to(torch.float32)

    with Host(limits=Limits(max_guest_bytes=256 << 20)).client() as client:
        graph = client.load([archive(Hog())], "pytorch", "cpu")
        with pytest.raises(WasiNNError) as err:
            run(client, graph, np.zeros(1, np.float32))
        assert err.value.code is ErrorCode.TOO_LARGE and "budget" in err.value.message


def test_unpack_refuses_descriptors_a_hostile_worker_could_send() -> None:
    for bad in (
        "not a list",
        [{"type": "f128", "dims": [1], "offset": 0}],
        [{"type": "f32", "dims": [-1], "offset": 0}],
        [{"type": "f32", "dims": [1] * 17, "offset": 0}],
        [{"type": "f32", "dims": [True], "offset": 0}],
        [{"type": "f32", "dims": [4], "offset": 0}],  # 16 bytes, 8 shared
        [{"type": "f32", "dims": [1], "offset": -4}],
        [{"type": "u8", "dims": [0], "offset": 0}] * (protocol.MAX_TENSORS + 1),
    ):
        with pytest.raises(protocol.ProtocolError):
            protocol.unpack(None, bad, 8)


def test_workers_outlive_the_thread_that_started_them() -> None:
    """A guest's first load often runs on a short-lived guest thread; its worker (and the zygote) must stay."""
    remote.Zygote._shared = None  # this thread starts the zygote afresh
    with Host().client() as client:
        box: dict[str, int] = {}
        thread = threading.Thread(target=lambda: box.update(graph=client.load([archive(torch.nn.Identity())],
                                                                               "pytorch", "cpu")))  # fmt: skip
        thread.start()
        thread.join()
        time.sleep(0.5)
        out = run(client, box["graph"], np.arange(3, dtype=np.float32))
        np.testing.assert_array_equal(out[0].to_numpy(), np.arange(3))


def test_no_sandbox_process_outlives_its_host(tmp_path) -> None:
    script = tmp_path / "host.py"
    script.write_text(
        textwrap.dedent(
            """
            import io, torch
            from wasinn_jupyter.host import Host
            buffer = io.BytesIO()
            torch.jit.save(torch.jit.script(torch.nn.Identity()), buffer)
            client = Host().client()
            client.load([buffer.getvalue()], "pytorch", "cpu")
            process = client._sandboxes["cpu"]
            print(process.pid, process.zygote.proc.pid, flush=True)
            import os
            os._exit(0)  # no cleanup at all: as a kernel that is killed
            """
        )
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2, out.stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
        time.sleep(0.1)
    alive = [p for p in pids if os.path.exists(f"/proc/{p}") and "Z" not in open(f"/proc/{p}/stat").read().split()[2]]
    assert not alive


def test_shared_memory_cannot_change_size_once_made() -> None:
    """A worker that kept an output's descriptor must not be able to shrink what the host has mapped (SIGBUS)."""
    fd = protocol.new_memfd(4096)
    try:
        for size in (0, 8192):
            with pytest.raises(PermissionError):
                os.ftruncate(fd, size)
        assert os.fstat(fd).st_size == 4096
    finally:
        os.close(fd)


def test_a_workers_memory_allowance_is_what_the_guest_has_left() -> None:
    class Take(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            taken = torch.ones(int(x.sum().item()) // 4)  # float32: the input's number of bytes
            return taken.sum().reshape(1)

    with Host(limits=Limits(max_guest_bytes=256 << 20)).client() as client:
        graph = client.load([archive(Take())], "pytorch", "cpu")
        ctx = client.init_execution_context(graph)
        client.set_input(ctx, 0, Tensor.from_value(np.array([96 << 20], np.float32)))
        client.compute(ctx)  # 96 MiB in the worker: within 256 MiB
        other = client.init_execution_context(graph)
        client.set_input(other, 0, Tensor.from_value(np.zeros(160 << 20, np.uint8)))  # the host now holds 160 MiB
        with pytest.raises(WasiNNError) as err:
            client.compute(ctx)  # the same 96 MiB no longer fits in what is left
        assert err.value.code is ErrorCode.TOO_LARGE
        client.finalize_execution_context(other)
        client.compute(ctx)  # room again
