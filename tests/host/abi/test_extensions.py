"""wasinn-jupyter's wasi_ephemeral_nn extensions through a real wasmtime guest: compute_named, properties and
set_input_from_output, with the layouts of docs/abi/wasinn-extensions.md and an errno for every bad input."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from wasinn_jupyter.host.abi.extensions import MAX_NAMED_TENSORS, NAMED_SIZE

INVALID_ARGUMENT, TOO_LARGE, NOT_FOUND = 1, 7, 8
ARRAY = 8192  # named tensor array
OUT = 32768  # output buffer
WRITTEN = 60


class TwoHeads(torch.nn.Module):
    def forward(self, image: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return image * 2 + bias, (image - bias).to(torch.int64)


class Half(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * 2).to(torch.bfloat16)


def named(abi, tensors: list[tuple[str, list[int], int, bytes]], at: int = ARRAY) -> tuple[int, int]:
    """Lay out named tensors at ``at`` (records) with names, dims and data after them; (ptr, count)."""
    free = at + NAMED_SIZE * len(tensors) + 64
    for i, (name, dims, code, data) in enumerate(tensors):
        raw = name.encode()
        name_at, dims_at = free, free + 256
        data_at = dims_at + 128
        abi.write(name_at, raw)
        abi.write(dims_at, struct.pack(f"<{len(dims)}I", *dims))
        abi.write(data_at, data)
        abi.write(at + i * NAMED_SIZE, struct.pack("<IIIIB3xII", name_at, len(raw), dims_at, len(dims), code,
                                                   data_at, len(data)))  # fmt: skip
        free = data_at + len(data) + 64
    return at, len(tensors)


def outputs(abi, at: int = OUT) -> dict[str, tuple[list[int], int, bytes]]:
    """Parse the named_tensors the host wrote at ``at`` (pointers are absolute and must lie inside it)."""
    size = abi.u32(WRITTEN)
    (count,) = struct.unpack("<I", abi.read(at, 4))
    found = {}
    for i in range(count):
        name_ptr, name_len, dims_ptr, rank, code, data_ptr, data_len = struct.unpack(
            "<IIIIB3xII", abi.read(at + 4 + i * NAMED_SIZE, NAMED_SIZE)
        )
        for ptr, length in ((name_ptr, name_len + 1), (dims_ptr, 4 * rank), (data_ptr, data_len)):
            assert at <= ptr and ptr + length <= at + size
        assert data_ptr % 16 == 0 and abi.read(name_ptr + name_len, 1) == b"\0"
        dims = list(struct.unpack(f"<{rank}I", abi.read(dims_ptr, 4 * rank)))
        found[abi.read(name_ptr, name_len).decode()] = (dims, code, abi.read(data_ptr, data_len))
    return found


def context(abi, name: str) -> int:
    ptr, length = abi.name(0, name)
    assert abi.call("load_by_name", ptr, length, 64) == 0, abi.guest.client.last_error
    assert abi.call("init_execution_context", abi.u32(64), 68) == 0
    return abi.u32(68)


@pytest.fixture
def heads(session) -> None:
    session.host.register("heads", TwoHeads())
    session.host.limits.guests_set_shared_properties = True  # these guests set the shared graph's properties


def test_compute_named_on_echo_gives_each_tensor_back_under_its_name(abi, rng) -> None:
    ctx = abi.open_echo()
    a = rng.standard_normal(6).astype(np.float32).tobytes()
    b = np.arange(3, dtype=np.int64).tobytes()
    ptr, n = named(abi, [("alpha", [2, 3], 1, a), ("β", [3], 5, b)])
    assert abi.call("compute_named", ctx, ptr, n, OUT, 4096, WRITTEN) == 0, abi.guest.client.last_error
    assert outputs(abi) == {"alpha": ([2, 3], 1, a), "β": ([3], 5, b)}
    record = [r for r in abi.guest.session.host.timeline.records() if r.call == "compute_named"][-1]
    assert (record.graph, record.outcome) == ("echo", "ok")


def test_compute_named_resolves_the_models_names_in_any_order(abi, heads) -> None:
    ctx = context(abi, "heads")
    image, bias = np.arange(4, dtype=np.float32), np.full(4, 0.5, np.float32)
    ptr, n = named(abi, [("bias", [4], 1, bias.tobytes()), ("image", [4], 1, image.tobytes())])
    assert abi.call("compute_named", ctx, ptr, n, OUT, 4096, WRITTEN) == 0, abi.guest.client.last_error
    got = outputs(abi)
    assert list(got) == ["output0", "output1"]
    assert got["output0"][:2] == ([4], 1) and got["output1"][:2] == ([4], 5)
    np.testing.assert_array_equal(np.frombuffer(got["output0"][2], np.float32), image * 2 + bias)
    np.testing.assert_array_equal(np.frombuffer(got["output1"][2], np.int64), (image - bias).astype(np.int64))
    # the indexed calls see the same outputs
    assert abi.call("get_output", ctx, 1, 4096, 64, WRITTEN) == 0
    assert abi.read(4096, abi.u32(WRITTEN)) == got["output1"][2]


def test_a_short_buffer_says_the_size_and_get_named_outputs_reads_them_without_a_recompute(abi) -> None:
    ctx = abi.open_echo()
    ptr, n = named(abi, [("x", [100], 1, bytes(400))])
    assert abi.call("compute_named", ctx, ptr, n, OUT, 64, WRITTEN) == TOO_LARGE
    need = abi.u32(WRITTEN)
    assert need > 400 and "get_named_outputs" in abi.guest.client.last_error
    computes = len([r for r in abi.guest.session.host.timeline.records() if r.call == "compute_named"])
    assert abi.call("get_named_outputs", ctx, OUT, need, WRITTEN) == 0
    assert abi.u32(WRITTEN) == need and outputs(abi) == {"x": ([100], 1, bytes(400))}
    assert len([r for r in abi.guest.session.host.timeline.records() if r.call == "compute_named"]) == computes
    fresh = abi.open_echo()
    assert abi.call("get_named_outputs", fresh, OUT, 4096, WRITTEN) == INVALID_ARGUMENT  # nothing computed yet


def test_bf16_crosses_as_type_6(session, abi) -> None:
    session.host.register("half", Half())
    ctx = context(abi, "half")
    x = np.array([1.5, -2.0, 3.25], np.float32)
    ptr, n = named(abi, [("x", [3], 1, x.tobytes())])
    assert abi.call("compute_named", ctx, ptr, n, OUT, 4096, WRITTEN) == 0, abi.guest.client.last_error
    dims, code, data = outputs(abi)["output0"]
    assert (dims, code) == ([3], 6)
    assert torch.frombuffer(bytearray(data), dtype=torch.bfloat16).float().tolist() == [3.0, -4.0, 6.5]


@pytest.mark.parametrize(
    ("what", "errno", "words"),
    [
        ("bad context", INVALID_ARGUMENT, "execution context"),
        ("array past end", INVALID_ARGUMENT, "named tensor array"),
        ("huge count", TOO_LARGE, f"at most {MAX_NAMED_TENSORS}"),
        ("too many", TOO_LARGE, f"at most {MAX_NAMED_TENSORS}"),
        ("wild name", INVALID_ARGUMENT, "name: 5 bytes at"),
        ("overlong name", INVALID_ARGUMENT, "over the limit of 256"),
        ("name not utf-8", INVALID_ARGUMENT, "not UTF-8"),
        ("duplicate", INVALID_ARGUMENT, "given twice"),
        ("unknown name", INVALID_ARGUMENT, "unknown ['colour']"),
        ("missing name", INVALID_ARGUMENT, "missing ['bias']"),
        ("bad type", INVALID_ARGUMENT, "unknown tensor type 9"),
        ("wild dims", INVALID_ARGUMENT, "tensor dims"),
        ("wild data", INVALID_ARGUMENT, "data"),
        ("size mismatch", INVALID_ARGUMENT, "need 16 bytes, data is 12"),
        ("rank 17", INVALID_ARGUMENT, "rank 17"),
        ("wild out buffer", INVALID_ARGUMENT, "output buffer"),
        ("wild bytes-written", INVALID_ARGUMENT, "bytes-written"),
    ],
)
def test_hostile_compute_named_gets_the_right_errno_and_the_guest_goes_on(abi, heads, what, errno, words) -> None:
    ctx = context(abi, "heads")
    image = np.arange(4, dtype=np.float32).tobytes()
    good = [("image", [4], 1, image), ("bias", [4], 1, image)]
    ptr, n = named(abi, good)
    out, out_max, written = OUT, 4096, WRITTEN
    end = abi.size
    if what == "bad context":
        ctx = 99
    elif what == "array past end":
        ptr = end - NAMED_SIZE
    elif what == "huge count":
        n = 0xFFFFFFFF
    elif what == "too many":
        n = MAX_NAMED_TENSORS + 1
    elif what == "wild name":
        abi.write(ptr, struct.pack("<I", end - 1))
    elif what == "overlong name":
        ptr, n = named(abi, [("x" * 257, [4], 1, image), good[1]])
    elif what == "name not utf-8":
        abi.write(abi.u32(ptr), b"\xff")
    elif what == "duplicate":
        ptr, n = named(abi, [good[0], good[0]])
    elif what == "unknown name":
        ptr, n = named(abi, [good[0], ("colour", [4], 1, image)])
    elif what == "missing name":
        ptr, n = named(abi, [good[0]])
    elif what == "bad type":
        ptr, n = named(abi, [("image", [4], 9, image), good[1]])
    elif what == "wild dims":
        abi.write(ptr + 8, struct.pack("<I", end - 2))
    elif what == "wild data":
        abi.write(ptr + 20, struct.pack("<I", end - 8))
    elif what == "size mismatch":
        ptr, n = named(abi, [("image", [4], 1, image[:12]), good[1]])
    elif what == "rank 17":
        ptr, n = named(abi, [("image", [1] * 17, 1, image[:4]), good[1]])
    elif what == "wild out buffer":
        out = end - 8
    else:
        written = end - 2
    assert abi.call("compute_named", ctx, ptr, n, out, out_max, written) == errno
    assert words in abi.guest.client.last_error, abi.guest.client.last_error
    ptr, n = named(abi, good)  # the guest goes on
    assert abi.call("compute_named", context(abi, "heads"), ptr, n, OUT, 4096, WRITTEN) == 0
    assert abi.guest.client.budget.used < 1 << 20


def test_properties_list_get_and_set(abi, heads) -> None:
    ptr, length = abi.name(0, "heads")
    assert abi.call("load_by_name", ptr, length, 64) == 0
    graph = abi.u32(64)
    assert abi.call("list_properties", graph, OUT, 256, WRITTEN) == 0
    assert abi.read(OUT, abi.u32(WRITTEN)) == b"precision\0device\0threads\0residence\0"
    assert abi.call("list_properties", graph, OUT, 5, WRITTEN) == TOO_LARGE and abi.u32(WRITTEN) == 35

    def get(name: str) -> tuple[int, bytes]:
        at, n = abi.name(128, name)
        errno = abi.call("get_property", graph, at, n, OUT, 64, WRITTEN)
        return errno, abi.read(OUT, abi.u32(WRITTEN)) if errno == 0 else b""

    def put(name: str, value: str) -> int:
        at, n = abi.name(128, name)
        vat, vn = abi.name(512, value)
        return abi.call("set_property", graph, at, n, vat, vn)

    assert get("precision") == (0, b"fp32")
    assert put("precision", "bf16") == 0 and get("precision") == (0, b"bf16")
    assert abi.guest.session.host.properties("heads")["precision"].value == "bf16"  # shared with the host
    assert put("precision", "fp7") == INVALID_ARGUMENT and "one of fp32, fp16, bf16" in abi.guest.client.last_error
    assert get("colour")[0] == NOT_FOUND and "it has: precision" in abi.guest.client.last_error
    assert put("colour", "red") == INVALID_ARGUMENT
    assert abi.call("get_property", 77, 128, 4, OUT, 64, WRITTEN) == INVALID_ARGUMENT  # no such graph
    assert abi.call("set_property", graph, abi.size - 2, 9, 512, 4) == INVALID_ARGUMENT  # wild name
    assert abi.call("set_property", graph, 128, 9, 512, 1 << 20) == INVALID_ARGUMENT  # overlong value
    assert abi.call("get_property", graph, 128, 9, OUT, 64, abi.size) == INVALID_ARGUMENT  # wild bytes-written


def test_set_input_from_output_chains_two_contexts_without_linear_memory(abi, session) -> None:
    torch.manual_seed(0)
    first, second = torch.nn.Linear(4, 3).eval(), torch.nn.Linear(3, 2).eval()
    session.host.register("first", first)
    session.host.register("second", second)
    session.host.set_property("first", "residence", "device")
    a, b = context(abi, "first"), context(abi, "second")
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    assert abi.call("set_input", a, 0, abi.tensor(1024, [2, 4], 1, x.tobytes())) == 0
    assert abi.call("compute", a) == 0
    assert abi.call("set_input_from_output", b, 0, a, 0) == 0, abi.guest.client.last_error
    assert abi.call("compute", b) == 0
    assert abi.call("get_output", b, 0, OUT, 64, WRITTEN) == 0
    got = np.frombuffer(abi.read(OUT, abi.u32(WRITTEN)), np.float32).reshape(2, 2)
    np.testing.assert_allclose(got, second(first(torch.from_numpy(x))).detach().numpy(), rtol=1e-6)
    record = [r for r in session.host.timeline.records() if r.call == "set_input_from_output"][-1]
    assert (record.graph, record.outcome) == ("second", "ok")
    assert abi.call("set_input_from_output", b, 0, a, 5) == INVALID_ARGUMENT  # no output 5
    assert abi.call("set_input_from_output", b, 0, 42, 0) == INVALID_ARGUMENT  # no context 42
    assert abi.call("set_input_from_output", b, 3, a, 0) == INVALID_ARGUMENT  # second takes one input
    fresh = context(abi, "first")
    assert abi.call("set_input_from_output", b, 0, fresh, 0) == INVALID_ARGUMENT  # nothing computed there
    assert "compute first" in abi.guest.client.last_error
