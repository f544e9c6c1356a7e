"""Which host a guest was built for, so it gets the errnos it tests for (``Dialect``: spec 8 or WasmEdge 103).

The import list alone misleads: a guest built with the Rust ``wasmedge-wasi-nn`` crate that only calls
``load_by_name`` (WasmEdge's GGML model-not-found test) imports nothing WasmEdge-only, yet panics unless an
unknown name answers 103. So the module's bytes are read too:

- the ``name`` custom section: function names holding the crate's symbols (``wasmedge_wasi_nn::...``, or mangled
  ``_ZN16wasmedge_wasi_nn...``), which debug builds and unstripped release builds keep;
- the ``producers`` custom section: a tool or SDK named after WasmEdge;
- the data section and debug sections: the crate's source paths (``wasmedge-wasi-nn-0.8.0/src/...``), which Rust
  keeps in panic locations even when names are stripped.

WasmEdge-only graph encodings (ggml and the others WasmEdge numbers from 6 up) on a command line are a signal too;
the CLI applies it. ``--errno-dialect`` / ``dialect=`` always win over all of these.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..encodings import Encoding
from ..errors import Dialect

# Functions only WasmEdge defines: a guest that imports one was built for WasmEdge and expects its errnos.
WASMEDGE_ONLY_IMPORTS = frozenset(
    {
        "load_by_name_with_config",
        "unload",
        "finalize_execution_context",
        "compute_single",
        "get_output_single",
        "fini_single",
    }
)
# Encodings only WasmEdge numbers (witx order: 0-5 are the spec's).
WASMEDGE_ONLY_ENCODINGS = frozenset(e for e in Encoding if e.value >= Encoding.GGML.value)
CRATE_SYMBOL = "wasmedge_wasi_nn"
CRATE_MARKS = (b"wasmedge_wasi_nn", b"wasmedge-wasi-nn")  # symbol, crate directory in source paths
DATA_SECTION = 11


@dataclass(frozen=True)
class DialectHint:
    """What a module's bytes say: why it looks built for WasmEdge, or None."""

    wasmedge: str | None = None


def module_hint(wasm: bytes) -> DialectHint:
    """Read a compiled module's custom and data sections for signs of the WasmEdge crate. Never raises."""
    try:
        return DialectHint(_wasmedge_evidence(wasm))
    except (IndexError, ValueError):  # a section we cannot read is no evidence
        return DialectHint()


def guest_dialect(nn_imports: Iterable[str], hint: DialectHint | None = None) -> tuple[Dialect, str]:
    """The dialect for a guest given its ``wasi_ephemeral_nn`` imports and its module's hint, and why."""
    wasmedge_imports = sorted(set(nn_imports) & WASMEDGE_ONLY_IMPORTS)
    if wasmedge_imports:
        return Dialect.WASMEDGE, f"imports WasmEdge's {', '.join(wasmedge_imports)}"
    if hint is not None and hint.wasmedge:
        return Dialect.WASMEDGE, hint.wasmedge
    return Dialect.SPEC, "no sign of a WasmEdge build"


def encodings_dialect(encodings: Iterable[Encoding]) -> tuple[Dialect, str] | None:
    """WasmEdge's errnos when graphs are named with an encoding only WasmEdge has (ggml, whisper...), else None."""
    only = sorted({e.name.lower() for e in encodings if e in WASMEDGE_ONLY_ENCODINGS})
    if only:
        return Dialect.WASMEDGE, f"graphs preloaded with WasmEdge's {', '.join(only)} encoding"
    return None


# -- reading the module -------------------------------------------------------------------------------------------


def _wasmedge_evidence(wasm: bytes) -> str | None:
    for section_id, body in _sections(wasm):
        if section_id == DATA_SECTION:
            if any(mark in body for mark in CRATE_MARKS):
                return "its data holds the wasmedge-wasi-nn crate's source paths"
            continue
        if section_id != 0:
            continue
        name, pos = _name(body, 0)
        payload = body[pos:]
        if name == "name":
            for func in _function_names(payload):
                if CRATE_SYMBOL in func:
                    return f"its name section names the crate's function {func}"
        elif name == "producers":
            for field, value, version in _producers(payload):
                if "wasmedge" in value.lower() or "wasmedge" in version.lower():
                    return f"its producers section lists {field} {value} {version}".rstrip()
        elif any(mark in payload for mark in CRATE_MARKS):  # DWARF (.debug_str, .debug_line) and the like
            return f"its {name} section mentions the wasmedge-wasi-nn crate"
    return None


def _sections(wasm: bytes) -> Iterator[tuple[int, bytes]]:
    if len(wasm) < 8 or wasm[:4] != b"\0asm":
        return
    pos = 8
    while pos < len(wasm):
        section_id = wasm[pos]
        size, pos = _leb(wasm, pos + 1)
        if pos + size > len(wasm):
            raise ValueError("section runs past the end of the module")
        yield section_id, wasm[pos : pos + size]
        pos += size


def _function_names(payload: bytes) -> Iterator[str]:
    """The function names of a ``name`` section (subsection 1: a vector of index and name)."""
    pos = 0
    while pos < len(payload):
        sub_id = payload[pos]
        size, pos = _leb(payload, pos + 1)
        end = pos + size
        if sub_id == 1:
            count, at = _leb(payload, pos)
            for _ in range(count):
                _index, at = _leb(payload, at)
                func, at = _name(payload, at)
                yield func
        pos = end


def _producers(payload: bytes) -> Iterator[tuple[str, str, str]]:
    """(field, name, version) triples of a ``producers`` section."""
    fields, pos = _leb(payload, 0)
    for _ in range(fields):
        field, pos = _name(payload, pos)
        count, pos = _leb(payload, pos)
        for _ in range(count):
            value, pos = _name(payload, pos)
            version, pos = _name(payload, pos)
            yield field, value, version


def _name(data: bytes, pos: int) -> tuple[str, int]:
    length, pos = _leb(data, pos)
    if pos + length > len(data):
        raise ValueError("name runs past its section")
    return data[pos : pos + length].decode("utf-8", "replace"), pos + length


def _leb(data: bytes, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 u32 at ``pos``; the value and the position after it."""
    result = shift = 0
    for _ in range(5):
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
    raise ValueError("LEB128 u32 longer than 5 bytes")
