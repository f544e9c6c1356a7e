"""Whether CUDA is here: asked by target names (``auto``) and device resolution, without importing either.

torch is imported only when this is first asked, so CPU-only work on the echo model never loads it.
"""

from __future__ import annotations

import functools


@functools.cache
def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
