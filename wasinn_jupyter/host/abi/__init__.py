"""The ABIs between guests and the host, and the guest-memory layouts front-ends may need.

``witx.py`` (legacy ``wasi_ephemeral_nn``) and ``convention.py`` (the compute convention, Python to a guest) both
lay tensors out with ``layout.py``; ``memory.py`` checks every span; ``dialect.py`` tells which host a guest was
built for. Names are imported on first use (PEP 562), as in :mod:`wasinn_jupyter.host`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..lazy import export

if TYPE_CHECKING:
    from .convention import (
        ALLOC,
        COMPUTE,
        FROM_GRAPH,
        ComputeError,
        Output,
        compute,
        convention_problem,
        supports_compute,
    )
    from .dialect import WASMEDGE_ONLY_ENCODINGS, WASMEDGE_ONLY_IMPORTS, encodings_dialect
    from .layout import DIMS, TENSOR, TensorStruct, read_dims, read_tensor, write_dims, write_tensor
    from .memory import GuestMemory
    from .witx import MODULE as WITX_MODULE
    from .witx import SIGNATURES as WITX_SIGNATURES

_WHERE = {
    "ALLOC": ("convention", "ALLOC"),
    "COMPUTE": ("convention", "COMPUTE"),
    "FROM_GRAPH": ("convention", "FROM_GRAPH"),
    "ComputeError": ("convention", "ComputeError"),
    "Output": ("convention", "Output"),
    "compute": ("convention", "compute"),
    "convention_problem": ("convention", "convention_problem"),
    "supports_compute": ("convention", "supports_compute"),
    "WASMEDGE_ONLY_ENCODINGS": ("dialect", "WASMEDGE_ONLY_ENCODINGS"),
    "WASMEDGE_ONLY_IMPORTS": ("dialect", "WASMEDGE_ONLY_IMPORTS"),
    "encodings_dialect": ("dialect", "encodings_dialect"),
    "DIMS": ("layout", "DIMS"),
    "TENSOR": ("layout", "TENSOR"),
    "TensorStruct": ("layout", "TensorStruct"),
    "read_dims": ("layout", "read_dims"),
    "read_tensor": ("layout", "read_tensor"),
    "write_dims": ("layout", "write_dims"),
    "write_tensor": ("layout", "write_tensor"),
    "GuestMemory": ("memory", "GuestMemory"),
    "WITX_MODULE": ("witx", "MODULE"),
    "WITX_SIGNATURES": ("witx", "SIGNATURES"),
}

__all__ = [
    "ALLOC",
    "COMPUTE",
    "DIMS",
    "FROM_GRAPH",
    "TENSOR",
    "WASMEDGE_ONLY_ENCODINGS",
    "WASMEDGE_ONLY_IMPORTS",
    "WITX_MODULE",
    "WITX_SIGNATURES",
    "ComputeError",
    "GuestMemory",
    "Output",
    "TensorStruct",
    "compute",
    "convention_problem",
    "encodings_dialect",
    "read_dims",
    "read_tensor",
    "supports_compute",
    "write_dims",
    "write_tensor",
]


def __getattr__(name: str) -> Any:
    return export(__name__, globals(), _WHERE, name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
