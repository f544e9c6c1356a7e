"""Backends by encoding: the one table from a graph encoding to what loads it.

``autodetect`` is PyTorch's: it is the one backend that reads archives from bytes. ``ggml`` (WasmEdge's LLM
encoding) is the language-model backend's, which also serves a language model registered as pytorch or
autodetect (a model directory with a config.json, a .gguf file, a live TinyGPT or transformers model). The
echo model is not an encoding; the word ``echo`` where a model path goes names it, for any encoding
(:func:`backend_for_source`). Backends are imported only when first asked for, so the echo path never loads torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..encodings import Encoding
from ..errors import ErrorCode, fail
from .base import Backend

ECHO = "echo"
# encoding -> a backend, or (module, class) of one imported at first use
_TABLE: dict[Encoding, Backend | tuple[str, str]] = {
    Encoding.PYTORCH: ("torch", "TorchBackend"),
    Encoding.AUTODETECT: ("torch", "TorchBackend"),
    Encoding.GGML: ("lm", "LanguageModelBackend"),  # WasmEdge's LLM encoding: prompt graphs on a causal LM
}
_ECHO = ("echo", "EchoBackend")
_LM = ("lm", "LanguageModelBackend")
_loaded: dict[tuple[str, str], Backend] = {}


def _instance(where: Backend | tuple[str, str]) -> Backend:
    if isinstance(where, Backend):
        return where
    backend = _loaded.get(where)
    if backend is None:
        module = importlib.import_module(f".{where[0]}", __name__)
        backend = _loaded[where] = getattr(module, where[1])()
    return backend


def supported() -> list[Encoding]:
    return list(_TABLE)


def backend_for(encoding: Encoding) -> Backend:
    """The backend registered for ``encoding``; invalid_encoding naming the supported ones otherwise."""
    where = _TABLE.get(encoding)
    if where is None:
        names = ", ".join(e.name.lower() for e in _TABLE)
        fail(
            ErrorCode.INVALID_ENCODING,
            f"graph encoding {encoding.name.lower()} is not supported here (supported: {names})",
        )
    return _instance(where)


def backend_for_source(source: Any, encoding: Encoding) -> Backend:
    """What loads ``source`` registered with ``encoding``: echo for the word ``echo``, else by encoding."""
    if isinstance(source, str) and source == ECHO:
        return _instance(_ECHO)
    if encoding in (Encoding.PYTORCH, Encoding.AUTODETECT) and _TABLE.get(encoding) == ("torch", "TorchBackend"):
        from .lm import is_lm_source

        if is_lm_source(source):  # a language model is a PyTorch model too: a directory, a .gguf, a live one
            return _instance(_LM)
    return backend_for(encoding)


def register_backend(encoding: Encoding, backend: Backend) -> None:
    """Serve ``encoding`` with ``backend`` from now on (graphs from user files and objects; guest bytes only if the
    backend's module imports in the sandbox worker too, which a backend registered at run time does not)."""
    _TABLE[encoding] = backend


def unregister_backend(encoding: Encoding) -> None:
    _TABLE.pop(encoding, None)
