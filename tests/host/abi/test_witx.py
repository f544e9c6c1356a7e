"""The witx ABI through a real wasmtime guest: layouts, every tensor type, and an errno for every bad input."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from wasinn_jupyter.host import Host
from wasinn_jupyter.host.abi.dialect import WASMEDGE_ONLY_IMPORTS
from wasinn_jupyter.host.abi.witx import MODULE, SIGNATURES
from wasinn_jupyter.host.errors import Dialect, ErrorCode
from wasinn_jupyter.host.tensors import TENSOR_TYPES

INVALID_ARGUMENT, INVALID_ENCODING, UNSUPPORTED, TOO_LARGE, NOT_FOUND, MODEL_NOT_FOUND = 1, 2, 6, 7, 8, 103
OUT = 4096  # output buffer
WRITTEN = 60


def roundtrip(abi, ctx: int, dims: list[int], type_code: int, data: bytes, padding: bytes = b"\0\0\0") -> bytes:
    assert abi.call("set_input", ctx, 0, abi.tensor(1024, dims, type_code, data, padding)) == 0, (
        abi.guest.client.last_error
    )
    assert abi.call("compute", ctx) == 0
    assert abi.call("get_output", ctx, 0, OUT, 8192, WRITTEN) == 0, abi.guest.client.last_error
    return abi.read(OUT, abi.u32(WRITTEN))


@pytest.mark.parametrize("ttype", [t for t in TENSOR_TYPES if t.witx is not None], ids=str)
def test_every_witx_type_round_trips_through_echo(abi, rng, ttype) -> None:
    ctx = abi.open_echo()
    data = rng.integers(0, 256, size=2 * 3 * ttype.itemsize, dtype=np.uint8).tobytes()
    assert roundtrip(abi, ctx, [2, 3], ttype.witx, data) == data


def test_padding_garbage_after_the_type_byte_is_ignored(abi) -> None:
    ctx = abi.open_echo()
    data = np.arange(4, dtype=np.float32).tobytes()
    assert roundtrip(abi, ctx, [4], 1, data, padding=b"\xde\xad\xbe") == data


def test_rank_zero_and_zero_sized_dims(abi) -> None:
    ctx = abi.open_echo()
    assert roundtrip(abi, ctx, [], 5, struct.pack("<q", -7)) == struct.pack("<q", -7)
    assert roundtrip(abi, ctx, [2, 0, 3], 1, b"") == b""


def test_several_inputs_come_back_in_order(abi) -> None:
    ctx = abi.open_echo()
    blobs = [b"\x01" * 3, np.arange(5, dtype=np.int64).tobytes()]
    abi.call("set_input", ctx, 0, abi.tensor(1024, [3], 3, blobs[0]))
    abi.call("set_input", ctx, 1, abi.tensor(2048, [5], 5, blobs[1]))
    assert abi.call("compute", ctx) == 0
    for i, blob in enumerate(blobs):
        assert abi.call("get_output", ctx, i, OUT, 512, WRITTEN) == 0
        assert abi.read(OUT, abi.u32(WRITTEN)) == blob


def test_input_is_copied_at_set_input(abi) -> None:
    """A guest that reuses its buffer after set_input must not change what it already handed over."""
    ctx = abi.open_echo()
    abi.call("set_input", ctx, 0, abi.tensor(1024, [4], 3, b"abcd"))
    abi.write(1024 + 128, b"wxyz")
    abi.call("set_input", ctx, 1, abi.tensor(1024, [4], 3, b"wxyz"))
    abi.call("compute", ctx)
    abi.call("get_output", ctx, 0, OUT, 4, WRITTEN)
    assert abi.read(OUT, 4) == b"abcd"


def test_short_output_buffer_reports_the_size_needed(abi) -> None:
    ctx = abi.open_echo()
    abi.call("set_input", ctx, 0, abi.tensor(1024, [10], 1, bytes(40)))
    abi.call("compute", ctx)
    assert abi.call("get_output", ctx, 0, OUT, 39, WRITTEN) == TOO_LARGE
    assert abi.u32(WRITTEN) == 40
    assert "bytes_written" in abi.guest.client.last_error
    assert abi.call("get_output", ctx, 0, OUT, abi.u32(WRITTEN), WRITTEN) == 0


def test_views_survive_memory_growth(abi) -> None:
    ctx = abi.open_echo()
    before = abi.size
    assert abi.call("grow", 64) >= 0
    assert abi.size > before
    far = abi.size - 4096  # only addressable after the growth
    abi.call("set_input", ctx, 0, abi.tensor(far - 1024, [8], 3, b"12345678"))
    abi.call("compute", ctx)
    assert abi.call("get_output", ctx, 0, far, 8, WRITTEN) == 0
    assert abi.read(far, 8) == b"12345678"


@pytest.mark.parametrize(
    "what",
    ["struct past end", "struct straddles end", "dims past end", "data past end", "data len near 4 GiB", "negative"],
)
def test_wild_pointers_are_invalid_argument(abi, what) -> None:
    ctx = abi.open_echo()
    end = abi.size
    tensor = abi.tensor(1024, [4], 3, b"abcd")
    if what == "struct past end":
        tensor = end
    elif what == "struct straddles end":
        tensor = end - 10
    elif what == "dims past end":
        abi.write(1024, struct.pack("<I", end - 2))
    elif what == "data past end":
        abi.write(1024 + 12, struct.pack("<I", end))
    elif what == "data len near 4 GiB":
        abi.write(1024 + 16, struct.pack("<I", 0xFFFFFFF0))
    else:
        tensor = 0xFFFFFFF0
    assert abi.call("set_input", ctx, 0, tensor) == INVALID_ARGUMENT
    assert "linear memory" in abi.guest.client.last_error
    assert roundtrip(abi, ctx, [2], 3, b"ok") == b"ok"  # the guest goes on


def test_wild_out_pointers_are_invalid_argument(abi) -> None:
    end = abi.size
    ptr, length = abi.name(0, "echo")
    assert abi.call("load_by_name", ptr, length, end - 2) == INVALID_ARGUMENT
    assert abi.call("load_by_name", ptr, 0xFFFFFFFF, 64) == INVALID_ARGUMENT
    ctx = abi.open_echo()
    abi.call("set_input", ctx, 0, abi.tensor(1024, [4], 3, b"abcd"))
    abi.call("compute", ctx)
    assert abi.call("get_output", ctx, 0, end - 2, 4, WRITTEN) == INVALID_ARGUMENT
    assert abi.call("get_output", ctx, 0, OUT, 4, end) == INVALID_ARGUMENT
    assert abi.call("init_execution_context", abi.u32(64), 0xFFFFFFFC) == INVALID_ARGUMENT


def test_dims_that_disagree_with_data_length(abi) -> None:
    ctx = abi.open_echo()
    assert abi.call("set_input", ctx, 0, abi.tensor(1024, [2, 3], 1, bytes(20))) == INVALID_ARGUMENT
    assert "need 24 bytes" in abi.guest.client.last_error
    # a product that overflows 32 bits must not wrap around to a small number
    assert abi.call("set_input", ctx, 0, abi.tensor(1024, [65536, 65536, 1], 3, b"")) == INVALID_ARGUMENT


def test_unknown_type_and_oversized_rank(abi) -> None:
    ctx = abi.open_echo()
    assert abi.call("set_input", ctx, 0, abi.tensor(1024, [1], 6, b"\0\0")) == INVALID_ARGUMENT
    assert "unknown tensor type 6" in abi.guest.client.last_error
    assert abi.call("set_input", ctx, 0, abi.tensor(1024, [1] * 17, 3, b"\0")) == INVALID_ARGUMENT


def test_bad_and_stale_handles(abi) -> None:
    assert abi.call("init_execution_context", 7, 64) == INVALID_ARGUMENT
    assert abi.call("compute", 0xFFFFFFFF) == INVALID_ARGUMENT
    assert abi.call("set_input", 3, 0, 1024) == INVALID_ARGUMENT
    ctx = abi.open_echo()
    assert abi.call("finalize_execution_context", ctx) == 0
    assert abi.call("compute", ctx) == INVALID_ARGUMENT
    assert "already freed" in abi.guest.client.last_error
    graph = abi.u32(64)
    assert abi.call("unload", graph) == 0
    assert abi.call("init_execution_context", graph, 68) == INVALID_ARGUMENT


def test_output_before_compute_and_out_of_range_index(abi) -> None:
    ctx = abi.open_echo()
    assert abi.call("get_output", ctx, 0, OUT, 64, WRITTEN) == INVALID_ARGUMENT
    assert abi.call("compute", ctx) == INVALID_ARGUMENT  # no inputs
    abi.call("set_input", ctx, 1, abi.tensor(1024, [1], 3, b"x"))
    assert abi.call("compute", ctx) == INVALID_ARGUMENT  # index 0 missing
    abi.call("set_input", ctx, 0, abi.tensor(1024, [1], 3, b"x"))
    assert abi.call("compute", ctx) == 0
    assert abi.call("get_output", ctx, 2, OUT, 64, WRITTEN) == INVALID_ARGUMENT


def test_unknown_name_is_not_found_with_the_names_that_exist(abi) -> None:
    ptr, length = abi.name(0, "resnet")
    assert abi.call("load_by_name", ptr, length, 64) == NOT_FOUND
    assert "'resnet'" in abi.guest.client.last_error and "echo" in abi.guest.client.last_error


def test_wasmedge_guests_get_model_not_found(make_abi) -> None:
    """A guest importing a WasmEdge-only function is answered as WasmEdge would: 103 for an unknown name."""
    plain = {k: v for k, v in SIGNATURES.items() if k not in WASMEDGE_ONLY_IMPORTS}
    spec_guest = make_abi("auto", plain)
    edge_guest = make_abi("auto", SIGNATURES)
    assert (spec_guest.guest.dialect, edge_guest.guest.dialect) == (Dialect.SPEC, Dialect.WASMEDGE)
    for abi, expected in ((spec_guest, NOT_FOUND), (edge_guest, MODEL_NOT_FOUND)):
        ptr, length = abi.name(0, "llama")
        assert abi.call("load_by_name", ptr, length, 64) == expected
        # everything else is the same in both dialects
        assert abi.call("compute", 42) == INVALID_ARGUMENT
    forced = make_abi("spec", SIGNATURES)
    ptr, length = forced.name(0, "llama")
    assert forced.call("load_by_name", ptr, length, 64) == NOT_FOUND


def test_load_by_name_with_config(abi) -> None:
    ptr, length = abi.name(0, "echo")
    config = b'{"n_gpu_layers": 0}'
    abi.write(256, config)
    assert abi.call("load_by_name_with_config", ptr, length, 256, len(config), 64) == 0
    abi.write(256, b"{oops")
    assert abi.call("load_by_name_with_config", ptr, length, 256, 5, 64) == INVALID_ARGUMENT
    assert "not JSON" in abi.guest.client.last_error


def test_load_with_unsupported_encoding_names_the_supported_ones(abi) -> None:
    abi.write(256, b"notamodel")
    abi.write(512, struct.pack("<II", 256, 9))
    assert abi.call("load", 512, 1, 1, 0, 64) == INVALID_ENCODING  # onnx
    assert "pytorch, autodetect" in abi.guest.client.last_error
    assert abi.call("load", 512, 1, 99, 0, 64) == INVALID_ENCODING
    assert abi.call("load", 512, 1, 5, 0, 64) == INVALID_ENCODING  # autodetect: not an archive
    assert abi.call("load", 512, 1, 3, 7, 64) == INVALID_ARGUMENT  # target 7
    assert abi.call("load", 512, 2, 3, 0, 64) in (INVALID_ARGUMENT, INVALID_ENCODING)


def test_gpu_target_without_cuda_is_unsupported(abi, torchscript_identity) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    abi.write(8192, torchscript_identity)
    abi.write(512, struct.pack("<II", 8192, len(torchscript_identity)))
    assert abi.call("load", 512, 1, 3, 1, 64) == UNSUPPORTED
    assert "CUDA" in abi.guest.client.last_error
    assert abi.call("load", 512, 1, 3, 2, 64) == UNSUPPORTED  # tpu


def test_errors_are_recorded_on_the_timeline(abi, host: Host) -> None:
    abi.call("compute", 99)
    last = [r for r in host.timeline.records() if r.kind == "call"][-1]  # lifecycle events (a guest's run) follow
    assert (last.call, last.outcome) == ("compute", ErrorCode.INVALID_ARGUMENT.value)
    assert host.last_error and "compute" in host.last_error


def test_compute_streaming_functions_answer_unsupported(abi) -> None:
    ctx = abi.open_echo()
    assert abi.call("compute_single", ctx) == UNSUPPORTED
    assert abi.call("fini_single", ctx) == UNSUPPORTED


def test_two_guests_do_not_share_handles(make_abi) -> None:
    a, b = make_abi(), make_abi()
    ctx = a.open_echo()
    assert b.call("compute", ctx) == INVALID_ARGUMENT
    a.guest.close()
    assert len(a.guest.client.contexts) == 0


def test_a_guest_cannot_make_the_host_hold_unbounded_input_bytes(abi) -> None:
    """The same 64 KiB of guest memory handed over again and again, in ever new contexts, meets the budget."""
    abi.guest.client.budget.limit = 1 << 20
    ctx = abi.open_echo()
    data = bytes(65536)
    abi.tensor(1024, [65536], 3, data)
    results = []
    for _ in range(40):
        assert abi.call("init_execution_context", abi.u32(64), 68) == 0
        results.append(abi.call("set_input", abi.u32(68), 0, 1024))
    assert results[:16] == [0] * 16 and set(results[16:]) == {TOO_LARGE}
    assert abi.guest.client.budget.used == 1 << 20
    assert abi.call("set_input", ctx, 0, abi.tensor(1024, [1], 3, b"x")) == TOO_LARGE  # still full


def test_load_refuses_builders_over_the_model_limit_before_copying(abi) -> None:
    abi.guest.session.host.limits.max_model_bytes = 1000
    # 64 builders all pointing at the same 64 KiB: refused from the lengths alone
    abi.write(512, struct.pack("<II", 0, 65536) * 64)
    assert abi.call("load", 512, 64, 3, 0, 64) == TOO_LARGE


def test_a_host_bug_is_runtime_error_not_a_crash(host, make_abi) -> None:
    from wasinn_jupyter.host.backends.echo import EchoGraph

    class Buggy(EchoGraph):
        def input_names(self) -> list[str] | None:
            raise AttributeError("oops")

    host.register("buggy", Buggy("buggy"))
    abi = make_abi()
    ctx = abi.open_echo("buggy")
    assert abi.call("set_input", ctx, 0, abi.tensor(1024, [1], 3, b"x")) == 5
    assert "internal error in set_input: AttributeError: oops" in abi.guest.client.last_error
    assert [r for r in host.timeline.records() if r.kind == "call"][-1].outcome == ErrorCode.RUNTIME_ERROR.value
    assert roundtrip(abi, abi.open_echo(), [2], 3, b"ok") == b"ok"


@pytest.mark.parametrize("export", ['(func (export "memory"))', '(global (export "memory") i32 (i32.const 0))'])
def test_a_memory_export_that_is_not_a_memory_is_missing_memory(session, export) -> None:
    wat = f"""(module
      (import "{MODULE}" "load_by_name" (func $lbn (param i32 i32 i32) (result i32)))
      {export}
      (func (export "go") (result i32) (call $lbn (i32.const 0) (i32.const 4) (i32.const 8))))"""
    guest = session.instantiate(session.compile(wat))
    assert guest.call("go", watch=False) == 3  # missing_memory, not runtime_error
    assert "not a memory" in guest.client.last_error


def test_an_output_of_4_gib_or_more_saturates_bytes_written(host, make_abi) -> None:
    """A guest that retries with bytes_written as its buffer size must learn the output can never fit."""
    from wasinn_jupyter.host.backends.echo import EchoGraph
    from wasinn_jupyter.host.tensors import BY_NAME, Tensor

    class Huge(EchoGraph):
        def run(self, inputs):  # a 5 GiB output, described but never materialised: get_output refuses first
            return [Tensor((5 << 30,), BY_NAME["u8"], np.empty(0, np.uint8))]

    host.register("huge", Huge("huge"))
    abi = make_abi()
    abi.guest.client.budget.limit = 1 << 40
    ctx = abi.open_echo("huge")
    assert abi.call("set_input", ctx, 0, abi.tensor(1024, [1], 3, b"x")) == 0
    assert abi.call("compute", ctx) == 0
    assert abi.call("get_output", ctx, 0, OUT, 8192, WRITTEN) == TOO_LARGE
    assert abi.u32(WRITTEN) == 0xFFFFFFFF


def test_a_deeply_nested_config_is_invalid_argument(abi) -> None:
    ptr, length = abi.name(0, "echo")
    config = b"[" * 100_000 + b"]" * 100_000
    abi.guest.call("grow", 4, watch=False)
    abi.write(65536, config)
    assert abi.call("load_by_name_with_config", ptr, length, 65536, len(config), 64) == INVALID_ARGUMENT
    assert "nested" in abi.guest.client.last_error
