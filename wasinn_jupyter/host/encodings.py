"""Graph encodings and execution targets: their witx numbers and the names users type.

Names are matched case-insensitively, as WasmEdge and wasmtime do on their command lines.
"""

from __future__ import annotations

import enum

from .cuda import cuda_available
from .errors import ErrorCode, fail


class Encoding(enum.Enum):
    """witx ``graph_encoding`` values (WasmEdge's numbering from 6 up)."""

    OPENVINO = 0
    ONNX = 1
    TENSORFLOW = 2
    PYTORCH = 3
    TENSORFLOWLITE = 4
    AUTODETECT = 5
    GGML = 6
    NEURALSPEED = 7
    BURN = 8
    WHISPER = 9
    MLX = 10
    PIPER = 11
    CHATTTS = 12
    OPENVINOGENAI = 13
    BITNET = 14

    @classmethod
    def parse(cls, name: str) -> Encoding:
        key = name.strip().upper().replace("-", "").replace("_", "")
        try:
            return cls[key]
        except KeyError:
            fail(ErrorCode.INVALID_ENCODING, f"unknown graph encoding {name!r}")

    @classmethod
    def from_witx(cls, value: int) -> Encoding:
        try:
            return cls(value)
        except ValueError:
            fail(ErrorCode.INVALID_ENCODING, f"unknown graph encoding number {value}")


class Target(enum.Enum):
    """witx ``execution_target`` values."""

    CPU = 0
    GPU = 1
    TPU = 2

    @classmethod
    def parse(cls, name: str) -> Target:
        key = name.strip().upper()
        if key == "AUTO":  # WasmEdge's preload-only AUTO: the best device we have
            return cls.GPU if cuda_available() else cls.CPU
        try:
            return cls[key]
        except KeyError:
            fail(ErrorCode.INVALID_ARGUMENT, f"unknown execution target {name!r} (cpu, gpu, tpu)")

    @classmethod
    def from_witx(cls, value: int) -> Target:
        try:
            return cls(value)
        except ValueError:
            fail(ErrorCode.INVALID_ARGUMENT, f"unknown execution target number {value} (0 cpu, 1 gpu, 2 tpu)")

    def __str__(self) -> str:
        return self.name.lower()
