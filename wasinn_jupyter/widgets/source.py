"""Anything a tensor widget is handed, as a torch tensor on its own device, without copying where it can.

Torch tensors stay where they are (CUDA included: the summaries run there), numpy arrays are shared with
``torch.from_numpy``, the host's :class:`~wasinn_jupyter.host.Tensor` gives its data (bf16 bits viewed as bfloat16).
Dtype names come from the host's one table (``f32``, ``bf16``...); types wasi-nn has no code for (bool, int8...) keep
torch's name.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from ..host.tensors import TENSOR_TYPES, Tensor

if TYPE_CHECKING:
    import torch

_TABLE_NAMES = {t.torch_name: t.name for t in TENSOR_TYPES}

# numpy dtypes torch shares memory with but has few kernels for (aminmax, sum): widened to int64, a copy
_WIDEN = {np.dtype(np.uint16), np.dtype(np.uint32), np.dtype(np.uint64)}


def dtype_name(dtype: torch.dtype) -> str:
    """``f32``/``bf16``/``u8``... for wasi-nn's types, torch's own name (``bool``, ``int8``) for the rest."""
    torch_name = str(dtype).removeprefix("torch.")
    return _TABLE_NAMES.get(torch_name, torch_name)


def as_torch(value: Any) -> torch.Tensor:
    """``value`` as a torch tensor, sharing memory with it where possible (never moved off its device).

    TypeError for what has no numeric view: complex numbers (show ``t.abs()`` or ``t.real``), strings, objects,
    sparse tensors (``t.to_dense()``).
    """
    import torch

    if isinstance(value, Tensor):
        data = value.data
        tensor = data if isinstance(data, torch.Tensor) else value.to_torch()
    elif isinstance(value, torch.Tensor):
        tensor = value
    else:
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(
                f"a tensor widget shows numbers; this is a {array.dtype} array"
                + (" (show abs() or .real of it)" if array.dtype.kind == "c" else "")
            )
        if array.dtype in _WIDEN:
            array = array.astype(np.int64)
        elif not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        with warnings.catch_warnings():  # a read-only array: the widget never writes to it
            warnings.simplefilter("ignore", UserWarning)
            tensor = torch.from_numpy(array)
    tensor = tensor.detach()
    if tensor.layout != torch.strided:
        raise TypeError(f"a tensor widget shows dense tensors; this one is {tensor.layout} (use .to_dense())")
    if tensor.is_complex():
        raise TypeError(f"a tensor widget shows real numbers; this tensor is {tensor.dtype} (show .abs() or .real)")
    return tensor
