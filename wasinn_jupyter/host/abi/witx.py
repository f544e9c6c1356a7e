"""The legacy witx ABI, ``wasi_ephemeral_nn``, as WasmEdge, wasmtime and the Rust ``wasi-nn`` crate use it.

This module only translates: it reads arguments out of guest memory, calls the guest's :class:`Client`'s public
operations, writes results back and turns every failure into an errno. Arguments arrive as u32 (``rawfunc``). It
never touches torch and never lets an exception reach
wasmtime (an exception there would tear the guest down, and some wasmtime paths abort the process).

Layouts (wasi-nn-abi.md): the 20-byte tensor struct is read in ``layout.py``, shared with the compute convention;
a graph builder array is ``{u32 ptr, u32 len}`` pairs.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Any

from wasmtime import Linker

from ..encodings import Encoding, Target
from ..errors import SUCCESS, Dialect, ErrorCode, WasiNNError, fail, witx_errno
from ..host import Client
from ..tensors import Tensor, check_type_code
from .extensions import EXTENSION_CONTEXT_FIRST, EXTENSION_SIGNATURES, ExtensionCalls
from .layout import read_dims, read_tensor
from .memory import GuestMemory
from .rawfunc import define_u32_func

log = logging.getLogger(__name__)

MODULE = "wasi_ephemeral_nn"
BUILDER = struct.Struct("<II")
MAX_BUILDERS = 64
MAX_NAME = 4096

# Calls that never touch guest memory (no need to re-validate the view), and calls whose first argument is a
# context (the timeline records the graph's name for them).
NO_MEMORY = frozenset({"compute", "unload", "finalize_execution_context", "compute_single", "fini_single"})
CONTEXT_FIRST = frozenset(
    {
        "set_input",
        "compute",
        "get_output",
        "finalize_execution_context",
        "compute_single",
        "get_output_single",
        "fini_single",
    }
    | EXTENSION_CONTEXT_FIRST
)

# name -> number of i32 parameters (every function returns an i32 errno).
SIGNATURES: dict[str, int] = {
    "load": 5,
    "load_by_name": 3,
    "load_by_name_with_config": 5,
    "init_execution_context": 2,
    "set_input": 3,
    "compute": 1,
    "get_output": 5,
    "unload": 1,
    "finalize_execution_context": 1,
    "compute_single": 1,
    "get_output_single": 5,
    "fini_single": 1,
    **EXTENSION_SIGNATURES,  # wasinn-jupyter's phase-3 extensions (extensions.py; docs/abi/wasinn-extensions.md)
}


class WitxBinding(ExtensionCalls):
    """One guest's ``wasi_ephemeral_nn`` imports, bound to its Client and its memory."""

    def __init__(self, client: Client, dialect: Dialect = Dialect.SPEC) -> None:
        self.client = client
        self.dialect = dialect
        self.memory = GuestMemory()

    def define(self, linker: Linker) -> None:
        for name, arity in SIGNATURES.items():
            define_u32_func(linker, MODULE, name, arity, self._entry(name, getattr(self, name)))

    def _entry(self, call: str, handler: Callable[..., Any]) -> Callable[..., int]:
        client = self.client
        noted = call in CONTEXT_FIRST and call not in client.NOTES_OWN_CONTEXT and client.recording
        graph_of = client.graph_name if noted else None
        run = client.call
        if call in NO_MEMORY:

            def work(caller: Any, *args: int) -> None:
                handler(*args)

        else:
            refresh = self.memory.refresh

            def work(caller: Any, *args: int) -> None:
                refresh(caller)  # inside the recorded call: a guest without memory gets missing_memory, logged
                handler(*args)

        def entry(caller: Any, *args: int) -> int:
            try:
                run(call, graph_of(args[0]) if graph_of else None, work, caller, *args)
                return SUCCESS
            except WasiNNError as err:
                return witx_errno(err, self.dialect)
            except Exception:  # Client.call turns host bugs into runtime_error; this is the last line
                log.exception("wasi-nn %s failed inside the host", call)
                return witx_errno(WasiNNError(ErrorCode.RUNTIME_ERROR, f"internal error in {call}"))

        entry.__name__ = f"wasi_nn_{call}"
        return entry

    # -- the functions; each reads its arguments, does the work through the client, writes results ------------

    def load(self, builders_ptr: int, builders_len: int, encoding: int, target: int, out_graph: int) -> None:
        m = self.memory
        if builders_len > MAX_BUILDERS:
            fail(ErrorCode.INVALID_ARGUMENT, f"{builders_len} graph builders; at most {MAX_BUILDERS} are accepted")
        m.check_u32(out_graph, "load: graph out-pointer")
        enc = Encoding.from_witx(encoding)
        tgt = Target.from_witx(target)
        m.span(builders_ptr, builders_len * BUILDER.size, "load: graph builder array")
        spans = [m.unpack(BUILDER, builders_ptr + i * BUILDER.size, "load: graph builder") for i in range(builders_len)]
        # views of guest memory, valid during this call (a builder outside memory is a wild pointer): the client
        # checks the sizes and the budget before it copies
        builders = [m.span(ptr, length, f"load: graph builder {i}") for i, (ptr, length) in enumerate(spans)]
        m.write_u32(out_graph, self.client.load(builders, enc, tgt), "load: graph out-pointer")

    def load_by_name(self, name_ptr: int, name_len: int, out_graph: int) -> None:
        self.memory.check_u32(out_graph, "load_by_name: graph out-pointer")
        handle = self.client.load_by_name(self._text(name_ptr, name_len, MAX_NAME, "load_by_name"))
        self.memory.write_u32(out_graph, handle, "load_by_name: graph out-pointer")

    def load_by_name_with_config(
        self, name_ptr: int, name_len: int, config_ptr: int, config_len: int, out_graph: int
    ) -> None:
        m = self.memory
        m.check_u32(out_graph, "load_by_name_with_config: graph out-pointer")
        name = self._text(name_ptr, name_len, MAX_NAME, "load_by_name_with_config")
        if config_len > 1 << 20:
            fail(ErrorCode.INVALID_ARGUMENT, "load_by_name_with_config: config over 1 MiB")
        try:
            config = m.read_bytes(config_ptr, config_len, "load_by_name_with_config: config").decode("utf-8")
        except UnicodeDecodeError:
            fail(ErrorCode.INVALID_ARGUMENT, "load_by_name_with_config: the config is not UTF-8")
        handle = self.client.load_by_name(name, config)
        m.write_u32(out_graph, handle, "load_by_name_with_config: graph out-pointer")

    def init_execution_context(self, graph: int, out_ctx: int) -> None:
        self.memory.check_u32(out_ctx, "init_execution_context: context out-pointer")
        handle = self.client.init_execution_context(graph)
        self.memory.write_u32(out_ctx, handle, "init_execution_context: context out-pointer")

    def set_input(self, ctx: int, index: int, tensor_ptr: int) -> None:
        m = self.memory
        self.client.check_context(ctx)  # a bad handle is reported before a bad tensor
        tensor = read_tensor(m, tensor_ptr, "set_input: tensor")
        ttype = check_type_code(tensor.type_code)
        dims = read_dims(m, tensor, "set_input")
        data = m.span(tensor.data_ptr, tensor.data_len, "set_input: tensor data")
        self.client.set_input_bytes(ctx, index, dims, ttype, data)

    def compute(self, ctx: int) -> None:
        self.client.compute(ctx)

    def get_output(self, ctx: int, index: int, out_ptr: int, out_max: int, out_written: int) -> None:
        self.memory.check_u32(out_written, "get_output: bytes-written out-pointer")
        self._write_output("get_output", self.client.get_output(ctx, index), index, out_ptr, out_max, out_written)

    def _write_output(
        self, call: str, tensor: Tensor, index: int, out_ptr: int, out_max: int, out_written: int
    ) -> None:
        m = self.memory
        nbytes = tensor.nbytes
        if nbytes > out_max:
            # the size needed, saturated: an output of 4 GiB or more can never fit, and a guest that retries with
            # bytes_written as its buffer size must not be told 0
            m.write_u32(out_written, min(nbytes, 0xFFFFFFFF), f"{call}: bytes-written out-pointer")
            fail(
                ErrorCode.TOO_LARGE,
                f"{call}: output {index} is {nbytes} bytes, the buffer {out_max}; "
                "the size needed is in bytes_written",
            )
        tensor.copy_into(m.span(out_ptr, nbytes, f"{call}: output buffer"))
        m.write_u32(out_written, nbytes, f"{call}: bytes-written out-pointer")

    def unload(self, graph: int) -> None:
        self.client.unload(graph)

    def finalize_execution_context(self, ctx: int) -> None:
        self.client.finalize_execution_context(ctx)

    # WasmEdge's token streaming: prompt graphs only (other contexts answer unsupported_operation); the end of a
    # reply is errno 100 (end_of_sequence) or 101 (context_full) from compute_single.
    def compute_single(self, ctx: int) -> None:
        self.client.compute_single(ctx)

    def get_output_single(self, ctx: int, index: int, out_ptr: int, out_max: int, out_written: int) -> None:
        self.memory.check_u32(out_written, "get_output_single: bytes-written out-pointer")
        tensor = self.client.get_output_single(ctx, index)
        self._write_output("get_output_single", tensor, index, out_ptr, out_max, out_written)

    def fini_single(self, ctx: int) -> None:
        self.client.fini_single(ctx)
