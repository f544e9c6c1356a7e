"""The driver guest and the inputs of a compute: what the magics add to the host's compute convention.

The convention itself (the exports a guest provides, the arena, the result record, how outputs are read back) is
part of the host, beside the witx layout it shares: :mod:`wasinn_jupyter.host.abi.convention`. This module ships
the guest that follows it by forwarding everything through the witx ABI (``driver.wat``), and turns a cell's
value into the tensors to hand over (:func:`as_tensors`). The convention's names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any

import numpy as np

from ..host import Tensor
from ..host.abi import (
    ALLOC,
    COMPUTE,
    FROM_GRAPH,
    ComputeError,
    Output,
    compute,
    convention_problem,
    supports_compute,
)

__all__ = [
    "ALLOC",
    "COMPUTE",
    "FROM_GRAPH",
    "ComputeError",
    "Output",
    "as_tensors",
    "compute",
    "convention_problem",
    "driver_wat",
    "supports_compute",
]


def driver_wat() -> str:
    """The WAT text of the shipped driver guest."""
    return resources.files(__package__).joinpath("driver.wat").read_text()


def as_tensors(value: Any, names: Sequence[str] | None = None) -> list[Tensor]:
    """Inputs from a cell's value: one array or tensor, a list/tuple of them, or a dict of name to array/tensor.

    A dict is put in the graph's declared input order when ``names`` is known, else in its own order.
    """
    if isinstance(value, dict):
        if names is not None:
            unknown = [k for k in value if k not in names]
            missing = [n for n in names if n not in value]
            if unknown or missing:
                raise ComputeError(f"the graph takes inputs {list(names)}; unknown {unknown}, missing {missing}")
            value = [value[n] for n in names]
        else:
            value = list(value.values())
    elif isinstance(value, (list, tuple)) and value and all(_is_array(v) for v in value):
        value = list(value)
    else:
        value = [value]
    tensors = []
    for i, item in enumerate(value):
        try:
            tensors.append(Tensor.from_value(item))
        except Exception as exc:  # noqa: BLE001 - say which input, in one line
            raise ComputeError(f"input {i} ({type(item).__name__}) is not a tensor: {exc}") from None
    return tensors


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or (hasattr(value, "detach") and hasattr(value, "dtype"))
