"""The compute convention for components: ``wasinn:guest/compute`` (``wit/compute.wit``).

``%%wasinn compute GRAPH --guest NAME`` with a component guest: the host makes the inputs into tensor resources
of the guest's wasi:nn (named as the graph names its inputs, else ``input0``, ``input1``...), calls the guest's
``compute(graph, inputs)`` and takes back the tensors it returns. A guest that forwards them to wasi:nn's
``compute`` (the Python guests' default) sends them on without a copy through its memory.
"""

from __future__ import annotations

from collections.abc import Sequence

from wasmtime.component import ResourceAny

from ..abi.convention import ComputeError, Output
from ..session import Guest
from ..tensors import Tensor
from .linking import WitComponent

EXPORT = "wasinn:guest/compute#compute"


def compute_component(guest: Guest, graph: str, inputs: Sequence[Tensor], *, watch: bool | None = None) -> list[Output]:
    """Run ``graph`` on ``inputs`` through a component guest's ``wasinn:guest/compute`` export."""
    linking = guest._linking
    if not isinstance(linking, WitComponent) or guest.module.export(EXPORT) is None:
        raise ComputeError(f"guest {guest.label!r} exports no {EXPORT} (a component's compute convention)")
    info = guest.session.host.graphs().get(graph)
    declared = [t.name for t in info.inputs] if info is not None and info.inputs else []
    names = [declared[i] if i < len(declared) else f"input{i}" for i in range(len(inputs))]
    binding = linking.binding
    handles = [(name, binding._keep_tensor(tensor)) for name, tensor in zip(names, inputs, strict=True)]
    result = guest.call(EXPORT, graph, handles, watch=watch)
    if isinstance(result, str):
        raise ComputeError(f"{EXPORT} answered an error: {result} (host: {guest.client.last_error or 'no error'})")
    outputs = []
    for name, handle in result:
        rep = handle.to_host(guest.store).rep if isinstance(handle, ResourceAny) else None
        tensor = binding._release_tensor(rep) if rep is not None else None
        if not isinstance(tensor, Tensor):
            raise ComputeError(f"{EXPORT}: output {name!r} is not a tensor the host made")
        outputs.append(Output(name, tensor))
    return outputs
