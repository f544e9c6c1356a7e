"""Fuzz the witx ABI: random calls, handles, pointers, lengths, enums and tensor structs through a real guest.

Every ``wasi_ephemeral_nn`` function (WasmEdge's extensions included) is called through a passthrough guest whose
memory is first sprinkled with random and near-valid tensor structs, dims arrays and builder arrays. The property:
each call returns a known errno (or success), nothing raises, the guest stays usable, and host memory stays
bounded. ``tests/host/abi/test_fuzz.py`` runs a short version; run this file for a long one:

    python scripts/fuzz_abi.py --examples 20000

The load arm (``--loads N``) hands ``load`` mutated TorchScript archives (code, pickles, tensor sizes, zip entries,
nesting, huge literals, truncation) and checks that this process outlives every one of them with bounded memory,
descriptors and threads: guest model bytes are code, run by a sandboxed worker that may die, never the host. The
long run, with the archive in flight kept on disk in case this process dies after all:

    python scripts/fuzz_abi.py --examples 0 --loads 100000 --keep-last /tmp/last.pt --save-crashers /tmp/crashers
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickletools
import random
import re
import resource
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wasinn_jupyter.host import Guest, Host, Limits, Session
from wasinn_jupyter.host.abi.witx import MODULE, SIGNATURES
from wasinn_jupyter.host.errors import WITX_ERRNO_NAMES
from wasinn_jupyter.host.sandbox.remote import MAX_CRASHES_PER_GUEST

PAGES = 2
MEMORY = PAGES * 65536
EDGES = [0, 1, 3, 4, 19, 20, MEMORY - 20, MEMORY - 4, MEMORY - 1, MEMORY, MEMORY + 1, 0x7FFFFFFF, 0x80000000,
         0xFFFFFFF0, 0xFFFFFFFC, 0xFFFFFFFF]  # fmt: skip

u32 = st.one_of(st.integers(0, 8), st.integers(0, MEMORY + 64), st.sampled_from(EDGES), st.integers(0, 2**32 - 1))
pointer = st.one_of(st.integers(0, MEMORY - 1), st.sampled_from(EDGES))
small_dims = st.lists(st.integers(0, 5), max_size=6)
wild_dims = st.lists(st.sampled_from([0, 1, 2, 65536, 2**31, 2**32 - 1]), max_size=20)

ARITY = max(SIGNATURES.values())  # arguments drawn for every call; each function takes the first ones it needs
call_args = st.lists(u32, min_size=ARITY, max_size=ARITY)
call_step = st.tuples(st.just("call"), st.sampled_from(sorted(SIGNATURES)), call_args)
bytes_step = st.tuples(st.just("write"), st.integers(0, MEMORY - 1), st.binary(min_size=1, max_size=48))
tensor_step = st.tuples(
    st.just("tensor"),
    st.integers(0, MEMORY - 4096),
    st.one_of(small_dims, wild_dims),
    st.integers(0, 255),
    st.one_of(st.none(), u32),  # data_len: None means "what the dims need"
    st.binary(min_size=3, max_size=3),
)
name_step = st.tuples(st.just("name"), st.sampled_from(["echo", "ident", "chat", "nope", ""]))
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
    # a prompt graph (random weights, 32 positions): the streaming calls, metadata and properties of the GGML path
    from wasinn_jupyter.host.backends import tinygpt

    host.register("chat", tinygpt.build(tinygpt.TinyGPTConfig(n_embd=16, block_size=32)), "ggml")
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


# -- the load arm: mutated TorchScript archives handed to `load` -------------------------------------------------
#
# A guest's `load` bytes are code for libtorch's deserializer and TorchScript compiler, so this arm mutates real
# archives where their structure matters: the code files (tokens inserted, deleted, duplicated, nesting, huge
# literals, lines), the pickles (data.pkl, constants.pkl, debug info: their ints, strings and GLOBAL names, and raw
# bytes), the tensor data files' sizes, the zip's entry names, counts and compression, the version record, and the
# container's own bytes. Each archive goes through a passthrough guest: load, then (where that succeeds)
# init_execution_context, set_input, compute, get_output, finalize, unload. The properties: every call answers a
# wasi-nn errno, this process never dies (a sandboxed host loses a worker, never itself), and its memory, descriptors
# and threads stay bounded. Seeds: a few small models scripted at start.

LOAD_PAGES = 160  # 10 MiB of guest memory
LOAD_MEMORY = LOAD_PAGES * 65536
BUILDER_AT, HANDLES_AT, TENSOR_AT, DATA_AT, OUT_BUF, OUT_MAX = 256, 512, 1024, 4096, 32768, 32768
ARCHIVE_AT = 65536
MAX_ARCHIVE = LOAD_MEMORY - ARCHIVE_AT
F32 = 1


class SeedIdentity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class SeedAffine(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.register_buffer("shift", torch.tensor([0.5, -0.25, 2.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(x)) * 3.0 + self.shift


class SeedConv(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        return torch.softmax(self.fc(torch.nn.functional.adaptive_avg_pool2d(y, 1).flatten(1)), dim=1)


def _seed_helper(y: torch.Tensor, k: int) -> torch.Tensor:
    return y * float(k) - 1.0


class SeedRich(torch.nn.Module):
    """Attributes of several types, a submodule, loops, branches, a helper, and a (benign) __setstate__."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.tensor([1.0, 2.0, 3.0, 4.0])
        self.names = ["a", "bb", "ccc"]
        self.table = {"x": 1, "y": 2}
        self.label = "rich"
        self.lin = torch.nn.Linear(4, 4)

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, list[str], dict[str, int], str, bool]:
        return (self.scale, self.names, self.table, self.label, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, list[str], dict[str, int], str, bool]) -> None:
        self.scale = state[0] * 1.0
        self.names = state[1]
        self.table = state[2]
        self.label = state[3]
        self.training = state[4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lin(x) * self.scale
        for i in range(len(self.names)):
            if i % 2 == 0:
                y = y + float(self.table["x"])
            else:
                y = _seed_helper(torch.tanh(y), i)
        if self.label == "rich":
            y = torch.cat([y, y[:1]])[: y.shape[0]]
        return y


@dataclasses.dataclass
class Seed:
    name: str
    archive: bytes
    dims: tuple[int, ...]


def build_seeds() -> list[Seed]:
    """The seed archives, scripted and saved here (never loaded in this process)."""
    import io
    import warnings

    torch.manual_seed(0)
    made = []
    for name, module, dims in (
        ("identity", SeedIdentity(), (4,)),
        ("affine", SeedAffine(), (4,)),
        ("conv", SeedConv(), (1, 3, 8, 8)),
        ("rich", SeedRich(), (4,)),
    ):
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(torch.jit.script(module.eval()), buffer)
        made.append(Seed(name, buffer.getvalue(), dims))
    return made


Entry = tuple[str, bytes, int]  # name, data, compression


def unpack_zip(archive: bytes) -> list[Entry]:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        return [(i.filename, zf.read(i), i.compress_type) for i in zf.infolist()]


def pack_zip(entries: list[Entry]) -> bytes:
    import io
    import warnings
    import zipfile

    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are one of the mutations
        with zipfile.ZipFile(out, "w") as zf:
            for name, data, compression in entries:
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = compression
                zf.writestr(info, data)
    return out.getvalue()


TOKEN = re.compile(r"[A-Za-z_][A-Za-z_0-9]*|\d+(?:\.\d*)?(?:e[+-]?\d+)?|\"[^\"\n]*\"|'[^'\n]*'|\n|[ \t]+|.")
NUMBER = re.compile(r"\d+(?:\.\d*)?(?:e[+-]?\d+)?$")
EXTRA_TOKENS = ["(", ")", "[", "]", "{", "}", ":", ",", ".", "=", "+", "-", "*", "/", "**", "%", "<", ">=", "==",
                "if", "else", "elif", "while", "for", "in", "return", "def", "class", "None", "True", "False",
                "self", "torch", "ops", "aten", "prim", "__torch__", "lambda", "\n", "  ", "annotate", "List",
                "Tensor", "Optional", "Tuple", "Dict", "int", "float", "str", "uninitialized", "unchecked_cast",
                "fork", "wait", "isinstance", "getattr", "__setstate__", "forward", "@", "#", "\\", '"', "'",
                "CONSTANTS", "c0", "NamedTuple", "Enum", "Any", "Future", "RRef", "Await", "Union", "raise",
                "assert", "break", "continue", "pass", "del", "with", "global", "not", "and", "or", "is"]  # fmt: skip
HUGE_NUMBERS = ["9" * 20, "9" * 400, "9" * 20000, "1e999", "-0", "0x7fffffffffffffff", "18446744073709551616",
                "1" + "0" * 1000 + ".5", "2147483648", "-9223372036854775809"]  # fmt: skip
NESTING = [100_000, 32, 2_048, 256, 20_000]  # the order nesting depths are used in: the first is the known segfault
PICKLE_INTS = [-1, 0, 1, 7, 1 << 24, (1 << 31) - 1, -(1 << 31), 1 << 30]
PICKLE_STRINGS = ["cuda", "meta", "mps", "9", "", "../../etc/passwd", "/etc/passwd", "A" * 65536,
                  "List[" * 2000 + "int" + "]" * 2000, "Dict[str, " * 500 + "int" + "]" * 500, "Tensor",
                  "Optional[Tensor]", "__torch__.nope", "torch.classes.c10d.ProcessGroup", "\x00",
                  "\udcff"]  # fmt: skip
PICKLE_GLOBALS = ["builtins eval", "builtins exec", "os system", "posix system", "subprocess Popen",
                  "torch load", "torch._utils _rebuild_tensor_v3", "torch._utils _rebuild_qtensor",
                  "torch._utils _rebuild_sparse_tensor", "torch._utils _rebuild_parameter",
                  "torch.jit._pickle build_intlist", "torch.jit._pickle restore_type_tag",
                  "torch.jit._pickle build_tensor_from_id", "torch HalfStorage", "torch QInt8Storage",
                  "collections OrderedDict", "__torch__ Nope", "__torch__.torch.classes.c10d ProcessGroup",
                  "__builtin__ set", "torch.distributed.rpc.internal _InternalRPCPickler"]  # fmt: skip
VERSIONS = [b"0", b"1", b"3", b"10", b"99", b"-1", b"", b"18446744073709551616", b"x", b"3\n" * 1000]
COMPRESSIONS = [0, 8, 12, 14]  # stored, deflated, bzip2, lzma (libtorch reads the first two)


class Skip(Exception):
    """This mutation does not apply to this archive (the fuzzer picks another)."""


def _code(entries: list[Entry]) -> list[int]:
    return [i for i, (n, _, _) in enumerate(entries) if "/code/" in n and n.endswith(".py")]


def _pickles(entries: list[Entry]) -> list[int]:
    return [i for i, (n, _, _) in enumerate(entries) if n.endswith(".pkl")]


def _storages(entries: list[Entry]) -> list[int]:
    return [i for i, (n, _, _) in enumerate(entries) if re.search(r"/data/\d+$", n)]


def _pick_code(rng: random.Random, entries: list[Entry]) -> tuple[int, str]:
    files = _code(entries)
    if not files:
        raise Skip
    i = rng.choice(files)
    return i, entries[i][1].decode("utf-8", "replace")


def _set(entries: list[Entry], i: int, data: bytes | str) -> list[Entry]:
    name, _, compression = entries[i]
    out = list(entries)
    out[i] = (name, data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data, compression)
    return out


class LoadFuzzer:
    """Mutated archives through `load` (and the calls after it) in a passthrough guest with room for them."""

    def __init__(self, session: Session, seeds: list[Seed], rng: random.Random, guest_loads: int = 200) -> None:
        self.session = session
        self.seeds = seeds
        self.rng = rng
        self.guest_loads = guest_loads
        self.module = session.compile(passthrough_wat(LOAD_PAGES))
        self.vocabulary = sorted(
            {
                t
                for s in seeds
                for n, d, _ in unpack_zip(s.archive)
                if n.endswith(".py")
                for t in TOKEN.findall(d.decode())
            }
            | set(EXTRA_TOKENS)
        )
        self.operators: list[Callable[[random.Random, list[Entry], Seed], list[Entry] | bytes]] = [
            self.code_tokens, self.code_nesting, self.code_literal, self.code_lines, self.pickle_ops,
            self.pickle_bytes, self.tensor_sizes, self.entry_names, self.entry_count, self.version,
            self.compression, self.container, self.splice, self.stacked,
        ]  # fmt: skip
        self.loads = 0
        self.nestings = 0
        self.used: dict[str, int] = {}
        self.outcomes: dict[str, dict[str, int]] = {}
        self.by_operator: dict[str, dict[str, int]] = {}  # operator -> what `load` answered its archives
        self._operator = "seed"
        self.worker_deaths: dict[str, int] = {}
        self.bad: list[str] = []
        self.guest: Guest | None = None
        self.on_archive: Callable[[str, bytes], None] | None = None  # e.g. keep the archive about to be loaded
        self.on_worker_death: Callable[[str, bytes, str], None] | None = None

    # -- mutations: each takes the unpacked seed and returns entries (or raw bytes) -------------------------

    def code_tokens(self, rng: random.Random, entries: list[Entry], seed: Seed) -> list[Entry]:
        """Insert, delete, duplicate, swap or replace 1-4 tokens of a code file."""
        i, text = _pick_code(rng, entries)
        tokens = TOKEN.findall(text)
        for _ in range(rng.randint(1, 4)):
            if not tokens:  # an earlier mutation emptied the file: give it something to mutate
                tokens.append(rng.choice(self.vocabulary))
            at = rng.randrange(len(tokens))
            op = rng.choice(["insert", "delete", "duplicate", "swap", "replace"])
            if op == "insert":
                tokens.insert(at, rng.choice(self.vocabulary))
            elif op == "delete" and len(tokens) > 1:
                del tokens[at]
            elif op == "duplicate":
                tokens.insert(at, tokens[at])
            elif op == "swap" and at + 1 < len(tokens):
                tokens[at], tokens[at + 1] = tokens[at + 1], tokens[at]
            else:
                tokens[at] = rng.choice(self.vocabulary)
        return _set(entries, i, "".join(tokens))

    def code_nesting(self, rng: random.Random, entries: list[Entry], seed: Seed) -> list[Entry]:
        """Wrap a name in a method body in deep nesting: parentheses, lists, unary minus, calls or `not`."""
        i, text = _pick_code(rng, entries)
        depth = NESTING[self.nestings % len(NESTING)]
        self.nestings += 1
        body = [m for m in re.finditer(r"(?<=return )[A-Za-z_][A-Za-z_0-9]*|(?<== )[A-Za-z_][A-Za-z_0-9]*", text)]
        if not body:
            raise Skip
        m = rng.choice(body)
        kind = (
            "parens"
            if depth == NESTING[0] and self.nestings == 1
            else rng.choice(["parens", "parens", "list", "minus", "call", "not"])
        )
        inner = m.group(0)
        wrapped = {
            "parens": "(" * depth + inner + ")" * depth,
            "list": "[" * depth + inner + "]" * depth,
            "minus": "-" * depth + inner,
            "call": "torch.neg(" * depth + inner + ")" * depth,
            "not": "not " * depth + inner,
        }[kind]
        return _set(entries, i, text[: m.start()] + wrapped + text[m.end() :])

    def code_literal(self, rng: random.Random, entries: list[Entry], seed: Seed) -> list[Entry]:
        """Replace a number with a huge or odd one, or a name with a huge string literal."""
        i, text = _pick_code(rng, entries)
        tokens = TOKEN.findall(text)
        numbers = [k for k, t in enumerate(tokens) if NUMBER.match(t)]
        if numbers and rng.random() < 0.7:
            tokens[rng.choice(numbers)] = rng.choice(HUGE_NUMBERS)
        else:
            names = [k for k, t in enumerate(tokens) if t.isidentifier() and t not in ("def", "class", "return")]
            size = rng.choice([16, 4096, 1 << 20])
            filler = rng.choice(["A", "\\x00", "\\u00e9", "\\\\", "'"])
            tokens[rng.choice(names)] = '"' + filler * size + '"'
        return _set(entries, i, "".join(tokens))

    def code_lines(self, rng: random.Random, entries: list[Entry], seed: Seed) -> list[Entry]:
        """Delete, duplicate, swap, re-indent or cut lines of a code file."""
        i, text = _pick_code(rng, entries)
        lines = text.split("\n")
        at = rng.randrange(len(lines))
        op = rng.choice(["delete", "duplicate", "swap", "indent", "dedent", "truncate", "repeat"])
        if op == "delete":
            del lines[at]
        elif op == "duplicate":
            lines.insert(at, lines[at])
        elif op == "swap":
            other = rng.randrange(len(lines))
            lines[at], lines[other] = lines[other], lines[at]
        elif op == "indent":
            lines[at] = " " * rng.choice([1, 2, 4, 1000]) + lines[at]
        elif op == "dedent":
            lines[at] = lines[at].lstrip()
        elif op == "truncate":
            return _set(entries, i, text[: rng.randrange(len(text) + 1)])
        else:
            lines[at:at] = [lines[at]] * rng.choice([10, 1000, 20000])
        return _set(entries, i, "\n".join(lines))

    def pickle_ops(self, rng: random.Random, entries: list[Entry], seed: Seed) -> list[Entry]:
        """Rewrite one opcode of a pickle (data.pkl, constants.pkl, debug info): an int, a string, a GLOBAL's
        target, or the opcode dropped or repeated."""
        files = _pickles(entries)
        if not files:
            raise Skip
        i = rng.choice(files)
        data = entries[i][1]
        try:
            ops = [(op.name, arg, pos) for op, arg, pos in pickletools.genops(data)]
        except Exception:  # noqa: BLE001 - an already broken pickle: mutate its bytes instead
            return self.pickle_bytes(rng, entries, seed)
        spans = [(name, arg, pos, ops[k + 1][2] if k + 1 < len(ops) else len(data)) for k, (name, arg, pos) in
                 enumerate(ops)]  # fmt: skip
        ints = [s for s in spans if s[0] in ("BININT", "BININT1", "BININT2", "LONG1")]
        strings = [s for s in spans if s[0] in ("BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8")]
        globals_ = [s for s in spans if s[0] == "GLOBAL"]
        kind = rng.choice(["int", "string", "global", "drop", "repeat"])
        pool = {"int": ints, "string": strings, "global": globals_}.get(kind) or spans
        _, _, start, end = rng.choice(pool)
        if kind == "int" and ints:
            new = b"J" + struct.pack("<i", rng.choice(PICKLE_INTS))
        elif kind == "string" and strings:
            raw = rng.choice(PICKLE_STRINGS).encode("utf-8", "surrogatepass")
            new = b"X" + struct.pack("<I", len(raw)) + raw
        elif kind == "global" and globals_:
            new = b"c" + rng.choice(PICKLE_GLOBALS).replace(" ", "\n").encode() + b"\n"
        elif kind == "repeat":
            new = data[start:end] * 2
        else:
            new = b""
        return _set(entries, i, data[:start] + new + data[end:])

    def pickle_bytes(self, rng: random.Random, entries: list[Entry], seed: Seed) -> list[Entry]:
        """Flip, insert, delete or cut raw bytes of a pickle."""
        files = _pickles(entries)
        if not files:
            raise Skip
        i = rng.choice(files)
        data = bytearray(entries[i][1])
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(max(1, len(data)))
            op = rng.choice(["flip", "insert", "delete", "truncate", "opcode"])
            if op == "flip" and data:
                data[at] ^= 1 << rng.randrange(8)
            elif op == "insert":
                data[at:at] = bytes([rng.randrange(256)])
            elif op == "delete" and data:
                del data[at]
            elif op == "truncate":
                del data[at:]
            elif data:
                data[at] = rng.choice(b"()]}cQRbtuehjpqX\x80\x81\x85\x86\x87\x88\x89\x8a\x8c\x94\x95")
        return _set(entries, i, bytes(data))

    def tensor_sizes(self, rng: random.Random, entries: list[Entry], seed: Seed) -> list[Entry]:
        """Cut, empty, grow or drop a tensor's storage file, or declare a huge one (a zip bomb's shape)."""
        files = _storages(entries)
        if not files:
            raise Skip
        i = rng.choice(files)
        data = entries[i][1]
        op = rng.choice(["cut", "empty", "grow", "drop", "huge"])
        if op == "cut":
            return _set(entries, i, data[: rng.randrange(len(data) + 1)])
        if op == "empty":
            return _set(entries, i, b"")
        if op == "grow":
            return _set(entries, i, data + bytes(rng.choice([1, 3, 4096, 1 << 20])))
        if op == "drop":
            return entries[:i] + entries[i + 1 :]
        name, _, _ = entries[i]
        return [*entries[:i], (name, bytes(rng.choice([64 << 20, 1 << 30])), 8), *entries[i + 1 :]]

    def entry_names(self, rng: random.Random, entries: list[Entry], seed: Seed) -> list[Entry]:
        """Rename an entry: another top folder, path traversal, an absolute path, case, a duplicate, odd bytes."""
        i = rng.randrange(len(entries))
        name, data, compression = entries[i]
        top, _, rest = name.partition("/")
        new = rng.choice(
            [
                f"other/{rest}",
                f"../{name}",
                f"/{name}",
                name.upper(),
                f"{top}/{rest}/",
                f"{top}//{rest}",
                f"{top}/./{rest}",
                f"{top}/code/{rest}",
                name + "\x00x",
                name.replace("/", "\\"),
                "",
                f"{top}/" + "a" * 4096,
                f"{top}/{rest}.py",
                f"{top}/data/{rng.randrange(10)}",
                entries[rng.randrange(len(entries))][0],
            ]
        )
        out = list(entries)
        out[i] = (new, data, compression)
        return out

    def entry_count(self, rng: random.Random, entries: list[Entry], seed: Seed) -> list[Entry]:
        """Drop entries, duplicate one, or add many small ones."""
        op = rng.choice(["drop", "drop_many", "duplicate", "many"])
        if op == "drop":
            i = rng.randrange(len(entries))
            return entries[:i] + entries[i + 1 :]
        if op == "drop_many":
            return [e for e in entries if rng.random() < 0.5]
        if op == "duplicate":
            i = rng.randrange(len(entries))
            name, data, compression = entries[i]
            twin = (name, rng.choice([data, b"", data[::-1]]), compression)
            return [*entries, twin] if rng.random() < 0.5 else [twin, *entries]
        top = entries[0][0].partition("/")[0]
        count = rng.choice([16, 1024, 5000])
        where = rng.choice(["code", "data", "extra", ".data"])
        return entries + [(f"{top}/{where}/{k}", b"", 0) for k in range(count)]

    def version(self, rng: random.Random, entries: list[Entry], seed: Seed) -> list[Entry]:
        """Another serialization version record (or none)."""
        found = [i for i, (n, _, _) in enumerate(entries) if n.endswith("/version") or n.endswith("/.data/version")]
        if not found:
            raise Skip
        i = rng.choice(found)
        if rng.random() < 0.15:
            return entries[:i] + entries[i + 1 :]
        return _set(entries, i, rng.choice(VERSIONS))

    def compression(self, rng: random.Random, entries: list[Entry], seed: Seed) -> list[Entry]:
        """Repack entries with other compression methods (some libtorch cannot read)."""
        return [(n, d, rng.choice(COMPRESSIONS) if rng.random() < 0.5 else c) for n, d, c in entries]

    def container(self, rng: random.Random, entries: list[Entry], seed: Seed) -> bytes:
        """Damage the zip itself: cut it, or flip bytes in its headers and central directory."""
        data = bytearray(pack_zip(entries))
        op = rng.choice(["truncate", "header", "directory", "random"])
        if op == "truncate":
            return bytes(data[: rng.randrange(len(data))])
        if op == "random":
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            return bytes(data)
        signature = b"PK\x03\x04" if op == "header" else b"PK\x01\x02"
        starts = [m.start() for m in re.finditer(re.escape(signature), bytes(data))]
        if not starts:
            raise Skip
        at = rng.choice(starts) + rng.randrange(4, 46)
        if at + 4 <= len(data):
            data[at : at + 4] = struct.pack(
                "<I", rng.choice([0, 1, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, rng.getrandbits(32)])
            )
        return bytes(data)

    def splice(self, rng: random.Random, entries: list[Entry], seed: Seed) -> list[Entry]:
        """Another seed's code file, or its data.pkl, in this archive."""
        donor = unpack_zip(rng.choice(self.seeds).archive)
        kind = rng.choice(["code", "pickle"])
        mine = _code(entries) if kind == "code" else _pickles(entries)
        theirs = _code(donor) if kind == "code" else _pickles(donor)
        if not mine or not theirs:
            raise Skip
        return _set(entries, rng.choice(mine), donor[rng.choice(theirs)][1])

    def stacked(self, rng: random.Random, entries: list[Entry], seed: Seed) -> list[Entry] | bytes:
        """Two or three of the above, one after the other."""
        current: list[Entry] | bytes = entries
        for _ in range(rng.randint(2, 3)):
            if isinstance(current, bytes):
                break
            op = rng.choice([o for o in self.operators if o != self.stacked and o != self.code_nesting])
            try:
                current = op(rng, current, seed)
            except Skip:
                continue
        return current

    # -- running -----------------------------------------------------------------------------------------------

    def mutate(self, index: int) -> tuple[str, Seed, bytes]:
        """The ``index``-th archive: operators in turn (so a short run meets each), seeds in turn, params random."""
        operators = len(self.operators)
        for attempt in range(operators):
            op = self.operators[(index + attempt) % operators]
            seed = self.seeds[(index // operators + attempt) % len(self.seeds)]
            try:
                result = op(self.rng, unpack_zip(seed.archive), seed)
            except Skip:
                continue
            except (IndexError, ValueError, KeyError):  # a mutator's own edge (an emptied file): try the next one
                self.mutator_misses = getattr(self, "mutator_misses", 0) + 1
                continue
            archive = result if isinstance(result, bytes) else pack_zip(result)
            if len(archive) <= MAX_ARCHIVE:
                return op.__name__, seed, archive
        return "seed", self.seeds[index % len(self.seeds)], self.seeds[index % len(self.seeds)].archive

    def _count(self, call: str, errno: int) -> None:
        name = WITX_ERRNO_NAMES.get(errno, f"not an errno: {errno}")
        per_call = self.outcomes.setdefault(call, {})
        per_call[name] = per_call.get(name, 0) + 1
        if call == "load":
            per_op = self.by_operator.setdefault(self._operator, {})
            per_op[name] = per_op.get(name, 0) + 1

    def _call(self, guest: Guest, call: str, *args: int) -> int:
        signed = [a - (1 << 32) if a >= 1 << 31 else a for a in args]
        result = guest.call(call, *signed, watch=False)
        self._count(call, result)
        if result not in VALID:
            self.bad.append(f"{call}{tuple(args)} returned {result}, not a wasi-nn errno")
        if result != 0:
            message = guest.client.last_error or ""
            death = re.search(
                r"crashed with (SIG[A-Z0-9]+)|(killed after [0-9.]+ s)|(past the guest's memory)", message
            )
            if death:
                reason = next(g for g in death.groups() if g)
                self.worker_deaths[reason] = self.worker_deaths.get(reason, 0) + 1
                per_op = self.by_operator.setdefault(self._operator, {})
                key = f"worker {reason} in {call}"
                per_op[key] = per_op.get(key, 0) + 1
        return result

    def _fresh_guest(self) -> Guest:
        if self.guest is not None:
            self.guest.close()
        self.guest = self.session.instantiate(self.module, dialect="spec")
        return self.guest

    def run_one(self, index: int) -> None:
        crashed_out = self.guest is not None and self.guest.client.sandbox_crashes >= MAX_CRASHES_PER_GUEST - 1
        if self.guest is None or index % self.guest_loads == 0 or crashed_out:
            self._fresh_guest()  # a guest whose models crash its sandbox too often may load no more
        guest = self.guest
        assert guest is not None
        op, seed, archive = self.mutate(index)
        self._operator = op
        self.used[op] = self.used.get(op, 0) + 1
        if self.on_archive is not None:
            self.on_archive(op, archive)
        memory = guest.instance.exports(guest.store)["memory"]
        memory.write(guest.store, archive, ARCHIVE_AT)
        memory.write(guest.store, struct.pack("<II", ARCHIVE_AT, len(archive)), BUILDER_AT)
        self.loads += 1
        deaths = sum(self.worker_deaths.values())
        if self._call(guest, "load", BUILDER_AT, 1, 3, 0, HANDLES_AT) == 0:
            self._use(
                guest, memory, seed, struct.unpack("<I", bytes(memory.read(guest.store, HANDLES_AT, HANDLES_AT + 4)))[0]
            )
        if self.on_worker_death is not None and sum(self.worker_deaths.values()) > deaths:
            self.on_worker_death(op, archive, guest.client.last_error or "")

    def _use(self, guest: Guest, memory: Any, seed: Seed, graph: int) -> None:
        """init, set_input (the seed's input), compute, get_output, finalize, unload: as far as each succeeds."""
        if self._call(guest, "init_execution_context", graph, HANDLES_AT + 4) == 0:
            ctx = struct.unpack("<I", bytes(memory.read(guest.store, HANDLES_AT + 4, HANDLES_AT + 8)))[0]
            data = struct.pack(f"<{int(np.prod(seed.dims))}f", *([0.25] * int(np.prod(seed.dims))))
            dims_at = TENSOR_AT + 32
            memory.write(guest.store, struct.pack(f"<{len(seed.dims)}I", *seed.dims), dims_at)
            memory.write(guest.store, data, DATA_AT)
            memory.write(
                guest.store, struct.pack("<IIB3xII", dims_at, len(seed.dims), F32, DATA_AT, len(data)), TENSOR_AT
            )
            if self._call(guest, "set_input", ctx, 0, TENSOR_AT) == 0 and self._call(guest, "compute", ctx) == 0:
                self._call(guest, "get_output", ctx, 0, OUT_BUF, OUT_MAX, HANDLES_AT + 8)
            self._call(guest, "finalize_execution_context", ctx)
        self._call(guest, "unload", graph)

    def close(self) -> None:
        if self.guest is not None:
            self.guest.close()
            self.guest = None


def current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / (1 << 20)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def threads() -> int:
    return threading.active_count() + sum(1 for _ in os.scandir("/proc/self/task")) - 1


def make_load_session() -> Session:
    """A host for the load arm: default sandboxing, a small budget, short time limits (a mutation may loop)."""
    return Session(
        Host(
            limits=make_limits(
                max_graphs=64,
                max_contexts=64,
                max_guest_bytes=1 << 30,
                max_model_bytes=64 << 20,
                sandbox_load_s=20.0,
                sandbox_compute_s=20.0,
            )
        )
    )


def fuzz_loads(
    loads: int,
    seed: int = 0,
    *,
    max_rss_growth_mib: float = 256,
    keep_last: str | None = None,
    save_crashers: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the load arm for ``loads`` archives; a summary of what happened, with ``ok`` for the properties."""
    seeds = build_seeds()
    fuzzer = LoadFuzzer(make_load_session(), seeds, random.Random(seed))
    if keep_last:

        def keep(op: str, archive: bytes) -> None:
            with open(keep_last, "wb") as f:
                f.write(archive)

        fuzzer.on_archive = keep
    if save_crashers:
        os.makedirs(save_crashers, exist_ok=True)

        def save(op: str, archive: bytes, message: str) -> None:
            with open(os.path.join(save_crashers, f"{fuzzer.loads:06d}-{op}.pt"), "wb") as f:
                f.write(archive)

        fuzzer.on_worker_death = save
    start = time.monotonic()
    baseline: dict[str, float] = {}
    peak_rss = 0.0
    warm = min(loads, 2 * len(fuzzer.operators))
    try:
        for index in range(loads):
            if index == warm:  # after every operator has run once: libraries, caches, a worker are warm
                baseline = {"rss_mib": current_rss_mib(), "fds": open_fds(), "threads": threads()}
            fuzzer.run_one(index)
            peak_rss = max(peak_rss, current_rss_mib())
            if progress and (index + 1) % 1000 == 0:
                print(
                    f"{index + 1} loads, {time.monotonic() - start:.0f} s, RSS {current_rss_mib():.0f} MiB, "
                    f"worker deaths {sum(fuzzer.worker_deaths.values())}",
                    flush=True,
                )
    finally:
        fuzzer.close()
    end = {"rss_mib": current_rss_mib(), "fds": open_fds(), "threads": threads()}
    baseline = baseline or end
    grown = max(peak_rss, end["rss_mib"]) - baseline["rss_mib"]
    problems = list(fuzzer.bad)
    if grown > max_rss_growth_mib:
        problems.append(f"resident memory grew {grown:.0f} MiB after warm-up, over {max_rss_growth_mib:.0f} MiB")
    if end["fds"] - baseline["fds"] > 32:
        problems.append(f"open descriptors grew from {baseline['fds']} to {end['fds']}")
    if end["threads"] - baseline["threads"] > 16:
        problems.append(f"threads grew from {baseline['threads']} to {end['threads']}")
    return {
        "ok": not problems,
        "problems": problems[:20],
        "loads": fuzzer.loads,
        "seconds": round(time.monotonic() - start, 1),
        "operators": fuzzer.used,
        "by_operator": fuzzer.by_operator,
        "outcomes": fuzzer.outcomes,
        "worker_deaths": fuzzer.worker_deaths,
        "rss_mib": {
            "baseline": round(baseline["rss_mib"], 1),
            "peak": round(peak_rss, 1),
            "end": round(end["rss_mib"], 1),
        },
        "fds": {"baseline": baseline["fds"], "end": end["fds"]},
        "threads": {"baseline": baseline["threads"], "end": end["threads"]},
    }


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000, help="call-arm examples (0: skip the call arm)")
    parser.add_argument("--loads", type=int, default=0, help="load-arm archives (mutated TorchScript) to hand `load`")
    parser.add_argument("--seed", type=int, default=0, help="the load arm's random seed")
    parser.add_argument("--max-rss-growth-mib", type=float, default=256)
    parser.add_argument("--keep-last", help="write each archive here before it is loaded (a crash leaves it)")
    parser.add_argument("--save-crashers", help="a folder for the archives that killed a sandbox worker")
    parser.add_argument("--json", action="store_true", help="end with the load arm's summary as one JSON line")
    args = parser.parse_args()
    status = 0
    if args.examples:
        import io

        buffer = io.BytesIO()
        torch.jit.save(torch.jit.script(SeedIdentity()), buffer)
        fuzzer = Fuzzer(make_session(buffer.getvalue()))
        start, rss0 = time.monotonic(), rss_mib()
        property_for(fuzzer, args.examples)()
        elapsed = time.monotonic() - start
        named = {WITX_ERRNO_NAMES[k]: v for k, v in sorted(fuzzer.outcomes.items())}
        print(f"{fuzzer.calls} wasi-nn calls in {args.examples} examples, {elapsed:.1f} s; outcomes: {named}")
        print(f"peak RSS {rss0:.0f} MiB before, {rss_mib():.0f} MiB after")
    if args.loads:
        summary = fuzz_loads(
            args.loads,
            args.seed,
            max_rss_growth_mib=args.max_rss_growth_mib,
            keep_last=args.keep_last,
            save_crashers=args.save_crashers,
            progress=not args.json,
        )
        if args.json:
            print(json.dumps(summary))
        else:
            outcomes = summary["outcomes"]
            print(f"{summary['loads']} loads in {summary['seconds']} s, this process alive")
            print(f"load outcomes {outcomes.get('load')}; compute outcomes {outcomes.get('compute')}")
            print(f"sandbox workers lost: {summary['worker_deaths']}; operators: {summary['operators']}")
            print(f"RSS MiB {summary['rss_mib']}, descriptors {summary['fds']}, threads {summary['threads']}")
            for problem in summary["problems"]:
                print(f"PROBLEM: {problem}")
        status = 0 if summary["ok"] else 1
    return status


if __name__ == "__main__":
    sys.exit(main())
