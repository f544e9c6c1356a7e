"""The Host and its clients: handles, limits, lifetimes and the timeline, from plain Python."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from wasinn_jupyter.host import Host, Limits, Tensor, WasiNNError
from wasinn_jupyter.host.errors import ErrorCode
from wasinn_jupyter.host.handles import HandleTable


def test_handles_count_up_and_stale_ones_are_told_apart() -> None:
    table: HandleTable[str] = HandleTable("graph", limit=2)
    assert [table.insert("a"), table.insert("b")] == [0, 1]
    with pytest.raises(WasiNNError) as err:
        table.insert("c")
    assert err.value.code is ErrorCode.TOO_LARGE
    table.remove(0)
    assert table.insert("c") == 2  # never reused
    with pytest.raises(WasiNNError, match="already freed"):
        table.get(0)
    with pytest.raises(WasiNNError, match="no graph has handle 7"):
        table.get(7)


def test_a_guest_that_never_frees_contexts_meets_the_limit() -> None:
    host = Host(limits=Limits(max_contexts=100_000))
    host.register("echo", "echo")
    with host.client() as client:
        graph = client.load_by_name("echo")
        for _ in range(100_000):
            client.init_execution_context(graph)
        with pytest.raises(WasiNNError) as err:
            client.init_execution_context(graph)
        assert err.value.code is ErrorCode.TOO_LARGE and "free some" in err.value.message
    assert len(client.contexts) == 0  # closing the client freed them all


def test_python_api_round_trip_and_timeline() -> None:
    host = Host()
    host.register("echo", "echo")
    seen = []
    unsubscribe = host.timeline.subscribe(seen.append)
    with host.client("nb") as client:
        ctx = client.init_execution_context(client.load_by_name("echo"))
        client.set_input(ctx, 0, Tensor.from_value(np.arange(4, dtype=np.float32)))
        client.compute(ctx)
        np.testing.assert_array_equal(client.get_output(ctx, 0).to_numpy(), np.arange(4))
    unsubscribe()
    client2 = host.client()
    client2.load_by_name("echo")
    assert [r.call for r in seen] == ["load_by_name", "init_execution_context", "set_input", "compute", "get_output"]
    assert all(r.guest == "nb" and r.ok and r.duration_ns > 0 for r in seen)
    assert seen[2].graph == "echo" and seen[2].nbytes == 16
    assert host.timeline.summary()["load_by_name"]["count"] == 2


def test_gpu_target_fails_clearly_or_falls_back_when_asked() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(WasiNNError) as err:
        Host().register("e", "echo", target="gpu")
    assert err.value.code is ErrorCode.UNSUPPORTED_OPERATION and "CUDA" in err.value.message
    info = Host(cpu_fallback=True).register("e", "echo", target="GPU")
    assert info.device == "cpu" and any("cpu_fallback" in n for n in info.notes)
    with pytest.raises(WasiNNError, match="tpu"):
        Host().register("e", "echo", target="tpu")


def test_unregister_keeps_graphs_that_guests_hold() -> None:
    host = Host()
    host.register("echo", "echo")
    client = host.client()
    ctx = client.init_execution_context(client.load_by_name("echo"))
    host.unregister("echo")
    with pytest.raises(WasiNNError) as err:
        client.load_by_name("echo")
    assert err.value.code is ErrorCode.NOT_FOUND
    client.set_input(ctx, 0, Tensor.from_value(np.ones(1, np.uint8)))
    client.compute(ctx)  # the held graph still works


def test_one_graph_shared_by_threads() -> None:
    import torch

    host = Host()
    host.register("double", torch.jit.script(torch.nn.Sequential(torch.nn.Identity())))
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            with host.client() as client:
                ctx = client.init_execution_context(client.load_by_name("double"))
                for i in range(200):
                    x = np.full(64, seed * 1000 + i, np.float32)
                    client.set_input(ctx, 0, Tensor.from_value(x))
                    client.compute(ctx)
                    np.testing.assert_array_equal(client.get_output(ctx, 0).to_numpy(), x)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_input_bytes_are_budgeted_per_guest() -> None:
    host = Host(limits=Limits(max_guest_bytes=1000))
    host.register("echo", "echo")
    with host.client() as client:
        graph = client.load_by_name("echo")
        a, b = client.init_execution_context(graph), client.init_execution_context(graph)
        client.set_input(a, 0, Tensor.from_value(np.zeros(600, np.uint8)))
        client.set_input(a, 0, Tensor.from_value(np.zeros(700, np.uint8)))  # replaces: 700 held
        with pytest.raises(WasiNNError) as err:
            client.set_input(b, 0, Tensor.from_value(np.zeros(301, np.uint8)))
        assert err.value.code is ErrorCode.TOO_LARGE and "max_guest_bytes" in err.value.message
        client.finalize_execution_context(a)  # frees its 700
        client.set_input(b, 0, Tensor.from_value(np.zeros(1000, np.uint8)))
        assert client.budget.used == 1000
    assert client.budget.used == 0


def test_closing_a_host_closes_its_clients_and_drops_its_graphs(torchscript_identity) -> None:
    from wasinn_jupyter.host import WasinnError

    with Host() as host:
        host.register("echo", "echo")
        client = host.client()
        ctx = client.init_execution_context(client.load_by_name("echo"))
        client.set_input(ctx, 0, Tensor.from_value(np.zeros(8, np.uint8)))
        guest_model = client.load([torchscript_identity], "pytorch", "cpu")
        worker = client._sandboxes["cpu"]
        assert client.budget.used > 0 and guest_model is not None
    assert host.closed and host.graphs() == {}
    assert len(client.contexts) == 0 and len(client.graphs) == 0 and client.budget.used == 0
    assert worker.dead is not None
    with pytest.raises(WasinnError):
        host.client()
    host.close()  # again: nothing to do
