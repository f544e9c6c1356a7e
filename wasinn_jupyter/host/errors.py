"""The package's one exception tree, and the one mapping from wasi-nn failures to error codes.

Every exception this package raises on purpose derives from :class:`WasinnError`:

    WasinnError                       (errors.py) catch this for "anything wasinn-jupyter said no to"
     ├── WasiNNError(code, message)   (errors.py) a wasi-nn call failed: the guest gets the code, the person the
     │    │                           message. ``code`` is an ErrorCode: the union of the witx errnos, the WIT
     │    │                           error codes and WasmEdge's extensions
     │    └── UnknownGraphName        load_by_name missed: errno 8, or 103 for WasmEdge guests
     ├── GuestError                   (session.py) a guest did not compile or instantiate, or trapped
     │    ├── GuestTrap               it trapped (unreachable, out of bounds, stack overflow...)
     │    ├── GuestExit               it called proc_exit: a command guest's normal end
     │    ├── GuestStopped            the host stopped it: interrupted, deadline, fuel
     │    └── ComputeError            (abi/convention.py) a guest's wasinn_compute answered an errno
     ├── CompileError                 (guests/compile.py) a guest's source did not compile
     │    └── ToolchainMissing        its compiler is not installed (the message says how to install it)
     └── CellError                    (magics/) a cell's request could not be done: shown in one line

:func:`witx_errno` and :func:`wit_code` turn a WasiNNError into what a guest of each ABI receives; nothing else
crosses the wasm boundary.
"""

from __future__ import annotations

import enum
from typing import NoReturn


class ErrorCode(enum.Enum):
    """What went wrong, independent of the ABI that reports it."""

    INVALID_ARGUMENT = "invalid-argument"
    INVALID_ENCODING = "invalid-encoding"
    MISSING_MEMORY = "missing-memory"
    BUSY = "busy"
    RUNTIME_ERROR = "runtime-error"
    UNSUPPORTED_OPERATION = "unsupported-operation"
    TOO_LARGE = "too-large"
    NOT_FOUND = "not-found"
    SECURITY = "security"
    TIMEOUT = "timeout"
    UNKNOWN = "unknown"
    # WasmEdge's extensions (errno 100..103); they have no WIT counterpart.
    END_OF_SEQUENCE = "end-of-sequence"
    CONTEXT_FULL = "context-full"
    PROMPT_TOO_LONG = "prompt-too-long"
    MODEL_NOT_FOUND = "model-not-found"


# witx `nn_errno` numbers (wasi-nn-abi.md). SECURITY, TIMEOUT and UNKNOWN have no witx number: they fall back to
# the closest one a legacy guest can understand.
_WITX_ERRNO: dict[ErrorCode, int] = {
    ErrorCode.INVALID_ARGUMENT: 1,
    ErrorCode.INVALID_ENCODING: 2,
    ErrorCode.MISSING_MEMORY: 3,
    ErrorCode.BUSY: 4,
    ErrorCode.RUNTIME_ERROR: 5,
    ErrorCode.UNSUPPORTED_OPERATION: 6,
    ErrorCode.TOO_LARGE: 7,
    ErrorCode.NOT_FOUND: 8,
    ErrorCode.SECURITY: 1,
    ErrorCode.TIMEOUT: 5,
    ErrorCode.UNKNOWN: 5,
    ErrorCode.END_OF_SEQUENCE: 100,
    ErrorCode.CONTEXT_FULL: 101,
    ErrorCode.PROMPT_TOO_LONG: 102,
    ErrorCode.MODEL_NOT_FOUND: 103,
}

SUCCESS = 0

# The witx errno names, for messages and the conformance report.
WITX_ERRNO_NAMES: dict[int, str] = {
    0: "success",
    1: "invalid_argument",
    2: "invalid_encoding",
    3: "missing_memory",
    4: "busy",
    5: "runtime_error",
    6: "unsupported_operation",
    7: "too_large",
    8: "not_found",
    100: "end_of_sequence",
    101: "context_full",
    102: "prompt_too_long",
    103: "model_not_found",
}


class Dialect(enum.Enum):
    """Which host's errno conventions a legacy guest expects.

    The spec says an unknown name is ``not_found`` (8); WasmEdge answers ``model_not_found`` (103) and guests
    written for it test for that number. ``WASMEDGE`` makes a miss in ``load_by_name`` answer 103; everything else
    is the same in both.
    """

    SPEC = "spec"
    WASMEDGE = "wasmedge"


class WasinnError(Exception):
    """The root of every exception this package raises on purpose (the tree is drawn in this module's docstring)."""


class WasiNNError(WasinnError):
    """A wasi-nn failure: a code for the guest, a message for the person."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"


def fail(code: ErrorCode, message: str) -> NoReturn:
    raise WasiNNError(code, message)


def witx_errno(error: WasiNNError, dialect: Dialect = Dialect.SPEC) -> int:
    """The witx errno a legacy guest receives for ``error``."""
    if dialect is Dialect.WASMEDGE and isinstance(error, UnknownGraphName):
        return _WITX_ERRNO[ErrorCode.MODEL_NOT_FOUND]
    return _WITX_ERRNO[error.code]


def wit_code(error: WasiNNError) -> str:
    """The WIT ``error-code`` case for ``error`` (WasmEdge-only codes become ``unknown``)."""
    if error.code in (
        ErrorCode.MISSING_MEMORY,
        ErrorCode.BUSY,
        ErrorCode.END_OF_SEQUENCE,
        ErrorCode.CONTEXT_FULL,
        ErrorCode.PROMPT_TOO_LONG,
    ):
        return ErrorCode.UNKNOWN.value
    if error.code is ErrorCode.MODEL_NOT_FOUND:
        return str(ErrorCode.NOT_FOUND.value)
    return str(error.code.value)


class UnknownGraphName(WasiNNError):
    """No graph is registered under a name (spec guests see not_found 8, WasmEdge guests model_not_found 103)."""

    def __init__(self, name: str, known: list[str]) -> None:
        hint = f"registered: {', '.join(sorted(known))}" if known else "no graph is registered"
        super().__init__(ErrorCode.NOT_FOUND, f"no graph named {name!r} ({hint})")
        self.name = name
