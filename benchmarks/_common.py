"""Shared pieces of the benchmark scripts: the guests, guest-memory access, interleaved timing, the report.

Timing discipline (the machine is shared and has 2 cores): both sides of a comparison run in the same process,
one after the other within each repetition, in alternating order (A B, B A, ...), after a warm-up. Each sample is
one side's time per operation within one repetition; the report gives each side's median over the repetitions,
the ratio of those medians, and the median of the per-repetition ratios (pairs measured a few ms apart, so slow
drifts in background load cancel). PASS/MISS is judged on the paired ratio; a MISS never fails the script.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import statistics
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import wasmtime

GUESTS = Path(__file__).resolve().parent / "guests"
NN_LOOP = GUESTS / "nn_loop.wat"
FLOOR_LOOP = GUESTS / "floor_loop.wat"

TENSOR = struct.Struct("<IIB3xII")  # the witx tensor struct: dims_ptr, dims_len, type, 3 pad, data_ptr, data_len
F32 = 1
U8 = 3


# -- guest memory ------------------------------------------------------------------------------------------------


def memory_of(guest: Any) -> wasmtime.Memory:
    memory = guest.instance.exports(guest.store)["memory"]
    assert isinstance(memory, wasmtime.Memory)
    return memory


def view(memory: wasmtime.Memory, store: Any) -> np.ndarray:
    """A fresh zero-copy uint8 view of the whole linear memory (take a new one after the guest runs or grows)."""
    addr = ctypes.cast(memory.data_ptr(store), ctypes.c_void_p).value or 0
    size = memory.data_len(store)
    return np.frombuffer((ctypes.c_ubyte * size).from_address(addr), dtype=np.uint8)


def write_tensor(mem: np.ndarray, at: int, dims: Sequence[int], type_code: int, data_ptr: int, data_len: int) -> None:
    """Write a witx tensor struct at ``at`` with its dims right after it (at + 20)."""
    dims_ptr = at + TENSOR.size
    TENSOR.pack_into(mem, at, dims_ptr, len(dims), type_code, data_ptr, data_len)
    struct.pack_into(f"<{len(dims)}I", mem, dims_ptr, *dims)


def setup_graph(guest: Any, name: str, at: int = 64) -> None:
    """Write ``name`` into the guest at ``at`` and run its ``setup`` (load_by_name + init_execution_context)."""
    raw = name.encode()
    view(memory_of(guest), guest.store)[at : at + len(raw)] = np.frombuffer(raw, np.uint8)
    errno = guest.call("setup", at, len(raw), watch=False)
    if errno:
        raise SystemExit(f"guest setup for graph {name!r} failed with errno {errno}: {guest.client.last_error}")


def check_errno(errno: int, guest: Any, what: str) -> None:
    if errno:
        raise SystemExit(f"{what}: guest returned errno {errno}: {guest.client.last_error}")


# -- timing ------------------------------------------------------------------------------------------------------


def interleaved(sides: Sequence[Callable[[], float]], reps: int, warmup: int) -> list[list[float]]:
    """Run each side ``warmup`` times, then ``reps`` times in alternating order; each call returns s per op."""
    for _ in range(warmup):
        for side in sides:
            side()
    gc.collect()
    samples: list[list[float]] = [[] for _ in sides]
    order = list(range(len(sides)))
    for rep in range(reps):
        for i in order if rep % 2 == 0 else order[::-1]:
            samples[i].append(sides[i]())
    return samples


def timed(fn: Callable[[], Any], ops: int = 1) -> float:
    """Seconds per op of one call of ``fn`` that performs ``ops`` operations."""
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1e9 / ops


# -- the report --------------------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    ours_label: str
    base_label: str
    unit: str  # "us" or "ms": how the medians are printed
    ours_s: float  # median seconds per op, our side
    base_s: float  # median seconds per op, the baseline
    ratio: float  # the judged ratio (median of per-repetition ratios)
    ratio_of_medians: float
    ratio_meaning: str
    target: float
    higher_is_better: bool
    passed: bool
    reps: int
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fmt_time(seconds: float, unit: str) -> str:
    return f"{seconds * 1e6:9.1f} µs" if unit == "us" else f"{seconds * 1e3:9.2f} ms"


def spread(samples: list[float], unit: str) -> str:
    q = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
    p25, p75, low = (fmt_time(v, unit).strip() for v in (q[0], q[2], min(samples)))
    return f"(p25 {p25}, p75 {p75}, min {low})"


def judge(
    name: str,
    ours_label: str,
    ours: list[float],
    base_label: str,
    base: list[float],
    *,
    unit: str,
    target: float,
    higher_is_better: bool,
    ratio_meaning: str,
    notes: Sequence[str] = (),
) -> Result:
    """Medians and ratios of two interleaved sample lists. The ratio is ours/base, or base/ours for throughput."""
    if higher_is_better:  # a throughput ratio: baseline time over our time
        paired = [b / o for o, b in zip(ours, base, strict=True)]
        of_medians = statistics.median(base) / statistics.median(ours)
    else:
        paired = [o / b for o, b in zip(ours, base, strict=True)]
        of_medians = statistics.median(ours) / statistics.median(base)
    ratio = statistics.median(paired)
    passed = ratio >= target if higher_is_better else ratio <= target
    result = Result(
        name=name,
        ours_label=ours_label,
        base_label=base_label,
        unit=unit,
        ours_s=statistics.median(ours),
        base_s=statistics.median(base),
        ratio=ratio,
        ratio_of_medians=of_medians,
        ratio_meaning=ratio_meaning,
        target=target,
        higher_is_better=higher_is_better,
        passed=passed,
        reps=len(ours),
        notes=list(notes),
    )
    print(f"  ours      {fmt_time(result.ours_s, unit)}  {ours_label}  {spread(ours, unit)}")
    print(f"  baseline  {fmt_time(result.base_s, unit)}  {base_label}  {spread(base, unit)}")
    sign = ">=" if higher_is_better else "<="
    print(
        f"  ratio     {ratio:.3f}x  {ratio_meaning}  "
        f"(median of {len(ours)} paired ratios; ratio of medians {of_medians:.3f}x)"
    )
    print(f"  target    {sign} {target}x  ->  {'PASS' if passed else 'MISS'}")
    for note in notes:
        print(f"  note      {note}")
    return result


def parser(description: str, reps: int, device: bool = False) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--reps", type=int, default=reps, help=f"timed repetitions per side (default {reps})")
    p.add_argument("--json", type=Path, help="also write the result(s) as JSON to this file (run_all.py uses it)")
    if device:
        p.add_argument(
            "--device", choices=["cpu", "cuda"], default="cpu", help="where the graph runs (cuda: target gpu)"
        )
    return p


def dump(results: list[Result], path: Path | None) -> None:
    if path is not None:
        path.write_text(json.dumps([r.as_dict() for r in results], indent=2))
