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
        if not array.dtype.isnative:
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


# floating types torch computes with everywhere; others (float8...) are widened to float32 for the widget
_FLOATS = ("torch.float16", "torch.bfloat16", "torch.float32", "torch.float64")
_UNSIGNED_WIDE = ("torch.uint16", "torch.uint32", "torch.uint64")


def computable(tensor: torch.Tensor) -> tuple[torch.Tensor, str | None]:
    """``tensor``, or a copy in a type torch's reductions support (float8 as float32, uint16/32/64 as int64),
    with a note saying so. Exact, except uint64 values past 2**63."""
    import torch

    kind = str(tensor.dtype)
    if tensor.is_floating_point() and kind not in _FLOATS:
        return tensor.to(torch.float32), f"{dtype_name(tensor.dtype)} computed as float32 (exact)"
    if kind in _UNSIGNED_WIDE:
        return tensor.to(torch.int64), f"{dtype_name(tensor.dtype)} computed as int64"
    return tensor, None
