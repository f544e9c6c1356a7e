"""The witx tensor struct, read and written in one place (abi/layout.py) for the witx ABI and the compute convention."""

from __future__ import annotations

import pytest

from wasinn_jupyter.host import ErrorCode, Session, WasiNNError
from wasinn_jupyter.host.abi import TENSOR, TensorStruct, convention, read_dims, read_tensor, write_dims, write_tensor
from wasinn_jupyter.host.abi.memory import GuestMemory

MEMORY = '(module (memory (export "memory") 1))'


@pytest.fixture
def memory(session: Session) -> GuestMemory:
    return session.instantiate(session.compile(MEMORY)).memory()


def test_a_struct_written_reads_back(memory: GuestMemory) -> None:
    span = memory.span(0, 4096, "test")
    span[100:120] = 0xFF
    write_tensor(span, 100, TensorStruct(200, 3, 1, 300, 24))
    write_dims(span, 200, (1, 2, 3))
    assert TENSOR.size == 20 and bytes(span[109:112]) == bytes(3)  # the padding is zeroed
    tensor = read_tensor(memory, 100, "t")
    assert tensor == TensorStruct(200, 3, 1, 300, 24)
    assert read_dims(memory, tensor, "t") == (1, 2, 3)
    assert read_dims(memory, tensor._replace(dims_len=0), "t") == ()


def test_only_the_type_byte_is_read(memory: GuestMemory) -> None:
    span = memory.span(0, 64, "test")
    write_tensor(span, 0, TensorStruct(1, 2, 5, 3, 4))
    span[9:12] = [0xAD, 0xBE, 0xEF]  # garbage in the padding, as older guests leave it
    assert read_tensor(memory, 0, "t").type_code == 5


def test_rank_and_bounds_are_checked(memory: GuestMemory) -> None:
    with pytest.raises(WasiNNError) as err:
        read_dims(memory, TensorStruct(0, 17, 1, 0, 0), "set_input")
    assert err.value.code is ErrorCode.INVALID_ARGUMENT and err.value.message.startswith("set_input: rank 17")
    with pytest.raises(WasiNNError, match="set_input: tensor dims: 8 bytes at 0xfffc"):
        read_dims(memory, TensorStruct(0xFFFC, 2, 1, 0, 0), "set_input")
    with pytest.raises(WasiNNError, match="t: 20 bytes at 0xfff0 run past the end"):
        read_tensor(memory, 0xFFF0, "t")


def test_the_convention_lays_its_inputs_out_with_the_same_struct(memory: GuestMemory) -> None:
    import numpy as np

    from wasinn_jupyter.host import Tensor

    inputs = [Tensor.from_value(np.arange(6, dtype=np.float32).reshape(2, 3)), Tensor.from_value(np.int64(7))]
    arena = convention.plan_arena(b"echo", inputs)
    assert arena.size % convention.ALIGN == 0 and all(data % convention.ALIGN == 0 for _, data in arena.places)
    convention.write_arena(memory, 1024, arena, b"echo", inputs)
    first = read_tensor(memory, 1024 + arena.structs_at, "input 0")
    assert first == TensorStruct(1024 + arena.places[0][0], 2, 1, 1024 + arena.places[0][1], 24)
    assert read_dims(memory, first, "input 0") == (2, 3)
    assert memory.read_bytes(first.data_ptr, 24, "data") == inputs[0].to_numpy().tobytes()
    second = read_tensor(memory, 1024 + arena.structs_at + TENSOR.size, "input 1")
    assert (second.dims_len, second.type_code, second.data_len) == (0, 5, 8)
