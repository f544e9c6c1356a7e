"""wasi:nn for Python guests, in a few lines: ``import nn`` in a ``%%wasinn guest NAME --lang python`` cell.

    import nn
    graph = nn.load_by_name("cnn")
    outputs = nn.compute(graph, {"x": nn.tensor([1, 3, 8, 8], "FP32", data)})   # {name: Tensor}
    print(outputs["output0"].data()[:16])

The full WIT bindings are ``wit_world.imports.{graph, tensor, inference, errors, prompt}``. A failed call raises
``nn.WasiNNError`` with the WIT error code and the host's message.
"""

from componentize_py_types import Err
from wit_world.imports import errors, graph, inference, prompt, tensor

__all__ = ["Tensor", "TensorType", "WasiNNError", "ask", "compute", "errors", "graph", "inference", "load_by_name"]

Tensor = tensor.Tensor
TensorType = tensor.TensorType


class WasiNNError(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _unwrap(exc):
    err = exc.value
    if isinstance(err, errors.Error):
        return WasiNNError(err.code().name.lower().replace("_", "-"), err.data())
    return WasiNNError("error", str(err))


def tensor(dims, ty, data):
    """A tensor: dims (list of ints), a type name ("FP32", "U8", ...) or TensorType, and its bytes."""
    kind = ty if isinstance(ty, TensorType) else TensorType[ty.upper()]
    return Tensor(list(dims), kind, bytes(data))


def load_by_name(name):
    try:
        return graph.load_by_name(name)
    except Err as exc:
        raise _unwrap(exc) from None


def compute(g, inputs):
    """One inference over named tensors: {name: Tensor} in, {name: Tensor} out."""
    try:
        ctx = g.init_execution_context()
        return dict(ctx.compute(list(inputs.items())))
    except Err as exc:
        raise _unwrap(exc) from None


def ask(g, text):
    """A language model's reply to ``text`` (the prompt proposal, wasi-nn PR 79)."""
    try:
        return prompt.init(g).compute(text)
    except Err as exc:
        raise WasiNNError("error", str(exc.value)) from None
