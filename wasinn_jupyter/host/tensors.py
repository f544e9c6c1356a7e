"""The one tensor-type table, and the host's tensor value.

Every place that needs to know what a tensor type is called somewhere else (witx code, WIT case, torch dtype,
numpy dtype, element size) reads :data:`TENSOR_TYPES`. Torch is imported only when a torch tensor is asked for, so
the echo path on the CPU never loads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from .errors import ErrorCode, WasiNNError, fail

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class TensorType:
    """One row of the table. ``numpy`` is the storage dtype (bf16 has none of its own: it is kept as uint16 bits)."""

    name: str
    witx: int | None
    wit: str
    torch_name: str
    numpy: np.dtype
    itemsize: int

    def torch_dtype(self) -> torch.dtype:
        import torch

        dtype: torch.dtype = getattr(torch, self.torch_name)
        return dtype

    def __str__(self) -> str:
        return self.name


TENSOR_TYPES: tuple[TensorType, ...] = (
    TensorType("f16", 0, "FP16", "float16", np.dtype(np.float16), 2),
    TensorType("f32", 1, "FP32", "float32", np.dtype(np.float32), 4),
    TensorType("f64", 2, "FP64", "float64", np.dtype(np.float64), 8),
    TensorType("bf16", None, "BF16", "bfloat16", np.dtype(np.uint16), 2),
    TensorType("u8", 3, "U8", "uint8", np.dtype(np.uint8), 1),
    TensorType("i32", 4, "I32", "int32", np.dtype(np.int32), 4),
    TensorType("i64", 5, "I64", "int64", np.dtype(np.int64), 8),
)

BY_NAME: dict[str, TensorType] = {t.name: t for t in TENSOR_TYPES}
BY_WITX: dict[int, TensorType] = {t.witx: t for t in TENSOR_TYPES if t.witx is not None}
BY_WIT: dict[str, TensorType] = {t.wit: t for t in TENSOR_TYPES}
_BY_TORCH: dict[str, TensorType] = {t.torch_name: t for t in TENSOR_TYPES}
_BY_NUMPY: dict[np.dtype, TensorType] = {t.numpy: t for t in TENSOR_TYPES if t.name != "bf16"}


# A guest may name at most this many dimensions; it bounds what a hostile dims_len can make the host read.
MAX_RANK = 16


_BY_TORCH_DTYPE: dict[Any, TensorType] = {}


def type_of_torch(dtype: torch.dtype) -> TensorType:
    found = _BY_TORCH_DTYPE.get(dtype)
    if found is not None:
        return found
    name = str(dtype).removeprefix("torch.")
    try:
        found = _BY_TORCH_DTYPE[dtype] = _BY_TORCH[name]
        return found
    except KeyError:
        supported = ", ".join(t.torch_name for t in TENSOR_TYPES)
        fail(ErrorCode.RUNTIME_ERROR, f"torch dtype {name} has no wasi-nn tensor type (supported: {supported})")


def type_of_numpy(dtype: np.dtype) -> TensorType:
    try:
        return _BY_NUMPY[np.dtype(dtype)]
    except KeyError:
        fail(ErrorCode.INVALID_ARGUMENT, f"numpy dtype {np.dtype(dtype)} has no wasi-nn tensor type")


def element_count(dims: tuple[int, ...]) -> int:
    return math.prod(dims)


Data = Union[np.ndarray, "torch.Tensor"]


class Tensor:
    """A tensor on the host side: dimensions, a type from the table, and its data.

    ``data`` is a numpy array (input copied out of a guest, or echo output on the CPU) or a torch tensor (backend
    output, possibly on CUDA); the conversions below avoid copies wherever the layouts allow.
    """

    __slots__ = ("data", "dims", "nbytes", "type")

    def __init__(self, dims: tuple[int, ...], type: TensorType, data: Data) -> None:
        self.dims = dims
        self.type = type
        self.data = data
        self.nbytes = element_count(dims) * type.itemsize

    @property
    def device(self) -> str:
        return str(getattr(self.data, "device", "cpu"))

    @classmethod
    def from_bytes(cls, dims: tuple[int, ...], type: TensorType, raw: np.ndarray) -> Tensor:
        """Wrap raw bytes (a uint8 array this tensor then owns) after checking they fit the dims."""
        tensor = cls(dims, type, raw)
        if raw.nbytes != tensor.nbytes:
            fail(
                ErrorCode.INVALID_ARGUMENT,
                f"tensor dims {list(dims)} of {type} need {tensor.nbytes} bytes, but data is {raw.nbytes} bytes",
            )
        return tensor

    @classmethod
    def from_guest(cls, dims: tuple[int, ...], type: TensorType, span: np.ndarray, device: str) -> Tensor:
        """Exactly one copy out of guest memory (``span`` is a view of it): into host memory, or straight to the
        graph's device. The copy is synchronous, so the guest may reuse its buffer as soon as set_input returns."""
        checked = cls.from_bytes(dims, type, span)  # the length check, before any copy
        if device == "cpu":
            checked.data = span.copy()
            return checked
        import torch

        if not checked.nbytes:  # torch cannot view an empty byte tensor as a wider type
            checked.data = torch.empty(dims, dtype=type.torch_dtype(), device=device)
        else:
            checked.data = torch.from_numpy(span).to(device).view(type.torch_dtype()).view(dims)
        return checked

    @classmethod
    def from_value(cls, value: Any) -> Tensor:
        """A tensor from a torch tensor, a numpy array or anything numpy can turn into an array."""
        if hasattr(value, "detach") and hasattr(value, "dtype"):
            return cls(tuple(value.shape), type_of_torch(value.dtype), value.detach())
        array = np.asarray(value)
        shape = tuple(array.shape)  # np.ascontiguousarray would make a 0-d array shape (1,)
        return cls(shape, type_of_numpy(array.dtype), np.ascontiguousarray(array).reshape(shape))

    def raw(self) -> Data:
        """The data as a flat uint8 array or tensor, sharing memory where the layout allows."""
        data = self.data
        if isinstance(data, np.ndarray):
            if data.dtype == np.uint8 and data.ndim == 1:  # bytes copied out of a guest: already flat
                return data
            return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        import torch

        return data.contiguous().reshape(-1).view(torch.uint8)

    def raw_numpy(self) -> np.ndarray:
        """The bytes as a flat uint8 numpy array in host memory (copied only from a device)."""
        raw = self.raw()
        return raw if isinstance(raw, np.ndarray) else raw.cpu().numpy()

    def to_torch(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """This tensor as torch, typed and shaped; zero-copy on the CPU."""
        import torch

        data = self.data
        if isinstance(data, np.ndarray):
            if not self.nbytes:  # torch cannot view an empty byte tensor as a wider type
                return torch.empty(self.dims, dtype=self.type.torch_dtype(), device=device)
            flat = torch.from_numpy(self.raw())
            data = flat.view(self.type.torch_dtype()).view(self.dims)
            if device == "cpu":
                return data
        return data.to(device)

    def copy_into(self, dst: np.ndarray) -> None:
        """Write the bytes into ``dst`` (a uint8 view of guest memory of exactly ``nbytes``): one copy, no staging."""
        src = self.raw()
        if isinstance(src, np.ndarray):
            np.copyto(dst, src)
        elif src.device.type == "cpu":
            np.copyto(dst, src.numpy())
        else:
            import torch

            torch.from_numpy(dst).copy_(src)  # device to guest memory, no staging buffer

    def to_numpy(self) -> np.ndarray:
        """A numpy array with the logical dtype (bf16 widens to float32, since numpy has no bfloat16)."""
        data = self.data
        if isinstance(data, np.ndarray):
            if self.type.name == "bf16":
                return self.to_torch().float().numpy()
            return data.reshape(-1).view(np.uint8).view(self.type.numpy).reshape(self.dims)
        if self.type.name == "bf16":
            data = data.float()
        return data.detach().cpu().numpy()

    def __repr__(self) -> str:
        return f"Tensor({self.type}, dims={list(self.dims)}, device={self.device})"


def check_type_code(code: int) -> TensorType:
    try:
        return BY_WITX[code]
    except KeyError:
        names = ", ".join(f"{t.witx} {t.name}" for t in TENSOR_TYPES if t.witx is not None)
        raise WasiNNError(ErrorCode.INVALID_ARGUMENT, f"unknown tensor type {code} (witx types: {names})") from None
