"""The one dtype table and the host tensor's conversions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wasinn_jupyter.host import TENSOR_TYPES, Tensor, WasiNNError
from wasinn_jupyter.host.tensors import BY_WIT, BY_WITX, check_type_code


def test_table_matches_the_abi_numbers() -> None:
    assert {t.name: t.witx for t in TENSOR_TYPES} == {
        "f16": 0, "f32": 1, "f64": 2, "bf16": None, "u8": 3, "i32": 4, "i64": 5,
    }  # fmt: skip
    assert [t.wit for t in TENSOR_TYPES] == ["FP16", "FP32", "FP64", "BF16", "U8", "I32", "I64"]
    for t in TENSOR_TYPES:
        assert torch.empty(0, dtype=t.torch_dtype()).element_size() == t.itemsize == t.numpy.itemsize
    assert set(BY_WITX) == {0, 1, 2, 3, 4, 5} and BY_WIT["BF16"].witx is None
    with pytest.raises(WasiNNError, match="unknown tensor type 9"):
        check_type_code(9)


@pytest.mark.parametrize("ttype", TENSOR_TYPES, ids=str)
def test_bytes_torch_and_back_without_change(ttype) -> None:
    raw = np.random.default_rng(1).integers(0, 256, size=24 * ttype.itemsize, dtype=np.uint8)
    tensor = Tensor.from_bytes((2, 3, 4), ttype, raw)
    as_torch = tensor.to_torch()
    assert as_torch.dtype == ttype.torch_dtype() and tuple(as_torch.shape) == (2, 3, 4)
    assert as_torch.data_ptr() == raw.ctypes.data  # zero-copy on the CPU
    back = Tensor.from_value(as_torch)
    out = np.zeros(tensor.nbytes, np.uint8)
    back.copy_into(out)
    assert out.tobytes() == raw.tobytes()


def test_from_value_and_to_numpy() -> None:
    t = Tensor.from_value(np.arange(6, dtype=np.int32).reshape(2, 3))
    assert (t.type.name, t.dims) == ("i32", (2, 3))
    np.testing.assert_array_equal(t.to_numpy(), np.arange(6).reshape(2, 3))
    bf = Tensor.from_value(torch.tensor([1.5, -2.0], dtype=torch.bfloat16))
    np.testing.assert_array_equal(bf.to_numpy(), np.array([1.5, -2.0], np.float32))
    with pytest.raises(WasiNNError, match="no wasi-nn tensor type"):
        Tensor.from_value(np.array([True]))


def test_length_mismatch_is_refused() -> None:
    with pytest.raises(WasiNNError, match="need 8 bytes"):
        Tensor.from_bytes((2,), BY_WITX[1], np.zeros(7, np.uint8))


def test_rank_zero_values_keep_rank_zero() -> None:
    t = Tensor.from_value(np.float64(2.5))
    assert t.dims == () and t.nbytes == 8 and t.to_numpy() == 2.5
