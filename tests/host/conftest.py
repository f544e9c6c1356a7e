"""Fixtures for the host tests: a session with the echo graph, and a guest that exposes the raw witx ABI.

The passthrough guest re-exports every ``wasi_ephemeral_nn`` import unchanged, so a test can hand any argument
(wild pointers, stale handles, garbage structs) to the real host through a real wasmtime instance.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from wasinn_jupyter.host import Guest, Session
from wasinn_jupyter.host.abi.witx import MODULE, SIGNATURES

PAGES = 2  # 128 KiB of guest memory


def passthrough_wat(functions: dict[str, int] = SIGNATURES) -> str:
    lines = ["(module"]
    for name, arity in functions.items():
        params = " i32" * arity
        lines.append(f'  (import "{MODULE}" "{name}" (func ${name} (param{params}) (result i32)))')
    lines.append(f'  (memory (export "memory") {PAGES})')
    lines.append('  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))')
    for name, arity in functions.items():
        gets = " ".join(f"(local.get {i})" for i in range(arity))
        lines.append(f'  (func (export "{name}") (param{" i32" * arity}) (result i32) (call ${name} {gets}))')
    lines.append(")")
    return "\n".join(lines)


def signed(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


class Abi:
    """Drive one passthrough guest: write structs into its memory, call the ABI, read results."""

    def __init__(self, guest: Guest) -> None:
        self.guest = guest
        self.memory = guest.instance.exports(guest.store)["memory"]

    @property
    def size(self) -> int:
        return self.memory.data_len(self.guest.store)

    def call(self, name: str, *args: int) -> int:
        return self.guest.call(name, *(signed(a) for a in args), watch=False)

    def write(self, ptr: int, data: bytes) -> None:
        self.memory.write(self.guest.store, data, ptr)

    def read(self, ptr: int, length: int) -> bytes:
        return bytes(self.memory.read(self.guest.store, ptr, ptr + length))

    def u32(self, ptr: int) -> int:
        return struct.unpack("<I", self.read(ptr, 4))[0]

    def tensor(self, at: int, dims: list[int], type_code: int, data: bytes, padding: bytes = b"\0\0\0") -> int:
        """Lay out dims at ``at + 32``, data at ``at + 128`` and the 20-byte struct at ``at``; returns ``at``."""
        dims_ptr, data_ptr = at + 32, at + 128
        self.write(dims_ptr, struct.pack(f"<{len(dims)}I", *dims))
        self.write(data_ptr, data)
        self.write(at, struct.pack("<II", dims_ptr, len(dims)) + bytes([type_code]) + padding)
        self.write(at + 12, struct.pack("<II", data_ptr, len(data)))
        return at

    def name(self, at: int, text: str) -> tuple[int, int]:
        raw = text.encode()
        self.write(at, raw)
        return at, len(raw)

    def open_echo(self, name: str = "echo") -> int:
        """load_by_name + init_execution_context; the context handle."""
        ptr, length = self.name(0, name)
        assert self.call("load_by_name", ptr, length, 64) == 0, self.guest.client.last_error
        assert self.call("init_execution_context", self.u32(64), 68) == 0, self.guest.client.last_error
        return self.u32(68)


@pytest.fixture
def make_abi(session: Session) -> Iterator[Callable[..., Abi]]:
    """A factory of passthrough guests: ``make_abi(dialect="spec", functions=SIGNATURES)``."""
    guests: list[Guest] = []
    modules: dict[tuple[str, ...], Any] = {}

    def make(dialect: str = "spec", functions: dict[str, int] = SIGNATURES) -> Abi:
        key = tuple(functions)
        if key not in modules:
            modules[key] = session.compile(passthrough_wat(functions))
        guest = session.instantiate(modules[key], dialect=dialect)
        guests.append(guest)
        return Abi(guest)

    yield make
    for guest in guests:
        guest.close()


@pytest.fixture
def abi(make_abi: Callable[..., Abi]) -> Abi:
    return make_abi()


@pytest.fixture(scope="session")
def torchscript_identity() -> bytes:
    """A TorchScript archive whose forward returns its one input."""
    import io

    import torch

    class Identity(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(Identity()), buffer)
    return buffer.getvalue()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
