"""The card ``%%wasinn compute`` shows: one line saying what ran, and a tab per input and output tensor.

A tab's :class:`~.tensor.TensorWidget` is built when the tab is first opened (the first output's at once), so a
compute with many large tensors costs only the summaries someone looks at. The card keeps the tensors for its
sliders until :meth:`ComputeView.release` (the magics release all but the last few cards).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import ipywidgets  # type: ignore[import-untyped]

from .source import as_torch, dtype_name
from .tensor import TensorWidget


def _shape(value: Any) -> str:
    try:
        data = as_torch(value)
    except TypeError:  # no numeric view (complex...): what the object says of itself
        return f"{getattr(value, 'dtype', type(value).__name__)}{list(getattr(value, 'shape', []))}"
    return f"{dtype_name(data.dtype)}[{', '.join(map(str, data.shape))}] {data.device}"


class ComputeView(ipywidgets.VBox):  # type: ignore[misc]
    """``inputs`` and ``outputs`` as (name, tensor) pairs; ``title`` says what ran (graph, guest, time)."""

    def __init__(
        self, title: str, inputs: Sequence[tuple[str, Any]], outputs: Sequence[tuple[str, Any]], **kwargs: Any
    ) -> None:
        self._tensors: list[tuple[str, Any] | None] = [(f"in: {n}", t) for n, t in inputs]
        self._tensors += [(f"out: {n}", t) for n, t in outputs]
        self.labels = [entry[0] for entry in self._tensors if entry is not None]
        self._lines = [title] + [f"  {label}: {_shape(t)}" for label, t in (x for x in self._tensors if x)]
        self._widgets: list[TensorWidget | None] = [None] * len(self._tensors)
        self.tabs = ipywidgets.Tab(children=[ipywidgets.VBox() for _ in self._tensors])
        for i, entry in enumerate(self._tensors):
            assert entry is not None
            self.tabs.set_title(i, entry[0])
        header = ipywidgets.HTML(f"<b>{_escape(title)}</b>")
        super().__init__(children=[header, self.tabs], **kwargs)
        self.add_class("wasinn-compute")
        self.tabs.observe(self._on_tab, names="selected_index")
        if self._tensors:
            first = len(inputs) if outputs else 0
            self.tabs.selected_index = first
            self._open(first)

    def _on_tab(self, change: dict[str, Any]) -> None:
        if change["new"] is not None:
            self._open(change["new"])

    def _open(self, i: int) -> None:
        entry = self._tensors[i]
        if self._widgets[i] is not None or entry is None:
            return
        label, tensor = entry
        try:
            widget: Any = TensorWidget(tensor, name=label.split(": ", 1)[1])
        except TypeError as exc:  # a dtype with no numeric view: say so in the tab
            widget = ipywidgets.HTML(f"<i>{_escape(str(exc))}</i>")
        self._widgets[i] = widget if isinstance(widget, TensorWidget) else None
        self.tabs.children[i].children = (widget,)

    def tensor_widget(self, label: str) -> TensorWidget:
        """The widget of the tab titled ``label`` (``"out: scores"``), built now if it was not yet."""
        if label not in self.labels:
            raise KeyError(f"{label!r} (tabs: {', '.join(self.labels)})")
        i = self.labels.index(label)
        self._open(i)
        widget = self._widgets[i]
        if widget is None:
            raise TypeError(f"{label} has no tensor view" + (" (released)" if self._tensors[i] is None else ""))
        return widget

    def release(self) -> None:
        """Drop every tensor this card holds: open tabs keep what they show; unopened tabs say they were released."""
        for i, entry in enumerate(self._tensors):
            widget = self._widgets[i]
            if widget is not None:
                widget.release()
            elif entry is not None:
                self.tabs.children[i].children = (ipywidgets.HTML("<i>released: run the cell again to see it</i>"),)
            self._tensors[i] = None

    def __repr__(self) -> str:
        return "\n".join(self._lines)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/plain"] = repr(self)
        return bundle


def _escape(text: str) -> str:
    return html.escape(text)


__all__ = ["ComputeView"]
