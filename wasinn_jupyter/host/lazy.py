"""Names a package exports, imported on first use (PEP 562): importing one submodule loads nothing else."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any


def export(package: str, namespace: dict[str, Any], where: Mapping[str, str | tuple[str, str]], name: str) -> Any:
    """``name`` from the submodule ``where`` says (``module`` or ``(module, attribute)``), kept in ``namespace``."""
    found = where.get(name)
    if found is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    module, attribute = (found, name) if isinstance(found, str) else found
    value = getattr(importlib.import_module(f".{module}", package), attribute)
    namespace[name] = value
    return value
