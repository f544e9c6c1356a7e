"""The PyTorch backend: TorchScript, torch.export programs and live ``nn.Module`` objects.

Loading rules, from the threat model: bytes that come from a guest are only ever read by the TorchScript loader
(its archive holds code for the TorchScript interpreter, not Python pickles of arbitrary objects), and only inside
the sandbox worker. torch.export archives (.pt2) are unpickled by ``torch.export.load``, so they load only from a
file the user names with the ``.pt2`` suffix: never from guest bytes, never from a file named ``.pt`` (which is
only ever read as TorchScript), never found implicitly in a directory (which offers ``model.pt`` only). Plain
``torch.save`` pickles are refused everywhere.
"""

from __future__ import annotations

import copy
import inspect
import io
import os
import struct
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ErrorCode, WasiNNError, fail
from ..tensors import Tensor, type_of_torch
from .base import Backend, Graph, GraphInfo, TensorInfo, out_of_host_memory

if TYPE_CHECKING:
    import torch

# Archive kinds, as told by the names inside the zip.
TORCHSCRIPT = "torchscript"
EXPORT = "torch.export"
PICKLE = "torch.save pickle"


# A TorchScript archive holds tens to a few thousand entries; parsing the directory of millions costs gigabytes.
MAX_ENTRIES = 65536
_EOCD = struct.Struct("<4s4H2IH")  # end of central directory: signature, disk numbers, entry counts, size, offset
_EOCD64 = struct.Struct("<4sQ2H2I4Q")


def _declared_entries(head: bytes) -> int:
    """The entry count a zip's end records declare (its tail is ``head``): read before any directory is parsed."""
    at = head.rfind(b"PK\x05\x06")
    if at < 0 or len(head) - at < _EOCD.size:
        return 0  # not a zip: zipfile says so with its own message
    count = _EOCD.unpack_from(head, at)[4]
    z64 = head.rfind(b"PK\x06\x06", 0, at)
    if count == 0xFFFF and z64 >= 0 and at - z64 >= _EOCD64.size:
        count = _EOCD64.unpack_from(head, z64)[7]
    return int(count)


def archive_kind(source: bytes | Path, max_bytes: int) -> str:
    """Which kind of PyTorch archive ``source`` is, after checking that it unpacks within ``max_bytes``."""
    if isinstance(source, bytes):
        tail = source[-(1 << 16) - 100 :]
    else:
        with open(source, "rb") as f:
            f.seek(max(0, os.path.getsize(source) - (1 << 16) - 100))
            tail = f.read()
    entries = _declared_entries(tail)
    if entries > MAX_ENTRIES:
        fail(ErrorCode.TOO_LARGE, f"archive declares {entries} entries, over the limit of {MAX_ENTRIES}")
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        fail(ErrorCode.INVALID_ENCODING, f"not a PyTorch archive (a zip file was expected): {exc}")
    unpacked = sum(i.file_size for i in infos)
    if unpacked > max_bytes:
        fail(
            ErrorCode.TOO_LARGE,
            f"archive unpacks to {unpacked} bytes, over the limit of {max_bytes} (max_model_bytes)",
        )
    names = [i.filename for i in infos]
    if any(n.endswith("archive_format") for n in names):
        return EXPORT
    if any("/code/" in n for n in names):
        return TORCHSCRIPT
    if any(n.endswith("data.pkl") for n in names):
        return PICKLE
    fail(ErrorCode.INVALID_ENCODING, "zip archive is neither TorchScript nor a torch.export program")


def _refuse_pickle(what: str) -> None:
    fail(
        ErrorCode.INVALID_ENCODING,
        f"{what} is a torch.save pickle; pickles can run arbitrary code and are never loaded. "
        "Save the model with torch.jit.save(torch.jit.script(model)) or torch.export.save(...)",
    )


# What guest-supplied TorchScript may call: torch's own tensor operators. Other namespaces hold operators that a
# library or a notebook registered in the process (some implemented in Python), distributed and device-memory
# primitives; within these, the operators that reach outside the process.
ALLOWED_NAMESPACES = frozenset({"aten", "prim", "prims", "quantized", "_quantized", "quantization", "mkldnn",
                                "mkldnn_prepacked", "onednn", "mkl", "sparse", "rngprims", "profiler"})  # fmt: skip
DENIED_OPERATORS = {
    "aten::from_file": "maps a host file",
    "aten::save": "writes a host file",
    "prim::rpc_async": "calls another process",
    "prim::rpc_sync": "calls another process",
    "prim::rpc_remote": "calls another process",
}


def forbidden_operators(module: Any) -> list[str]:
    """The operators a TorchScript module's code calls (every method, every submodule, called functions inlined)
    that guest-supplied code may not: each with why."""
    import torch

    found: dict[str, str] = {}

    def walk(block: Any) -> None:
        for node in block.nodes():
            kind = node.kind()
            namespace = kind.partition("::")[0]
            if kind in DENIED_OPERATORS:
                found[kind] = DENIED_OPERATORS[kind]
            elif namespace not in ALLOWED_NAMESPACES:
                found[kind] = "an operator from outside torch's tensor library"
            for inner in node.blocks():
                walk(inner)

    for sub in module.modules():
        for method in sub._c._method_names():
            graph = sub._c._get_method(method).graph.copy()
            torch._C._jit_pass_inline(graph)
            walk(graph)
    return [f"{kind} ({why})" for kind, why in sorted(found.items())]


def load_bytes(data: bytes, device: str, name: str, max_bytes: int) -> TorchGraph:
    """A graph from guest bytes: TorchScript only."""
    kind = archive_kind(data, max_bytes)
    if kind == PICKLE:
        _refuse_pickle("the model bytes")
    if kind == EXPORT:
        fail(
            ErrorCode.INVALID_ENCODING,
            "torch.export programs are not loaded from guest bytes (torch.export.load unpickles); "
            "register the .pt2 file on the host and use load_by_name",
        )
    import torch

    try:
        module = torch.jit.load(io.BytesIO(data), map_location=device)  # type: ignore[no-untyped-call]
    except Exception as exc:
        if out_of_host_memory(exc):
            why = "a guest's models live within its budget, max_guest_bytes"
            raise WasiNNError(ErrorCode.TOO_LARGE, f"loading the archive ran out of memory ({why}): {exc}") from exc
        raise WasiNNError(ErrorCode.INVALID_ENCODING, f"TorchScript archive could not be loaded: {exc}") from exc
    forbidden = forbidden_operators(module)
    if forbidden:
        fail(ErrorCode.SECURITY, f"the archive's code calls operators a guest's model may not: {', '.join(forbidden)}")
    return TorchGraph(name, module, device, kind=TORCHSCRIPT, source=f"{len(data)} bytes from the guest")


def model_file(path: Path) -> Path:
    """The file a model path names: itself, or ``model.pt`` in a directory (wasmtime's ``nn-graph`` layout).

    Only TorchScript is looked for: a torch.export program is unpickled when loaded, so it must be named.
    """
    if path.is_dir():
        if (path / "model.pt").is_file():
            return path / "model.pt"
        hint = " (a model.pt2 there loads only when named: it is unpickled)" if (path / "model.pt2").exists() else ""
        fail(ErrorCode.NOT_FOUND, f"directory {path} holds no model.pt{hint}")
    if not path.is_file():
        fail(ErrorCode.NOT_FOUND, f"model file {path} does not exist")
    return path


def load_path(path: Path, device: str, name: str, max_bytes: int, suffix: str | None = None) -> TorchGraph:
    """A graph from a host file (:func:`model_file`): ``.pt2`` is torch.export; anything else only TorchScript.

    ``suffix`` is that of the name the user gave, where ``path`` is what it resolved to: a link named ``.pt``
    that leads to a ``.pt2`` file is still only read as TorchScript.
    """
    suffix = path.suffix if suffix is None else suffix
    size = os.path.getsize(path)
    if size > max_bytes:
        fail(ErrorCode.TOO_LARGE, f"model file {path} is {size} bytes, over the limit of {max_bytes}")
    kind = archive_kind(path, max_bytes)
    if kind == PICKLE:
        _refuse_pickle(str(path))
    if kind == EXPORT and suffix != ".pt2":
        fail(
            ErrorCode.INVALID_ENCODING,
            f"{path} is a torch.export program named {suffix or 'without a suffix'}; it loads only from a "
            "file named .pt2 (torch.export.load unpickles, so it is never read from a TorchScript name)",
        )
    if kind == TORCHSCRIPT and suffix == ".pt2":
        fail(ErrorCode.INVALID_ENCODING, f"{path} is named .pt2 but holds TorchScript: name it .pt")
    import torch

    try:
        if kind == EXPORT:
            return from_exported(torch.export.load(str(path)), device, name, source=str(path))
        module = torch.jit.load(str(path), map_location=device)  # type: ignore[no-untyped-call]
    except WasiNNError:
        raise
    except Exception as exc:
        raise WasiNNError(ErrorCode.INVALID_ENCODING, f"{path} could not be loaded as {kind}: {exc}") from exc
    return TorchGraph(name, module, device, kind=TORCHSCRIPT, source=str(path))


def from_exported(program: Any, device: str, name: str, source: str | None = None) -> TorchGraph:
    import torch
    import torch.export.passes  # a submodule `import torch` does not load

    if device != "cpu":
        program = torch.export.passes.move_to_device_pass(program, device)
    sig = program.graph_signature
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    inputs = []
    for spec in sig.input_specs:
        if spec.kind == torch.export.graph_signature.InputKind.USER_INPUT:
            val = placeholders[spec.arg.name].meta.get("val") if spec.arg.name in placeholders else None
            inputs.append(_tensor_info(spec.arg.name, val))
    return TorchGraph(name, program.module(), device, kind=EXPORT, source=source, inputs=inputs)


def from_object(obj: Any, device: str, name: str) -> TorchGraph:
    """A graph from a live object: an ExportedProgram, a ScriptModule or an nn.Module (never modified in place)."""
    import torch

    if isinstance(obj, torch.export.ExportedProgram):
        return from_exported(obj, device, name, source="ExportedProgram object")
    if not isinstance(obj, torch.nn.Module):
        fail(ErrorCode.INVALID_ARGUMENT, f"{type(obj).__name__} is not an nn.Module, ScriptModule or ExportedProgram")
    kind = TORCHSCRIPT if isinstance(obj, torch.jit.ScriptModule) else "nn.Module"
    module = obj
    if _module_device(obj) not in (None, torch.device(device).type):
        module = copy.deepcopy(obj).to(device)
    return TorchGraph(name, module, device, kind=kind, source=f"{type(obj).__name__} object")


def _module_device(module: torch.nn.Module) -> str | None:
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device.type
    return None


def _tensor_info(name: str, val: Any) -> TensorInfo:
    if val is None or not hasattr(val, "shape"):
        return TensorInfo(name)
    try:
        type_name: str | None = type_of_torch(val.dtype).name
    except WasiNNError:
        type_name = str(val.dtype)
    dims = [int(d) if isinstance(d, int) else None for d in val.shape]
    return TensorInfo(name, type_name, dims)


def _signature_inputs(module: Any) -> list[TensorInfo] | None:
    import torch

    if isinstance(module, torch.jit.ScriptModule):
        try:
            args = module.forward.schema.arguments[1:]  # type: ignore[attr-defined]
        except (AttributeError, RuntimeError):
            return None
        return [TensorInfo(a.name) for a in args]
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return None
    return [TensorInfo(p.name) for p in params if p.default is p.empty]


class TorchGraph(Graph):
    def __init__(
        self,
        name: str,
        module: Any,
        device: str,
        kind: str,
        source: str | None = None,
        inputs: list[TensorInfo] | None = None,
    ) -> None:
        self.name = name
        self.module = module
        self.device = device
        self.kind = kind
        self.source = source
        self._inputs = inputs if inputs is not None else _signature_inputs(module)
        self._input_names = [t.name for t in self._inputs] if self._inputs is not None else None
        self._weights: tuple[int, list[str]] | None = None  # parameter count and dtypes, read once

    def input_names(self) -> list[str] | None:
        return self._input_names

    def run(self, inputs: list[Tensor]) -> list[Tensor] | dict[str, Tensor]:
        import torch

        if self._input_names is not None and len(inputs) != len(self._input_names):
            fail(
                ErrorCode.INVALID_ARGUMENT,
                f"graph {self.name!r} takes {len(self._input_names)} input(s) "
                f"({', '.join(self._input_names)}), got {len(inputs)}",
            )
        args = [t.to_torch(self.device) for t in inputs]
        try:
            with torch.inference_mode():
                result = self.module(*args)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()  # hand the cached blocks back, so the device stays usable after this error
            raise
        if isinstance(result, dict):
            return {str(k): _as_tensor(v, str(k)) for k, v in result.items()}
        if isinstance(result, (tuple, list)):
            return [_as_tensor(v, f"output {i}") for i, v in enumerate(result)]
        return [_as_tensor(result, "output")]

    def held_bytes(self) -> int:
        tensors = [*self.module.parameters(), *self.module.buffers()] if hasattr(self.module, "parameters") else []
        return sum(int(t.numel()) * t.element_size() for t in tensors)

    def weights(self) -> tuple[int, list[str]]:
        """The number of parameters and their dtypes (an export program's module holds them as a module does)."""
        if self._weights is None:
            params = list(self.module.parameters()) if hasattr(self.module, "parameters") else []
            count = sum(int(p.numel()) for p in params)
            self._weights = count, sorted({str(p.dtype).removeprefix("torch.") for p in params})
        return self._weights

    def info(self) -> GraphInfo:
        module = self.module
        parameters, dtypes = self.weights()
        notes = []
        if getattr(module, "training", False) and self.kind == "nn.Module":
            notes.append("module is in training mode: call .eval() on it for inference behaviour")
        return GraphInfo(
            name=self.name,
            kind=self.kind,
            device=self.device,
            inputs=self._inputs,
            outputs=None,
            parameters=parameters,
            dtypes=list(dtypes),
            source=self.source,
            notes=notes,
        )


def _as_tensor(value: Any, what: str) -> Tensor:
    import torch

    if not isinstance(value, torch.Tensor):
        fail(ErrorCode.RUNTIME_ERROR, f"model returned {type(value).__name__} as {what}; outputs must be tensors")
    return Tensor(tuple(value.shape), type_of_torch(value.dtype), value)


class TorchBackend(Backend):
    """TorchScript from bytes and files, torch.export programs from files named .pt2, live modules and programs."""

    name = "pytorch"
    reads_bytes = True

    def from_bytes(self, data: bytes, device: str, name: str, max_bytes: int) -> Graph:
        return load_bytes(data, device, name, max_bytes)

    def model_file(self, path: Path) -> Path:
        return model_file(path)

    def from_path(self, path: Path, device: str, name: str, max_bytes: int, suffix: str | None = None) -> Graph:
        return load_path(path, device, name, max_bytes, suffix=suffix)

    def from_object(self, obj: Any, device: str, name: str) -> Graph:
        return from_object(obj, device, name)
