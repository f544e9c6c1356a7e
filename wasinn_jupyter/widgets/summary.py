"""A tensor's statistics and histogram, computed where the tensor lives and sent as a few numbers.

One reduction (``aminmax``) tells whether anything is NaN or infinite; then one pass over fixed-size chunks (cache
sized on the CPU, large on CUDA) gives per-chunk means and squared deviations (combined exactly, as Chan et al.
do, so a large offset does not cancel the variance away) and the histogram's counts. Nothing the size of the
tensor is allocated and, on CUDA, the device is synchronised a handful of times, not once per chunk. Statistics
cover the finite values; NaN and infinities are counted apart. Integers and bools are exact where float64 is.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .source import dtype_name

if TYPE_CHECKING:
    import torch

BINS = 64
CHUNK_CPU = 1 << 18  # 1 MiB of float32: the chunk and its buffer stay in cache
CHUNK_DEVICE = 1 << 24


@dataclass
class Histogram:
    """Counts of ``bins`` equal bins over [lo, hi] (for integers with a small range, one bin per integer)."""

    counts: np.ndarray  # int64
    lo: float
    hi: float
    integer: bool = False


@dataclass
class Summary:
    """What the widget's header shows. ``minimum``... cover the finite values; None where there are none."""

    dtype: str
    shape: tuple[int, ...]
    device: str
    numel: int
    nbytes: int
    minimum: float | int | None = None  # int for integer dtypes: exact beyond 2**53
    maximum: float | int | None = None
    mean: float | None = None
    std: float | None = None
    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def finite(self) -> int:
        return self.numel - self.nan - self.posinf - self.neginf

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe (no NaN or infinity, which JSON cannot carry): numbers, None, and display texts."""
        return {
            "dtype": self.dtype,
            "shape": list(self.shape),
            "device": self.device,
            "numel": self.numel,
            "nbytes": self.nbytes,
            "min": _finite(self.minimum),
            "max": _finite(self.maximum),
            "mean": _finite(self.mean),
            "std": _finite(self.std),
            "nan": self.nan,
            "posinf": self.posinf,
            "neginf": self.neginf,
            "text": {k: _text(v, self.dtype) for k, v in self._numbers().items()},
            "notes": list(self.notes),
        }

    def _numbers(self) -> dict[str, float | int | None]:
        return {"min": self.minimum, "max": self.maximum, "mean": self.mean, "std": self.std}

    def line(self) -> str:
        """One line of text (the widget's text/plain form)."""
        shape = "[" + ", ".join(map(str, self.shape)) + "]"
        parts = [f"{self.dtype}{shape}", self.device]
        if self.numel:
            numbers = self._numbers()
            parts.append(" ".join(f"{k} {_text(v, self.dtype)}" for k, v in numbers.items() if v is not None))
        bad = [f"{n} {what}" for n, what in ((self.nan, "NaN"), (self.posinf, "+inf"), (self.neginf, "-inf")) if n]
        if bad:
            parts.append(", ".join(bad))
        return " · ".join(p for p in parts if p)


def _finite(value: float | int | None) -> float | int | None:
    return value if value is not None and math.isfinite(value) else None


def _text(value: float | int | None, dtype: str) -> str:
    if value is None:
        return "—"
    if dtype == "bool" and value in (0, 1):
        return str(bool(value))
    if isinstance(value, int):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e16:
        return str(int(value))
    return f"{value:.6g}"


def summarize(tensor: torch.Tensor, bins: int = BINS) -> tuple[Summary, Histogram | None]:
    """The summary and histogram of ``tensor``, computed on its device."""
    import torch

    summary = Summary(
        dtype=dtype_name(tensor.dtype),
        shape=tuple(tensor.shape),
        device=str(tensor.device),
        numel=tensor.numel(),
        nbytes=tensor.numel() * tensor.element_size(),
    )
    if summary.numel == 0:
        return summary, None
    if tensor.device.type == "meta":
        summary.notes.append("a meta tensor: it has a shape but no data")
        return summary, None
    flat = tensor.reshape(-1)  # a view when contiguous; a non-contiguous tensor is copied once here
    if tensor.dtype == torch.bool:
        return _bools(flat, summary)
    if tensor.is_floating_point():
        return _floats(flat, summary, bins)
    return _integers(flat, summary, bins)


def _bools(flat: torch.Tensor, summary: Summary) -> tuple[Summary, Histogram]:
    n = summary.numel
    trues = int(flat.count_nonzero())
    p = trues / n
    summary.minimum = float(trues == n)
    summary.maximum = float(trues > 0)
    summary.mean = p
    summary.std = math.sqrt(p * (1 - p))
    return summary, Histogram(np.array([n - trues, trues], np.int64), -0.5, 1.5, integer=True)


def _floats(flat: torch.Tensor, summary: Summary, bins: int) -> tuple[Summary, Histogram | None]:
    import torch

    lo, hi = (float(v) for v in torch.stack(torch.aminmax(flat)).tolist())
    if math.isfinite(lo) and math.isfinite(hi):
        summary.minimum, summary.maximum = lo, hi
        return _moments(flat, summary, bins, lo, hi, masked=False)
    # something is NaN or infinite: count it, and find the finite range (a pass the common case does not need)
    chunk = _chunk(flat)
    counts = torch.zeros(3, dtype=torch.int64, device=flat.device)
    lows, highs = [], []
    with one_thread(flat.device.type == "cpu"):
        for start in range(0, flat.numel(), chunk):
            part = flat[start : start + chunk]
            counts[0] += torch.isnan(part).sum()
            counts[1] += torch.isposinf(part).sum()
            counts[2] += torch.isneginf(part).sum()
            finite = part[torch.isfinite(part)]
            if finite.numel():
                low, high = torch.aminmax(finite)
                lows.append(low)
                highs.append(high)
    summary.nan, summary.posinf, summary.neginf = (int(c) for c in counts.tolist())
    if not lows:
        return summary, None
    summary.minimum = float(torch.stack(lows).min())
    summary.maximum = float(torch.stack(highs).max())
    return _moments(flat, summary, bins, summary.minimum, summary.maximum, masked=True)


def _integers(flat: torch.Tensor, summary: Summary, bins: int) -> tuple[Summary, Histogram]:
    import torch

    lo, hi = (int(v) for v in torch.stack(torch.aminmax(flat)).tolist())
    summary.minimum, summary.maximum = lo, hi
    if hi - lo + 1 <= bins:  # one bin per integer value
        return _moments(flat, summary, hi - lo + 1, lo - 0.5, hi + 0.5, masked=False, integer=True)
    return _moments(flat, summary, bins, float(lo), float(hi), masked=False, integer=True)


def cpus_busy(threads: int) -> bool:
    """Whether the CPUs lack room for ``threads`` more (the 1-minute load average says so)."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return True
    return load + threads > (os.cpu_count() or 1)


@contextmanager
def one_thread(on: bool) -> Iterator[None]:
    """Run the chunk loop on one CPU thread when the machine is busy. Its ops are small and many: with several
    threads each one ends in a barrier, and a descheduled thread stalls every barrier for a time slice (measured
    on 2 loaded cores: 0.5 s with one thread, 5 to 17 s with two, for 1e8 values). With idle cores, all threads."""
    import torch

    before = torch.get_num_threads()
    if not on or before == 1 or not cpus_busy(before):
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _chunk(flat: torch.Tensor) -> int:
    return CHUNK_CPU if flat.device.type == "cpu" else CHUNK_DEVICE


def _moments(
    flat: torch.Tensor, summary: Summary, bins: int, lo: float, hi: float, *, masked: bool, integer: bool = False
) -> tuple[Summary, Histogram]:
    """Mean, std and histogram in one chunked pass (over the finite values when ``masked``)."""
    import torch

    device = flat.device
    wide = torch.float64 if flat.dtype == torch.float64 or not flat.is_floating_point() else torch.float32
    chunk = _chunk(flat)
    n_chunks = -(-flat.numel() // chunk)
    buf = torch.empty(min(chunk, flat.numel()), dtype=wide, device=device)
    index = torch.empty(buf.numel(), dtype=torch.int32, device=device)
    sizes = torch.zeros(n_chunks, dtype=torch.float64, device=device)
    means = torch.zeros(n_chunks, dtype=torch.float64, device=device)
    squares = torch.zeros(n_chunks, dtype=torch.float64, device=device)
    counts = torch.zeros(bins, dtype=torch.int64, device=device)
    if hi > lo:
        scale = bins / (hi - lo)
    else:  # every finite value is the same: one bin around it
        bins, scale = 1, 0.0
        counts = counts[:1]
        lo, hi = lo - 0.5, hi + 0.5
    with one_thread(device.type == "cpu"):
        for i, start in enumerate(range(0, flat.numel(), chunk)):
            part = flat[start : start + chunk]
            if masked:
                part = part[torch.isfinite(part)]
                if not part.numel():
                    continue
            size = part.numel()
            values = buf[:size]
            values.copy_(part)
            # the bin: (x - lo) * scale as numpy.histogram has it, clamped so that hi falls in the last bin
            values.sub_(lo).mul_(scale).clamp_(0, bins - 1)
            idx = index[:size]
            idx.copy_(values)
            counts += torch.bincount(idx, minlength=bins)
            values.copy_(part)  # again (the chunk is still in cache): centred on its own mean for the moments
            mean = values.mean()
            values.sub_(mean)
            residue = values.sum().double()  # what rounding left in the chunk's mean (corrected two-pass form)
            sizes[i] = size
            means[i] = mean.double() + residue / size
            squares[i] = torch.dot(values, values).double() - residue * residue / size
    n_np, m_np, s_np = (a.cpu().numpy() for a in (sizes, means, squares))
    keep = n_np > 0
    n_np, m_np, s_np = n_np[keep], m_np[keep], s_np[keep]
    total = float(n_np.sum())
    mean_all = float((n_np * m_np).sum() / total)
    m2 = float(s_np.sum() + (n_np * (m_np - mean_all) ** 2).sum())  # Chan et al.'s pairwise combination
    summary.mean = mean_all
    summary.std = math.sqrt(max(m2 / total, 0.0))
    return summary, Histogram(counts.cpu().numpy().astype(np.int64), lo, hi, integer=integer)
