"""The CUDA paths: graphs on the GPU, outputs written from device memory into the guest, out-of-memory.

Skipped where there is no CUDA (CI); run on a machine with a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wasinn_jupyter.host import Host, Tensor, WasiNNError
from wasinn_jupyter.host.errors import ErrorCode

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


class Hungry(torch.nn.Module):
    """Asks for far more device memory than exists when its input's first value is 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(x[0] == 1):
            return torch.empty(1 << 44, device=x.device) + x.sum()
        return x * 2


def test_module_on_gpu_matches_the_cpu() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(4))
    x = torch.rand(2, 3, 16, 16)
    expected = model(x).detach()
    host = Host()
    info = host.register("cnn", model, target="gpu")
    assert info.device == "cuda"
    assert next(model.parameters()).device.type == "cpu"  # the user's module was copied, not moved
    with host.client() as client:
        ctx = client.init_execution_context(client.load_by_name("cnn"))
        client.set_input(ctx, 0, Tensor.from_value(x))
        client.compute(ctx)
        out = client.get_output(ctx, 0)
        assert out.device == "cpu"  # residence=memory (the default): brought to host memory after compute
        torch.testing.assert_close(out.to_torch("cpu"), expected, rtol=1e-4, atol=1e-4)
        host.set_property("cnn", "residence", "device")
        client.compute(ctx)
        out = client.get_output(ctx, 0)
        assert out.device.startswith("cuda")  # kept on the GPU: get_output copies device-to-guest, no staging
        torch.testing.assert_close(out.to_torch("cpu"), expected, rtol=1e-4, atol=1e-4)


def test_cuda_output_is_written_into_guest_memory(host, make_abi) -> None:
    host.register("gecho", "echo", target="gpu")
    abi = make_abi()
    ctx = abi.open_echo("gecho")
    data = np.arange(64, dtype=np.float32).tobytes()
    abi.call("set_input", ctx, 0, abi.tensor(1024, [64], 1, data))
    assert abi.call("compute", ctx) == 0
    assert abi.guest.client.contexts.get(ctx).outputs[0].device.startswith("cuda")
    assert abi.call("get_output", ctx, 0, 4096, 256, 60) == 0
    assert abi.read(4096, 256) == data


def test_out_of_memory_is_runtime_error_and_the_device_stays_usable() -> None:
    host = Host()
    host.register("hungry", Hungry(), target="gpu")
    before = torch.cuda.memory_allocated()
    with host.client() as client:
        ctx = client.init_execution_context(client.load_by_name("hungry"))
        client.set_input(ctx, 0, Tensor.from_value(np.ones(4, np.float32)))
        with pytest.raises(WasiNNError) as err:
            client.compute(ctx)
        assert err.value.code is ErrorCode.RUNTIME_ERROR and "OutOfMemoryError" in err.value.message
        client.set_input(ctx, 0, Tensor.from_value(np.full(4, 3, np.float32)))
        client.compute(ctx)
        np.testing.assert_array_equal(client.get_output(ctx, 0).to_numpy(), np.full(4, 6, np.float32))
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() - before < 1 << 20
