"""The PyTorch backend: TorchScript, torch.export programs and live ``nn.Module`` objects.

Loading rules, from the threat model: bytes that come from a guest are only ever read by the TorchScript loader
(its archive holds code for the TorchScript interpreter, not Python pickles of arbitrary objects), and only inside
the sandbox worker. torch.export archives (.pt2) are unpickled by ``torch.export.load``, so they load only from a
file the user names with the ``.pt2`` suffix: never from guest bytes, never from a file named ``.pt`` (which is
only ever read as TorchScript), never found implicitly in a directory (which offers ``model.pt`` only). Plain
``torch.save`` pickles are refused everywhere.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import os
import struct
import threading
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ErrorCode, WasiNNError, fail
from ..tensors import Tensor, type_of_torch
from .base import (
    PRECISIONS,
    Backend,
    Graph,
    GraphInfo,
    ParameterInfo,
    PropertySpec,
    TensorInfo,
    out_of_host_memory,
)

if TYPE_CHECKING:
    import torch

# Archive kinds, as told by the names inside the zip.
TORCHSCRIPT = "torchscript"
EXPORT = "torch.export"
PICKLE = "torch.save pickle"


@contextlib.contextmanager
def quiet_torchscript() -> Iterator[None]:
    """Silence torch's TorchScript deprecation warnings (2.10+) around the calls we make on purpose: TorchScript is
    what other hosts' PyTorch guests send. Only these calls are quieted; a user's own ``torch.jit`` calls still warn.
    (``catch_warnings`` swaps the process's filter list, so a warning another thread raises at that very moment
    may be quieted too; these calls happen at load time and on property changes, not per compute.)"""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is (deprecated|not supported)")
        # deep-copying a loaded ScriptModule or an exported program's module touches .grad and pytree internals
        warnings.filterwarnings("ignore", message=r"The \.grad attribute of a Tensor that is not a leaf")
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
        yield


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
        with quiet_torchscript():
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
        with quiet_torchscript():
            module = torch.jit.load(str(path), map_location=device)  # type: ignore[no-untyped-call]
    except WasiNNError:
        raise
    except Exception as exc:
        raise WasiNNError(ErrorCode.INVALID_ENCODING, f"{path} could not be loaded as {kind}: {exc}") from exc
    return TorchGraph(name, module, device, kind=TORCHSCRIPT, source=str(path))


def from_exported(program: Any, device: str, name: str, source: str | None = None) -> TorchGraph:
    import torch
    import torch.export.passes  # a submodule `import torch` does not load

    original = program
    if device != "cpu":
        program = torch.export.passes.move_to_device_pass(program, device)
    sig = program.graph_signature
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    inputs = []
    for spec in sig.input_specs:
        if spec.kind == torch.export.graph_signature.InputKind.USER_INPUT:
            val = placeholders[spec.arg.name].meta.get("val") if spec.arg.name in placeholders else None
            inputs.append(_tensor_info(spec.arg.name, val))
    return TorchGraph(name, program.module(), device, kind=EXPORT, source=source, inputs=inputs, program=original)


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


# precision name -> torch dtype name; the first three are offered always, fp64 where a model was loaded so
RESIDENCES = ("memory", "device")


def _precision_of(module: Any) -> str | None:
    """The precision of a module's floating weights as loaded (None: it holds none)."""
    tensors = [*module.parameters(), *module.buffers()] if hasattr(module, "parameters") else []
    for tensor in tensors:
        if tensor.is_floating_point():
            name = str(tensor.dtype).removeprefix("torch.")
            return next((p for p, d in PRECISIONS.items() if d == name), None)
    return None


def cuda_devices() -> list[str]:
    """The CUDA devices a graph may move to, by torch's names (none without CUDA)."""
    from ..cuda import cuda_available

    if not cuda_available():
        return []
    import torch

    return [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def canonical_device(device: str) -> str:
    """``cuda`` and ``gpu`` name the first CUDA device; everything else as given (stripped)."""
    text = device.strip().lower()
    return "cuda:0" if text in ("cuda", "gpu") else text


class TorchGraph(Graph):
    """A torch module (TorchScript, an exported program's module, or a live nn.Module) and its properties.

    Properties (strings on the wire, wasi-nn PR 80), each applied from the next compute:

    - ``precision`` fp32|fp16|bf16 (and fp64 for a model loaded so): the weights are cast, from the module as
      loaded (so a round trip loses nothing), and so are floating-point inputs; floating-point outputs come back
      in the floating type of the guest's first floating input (else the loaded precision), so a guest's buffers
      and tensor types stay what they were whatever the precision. At the loaded precision nothing is cast.
      A model whose own code fixes a dtype may refuse another precision: its compute answers runtime_error.
    - ``device`` cpu|cuda:N (where present): the module moves (an exported program is moved by torch's
      ``move_to_device_pass``, which also rewrites device constants in its graph); inputs are copied out of a
      guest straight to it.
    - ``threads`` an int: torch's intra-op threads for this graph's computes (set around each compute and put
      back after; 0 follows the process-wide setting). torch's setting is per process, so a compute of another
      graph running at that very moment in another thread may run with it too.
    - ``residence`` memory|device: where outputs live between calls. ``memory`` (the default, the spec's model)
      brings a device's outputs to host memory once, right after compute, and frees the device memory;
      ``device`` keeps them on the graph's device, so ``get_output`` copies device-to-guest with no staging and
      ``set_input_from_output`` chains them into another context without a copy. On the CPU both are the same.
    """

    abilities = frozenset({"properties"})

    def __init__(
        self,
        name: str,
        module: Any,
        device: str,
        kind: str,
        source: str | None = None,
        inputs: list[TensorInfo] | None = None,
        program: Any = None,
    ) -> None:
        self.name = name
        self.module = module
        self.device = device
        self.kind = kind
        self.source = source
        self._inputs = inputs if inputs is not None else _signature_inputs(module)
        self._input_names = [t.name for t in self._inputs] if self._inputs is not None else None
        self._weights: tuple[int, list[str]] | None = None  # parameter count and dtypes, read once
        # as loaded: every derived module (another precision or device) is made from these
        self._loaded_module = module
        self._loaded_device = device
        self._program = program  # an ExportedProgram, moved with torch's pass on a device change
        self._loaded_precision = _precision_of(module)
        self.precision = self._loaded_precision or "fp32"
        self.threads = 0
        self.residence = "memory"
        self._lock = threading.Lock()  # a property change against the snapshot a compute takes

    def input_names(self) -> list[str] | None:
        return self._input_names

    # -- properties -----------------------------------------------------------------------------------------

    def describe_properties(self) -> dict[str, PropertySpec]:
        precisions: tuple[str, ...] = ("fp32", "fp16", "bf16")
        if self._loaded_precision is not None and self._loaded_precision not in precisions:
            precisions = (*precisions, self._loaded_precision)
        loaded = self._loaded_precision or "fp32"
        return {
            "precision": PropertySpec(
                "precision", self.precision, "choice", precisions,
                doc=f"weights and floating inputs cast to it (loaded: {loaded}); outputs keep the guest's type",
            ),
            "device": PropertySpec(
                "device", canonical_device(self.device), "choice", ("cpu", *cuda_devices()),
                doc="where the module runs; it moves at once and computes there from the next call",
            ),
            "threads": PropertySpec(
                "threads", str(self.threads), "int", minimum=0, maximum=float(os.cpu_count() or 1),
                doc="torch intra-op threads for this graph's computes (0: the process-wide setting)",
            ),
            "residence": PropertySpec(
                "residence", self.residence, "choice", RESIDENCES,
                doc="memory: outputs come to host memory after compute; device: they stay on the device",
            ),
        }  # fmt: skip

    def set_property(self, name: str, value: str) -> None:
        spec = self.property_spec(name)
        if name == "device":
            self._move(self._check_device(value), self.precision)
            return
        parsed = spec.parse(value)
        if name == "precision":
            self._move(self.device, str(parsed))
        elif name == "threads":
            self.threads = int(parsed)
        elif name == "residence":
            self.residence = str(parsed)

    def _check_device(self, value: str) -> str:
        device = canonical_device(value)
        if device == "cpu":
            return device
        present = cuda_devices()
        if device in present:
            return device
        have = f"CUDA devices here: {', '.join(present)}" if present else "this machine has no CUDA device"
        fail(ErrorCode.INVALID_ARGUMENT, f"device must be cpu or cuda:N; {value!r} is not available ({have})")

    def _move(self, device: str, precision: str) -> None:
        """Make the module for ``device`` and ``precision`` from the one as loaded, then swap it in."""
        loaded = self._loaded_precision or "fp32"
        same_device = canonical_device(device) == canonical_device(self._loaded_device)
        if same_device and precision == loaded:
            module = self._loaded_module
            device = self._loaded_device
        else:
            module = self._derive(device, None if precision == loaded else precision)
        with self._lock:
            self.module, self.device, self.precision = module, device, precision
            self._weights = None

    def _derive(self, device: str, precision: str | None) -> Any:
        import torch

        try:
            with quiet_torchscript():
                if self._program is not None:
                    import torch.export.passes

                    program = torch.export.passes.move_to_device_pass(self._program, device)
                    module = program.module()  # shares its weights with ``program``: copied below before a cast
                    if precision is not None:
                        module = copy.deepcopy(module)
                else:
                    module = copy.deepcopy(self._loaded_module).to(device)
                if precision is not None:
                    module = module.to(getattr(torch, PRECISIONS[precision]))
        except Exception as exc:
            if out_of_host_memory(exc) or isinstance(exc, torch.cuda.OutOfMemoryError):
                raise WasiNNError(ErrorCode.TOO_LARGE, f"graph {self.name!r}: no room for a copy on {device}") from exc
            raise WasiNNError(
                ErrorCode.RUNTIME_ERROR, f"graph {self.name!r} could not move to {device} {precision or ''}: {exc}"
            ) from exc
        return module

    def named_tensors(self) -> list[ParameterInfo]:
        module = self.module
        if not hasattr(module, "named_parameters"):
            return []
        found = [("parameter", n, t) for n, t in module.named_parameters()]
        found += [("buffer", n, t) for n, t in module.named_buffers()]
        return [
            ParameterInfo(name, kind, tuple(t.shape), str(t.dtype).removeprefix("torch."), str(t.device), t.numel())
            for kind, name, t in found
        ]

    # -- compute --------------------------------------------------------------------------------------------

    def run(self, inputs: list[Tensor]) -> list[Tensor] | dict[str, Tensor]:
        import torch

        if self._input_names is not None and len(inputs) != len(self._input_names):
            fail(
                ErrorCode.INVALID_ARGUMENT,
                f"graph {self.name!r} takes {len(self._input_names)} input(s) "
                f"({', '.join(self._input_names)}), got {len(inputs)}",
            )
        with self._lock:  # one consistent set of properties for this compute
            module, device, precision = self.module, self.device, self.precision
            threads, residence = self.threads, self.residence
        args = [t.to_torch(device) for t in inputs]
        cast = None if precision == (self._loaded_precision or "fp32") else getattr(torch, PRECISIONS[precision])
        back = None
        if cast is not None:
            floating = [a.dtype for a in args if a.is_floating_point()]
            back = floating[0] if floating else getattr(torch, PRECISIONS[self._loaded_precision or "fp32"])
            args = [a.to(cast) if a.is_floating_point() else a for a in args]
        before = torch.get_num_threads()
        try:
            if threads and threads != before:
                torch.set_num_threads(threads)
            with torch.inference_mode():
                result = module(*args)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()  # hand the cached blocks back, so the device stays usable after this error
            raise
        finally:
            if threads and threads != before:
                torch.set_num_threads(before)
        to_host = residence == "memory" and device != "cpu"

        def out(value: Any, what: str) -> Tensor:
            if isinstance(value, torch.Tensor):
                if back is not None and value.is_floating_point():
                    value = value.to(back)
                if to_host:
                    value = value.cpu()
            return _as_tensor(value, what)

        if isinstance(result, dict):
            return {str(k): out(v, str(k)) for k, v in result.items()}
        if isinstance(result, (tuple, list)):
            return [out(v, f"output {i}") for i, v in enumerate(result)]
        return [out(result, "output")]

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
        as_loaded = {
            "precision": self._loaded_precision or "fp32",
            "device": canonical_device(self._loaded_device),
            "threads": "0",
            "residence": "memory",
        }
        changed = [f"{k} {v.value}" for k, v in self.describe_properties().items() if v.value != as_loaded.get(k)]
        if changed:
            notes.append("properties set: " + ", ".join(changed))
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
