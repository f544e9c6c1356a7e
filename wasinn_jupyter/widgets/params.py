"""The parameters widget of a registered graph: its weights and buffers as a tree, its properties as controls.

    ParamsWidget(host, "cnn")          # or %wasinn params cnn

The tree is an anywidget (``static/params_tree.js``) fed one list of rows (name, kind, shape, dtype, device,
count), so a ResNet's few hundred tensors are one message and the tree folds by module. Each property of the
graph (:class:`~wasinn_jupyter.host.PropertySpec`) gets the control its kind calls for; changing one calls
:meth:`Host.set_property`, so the next compute of every guest sharing the graph uses it. A value the graph
refuses shows the graph's message next to the control, and the control goes back to the value in force.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import ipywidgets  # type: ignore[import-untyped]
import traitlets

from ..host.errors import WasinnError

if TYPE_CHECKING:
    from ..host import Host, ParameterInfo, PropertySpec

STATIC = Path(__file__).resolve().parent / "static"
TRUE = ("true", "1", "yes", "on")


class ParamsTree(anywidget.AnyWidget):  # type: ignore[misc]
    """Named tensors as a collapsible tree by module path; ``rows`` are ParameterInfo dicts."""

    _esm = STATIC / "params_tree.js"
    _css = STATIC / "params_tree.css"

    rows = traitlets.List(traitlets.Dict()).tag(sync=True)


def _totals(rows: list[ParameterInfo]) -> str:
    if not rows:
        return "no named tensors known (the backend lists none for this graph)"
    params = [r for r in rows if r.kind == "parameter"]
    buffers = [r for r in rows if r.kind != "parameter"]
    text = f"{sum(r.numel for r in params):,} parameter values in {len(params)} tensors"
    if buffers:
        text += f", {sum(r.numel for r in buffers):,} buffer values in {len(buffers)}"
    dtypes = sorted({r.dtype for r in rows})
    devices = sorted({r.device for r in rows})
    if rows:
        text += f" · {', '.join(dtypes)} · {', '.join(devices)}"
    return text


def _rows(tensors: list[ParameterInfo]) -> list[dict[str, Any]]:
    return [{**asdict(t), "shape": list(t.shape)} for t in tensors]


class PropertyControl(ipywidgets.HBox):  # type: ignore[misc]
    """One property: a label, the control its kind calls for, and the message the last change left."""

    def __init__(self, spec: PropertySpec, apply: Callable[[str, str], None]) -> None:
        self.spec = spec
        self._apply = apply
        self._restoring = False
        self.control = _control_for(spec)
        label = ipywidgets.HTML(f"<code>{html.escape(spec.name)}</code>", tooltip=spec.doc or None)
        label.layout.width = "9em"
        self.message = ipywidgets.HTML("")
        self.message.layout.margin = "0 0 0 8px"
        doc = ipywidgets.HTML(f"<span style='opacity:.7'>{html.escape(spec.doc)}</span>") if spec.doc else None
        children = [label, self.control, self.message] + ([doc] if doc else [])
        super().__init__(children=children)
        self.control.observe(self._changed, names="value")

    def _changed(self, change: dict[str, Any]) -> None:
        if self._restoring:
            return
        try:
            self._apply(self.spec.name, _wire(self.spec, change["new"]))
        except Exception as exc:  # noqa: BLE001 - shown next to the control: a callback's exception goes nowhere
            text = str(exc) if isinstance(exc, WasinnError) else f"{type(exc).__name__}: {exc}"
            self.message.value = f"<span style='color:#c62828'>{html.escape(text, quote=False)}</span>"
            self.restore(change["old"])
            return
        self.message.value = "<span style='color:#2e7d32'>✓ applies from the next compute</span>"

    def restore(self, value: Any) -> None:
        """Show ``value`` without applying it (the graph refused the new one)."""
        self._restoring = True
        try:
            self.control.value = value
        finally:
            self._restoring = False

    @property
    def wire_value(self) -> str:
        return _wire(self.spec, self.control.value)


def _wire(spec: PropertySpec, value: Any) -> str:
    """A control's value as the string the wire carries."""
    if spec.kind == "bool":
        return "true" if value else "false"
    return str(value)


def _control_for(spec: PropertySpec) -> ipywidgets.ValueWidget:
    value = spec.value if spec.value is not None else ""
    if spec.kind == "choice" and spec.choices:
        options = list(spec.choices) + ([value] if value and value not in spec.choices else [])
        return ipywidgets.Dropdown(options=options, value=value or options[0])
    if spec.kind == "int":
        return ipywidgets.IntText(value=int(value) if value.strip().lstrip("-").isdigit() else 0)
    if spec.kind == "float":
        try:
            number = float(value)
        except ValueError:
            number = 0.0
        return ipywidgets.FloatText(value=number)
    if spec.kind == "bool":
        return ipywidgets.Checkbox(value=value.strip().lower() in TRUE, indent=False)
    return ipywidgets.Text(value=value, continuous_update=False)


class ParamsWidget(ipywidgets.VBox):  # type: ignore[misc]
    """Graph ``name`` of ``host``: named tensors, totals, and its properties as controls."""

    def __init__(self, host: Host, name: str, **kwargs: Any) -> None:
        self.host = host
        self.graph_name = name
        self.header = ipywidgets.HTML()
        try:  # the tree opens with its rows (one message); refresh() below reports a graph it cannot read
            rows = _rows(host.graph(name).named_tensors())
        except WasinnError:
            rows = []
        self.tree = ParamsTree(rows=rows)
        self.controls: dict[str, PropertyControl] = {}
        self.properties_box = ipywidgets.VBox()
        self.status = ipywidgets.HTML()
        refresh = ipywidgets.Button(description="refresh", icon="refresh", tooltip="read the graph again")
        refresh.layout.width = "auto"
        refresh.on_click(lambda _: self.refresh())
        top = ipywidgets.HBox([self.header, refresh])
        super().__init__(children=[top, self.tree, self.properties_box, self.status], **kwargs)
        self.add_class("wasinn-params-widget")
        self.refresh()

    def refresh(self) -> None:
        """Read the graph again: its tensors (a device change moves them), totals and property values."""
        try:
            graph = self.host.graph(self.graph_name)
            tensors = graph.named_tensors()
            specs = self.host.properties(self.graph_name)
        except WasinnError as exc:
            self.status.value = f"<span style='color:#c62828'>{html.escape(str(exc), quote=False)}</span>"
            for control in self.controls.values():
                control.control.disabled = True
            return
        self.status.value = ""
        self._show_tensors(tensors)
        if list(specs) != list(self.controls):
            self.controls = {key: PropertyControl(spec, self._apply) for key, spec in specs.items()}
            title = [ipywidgets.HTML("<b>properties</b>")] if specs else []
            self.properties_box.children = [*title, *self.controls.values()]
        else:
            for key, spec in specs.items():
                control = self.controls[key]
                control.spec = spec
                fresh = _control_for(spec).value
                if control.control.value != fresh:
                    control.restore(fresh)
        self._specs = specs

    def _show_tensors(self, tensors: list[ParameterInfo]) -> None:
        totals = _totals(tensors)
        self._totals = totals
        self.header.value = f"<b>graph <code>{html.escape(self.graph_name)}</code></b> · {html.escape(totals)}"
        self.tree.rows = _rows(tensors)
        self.tree.layout.display = "" if tensors else "none"

    def _apply(self, key: str, value: str) -> None:
        self.host.set_property(self.graph_name, key, value)
        self._specs = self.host.properties(self.graph_name)
        if key in self._specs:
            self.controls[key].spec = self._specs[key]
        self._show_tensors(self.host.graph(self.graph_name).named_tensors())  # a device or precision change

    def set(self, key: str, value: Any) -> None:
        """Set property ``key`` as its control would (what a person's change does; raises nothing: see ``message``)."""
        self.controls[key].control.value = value

    def __repr__(self) -> str:
        lines = [f"graph {self.graph_name!r}: {getattr(self, '_totals', 'not readable')}"]
        lines += [f"  {k} = {s.value} ({s.kind})" for k, s in getattr(self, "_specs", {}).items()]
        return "\n".join(lines)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/plain"] = repr(self)
        return bundle


__all__ = ["ParamsTree", "ParamsWidget", "PropertyControl"]
