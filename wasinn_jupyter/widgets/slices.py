"""The parts of a tensor a widget draws: one 2-D slice (heatmap and value grid) and one image, made small on the
tensor's device before they are copied to the host and sent.

A slice is chosen by two axes (rows, columns) and an index for every other axis. A slice wider or taller than
``max_side`` is reduced by block means (each pixel is the mean of a block, so an outlier still shows as a brighter
block) or, past :data:`POOL_LIMIT` elements, by taking every k-th row and column (the cost then does not grow with
the slice). NaN stays NaN; the front-end colours it apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

MAX_SIDE = 256  # heatmap pixels per side
IMAGE_SIDE = 384
GRID_SIDE = 64  # a slice this small (or a 1-D tensor of GRID_SIDE**2 values) is also shown value by value
POOL_LIMIT = 1 << 24


@dataclass
class Plane:
    """A downsampled slice: float32 values (rows x cols), and how many source rows/cols each pixel stands for."""

    values: np.ndarray
    step: tuple[int, int]
    pooled: bool
    source_shape: tuple[int, int]

    @property
    def note(self) -> str:
        if self.step == (1, 1):
            return "every value"
        how = "mean of" if self.pooled else "one value per"
        return f"{how} {self.step[0]}x{self.step[1]} block" + ("s" if self.pooled else "")


def default_axes(shape: tuple[int, ...], layout: str | None) -> tuple[int, int]:
    """Rows and columns to show: the last two axes, or height and width of an image tensor."""
    rank = len(shape)
    if layout == "hwc":
        return (0, 1) if rank == 3 else (1, 2)
    if rank >= 2:
        return (rank - 2, rank - 1)
    return (-1, 0)  # a vector is one row (axis -1: none); a scalar one cell


def image_layout(shape: tuple[int, ...]) -> str | None:
    """``"chw"`` for [N,3,H,W] and [3,H,W], ``"hwc"`` for [H,W,3] and [N,H,W,3], None otherwise (H, W > 3)."""
    rank = len(shape)
    if rank in (3, 4) and shape[-1] == 3 and min(shape[-3:-1]) > 3:
        return "hwc"
    if rank in (3, 4) and shape[-3] == 3 and min(shape[-2:]) > 3:
        return "chw"
    return None


def slider_axes(shape: tuple[int, ...], axes: tuple[int, int]) -> list[int]:
    """The axes a slider chooses an index along: every axis that is not shown."""
    return [a for a in range(len(shape)) if a not in axes]


def select(tensor: torch.Tensor, axes: tuple[int, int], index: list[int]) -> torch.Tensor:
    """The 2-D slice (a view): ``index`` gives one position per slider axis, in order; clamped into range."""
    rows, cols = axes
    others = slider_axes(tuple(tensor.shape), axes)
    positions = dict(zip(others, index, strict=False))
    view = tensor
    for axis in sorted(others, reverse=True):  # from the last, so earlier axes keep their numbers
        size = tensor.shape[axis]
        view = view.select(axis, min(max(positions.get(axis, 0), 0), size - 1))
    if rows < 0:
        return view.reshape(1, -1)
    return view if rows < cols else view.t()


def downsample(plane: torch.Tensor, max_side: int = MAX_SIDE) -> Plane:
    """``plane`` at most ``max_side`` per side, as float32 on the host."""
    import torch

    h, w = plane.shape
    step = (max(1, math.ceil(h / max_side)), max(1, math.ceil(w / max_side)))
    pooled = plane.numel() <= POOL_LIMIT
    if step == (1, 1):
        small = plane.to(torch.float32)
    elif pooled:
        import torch.nn.functional as F

        small = F.avg_pool2d(plane.to(torch.float32)[None, None], step, ceil_mode=True)[0, 0]
    else:
        small = plane[:: step[0], :: step[1]].to(torch.float32)
    return Plane(np.ascontiguousarray(small.cpu().numpy()), step, pooled, (h, w))


def grid(plane: torch.Tensor) -> tuple[np.ndarray, str] | None:
    """The slice's exact values for a table (float64, int64 or bool bytes), or None when it is too large."""
    import torch

    h, w = plane.shape
    if h > GRID_SIDE or (w > GRID_SIDE and not (h == 1 and w <= GRID_SIDE * GRID_SIDE)):
        return None
    if plane.dtype == torch.bool:
        return plane.cpu().numpy().astype(np.uint8), "bool"
    if plane.is_floating_point():
        return plane.to(torch.float64).cpu().numpy(), "float64"
    return plane.to(torch.int64).cpu().numpy(), "int64"


@dataclass
class Image:
    rgba: np.ndarray  # uint8, rows x cols x 4
    note: str


def image(tensor: torch.Tensor, layout: str, n: int, max_side: int = IMAGE_SIDE) -> Image:
    """Item ``n`` of an image batch (or the image) as RGBA bytes: uint8 as it is, floats in [0, 1] times 255,
    floats in [0, 255] as they are, anything else stretched from its own min..max (the note says which)."""
    import torch
    import torch.nn.functional as F

    picture = tensor[min(max(n, 0), tensor.shape[0] - 1)] if tensor.dim() == 4 else tensor
    chw = picture if layout == "chw" else picture.permute(2, 0, 1)
    h, w = chw.shape[1:]
    step = max(1, math.ceil(max(h, w) / max_side))
    pooled = chw.numel() <= POOL_LIMIT  # past it, every step-th pixel: no full-size float copy of a huge image
    values = chw.to(torch.float32) if pooled else chw[:, ::step, ::step].to(torch.float32)
    if step > 1 and pooled:
        values = F.avg_pool2d(values[None], step, ceil_mode=True)[0]
    values = torch.nan_to_num(values, nan=0.0)
    if tensor.dtype == torch.uint8:
        note = "uint8 values"
    else:
        lo, hi = (float(v) for v in torch.stack(torch.aminmax(values)).tolist())
        if lo >= 0 and hi <= 1:
            values = values * 255
            note = "values in [0, 1] x 255"
        elif lo >= 0 and hi <= 255:
            note = "values in [0, 255]"
        else:
            values = (values - lo) * (255 / (hi - lo) if hi > lo else 0.0)
            note = f"stretched from [{lo:.4g}, {hi:.4g}]"
    rgb = values.clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0)
    alpha = torch.full((*rgb.shape[:2], 1), 255, dtype=torch.uint8, device=rgb.device)
    rgba = torch.cat([rgb, alpha], dim=2).cpu().numpy()
    if step > 1:
        note += f", mean of {step}x{step} blocks" if pooled else f", every {step}th pixel"
    return Image(np.ascontiguousarray(rgba), note)
