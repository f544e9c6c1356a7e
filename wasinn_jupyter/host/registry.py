"""Named graphs: what ``load_by_name`` finds.

Graphs are loaded when they are registered, so a bad file fails where the user named it (the CLI flag, the
notebook cell) and not later inside a guest. A registered graph is shared by every guest of the host; replacing or
unregistering a name only drops the registry's reference, so a guest that holds the old graph keeps a working one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backends import ECHO, backend_for_source
from .backends.base import Graph
from .devices import resolve
from .encodings import Encoding, Target
from .errors import ErrorCode, UnknownGraphName, fail
from .handles import Limits


@dataclass
class Entry:
    name: str
    graph: Graph
    target: Target
    note: str | None = None


class Registry:
    def __init__(
        self,
        cpu_fallback: bool = False,
        model_dirs: list[Path] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.cpu_fallback = cpu_fallback
        self.model_dirs = [Path(d).resolve() for d in model_dirs] if model_dirs is not None else None
        self.limits = limits or Limits()
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()

    def register(
        self,
        name: str,
        source: str | Path | Any,
        encoding: Encoding = Encoding.AUTODETECT,
        target: Target = Target.CPU,
    ) -> Entry:
        """Load ``source`` (``"echo"``, a file or directory path, a torch object, a Graph) and name it ``name``."""
        if not name:
            fail(ErrorCode.INVALID_ARGUMENT, "a graph needs a non-empty name")
        device, note = resolve(target, self.cpu_fallback)
        graph = self._load(name, source, encoding, device)
        entry = Entry(name, graph, target, note)
        with self._lock:
            self._entries[name] = entry  # guests holding the old graph keep it until they let go
        return entry

    def _load(self, name: str, source: Any, encoding: Encoding, device: str) -> Graph:
        if isinstance(source, Graph):  # a backend of the caller's own (the conformance tests use one)
            return source
        backend = backend_for_source(source, encoding)
        if isinstance(source, (str, Path)):
            # the file it names (a directory's model.pt), resolved through symlinks, is what must lie inside the
            # allowed directories; its suffix as named decides the loader
            if isinstance(source, str) and source == ECHO:
                return backend.from_path(Path(source), device, name, self.limits.max_model_bytes)
            named = backend.model_file(Path(source).expanduser())
            path = self.check_path(named)
            return backend.from_path(path, device, name, self.limits.max_model_bytes, suffix=named.suffix)
        return backend.from_object(source, device, name)

    def check_path(self, path: Path) -> Path:
        """The resolved path, refused (security) when it lies outside the allowed model directories."""
        resolved = path.expanduser().resolve()
        if self.model_dirs is not None and not any(resolved.is_relative_to(d) for d in self.model_dirs):
            allowed = ", ".join(map(str, self.model_dirs)) or "none"
            fail(ErrorCode.SECURITY, f"model path {resolved} is outside the allowed model directories ({allowed})")
        return resolved

    def get(self, name: str) -> Entry:
        entry = self._entries.get(name)
        if entry is None:
            raise UnknownGraphName(name, list(self._entries))
        return entry

    def unregister(self, name: str) -> None:
        with self._lock:
            entry = self._entries.pop(name, None)
        if entry is None:
            raise UnknownGraphName(name, list(self._entries))

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def clear(self) -> None:
        with self._lock:
            self._entries = {}
