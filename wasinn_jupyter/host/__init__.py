"""The wasi-nn host, without Jupyter: run guests with wasmtime against PyTorch-backed graphs.

    from pathlib import Path
    from wasinn_jupyter.host import Session

    with Session() as session:
        session.host.register("echo", "echo")
        exit_code = session.run(Path("guest.wasm"))

Names are imported on first use (PEP 562), so that importing one submodule (the sandbox worker imports only the
torch backend) does not load wasmtime and everything else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .lazy import export

if TYPE_CHECKING:
    from .abi.dialect import WASMEDGE_ONLY_ENCODINGS, encodings_dialect
    from .backends import supported as supported_encodings
    from .backends.base import Graph, GraphInfo, ParameterInfo, PropertySpec, TensorInfo
    from .component import PHASE3_WIT_DIR, WIT_DIR
    from .cuda import cuda_available
    from .encodings import Encoding, Target
    from .errors import WITX_ERRNO_NAMES, Dialect, ErrorCode, UnknownGraphName, WasiNNError, WasinnError
    from .handles import GUEST_MODEL_MODES, Limits, default_guest_bytes
    from .host import Client, Host
    from .module import GuestModule, ModuleExport, ModuleImport, wat_to_wasm
    from .session import (
        Guest,
        GuestError,
        GuestExit,
        GuestLimits,
        GuestStopped,
        GuestTrap,
        Session,
        abandoned_workers,
    )
    from .tensors import TENSOR_TYPES, Tensor, TensorType
    from .timeline import CallRecord, Timeline
    from .wasi import WasiOptions, parse_dir, parse_env

_WHERE: dict[str, str | tuple[str, str]] = {
    "WASMEDGE_ONLY_ENCODINGS": "abi.dialect",
    "encodings_dialect": "abi.dialect",
    "supported_encodings": ("backends", "supported"),
    "cuda_available": "cuda",
    "WITX_ERRNO_NAMES": "errors",
    "GuestModule": "module",
    "ModuleExport": "module",
    "ModuleImport": "module",
    "wat_to_wasm": "module",
    "abandoned_workers": "session",
    "parse_dir": "wasi",
    "parse_env": "wasi",
    "Graph": "backends.base",
    "GraphInfo": "backends.base",
    "ParameterInfo": "backends.base",
    "PropertySpec": "backends.base",
    "TensorInfo": "backends.base",
    "Encoding": "encodings",
    "Target": "encodings",
    "Dialect": "errors",
    "ErrorCode": "errors",
    "UnknownGraphName": "errors",
    "WasiNNError": "errors",
    "WasinnError": "errors",
    "Limits": "handles",
    "GUEST_MODEL_MODES": "handles",
    "default_guest_bytes": "handles",
    "Client": "host",
    "Host": "host",
    "Guest": "session",
    "GuestError": "session",
    "GuestExit": "session",
    "GuestLimits": "session",
    "GuestStopped": "session",
    "GuestTrap": "session",
    "Session": "session",
    "WasiOptions": "wasi",
    "TENSOR_TYPES": "tensors",
    "Tensor": "tensors",
    "TensorType": "tensors",
    "CallRecord": "timeline",
    "Timeline": "timeline",
    "WIT_DIR": "component",
    "PHASE3_WIT_DIR": "component",
}

__all__ = [
    "GUEST_MODEL_MODES",
    "PHASE3_WIT_DIR",
    "TENSOR_TYPES",
    "WASMEDGE_ONLY_ENCODINGS",
    "WITX_ERRNO_NAMES",
    "WIT_DIR",
    "CallRecord",
    "Client",
    "Dialect",
    "Encoding",
    "ErrorCode",
    "Graph",
    "GraphInfo",
    "Guest",
    "GuestError",
    "GuestExit",
    "GuestLimits",
    "GuestModule",
    "GuestStopped",
    "GuestTrap",
    "Host",
    "Limits",
    "ModuleExport",
    "ModuleImport",
    "ParameterInfo",
    "PropertySpec",
    "Session",
    "Target",
    "Tensor",
    "TensorInfo",
    "TensorType",
    "Timeline",
    "UnknownGraphName",
    "WasiNNError",
    "WasiOptions",
    "WasinnError",
    "abandoned_workers",
    "cuda_available",
    "default_guest_bytes",
    "encodings_dialect",
    "parse_dir",
    "parse_env",
    "supported_encodings",
    "wat_to_wasm",
]


def __getattr__(name: str) -> Any:
    return export(__name__, globals(), _WHERE, name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
