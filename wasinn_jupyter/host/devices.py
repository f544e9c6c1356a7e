"""From an execution target to a torch device, with the CPU fallback made explicit.

torch is imported only when a GPU is asked about (:mod:`.cuda`), so CPU-only work on echo never loads it.
"""

from __future__ import annotations

import logging

from .cuda import cuda_available
from .encodings import Target
from .errors import ErrorCode, fail

log = logging.getLogger(__name__)


def resolve(target: Target, cpu_fallback: bool = False) -> tuple[str, str | None]:
    """The torch device for ``target`` and, when it fell back to the CPU, a note saying so."""
    if target is Target.CPU:
        return "cpu", None
    if target is Target.GPU:
        if cuda_available():
            return "cuda", None
        if cpu_fallback:
            note = "target gpu: CUDA is not available here, running on the CPU (cpu_fallback is on)"
            log.warning(note)
            return "cpu", note
        fail(
            ErrorCode.UNSUPPORTED_OPERATION,
            "target gpu needs CUDA, which is not available on this machine "
            "(use target cpu, or turn on the CPU fallback)",
        )
    fail(ErrorCode.UNSUPPORTED_OPERATION, "target tpu is not supported by the PyTorch backend (use cpu or gpu)")
