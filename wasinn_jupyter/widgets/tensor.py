"""The tensor widget: a summary, a histogram, a heatmap of one 2-D slice with sliders, an image view, a value grid.

    from wasinn_jupyter.widgets import TensorWidget, show
    show(torch.randn(8, 3, 224, 224))        # or TensorWidget(t, name="x"); numpy arrays and host Tensors too

The view is an anywidget ES module shipped in the package (``static/tensor.js``: no bundler, no import from
anywhere, so it works offline). Everything drawn is computed in the kernel on the tensor's own device and made
small first (see :mod:`.summary` and :mod:`.slices`); arrays travel as ``bytes`` traits, which ipywidgets sends
as binary comm buffers. Moving a slider sets ``index``; the kernel recomputes that slice and sends only it.
The widget keeps a reference to the tensor for that; :meth:`TensorWidget.release` drops it (the view stays).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from . import slices
from .slices import IMAGE_SIDE, MAX_SIDE
from .source import as_torch, computable, dtype_name
from .summary import BINS, summarize

STATIC = Path(__file__).resolve().parent / "static"


class TensorWidget(anywidget.AnyWidget):  # type: ignore[misc]
    """One tensor, shown. ``index`` (one position per axis that is not drawn) picks the slice; ``view`` the tab."""

    _esm = STATIC / "tensor.js"
    _css = STATIC / "tensor.css"

    name = traitlets.Unicode("").tag(sync=True)
    summary = traitlets.Dict().tag(sync=True)
    view = traitlets.Unicode("heatmap").tag(sync=True)  # heatmap | image | histogram | values
    views = traitlets.List(traitlets.Unicode()).tag(sync=True)  # the tabs this tensor has

    histogram = traitlets.Bytes(b"").tag(sync=True)  # the counts as float64 (exact to 2**53)
    histogram_range = traitlets.List(traitlets.Float(), default_value=[0.0, 0.0]).tag(sync=True)
    histogram_integer = traitlets.Bool(False).tag(sync=True)

    axes = traitlets.List(traitlets.Int(), default_value=[0, 1]).tag(sync=True)
    sliders = traitlets.List(traitlets.Dict()).tag(sync=True)  # [{axis, size}] for each axis not drawn
    index = traitlets.List(traitlets.Int()).tag(sync=True)

    heatmap = traitlets.Bytes(b"").tag(sync=True)  # float32, heatmap_shape
    heatmap_shape = traitlets.List(traitlets.Int(), default_value=[0, 0]).tag(sync=True)
    heatmap_source = traitlets.List(traitlets.Int(), default_value=[0, 0]).tag(sync=True)  # the slice's own shape
    heatmap_step = traitlets.List(traitlets.Int(), default_value=[1, 1]).tag(sync=True)
    heatmap_range = traitlets.List(default_value=[None, None]).tag(sync=True)  # finite min, max of what is drawn
    heatmap_note = traitlets.Unicode("").tag(sync=True)
    heatmap_pooled = traitlets.Bool(True).tag(sync=True)  # pixels are block means (else every k-th value)

    grid = traitlets.Bytes(b"").tag(sync=True)  # the slice value by value, when small
    grid_shape = traitlets.List(traitlets.Int(), default_value=[0, 0]).tag(sync=True)
    grid_dtype = traitlets.Unicode("").tag(sync=True)  # float64 | int64 | bool

    image = traitlets.Bytes(b"").tag(sync=True)  # RGBA uint8
    image_shape = traitlets.List(traitlets.Int(), default_value=[0, 0]).tag(sync=True)
    image_note = traitlets.Unicode("").tag(sync=True)
    image_layout = traitlets.Unicode("").tag(sync=True)  # chw | hwc | "" (none)

    live = traitlets.Bool(True).tag(sync=True)  # whether the kernel still holds the tensor (sliders work)
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        tensor: Any,
        name: str = "",
        *,
        max_side: int = MAX_SIDE,
        image_side: int = IMAGE_SIDE,
        bins: int = BINS,
        **kwargs: Any,
    ) -> None:
        given = as_torch(tensor)
        data, widened = computable(given)
        self._tensor: Any = data
        self._max_side = max_side
        self._image_side = image_side
        self._ready = False
        shape = tuple(data.shape)
        summary, hist = summarize(data, bins)
        if widened:
            summary.dtype = dtype_name(given.dtype)
            summary.nbytes = given.numel() * given.element_size()
            summary.notes.append(widened)
        imageable = data.is_floating_point() or str(data.dtype) == "torch.uint8"
        layout = slices.image_layout(shape) if imageable else None
        axes = slices.default_axes(shape, layout)
        others = slices.slider_axes(shape, axes)
        state: dict[str, Any] = {
            "name": name,
            "summary": summary.as_dict(),
            "axes": list(axes),
            "sliders": [{"axis": a, "size": shape[a]} for a in others],
            "index": [0] * len(others),
            "image_layout": layout or "",
        }
        views: list[str] = []
        if hist is not None:
            state["histogram"] = hist.counts.astype("<f8").tobytes()
            state["histogram_range"] = [hist.lo, hist.hi]
            state["histogram_integer"] = hist.integer
        if summary.numel > 0 and data.device.type != "meta":
            state.update(self._drawn(axes, state["index"], layout or ""))
            views = ["values"] if state.get("grid_dtype") else []
            views += ["heatmap", "image"] if layout else ["heatmap"]
            views += ["histogram"] if hist is not None else []
        state["views"] = views
        if views:
            state["view"] = "image" if layout else views[0]
        self._summary_line = summary.line()
        super().__init__(**state, **kwargs)
        self._ready = True

    # -- kernel side of the sliders ----------------------------------------------------------------------------

    @traitlets.validate("index")
    def _clamp_index(self, proposal: dict[str, Any]) -> list[int]:
        sizes = [s["size"] for s in self.sliders]
        values = list(proposal["value"])[: len(sizes)]
        values += [0] * (len(sizes) - len(values))
        return [min(max(int(v), 0), size - 1) for v, size in zip(values, sizes, strict=True)]

    @traitlets.observe("index")
    def _on_index(self, change: dict[str, Any]) -> None:
        if not self._ready or change["old"] == change["new"]:
            return
        if self._tensor is None:
            self.error = "the kernel no longer holds this tensor (released): run the cell again to explore it"
            return
        batch_moved = self._tensor.dim() == 4 and change["old"][:1] != change["new"][:1]
        layout = self.image_layout if batch_moved else ""  # the image changes only with the batch item
        try:
            state = self._drawn((self.axes[0], self.axes[1]), list(self.index), layout)
        except Exception as exc:  # noqa: BLE001 - a slider's failure (out of device memory...) shows in the view
            self.error = f"this slice could not be drawn: {type(exc).__name__}: {exc}"
            return
        with self.hold_sync():  # one message carries the new slice
            for key, value in state.items():
                setattr(self, key, value)

    def _drawn(self, axes: tuple[int, int], index: list[int], layout: str) -> dict[str, Any]:
        """What depends on ``index``: the heatmap, the value grid and the image."""
        tensor = self._tensor
        plane = slices.select(tensor, axes, index)
        small = slices.downsample(plane, self._max_side)
        finite = small.values[np.isfinite(small.values)]
        state: dict[str, Any] = {
            "heatmap": small.values.astype("<f4").tobytes(),
            "heatmap_shape": list(small.values.shape),
            "heatmap_source": list(small.source_shape),
            "heatmap_step": list(small.step),
            "heatmap_range": [float(finite.min()), float(finite.max())] if finite.size else [None, None],
            "heatmap_note": small.note,
            "heatmap_pooled": small.pooled,
            "error": "",
        }
        values = slices.grid(plane)
        if values is not None:
            array, kind = values
            state["grid"] = array.astype(array.dtype.newbyteorder("<")).tobytes()
            state["grid_shape"] = list(array.shape)
            state["grid_dtype"] = kind
        if layout:
            n = index[0] if tensor.dim() == 4 and index else 0
            picture = slices.image(tensor, layout, n, self._image_side)
            state["image"] = picture.rgba.tobytes()
            state["image_shape"] = list(picture.rgba.shape[:2])
            state["image_note"] = picture.note
        return state

    def release(self) -> None:
        """Drop the kernel's reference to the tensor (its memory may then be freed); what is shown stays, the
        sliders stop."""
        self._tensor = None
        self.live = False

    # -- text for frontends without widgets --------------------------------------------------------------------

    def __repr__(self) -> str:
        label = f"{self.name}: " if self.name else ""
        return f"{label}{self._summary_line}"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is not None:
            bundle[0]["text/plain"] = repr(self)
        return bundle


def show(tensor: Any, name: str = "") -> None:
    """Display ``tensor`` as a :class:`TensorWidget` from anywhere in a cell. It returns nothing, so that a cell
    ending in ``show(t)`` shows one widget, not two (``TensorWidget(t)`` is the object itself)."""
    from IPython.display import display

    display(TensorWidget(tensor, name))


__all__ = ["TensorWidget", "show"]
