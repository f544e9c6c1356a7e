"""What a backend implements: how graphs of its encodings are loaded, and a Graph that runs tensors to tensors.

Backends never see guest memory or handles. A :class:`Backend` loads graphs from bytes, from a path or from a
Python object, for the encodings it is registered under (``backends/__init__.py`` keeps the table); a loader it
does not have answers ``unsupported_operation``. Optional abilities of a graph (streaming, properties) are
discovered with :meth:`Graph.supports`, never assumed. The execution context (inputs set one by one, outputs read
one by one, or everything in one named call) is the same for every backend, so it lives here once.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ErrorCode, WasiNNError, fail
from ..handles import ByteBudget
from ..tensors import Tensor, TensorType

log = logging.getLogger(__name__)

# A graph accepts at most this many positional inputs; it bounds what a hostile index can make the host allocate.
MAX_INPUTS = 1024


@dataclass
class TensorInfo:
    name: str
    type: str | None = None
    dims: list[int | None] | None = None


PROPERTY_KINDS = ("choice", "int", "float", "bool", "text")


# The "precision" property's values (wasi-nn PR 80's parameters by name) -> torch dtype names; one table for every
# backend (a backend offers those its models can run in).
PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "fp64": "float64"}


@dataclass(frozen=True)
class PropertySpec:
    """One graph property (wasi-nn PR 80): its current value as the wire carries it (a string), and how a front-end
    should offer it. ``kind`` is one of :data:`PROPERTY_KINDS`; ``choices`` for "choice", bounds for "int"/"float"."""

    name: str
    value: str | None
    kind: str
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    doc: str = ""

    def parse(self, value: str) -> str | int | float | bool:
        """``value`` checked against this spec and converted (invalid_argument, naming what is accepted)."""
        text = value.strip()
        if self.kind == "choice":
            if self.choices is not None and text not in self.choices:
                fail(ErrorCode.INVALID_ARGUMENT, f"{self.name} must be one of {', '.join(self.choices)}; got {value!r}")
            return text
        if self.kind == "bool":
            lowered = text.lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            fail(ErrorCode.INVALID_ARGUMENT, f"{self.name} must be true or false; got {value!r}")
        if self.kind in ("int", "float"):
            try:
                number: int | float = int(text) if self.kind == "int" else float(text)
            except ValueError:
                what = "an integer" if self.kind == "int" else "a number"
                fail(ErrorCode.INVALID_ARGUMENT, f"{self.name} must be {what}; got {value!r}")
            below = self.minimum is not None and number < self.minimum
            above = self.maximum is not None and number > self.maximum
            if number != number or below or above:  # NaN compares false with every bound
                low = "-inf" if self.minimum is None else f"{self.minimum:g}"
                high = "inf" if self.maximum is None else f"{self.maximum:g}"
                fail(ErrorCode.INVALID_ARGUMENT, f"{self.name} must lie in [{low}, {high}]; got {value!r}")
            return number
        return value


@dataclass(frozen=True)
class ParameterInfo:
    """One named tensor a graph holds (a weight or a buffer), for inspection; nothing is copied to describe it."""

    name: str
    kind: str  # "parameter" | "buffer"
    shape: tuple[int, ...]
    dtype: str
    device: str
    numel: int


@dataclass
class GraphInfo:
    """What is known about a graph, for `info` commands and widgets (unknown parts are None)."""

    name: str
    kind: str
    device: str
    inputs: list[TensorInfo] | None = None
    outputs: list[TensorInfo] | None = None
    parameters: int | None = None
    dtypes: list[str] = field(default_factory=list)
    source: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


class Graph(ABC):
    """A loaded model. Thread-safe for ``run``: several contexts (and guests) may share one graph."""

    name: str
    device: str
    abilities: frozenset[str] = frozenset()  # optional abilities this graph has: "streaming", "properties", ...

    @property
    def input_device(self) -> str:
        """Where its inputs should be copied out of a guest (its device; host memory for a graph elsewhere)."""
        return self.device

    def supports(self, ability: str) -> bool:
        return ability in self.abilities

    def held_bytes(self) -> int:
        """Bytes its weights hold in host memory, where known (what a guest that loaded it is charged)."""
        return 0

    def configure(self, config: dict[str, Any]) -> Graph:
        """The graph a guest gets from ``load_by_name_with_config``: WasmEdge's JSON object reaches the backend.

        The default uses no settings (guests built for WasmEdge send ones meant for its GGML backend): it logs the
        keys and shares the graph unchanged. A backend with settings returns a configured graph.
        """
        if config:
            log.info("graph %s: config keys %s are not used by %s", self.name, sorted(config), type(self).__name__)
        return self

    @abstractmethod
    def run(self, inputs: list[Tensor]) -> list[Tensor] | dict[str, Tensor]:
        """Compute outputs from inputs (a dict names them); raise WasiNNError, or anything: it becomes runtime_error."""

    @abstractmethod
    def info(self) -> GraphInfo: ...

    def input_names(self) -> list[str] | None:
        """Names of the positional inputs, where the model declares them (cheap: called on every set_input)."""
        return None

    # -- properties ("parameters by name", wasi-nn PR 80); values are strings on the wire ----------------------

    def describe_properties(self) -> dict[str, PropertySpec]:
        """Every property with its current value and how to offer it (default: none)."""
        return {}

    def list_properties(self) -> list[str]:
        return list(self.describe_properties())

    def get_property(self, name: str) -> str | None:
        """The current value, or None for a property this graph does not have."""
        spec = self.describe_properties().get(name)
        return None if spec is None else spec.value

    def set_property(self, name: str, value: str) -> None:
        """Change a property for the next compute; invalid_argument (with the reason) for a bad name or value."""
        self.property_spec(name)
        fail(ErrorCode.INVALID_ARGUMENT, f"property {name!r} of graph {self.name!r} is read-only")

    def property_spec(self, name: str) -> PropertySpec:
        """The spec of ``name``, or invalid_argument naming the properties there are."""
        specs = self.describe_properties()
        spec = specs.get(name)
        if spec is None:
            have = ", ".join(specs) or "none"
            fail(ErrorCode.INVALID_ARGUMENT, f"graph {self.name!r} has no property {name!r} (it has: {have})")
        return spec

    def named_tensors(self) -> list[ParameterInfo]:
        """The weights and buffers it holds, by name (default: none known)."""
        return []

    def init_execution_context(self, budget: ByteBudget | None = None) -> ExecutionContext:
        return ExecutionContext(self, budget)

    def free(self) -> None:  # noqa: B027 - optional: most graphs hold nothing outside themselves
        """The guest that loaded this graph let go of it (a sandboxed graph tells its worker; others do nothing)."""


def out_of_host_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed host allocation (torch's CPU allocator words it so; a budget's rlimit does it)."""
    text = str(exc)
    return isinstance(exc, MemoryError) or "can't allocate memory" in text or "std::bad_alloc" in text


def model_error(exc: BaseException) -> str:
    """What a model's failure says, first: TorchScript puts ~40 lines of its interpreter's trace before the error
    itself, so its last line leads and the model's own source location follows."""
    text = str(exc).strip()
    if "Traceback of TorchScript" not in text:
        return f"{type(exc).__name__}: {text}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    where = [line for line in lines if line.startswith('File "')]
    return f"{lines[-1]} (model code: {where[-1]})" if where else lines[-1]


class Backend:
    """Loads graphs of the encodings it is registered under. A loader left out answers unsupported_operation."""

    name: str = "backend"
    reads_bytes: bool = False  # has from_bytes: guests may `load` this encoding (in the sandbox worker)

    def from_bytes(self, data: bytes, device: str, name: str, max_bytes: int) -> Graph:
        """A graph from a guest's bytes (``load``): untrusted, so the host calls this only inside its sandbox."""
        fail(ErrorCode.UNSUPPORTED_OPERATION, f"the {self.name} backend loads no graphs from bytes")

    def model_file(self, path: Path) -> Path:
        """The file a user's path names (a directory may stand for a file in it)."""
        return path

    def from_path(self, path: Path, device: str, name: str, max_bytes: int, suffix: str | None = None) -> Graph:
        """A graph from a file the user named; ``suffix`` is that of the name given, before symlinks."""
        fail(ErrorCode.UNSUPPORTED_OPERATION, f"the {self.name} backend loads no graphs from files")

    def from_object(self, obj: Any, device: str, name: str) -> Graph:
        """A graph from a live Python object the user holds."""
        fail(ErrorCode.UNSUPPORTED_OPERATION, f"the {self.name} backend loads no graphs from Python objects")


class ExecutionContext:
    """Inputs by index, one compute, outputs by index: the witx call sequence, backend-independent."""

    # Tokens the last compute produced: a prompt graph's context sets it; the timeline records it (tokens/s).
    tokens: int | None = None

    def __init__(self, graph: Graph, budget: ByteBudget | None = None) -> None:
        self.graph = graph
        self.budget = budget or ByteBudget(1 << 62)
        self.inputs: dict[int, Tensor] = {}
        self.outputs: list[Tensor] | None = None
        self.output_names: list[str] | None = None
        self._output_bytes = 0  # charged on their own: an output may alias an input that is replaced later
        self._busy = threading.Lock()

    def set_input_bytes(self, index: int, dims: tuple[int, ...], ttype: TensorType, data: Any) -> None:
        """An input from raw bytes (a view of guest memory, say): admitted before the one copy, onto the device."""
        self.admit(index, len(data))  # a refused input costs the host nothing
        self.store_input(index, Tensor.from_guest(dims, ttype, data, self.graph.input_device))

    def admit(self, index: int, nbytes: int) -> None:
        """Fail before the caller copies ``nbytes`` for input ``index`` if it could not be set."""
        if not 0 <= index < MAX_INPUTS:
            fail(ErrorCode.INVALID_ARGUMENT, f"input index {index} is out of range (0..{MAX_INPUTS - 1})")
        names = self.graph.input_names()
        if names is not None and index >= len(names):
            fail(
                ErrorCode.INVALID_ARGUMENT,
                f"graph {self.graph.name!r} takes {len(names)} input(s) ({', '.join(names)}); "
                f"index {index} is past them",
            )
        old = self.inputs.get(index)
        self.budget.check(nbytes - (old.nbytes if old is not None else 0))

    def set_input(self, index: int, tensor: Tensor) -> None:
        self.admit(index, tensor.nbytes)
        self.store_input(index, tensor)

    def store_input(self, index: int, tensor: Tensor) -> None:
        """Keep an input that :meth:`admit` accepted (the ABI admits before it copies out of the guest)."""
        old = self.inputs.get(index)
        self.budget.charge(tensor.nbytes - (old.nbytes if old is not None else 0))
        self.inputs[index] = tensor

    def compute(self) -> None:
        count = len(self.inputs)
        missing = [i for i in range(count) if i not in self.inputs]
        if missing or not count:
            fail(ErrorCode.INVALID_ARGUMENT, f"inputs must be set from index 0 up; missing {missing or [0]}")
        if not self._busy.acquire(blocking=False):
            fail(ErrorCode.BUSY, "this execution context is already computing")
        try:
            self._drop_outputs()  # first: the new outputs may need the room the old ones held
            result = self.graph.run([self.inputs[i] for i in range(count)])
        except WasiNNError:
            raise
        except Exception as exc:  # model code: any failure is the model's, reported with its message
            raise WasiNNError(ErrorCode.RUNTIME_ERROR, model_error(exc)) from exc
        finally:
            self._busy.release()
        outputs = list(result.values()) if isinstance(result, dict) else list(result)
        nbytes = sum(t.nbytes for t in outputs)
        self.budget.charge(nbytes)  # too_large: the outputs are dropped with ``result``
        self._output_bytes = nbytes
        self.output_names = list(result) if isinstance(result, dict) else None
        self.outputs = outputs

    def get_output(self, index: int) -> Tensor:
        if self.outputs is None:
            fail(ErrorCode.INVALID_ARGUMENT, "no outputs yet: call compute first")
        if not 0 <= index < len(self.outputs):
            fail(ErrorCode.INVALID_ARGUMENT, f"output index {index} is out of range (graph gave {len(self.outputs)})")
        return self.outputs[index]

    # WasmEdge's token streaming (compute_single / get_output_single / fini_single): only prompt graphs stream
    # (backends/lm.py); every other context answers unsupported_operation.
    def compute_single(self) -> None:
        fail(ErrorCode.UNSUPPORTED_OPERATION, "compute_single (token streaming) needs a prompt graph; this is not one")

    def get_output_single(self, index: int) -> Tensor:
        self.compute_single()
        raise AssertionError("unreachable")

    def fini_single(self) -> None:
        self.compute_single()

    def compute_named(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The phase-3 single call: named tensors in, named tensors out.

        A graph that declares its input names takes exactly those (in any order). One that declares none takes
        ``input0``, ``input1``... by position, or, with other names, the tensors in the order given (the echo
        graph then gives each output the name of its input).
        """
        names = self.graph.input_names()
        if names is None:
            ordered = list(inputs.values())
            positional = [f"input{i}" for i in range(len(inputs))]
            if set(inputs) == set(positional):
                ordered = [inputs[n] for n in positional]
        else:
            unknown = sorted(set(inputs) - set(names))
            missing = [n for n in names if n not in inputs]
            if unknown or missing:
                fail(
                    ErrorCode.INVALID_ARGUMENT,
                    f"graph {self.graph.name!r} takes inputs {names}; unknown {unknown}, missing {missing}",
                )
            ordered = [inputs[n] for n in names]
        self._drop_inputs()
        for index, tensor in enumerate(ordered):
            self.set_input(index, tensor)
        self.compute()
        assert self.outputs is not None
        if self.output_names is not None:
            out_names = self.output_names
        elif names is None and len(self.outputs) == len(inputs):
            out_names = list(inputs)  # a graph that declares no names (echo) keeps the caller's
        else:
            out_names = [f"output{i}" for i in range(len(self.outputs))]
        self.output_names = out_names[: len(self.outputs)]  # what named_outputs reads later
        return dict(zip(out_names, self.outputs, strict=False))

    def _drop_inputs(self) -> None:
        self.budget.charge(-sum(t.nbytes for t in self.inputs.values()))
        self.inputs.clear()

    def _drop_outputs(self) -> None:
        self.budget.charge(-self._output_bytes)
        self._output_bytes = 0
        self.outputs = self.output_names = None

    def close(self) -> None:
        self._drop_inputs()
        self._drop_outputs()
