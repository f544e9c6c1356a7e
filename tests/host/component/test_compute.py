"""The compute convention for components (wasinn:guest/compute): the host's tensors in, the guest's out."""

from __future__ import annotations

import numpy as np
import pytest

from tests.host.component.conftest import guest
from wasinn_jupyter.host import Session, Tensor
from wasinn_jupyter.host.abi import ComputeError, compute, supports_compute


def test_a_forwarding_component_echoes_every_input(session: Session) -> None:
    module = session.compile(guest("driver"), name="driver")
    assert supports_compute(module.export_names)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = np.array([7, -1], dtype=np.int64)
    with session.instantiate(module) as g:
        outputs = compute(g, "echo", [Tensor.from_value(x), Tensor.from_value(y)], watch=False)
        assert [o.name for o in outputs] == ["input0", "input1"]
        assert np.array_equal(outputs[0].tensor.to_numpy(), x) and np.array_equal(outputs[1].tensor.to_numpy(), y)
        assert not g._linking.binding.tensors.items and g.client.budget.used == 0


def test_the_guests_error_and_the_hosts_reason(session: Session) -> None:
    with session.instantiate(session.compile(guest("driver"), name="driver")) as g:
        with pytest.raises(ComputeError, match=r"wasi-nn refused.*no graph named 'nope'"):
            compute(g, "nope", [Tensor.from_value(np.zeros(2, np.float32))], watch=False)


def test_a_component_without_the_export_is_told_so(session: Session) -> None:
    with session.instantiate(session.compile(guest("cli_echo"))) as g:
        with pytest.raises(ComputeError, match="exports no wasinn:guest/compute#compute"):
            compute(g, "echo", [Tensor.from_value(np.zeros(2, np.float32))], watch=False)
