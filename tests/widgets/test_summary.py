"""Summaries and histograms against numpy, for every dtype, across chunk boundaries, with NaN and infinities."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from wasinn_jupyter.host import Tensor
from wasinn_jupyter.widgets.source import as_torch, dtype_name
from wasinn_jupyter.widgets.summary import CHUNK_CPU, summarize

N = 2 * CHUNK_CPU + 12_345  # three chunks, the last one short


def reference(t: torch.Tensor) -> np.ndarray:
    """The values as float64 numpy (bf16 has no numpy type: through float32, exactly)."""
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy().astype(np.float64).reshape(-1)


def data(dtype: torch.dtype, n: int = N) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    if dtype == torch.bool:
        return torch.rand(n, generator=g) < 0.3
    if dtype.is_floating_point:
        return (torch.randn(n, generator=g, dtype=torch.float64) * 3 + 1).to(dtype)
    info = torch.iinfo(dtype)
    return torch.randint(max(info.min, -(10**6)), min(info.max, 10**6), (n,), generator=g, dtype=dtype)


DTYPES = [
    torch.float16, torch.bfloat16, torch.float32, torch.float64,
    torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool,
]  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
def test_statistics_match_numpy(dtype: torch.dtype) -> None:
    t = data(dtype)
    ref = reference(t)
    s, hist = summarize(t)
    assert (s.dtype, s.shape, s.device, s.numel) == (dtype_name(dtype), (N,), "cpu", N)
    assert s.nbytes == N * t.element_size()
    assert s.minimum == ref.min() and s.maximum == ref.max()
    assert s.mean == pytest.approx(ref.mean(), rel=1e-6, abs=1e-9)
    assert s.std == pytest.approx(ref.std(), rel=1e-5)
    assert (s.nan, s.posinf, s.neginf) == (0, 0, 0)
    assert hist is not None and hist.counts.sum() == N
    if dtype == torch.bool:
        assert hist.counts.tolist() == [int((~t).sum()), int(t.sum())]
    elif not dtype.is_floating_point and hist.integer and len(hist.counts) < 64:
        assert hist.counts.tolist() == np.bincount((ref - ref.min()).astype(np.int64)).tolist()
    else:
        expected, _ = np.histogram(ref, bins=len(hist.counts), range=(hist.lo, hist.hi))
        assert np.abs(expected - hist.counts).sum() <= N * 5e-4  # values on a bin edge may round (float32) either way
    json.dumps(s.as_dict(), allow_nan=False)


def test_a_large_offset_does_not_cancel_the_variance() -> None:
    t = torch.full((N,), 1e4, dtype=torch.float32) + torch.linspace(-0.01, 0.01, N)
    s, _ = summarize(t)
    assert s.std == pytest.approx(reference(t).std(), rel=1e-3)


def test_nan_and_infinities_are_counted_and_left_out_of_the_statistics() -> None:
    t = data(torch.float32)
    t[[5, CHUNK_CPU + 3, N - 1]] = float("nan")
    t[[10, 11]] = float("inf")
    t[CHUNK_CPU * 2] = float("-inf")
    s, hist = summarize(t)
    assert (s.nan, s.posinf, s.neginf, s.finite) == (3, 2, 1, N - 6)
    finite = reference(t)[np.isfinite(reference(t))]
    assert (s.minimum, s.maximum) == (finite.min(), finite.max())
    assert s.mean == pytest.approx(finite.mean(), rel=1e-6)
    assert s.std == pytest.approx(finite.std(), rel=1e-5)
    assert hist is not None and hist.counts.sum() == N - 6
    d = s.as_dict()
    assert (d["nan"], d["posinf"], d["neginf"]) == (3, 2, 1)
    json.dumps(d, allow_nan=False)
    assert "3 NaN, 2 +inf, 1 -inf" in s.line()


def test_f16_and_bf16_nan() -> None:
    for dtype in (torch.float16, torch.bfloat16):
        t = torch.tensor([1.0, float("nan"), -2.0, float("inf")], dtype=dtype)
        s, _ = summarize(t)
        assert (s.nan, s.posinf, s.minimum, s.maximum, s.mean) == (1, 1, -2.0, 1.0, -0.5)


def test_all_nan_empty_scalar_constant_and_meta() -> None:
    s, hist = summarize(torch.full((4,), float("nan")))
    assert s.nan == 4 and s.minimum is None and s.mean is None and hist is None
    assert s.as_dict()["min"] is None
    s, hist = summarize(torch.empty(0, 3))
    assert s.numel == 0 and s.minimum is None and hist is None
    s, hist = summarize(torch.tensor(2.5))
    assert (s.shape, s.minimum, s.maximum, s.std) == ((), 2.5, 2.5, 0.0)
    assert hist is not None and hist.counts.tolist() == [1]
    s, hist = summarize(torch.empty(3, 4, device="meta"))
    assert s.minimum is None and hist is None and "meta" in s.notes[0]


def test_a_non_contiguous_tensor_and_the_thread_count_left_as_it_was() -> None:
    t = data(torch.float32, 600 * 500).reshape(600, 500).t()
    threads = torch.get_num_threads()
    s, _ = summarize(t)
    assert torch.get_num_threads() == threads  # the chunk loop runs on one thread, then gives the count back
    assert s.shape == (500, 600)
    assert s.mean == pytest.approx(reference(t.contiguous()).mean(), rel=1e-6)


def test_sources_share_memory_and_name_their_dtypes() -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = as_torch(array)
    assert t.data_ptr() == array.ctypes.data  # no copy
    assert dtype_name(t.dtype) == "f32"
    readonly = np.arange(4, dtype=np.int64)
    readonly.flags.writeable = False
    assert as_torch(readonly).tolist() == [0, 1, 2, 3]
    assert as_torch(np.array([1, 2], dtype=">i4")).tolist() == [1, 2]
    assert as_torch(np.array([1, 70000], dtype=np.uint32)).tolist() == [1, 70000]
    assert dtype_name(as_torch(np.array([True])).dtype) == "bool"
    host = Tensor.from_value(torch.tensor([1.5, -2.0], dtype=torch.bfloat16))
    assert dtype_name(as_torch(host).dtype) == "bf16"
    raw = Tensor.from_bytes((2,), host.type, host.raw_numpy().copy())  # bf16 bits in a numpy array
    assert as_torch(raw).tolist() == [1.5, -2.0]
    assert as_torch([[1, 2], [3, 4]]).shape == (2, 2)
    with pytest.raises(TypeError, match="abs"):
        as_torch(np.ones(2, np.complex64))
    with pytest.raises(TypeError, match="to_dense"):
        as_torch(torch.eye(2).to_sparse())
    with pytest.raises(TypeError, match="numbers"):
        as_torch(np.array(["a"]))


@pytest.mark.gpu
def test_on_cuda_the_summary_stays_on_the_device() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    t = data(torch.float32, 3 * (1 << 24) + 5).cuda()
    t[7] = float("nan")
    s, hist = summarize(t)
    ref = reference(t.cpu())
    finite = ref[np.isfinite(ref)]
    assert s.device.startswith("cuda") and s.nan == 1
    assert s.mean == pytest.approx(finite.mean(), rel=1e-6)
    assert s.std == pytest.approx(finite.std(), rel=1e-5)
    assert hist is not None and hist.counts.sum() == finite.size
    for dtype in (torch.float16, torch.bfloat16, torch.int32, torch.bool):
        s, _ = summarize(t.nan_to_num().to(dtype))
        assert s.numel == t.numel()
