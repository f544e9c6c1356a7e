"""Fuzz the witx ABI: random calls, handles, pointers, lengths, enums and tensor structs through a real guest.

Every ``wasi_ephemeral_nn`` function (WasmEdge's extensions included) is called through a passthrough guest whose
memory is first sprinkled with random and near-valid tensor structs, dims arrays and builder arrays. The property:
each call returns a known errno (or success), nothing raises, the guest stays usable, and host memory stays
bounded. ``tests/host/abi/test_fuzz.py`` runs a short version; run this file for a long one:

    python scripts/fuzz_abi.py --examples 20000
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wasinn_jupyter.host import Guest, Host, Limits, Session
from wasinn_jupyter.host.abi.witx import MODULE, SIGNATURES
from wasinn_jupyter.host.errors import WITX_ERRNO_NAMES

PAGES = 2
MEMORY = PAGES * 65536
EDGES = [0, 1, 3, 4, 19, 20, MEMORY - 20, MEMORY - 4, MEMORY - 1, MEMORY, MEMORY + 1, 0x7FFFFFFF, 0x80000000,
         0xFFFFFFF0, 0xFFFFFFFC, 0xFFFFFFFF]  # fmt: skip

u32 = st.one_of(st.integers(0, 8), st.integers(0, MEMORY + 64), st.sampled_from(EDGES), st.integers(0, 2**32 - 1))
pointer = st.one_of(st.integers(0, MEMORY - 1), st.sampled_from(EDGES))
small_dims = st.lists(st.integers(0, 5), max_size=6)
wild_dims = st.lists(st.sampled_from([0, 1, 2, 65536, 2**31, 2**32 - 1]), max_size=20)

call_step = st.tuples(st.just("call"), st.sampled_from(sorted(SIGNATURES)), st.lists(u32, min_size=5, max_size=5))
bytes_step = st.tuples(st.just("write"), st.integers(0, MEMORY - 1), st.binary(min_size=1, max_size=48))
tensor_step = st.tuples(
    st.just("tensor"),
    st.integers(0, MEMORY - 4096),
    st.one_of(small_dims, wild_dims),
    st.integers(0, 255),
    st.one_of(st.none(), u32),  # data_len: None means "what the dims need"
    st.binary(min_size=3, max_size=3),
)
name_step = st.tuples(st.just("name"), st.sampled_from(["echo", "ident", "nope", ""]))
# Near-valid calls: small handles and indices, the last name and tensor written, so sequences reach success too.
api_step = st.tuples(
    st.just("api"),
    st.sampled_from(["load_by_name", "init_execution_context", "set_input", "compute", "get_output",
                     "unload", "finalize_execution_context"]),
    st.lists(st.integers(0, 3), min_size=3, max_size=3),
)  # fmt: skip
steps = st.lists(
    st.one_of(call_step, api_step, api_step, api_step, bytes_step, tensor_step, name_step), min_size=10, max_size=60
)
NAME_AT, OUT_AT, BUF_AT = MEMORY - 64, MEMORY - 96, MEMORY - 4096 - 128

VALID = set(WITX_ERRNO_NAMES)


def passthrough_wat(pages: int = PAGES) -> str:
    lines = ["(module"]
    for name, arity in SIGNATURES.items():
        lines.append(f'  (import "{MODULE}" "{name}" (func ${name} (param{" i32" * arity}) (result i32)))')
    lines.append(f'  (memory (export "memory") {pages} {pages})')
    for name, arity in SIGNATURES.items():
        gets = " ".join(f"(local.get {i})" for i in range(arity))
        lines.append(f'  (func (export "{name}") (param{" i32" * arity}) (result i32) (call ${name} {gets}))')
    lines.append(")")
    return "\n".join(lines)


def make_limits(**wanted: Any) -> Limits:
    """Limits with the fields this version of the host has (older hosts lack the sandbox's and the budget's)."""
    known = {f.name for f in dataclasses.fields(Limits)}
    return Limits(**{k: v for k, v in wanted.items() if k in known})


def make_session(identity: bytes | None = None) -> Session:
    host = Host(limits=make_limits(max_graphs=64, max_contexts=64, max_guest_bytes=8 << 20, max_model_bytes=1 << 20))
    host.register("echo", "echo")
    if identity is not None:
        import io

        import torch

        host.register("ident", torch.jit.load(io.BytesIO(identity)))
    return Session(host)


class Fuzzer:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.module = session.compile(passthrough_wat())
        self.calls = 0
        self.outcomes: dict[int, int] = {}

    def run(self, plan: list[tuple]) -> None:
        guest: Guest = self.session.instantiate(self.module, dialect="auto")
        memory = guest.instance.exports(guest.store)["memory"]
        name_len, tensor_at = 0, 0
        try:
            for step in plan:
                kind = step[0]
                if kind == "write":
                    _, at, data = step
                    memory.write(guest.store, data[: MEMORY - at], at)
                elif kind == "name":
                    name_len = len(step[1])
                    memory.write(guest.store, step[1].encode(), NAME_AT)
                elif kind == "tensor":
                    _, at, dims, ttype, data_len, pad = step
                    tensor_at = at
                    dims_ptr, data_ptr = at + 20, at + 20 + 4 * len(dims)
                    need = 4 if not dims else min(4096 - 100, 4 * max(1, len(dims)))
                    length = need if data_len is None else data_len
                    memory.write(guest.store, struct.pack(f"<{len(dims)}I", *dims), dims_ptr)
                    memory.write(guest.store, struct.pack("<II", dims_ptr, len(dims)) + bytes([ttype]) + pad, at)
                    memory.write(guest.store, struct.pack("<II", data_ptr, length), at + 12)
                else:
                    _, name, args = step
                    if kind == "api":
                        args = self.near_valid(name, args, name_len, tensor_at)
                    signed = [a - (1 << 32) if a >= 1 << 31 else a for a in args[: SIGNATURES[name]]]
                    result = guest.call(name, *signed, watch=False)
                    self.calls += 1
                    self.outcomes[result] = self.outcomes.get(result, 0) + 1
                    assert result in VALID, f"{name}{tuple(args)} returned {result}, not a wasi-nn errno"
            # the guest is still usable: the echo graph answers
            memory.write(guest.store, b"echo", 0)
            assert guest.call("load_by_name", 0, 4, 64, watch=False) == 0
        finally:
            guest.close()

    @staticmethod
    def near_valid(name: str, small: list[int], name_len: int, tensor_at: int) -> list[int]:
        a, b, c = small
        return {
            "load_by_name": [NAME_AT, name_len, OUT_AT],
            "init_execution_context": [a, OUT_AT],
            "set_input": [a, b, tensor_at],
            "compute": [a],
            "get_output": [a, b, BUF_AT, c * 1024, OUT_AT],
            "unload": [a],
            "finalize_execution_context": [a],
        }[name]


def property_for(fuzzer: Fuzzer, examples: int, derandomize: bool = False) -> Callable[[], None]:
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=derandomize,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(steps)
    def fuzz(plan: list[tuple]) -> None:
        fuzzer.run(plan)

    return fuzz


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000)
    args = parser.parse_args()
    import io

    import torch

    class Identity(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(Identity()), buffer)
    fuzzer = Fuzzer(make_session(buffer.getvalue()))
    start, rss0 = time.monotonic(), rss_mib()
    property_for(fuzzer, args.examples)()
    elapsed = time.monotonic() - start
    named = {WITX_ERRNO_NAMES[k]: v for k, v in sorted(fuzzer.outcomes.items())}
    print(f"{fuzzer.calls} wasi-nn calls in {args.examples} examples, {elapsed:.1f} s; outcomes: {named}")
    print(f"peak RSS {rss0:.0f} MiB before, {rss_mib():.0f} MiB after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
