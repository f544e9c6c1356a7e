"""Guests from source: compilers per language with a disk cache, the bindings we ship, and the compute driver.

Nothing here imports IPython; the magics (:mod:`wasinn_jupyter.magics`) and tests use it directly::

    from wasinn_jupyter.guests import compile_source
    compiled = compile_source(c_text, "c", name="hello")   # zig cc -target wasm32-wasi, cached on disk
"""

from .compile import (
    BINDINGS,
    LANGUAGES,
    Compiled,
    CompileError,
    ToolchainMissing,
    compile_source,
    default_cache_dir,
    normalize_lang,
)
from .driver import (
    ALLOC,
    COMPUTE,
    FROM_GRAPH,
    ComputeError,
    Output,
    as_tensors,
    compute,
    convention_problem,
    driver_wat,
    supports_compute,
)

__all__ = [
    "ALLOC",
    "BINDINGS",
    "COMPUTE",
    "FROM_GRAPH",
    "LANGUAGES",
    "CompileError",
    "Compiled",
    "ComputeError",
    "Output",
    "ToolchainMissing",
    "as_tensors",
    "compile_source",
    "compute",
    "convention_problem",
    "default_cache_dir",
    "driver_wat",
    "normalize_lang",
    "supports_compute",
]
