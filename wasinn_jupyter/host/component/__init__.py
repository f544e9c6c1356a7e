"""WIT ``wasi:nn@0.2.0-rc-2024-10-28`` for WebAssembly components (wasmtime's component model).

``bindings.py`` implements the interfaces on a guest's Client, ``values.py`` converts values (``list<u8>`` in
bulk), ``linking.py`` links a component into a Guest's Store with WASI preview 2, and ``wit/`` holds the WIT
that guests are built from (``wit/phase3`` adds the proposals this host also serves: graph properties, prompt).
"""

from __future__ import annotations

from pathlib import Path

WIT_DIR = Path(__file__).parent / "wit"
PHASE3_WIT_DIR = WIT_DIR / "phase3"

__all__ = ["PHASE3_WIT_DIR", "WIT_DIR"]
