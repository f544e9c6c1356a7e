"""Models shipped to Ray actors through the object store, so a node needs none of the caller's files.

A path (or a directory holding ``model.pt``) travels as its bytes and lands in the actor's private directory under
its own suffix; a ScriptModule or ExportedProgram travels as the archive torch saves; an nn.Module as Ray pickles
it; ``echo`` as the word. :func:`land` gives back what the host's registry loads.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..host import Encoding, Graph, Host, WasinnError

ECHO = "echo"


@dataclass
class Shipped:
    kind: str  # "echo", "file" (``data`` is an ObjectRef of its bytes) or "object" (``data`` is the object)
    data: Any = None
    suffix: str = ".pt"
    label: str = ""  # what it was, for messages


def ship(source: Any, encoding: Encoding, ray: Any, model_dirs: list[str] | None = None) -> Shipped:
    """Put ``source`` where actors can reach it (the caller's files are read here, checked against
    ``model_dirs`` as the host would)."""
    if isinstance(source, str) and source == ECHO:
        return Shipped(ECHO, label=ECHO)
    if isinstance(source, (str, Path)):
        named = Path(source).expanduser()
        if named.is_dir():  # a directory stands for its model.pt, as the host reads one (wasmtime's nn-graph layout)
            named = named / "model.pt"
        path = Host(model_dirs=model_dirs).registry.check_path(named)  # the host's own check of --model-dir
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise WasinnError(f"cannot read model {source}: {exc.strerror or exc}") from None
        return Shipped("file", ray.put(data), named.suffix or ".pt", str(source))
    if isinstance(source, Graph):
        raise WasinnError(f"a {type(source).__name__} object cannot be served by Ray actors: pass its model")
    import torch

    if isinstance(source, torch.jit.ScriptModule):
        buffer = io.BytesIO()
        torch.jit.save(source, buffer)
        return Shipped("file", ray.put(buffer.getvalue()), ".pt", type(source).__name__)
    if isinstance(source, torch.export.ExportedProgram):
        buffer = io.BytesIO()
        torch.export.save(source, buffer)
        return Shipped("file", ray.put(buffer.getvalue()), ".pt2", "ExportedProgram")
    return Shipped("object", source, label=type(source).__name__)


def land(shipped: Shipped, ray: Any, directory: str | None = None) -> Any:
    """What the registry loads, in the actor: the word echo, a file in ``directory`` (private), or the object."""
    if shipped.kind == ECHO:
        return ECHO
    if shipped.kind == "object":
        return shipped.data
    folder = Path(directory or tempfile.mkdtemp(prefix="wasinn-model-"))
    path = folder / f"model{shipped.suffix}"
    path.write_bytes(ray.get(shipped.data))
    return str(path)
