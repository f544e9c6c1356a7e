"""The wasi-nn host, without Jupyter: run guests with wasmtime against PyTorch-backed graphs.

from wasinn_jupyter.host import Session
session = Session()
session.host.register("echo", "echo")
session.run("guest.wasm")
"""

from .backends.base import GraphInfo, TensorInfo
from .encodings import Encoding, Target
from .errors import Dialect, ErrorCode, UnknownGraphName, WasiNNError
from .handles import Limits
from .host import Client, Host
from .session import Guest, GuestError, GuestExit, GuestLimits, GuestStopped, GuestTrap, Session, WasiOptions
from .tensors import TENSOR_TYPES, Tensor, TensorType
from .timeline import CallRecord, Timeline

__all__ = [
    "TENSOR_TYPES",
    "CallRecord",
    "Client",
    "Dialect",
    "Encoding",
    "ErrorCode",
    "GraphInfo",
    "Guest",
    "GuestError",
    "GuestExit",
    "GuestLimits",
    "GuestStopped",
    "GuestTrap",
    "Host",
    "Limits",
    "Session",
    "Target",
    "Tensor",
    "TensorInfo",
    "TensorType",
    "Timeline",
    "UnknownGraphName",
    "WasiNNError",
    "WasiOptions",
]
