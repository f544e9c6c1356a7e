"""Widgets for the notebook: tensors (:class:`TensorWidget`, :func:`show`), a graph's parameters and properties
(:class:`ParamsWidget`), and the card ``%%wasinn compute`` shows (:class:`ComputeView`).

They sit on the host's public API; their views are anywidget ES modules shipped in ``static/`` (no bundler, no
network). Needs ipywidgets 8 and anywidget, which the package depends on.
"""

from __future__ import annotations

from .compute import ComputeView
from .params import ParamsWidget
from .tensor import TensorWidget, show

__all__ = ["ComputeView", "ParamsWidget", "TensorWidget", "show"]
