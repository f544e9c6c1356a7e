"""One memory budget per guest: everything a guest makes the host hold is charged to it, and past it is too_large."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch

from wasinn_jupyter.host import ErrorCode, Host, Limits, Tensor, WasiNNError
from wasinn_jupyter.host.handles import default_guest_bytes


def echo_host(budget: int, **limits: object) -> Host:
    host = Host(limits=Limits(max_guest_bytes=budget, **limits))  # type: ignore[arg-type]
    host.register("echo", "echo")
    return host


def test_the_default_budget_is_a_quarter_of_memory_at_most_4_gib() -> None:
    assert 0 < default_guest_bytes() <= 4 << 30
    assert Limits().max_guest_bytes == default_guest_bytes()


def test_outputs_that_alias_inputs_stay_charged_after_the_input_is_replaced() -> None:
    """Echo's output is its input: replacing the input must not refund bytes the output still holds."""
    with echo_host(100 << 10).client() as client:
        graph = client.load_by_name("echo")
        contexts = []
        with pytest.raises(WasiNNError) as err:
            for _ in range(100):
                ctx = client.init_execution_context(graph)
                contexts.append(ctx)
                client.set_input(ctx, 0, Tensor.from_value(np.zeros(16 << 10, np.uint8)))
                client.compute(ctx)
                client.set_input(ctx, 0, Tensor.from_value(np.zeros(1, np.uint8)))  # the 16 KiB live on as output
        assert err.value.code is ErrorCode.TOO_LARGE
        assert len(contexts) <= 7  # each keeps 16 KiB of output (+1 input byte): six fit in 100 KiB, not 100
        assert client.budget.used <= 100 << 10
        for ctx in contexts:
            client.finalize_execution_context(ctx)
        assert client.budget.used == 0


def archive(module: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


def test_every_graph_loaded_in_process_from_guest_bytes_is_charged_until_unloaded() -> None:
    model = archive(torch.nn.Linear(64, 64))
    with Host(limits=Limits(max_guest_bytes=10 * len(model), guest_models="in-process")).client() as client:
        graphs = []
        with pytest.raises(WasiNNError) as err:
            for _ in range(40):
                graphs.append(client.load([model], "pytorch", "cpu"))
        assert err.value.code is ErrorCode.TOO_LARGE and len(graphs) == 10
        client.unload(graphs.pop())
        graphs.append(client.load([model], "pytorch", "cpu"))  # the unload made room for exactly one
    assert client.budget.used == 0


class Big(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("w", torch.zeros(8 << 20))  # 32 MiB of zeros: deflates to ~32 KiB

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.w[:1]


def inflating_archive() -> bytes:
    """A TorchScript archive of under 1 MiB whose weights hold 32 MiB once loaded (its entries deflated)."""
    packed = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive(Big()))) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    return packed.getvalue()


def test_reloading_a_deflated_archive_in_the_sandbox_meets_the_budget_not_the_oom_killer() -> None:
    """A small archive that inflates: each load's memory lands in the guest's worker and is charged there."""

    small = inflating_archive()
    assert len(small) < 1 << 20
    with Host(limits=Limits(max_guest_bytes=200 << 20)).client() as client:
        loaded = 0
        with pytest.raises(WasiNNError) as err:
            for _ in range(40):
                client.load([small], "pytorch", "cpu")
                loaded += 1
        assert err.value.code is ErrorCode.TOO_LARGE and "max_guest_bytes" in err.value.message
        assert 1 <= loaded < 8  # 32 MiB each, within 200 MiB
        assert client.budget.used <= 200 << 20


def test_the_copy_of_load_bytes_is_charged_before_it_is_made() -> None:
    model = archive(torch.nn.Identity())
    with Host(limits=Limits(max_guest_bytes=len(model) - 1)).client() as client:
        with pytest.raises(WasiNNError) as err:
            client.load([model], "pytorch", "cpu")
        assert err.value.code is ErrorCode.TOO_LARGE
        assert client.budget.used == 0 and not client._sandboxes  # refused before a worker was started


def test_an_in_process_graph_is_charged_for_what_its_weights_hold_not_its_archive() -> None:
    small = inflating_archive()
    with Host(limits=Limits(max_guest_bytes=80 << 20, guest_models="in-process")).client() as client:
        client.load([small], "pytorch", "cpu")
        assert client.budget.used >= 32 << 20
        client.load([small], "pytorch", "cpu")
        with pytest.raises(WasiNNError) as err:
            client.load([small], "pytorch", "cpu")  # a third 32 MiB: over 80 MiB
        assert err.value.code is ErrorCode.TOO_LARGE
    assert client.budget.used == 0
