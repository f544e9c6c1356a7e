"""A compiled guest in the host's own words: core module or component, its exports, the wasi-nn it imports.

``Session.compile`` returns a :class:`GuestModule`, so front-ends (the CLI, the magics, the compute convention's
signature check, the conformance suite) inspect guests without importing wasmtime. It also says which wasi-nn
ABI the guest speaks (``witx``: functions of ``wasi_ephemeral_nn`` in a core module; ``wit``: ``wasi:nn/...``
interfaces of a component) and which errno dialect its imports and bytes imply (``abi/dialect.py``), decided once
at compile time. The wasmtime object stays inside: only the session instantiates it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import wasmtime
from wasmtime import component as wasm_component

from .abi.dialect import guest_dialect, module_hint
from .abi.witx import MODULE as WITX_MODULE
from .errors import Dialect

CORE = "core"
COMPONENT = "component"
WIT_NN_PREFIX = "wasi:nn/"  # the WIT interfaces of wasi-nn: wasi:nn/graph@..., wasi:nn/tensor@...
_CORE_VERSION = b"\x01\x00\x00\x00"
_COMPONENT_VERSION = b"\x0d\x00\x01\x00"  # the component model's version and layer fields

_CORE_KINDS = {
    wasmtime.FuncType: "func",
    wasmtime.MemoryType: "memory",
    wasmtime.TableType: "table",
    wasmtime.GlobalType: "global",
}
_COMPONENT_KINDS = {
    "FuncType": "func",
    "ComponentInstanceType": "instance",
    "ComponentType": "component",
    "ModuleType": "module",
    "ResourceType": "resource",
}


@dataclass(frozen=True)
class ModuleExport:
    """One export: its name, its kind (func, memory, table, global; for components also instance, resource...),
    and for a core function its parameter and result types (``i32``, ``i64``, ``f32``, ``f64``...)."""

    name: str
    kind: str
    params: tuple[str, ...] = ()
    results: tuple[str, ...] = ()

    def signature(self) -> str:
        """A core function's type as errors show it: ``(i32, i32) -> i32``."""
        results = ", ".join(self.results) if len(self.results) == 1 else f"({', '.join(self.results)})"
        return f"({', '.join(self.params)}) -> {results}"


@dataclass(frozen=True)
class ModuleImport:
    """One import: the module (or, for a component, the interface) it comes from, its name and kind."""

    module: str
    name: str
    kind: str


class GuestModule:
    """A compiled guest, ready to instantiate any number of times (``Session.instantiate``)."""

    def __init__(
        self,
        compiled: Any,
        *,
        kind: str,
        name: str,
        size: int,
        exports: Iterable[ModuleExport],
        imports: Iterable[ModuleImport],
        dialect: Dialect,
        dialect_reason: str,
    ) -> None:
        self._compiled = compiled  # wasmtime.Module or wasmtime.component.Component: the session's business
        self.kind = kind
        self.name = name
        self.size = size
        self.exports: tuple[ModuleExport, ...] = tuple(exports)
        self.imports: tuple[ModuleImport, ...] = tuple(imports)
        self.dialect = dialect
        self.dialect_reason = dialect_reason
        self._by_name = {e.name: e for e in self.exports}

    @property
    def nn_abi(self) -> str | None:
        """The wasi-nn ABI the guest imports: ``witx``, ``wit``, or None when it imports no wasi-nn at all."""
        if not self.nn_imports:
            return None
        return "wit" if self.kind == COMPONENT else "witx"

    @property
    def nn_imports(self) -> tuple[str, ...]:
        """The wasi-nn functions (witx) or interfaces (WIT) the guest imports, in import order."""
        if self.kind == COMPONENT:
            return tuple(i.module for i in self.imports if i.module.startswith(WIT_NN_PREFIX))
        return tuple(i.name for i in self.imports if i.module == WITX_MODULE)

    @property
    def export_names(self) -> list[str]:
        return [e.name for e in self.exports]

    def export(self, name: str) -> ModuleExport | None:
        return self._by_name.get(name)

    @property
    def is_command(self) -> bool:
        """A WASI command (it exports ``_start``, or ``wasi:cli/run``'s ``run``), rather than a reactor."""
        return "_start" in self._by_name or any(
            e.name.startswith("wasi:cli/run@") and e.name.endswith("#run") for e in self.exports
        )

    def __repr__(self) -> str:
        return f"<GuestModule {self.name!r}: {self.kind}, {self.size} bytes, {len(self.exports)} exports>"


def is_component(wasm: bytes) -> bool:
    """Whether wasm bytes hold a component (the component model's layer) rather than a core module."""
    return wasm[:4] == b"\0asm" and wasm[4:8] == _COMPONENT_VERSION


def wat_to_wasm(text: str) -> bytes:
    """WAT text (a core module or a component) to wasm bytes; ValueError with wasmtime's message if it does not
    parse."""
    try:
        return bytes(wasmtime.wat2wasm(text))
    except wasmtime.WasmtimeError as exc:
        raise ValueError(str(exc)) from None


def describe(compiled: Any, wasm: bytes, name: str, engine: wasmtime.Engine) -> GuestModule:
    """Our view of a module or component wasmtime compiled from ``wasm``."""
    if isinstance(compiled, wasm_component.Component):
        component_type = compiled.type
        imports = [
            ModuleImport(key, key, _component_kind(item)) for key, item in component_type.imports(engine).items()
        ]
        exports = []
        for key, item in component_type.exports(engine).items():
            exports.append(ModuleExport(key, _component_kind(item)))
            exports.extend(_interface_functions(key, item, engine))  # an exported interface's as ``key#name``
        return GuestModule(
            compiled,
            kind=COMPONENT,
            name=name,
            size=len(wasm),
            exports=exports,
            imports=imports,
            dialect=Dialect.SPEC,
            dialect_reason="a component gets WIT error codes",
        )
    core_exports = [_core_export(e.name, e.type) for e in compiled.exports]
    core_imports = [
        ModuleImport(i.module, i.name or "", _CORE_KINDS.get(type(i.type), "other")) for i in compiled.imports
    ]
    nn_imports = [i.name for i in core_imports if i.module == WITX_MODULE]
    dialect, why = guest_dialect(nn_imports, module_hint(wasm))
    return GuestModule(
        compiled,
        kind=CORE,
        name=name,
        size=len(wasm),
        exports=core_exports,
        imports=core_imports,
        dialect=dialect,
        dialect_reason=why,
    )


def _core_export(name: str, kind: Any) -> ModuleExport:
    if isinstance(kind, wasmtime.FuncType):
        return ModuleExport(name, "func", tuple(str(p) for p in kind.params), tuple(str(r) for r in kind.results))
    return ModuleExport(name, _CORE_KINDS.get(type(kind), "other"))


def _interface_functions(name: str, item: Any, engine: wasmtime.Engine) -> list[ModuleExport]:
    try:
        ty = item.ty
        if not isinstance(ty, wasm_component.ComponentInstanceType):
            return []
        return [ModuleExport(f"{name}#{key}", _component_kind(sub)) for key, sub in ty.exports(engine).items()]
    except Exception:  # noqa: BLE001 - an interface we cannot list still leaves the component usable
        return []


def _component_kind(item: Any) -> str:
    try:
        return _COMPONENT_KINDS.get(type(item.ty).__name__, "type")
    except Exception:  # noqa: BLE001 - a kind we cannot name is still an import
        return "other"
