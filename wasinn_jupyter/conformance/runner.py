"""The echo-model conformance suite: the case table, the runner and its report.

The wasi-nn working group asked for a suite that tests the API surface apart from any ML framework, with an
"echo" graph whose outputs are its inputs, so equality can be checked mechanically. Here each case is one call of
an export of a hand-written WAT guest (``guests/*.wat``): the guest builds its inputs, makes the witx calls and
compares the bytes itself, and its i32 result is the verdict. So the same ``.wasm`` gives the same verdict on any
host (wasmtime's ``--invoke``, WasmEdge's ``--reactor``); this module only chooses the cases, runs them on our
host, and puts the guest's result codes into words.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .._version import __version__
from ..host import (
    WITX_ERRNO_NAMES,
    Session,
    wat_to_wasm,
)
from .report import Basis, CaseResult, Report

GUESTS_DIR = Path(__file__).parent / "guests"
GUESTS = ("echo", "load")  # the .wat files that are modules; common.wat is pasted into each
COMMON_MARK = "  ;; @common\n"
ECHO = "echo"  # the graph name every guest loads
CASE_DEADLINE_S = 30.0  # a guest that loops forever fails its case instead of hanging the run

# witx numbers, as the guests' arguments use them. Written out from the spec rather than taken from the host's
# tables: a conformance suite must not inherit the mistakes of the host it measures.
TYPES = {"f16": 0, "f32": 1, "f64": 2, "u8": 3, "i32": 4, "i64": 5}
TYPE_NAMES = {code: name for name, code in TYPES.items()}
TARGETS = {"cpu": 0, "gpu": 1}
ENCODINGS = {"onnx": 1, "pytorch": 3, "autodetect": 5}
CALLS = {1: "load", 2: "load_by_name", 3: "init_execution_context", 4: "set_input", 5: "compute", 6: "get_output"}
INVALID_ARGUMENT = "invalid_argument (1)"

# The guests' shape table (common.wat), by index: exports name shapes by these numbers.
SHAPES: tuple[tuple[int, ...], ...] = (
    (),
    (5,),
    (2, 3),
    (0,),
    (2, 0, 3),
    (2, 3, 4),
    (1, 2, 3, 2),
    (2, 1, 2, 1, 3),
    (17,),
    (3, 1),
    (4, 4),
    (1,),
    (255, 3),
    (4, 0),
    (3, 3, 3),
    (1, 1, 1, 1, 1),
)
WILD_MODES = ("at-end-of-memory", "straddling-end", "wrapping-past-4GiB")  # modes 0..2 of the wild_* exports

Signature = tuple[tuple[tuple[int, int], ...], ...]  # per input index: the (witx type, rank) pairs it is sent


@dataclass(frozen=True)
class Case:
    """One export call with its arguments; the guest answers 0 when the host behaves."""

    name: str  # "group/what", unique; run_suite's select filters on it
    group: str
    guest: str  # which module: a key of GUESTS
    export: str
    args: tuple[int, ...]  # u32 values; passed to the guest as i32
    expect: str = "success"  # what the call under test must answer, in words
    counts: str = "tensor"  # what phases 0..7 of this export's result codes number
    needs: tuple[str, ...] = ()  # what the echo graph or backend must do beyond one input: see NEEDS
    notes: str = ""
    # "spec": the spec's text decides the expectation; "choice": the spec leaves it open and the expectation is a
    # host's choice (why says whose), so a different answer there is a difference, not clearly a bug
    basis: Basis = "spec"
    why: str = ""
    inputs: Signature = ()  # what the echo graph receives, so a host whose models are typed can be given one
    abi: str = "witx"  # "witx": a core module run by --invoke; other ABIs (WIT components) run differently


# -- the case table ------------------------------------------------------------------------------------------------


def _dims(shape: Sequence[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _pack(values: Iterable[int]) -> int:
    """Small numbers as the 4-bit fields the guests unpack (field i = value i)."""
    return sum(v << (4 * i) for i, v in enumerate(values))


def _nibbles(x: int, n: int) -> list[int]:
    return [(x >> (4 * i)) & 15 for i in range(n)]


def _rank(shape: int) -> int:
    return len(SHAPES[shape]) if shape < len(SHAPES) else -1


def signature(guest: str, export: str, args: Sequence[int]) -> Signature:
    """What each input index of the echo graph is sent in one case: the (witx type, rank) pairs, as the guest builds
    them (echo.wat and load.wat; bad type bytes, which are no witx type, are left out).

    A host whose models have typed inputs of a fixed rank (OpenVINO) can serve the case with one model exactly when
    every index is sent one pair. Every error case that ends by checking the guest still works sends f32 [2,3].
    """
    f32_2 = (TYPES["f32"], 2)
    per_index: list[list[tuple[int, int]]] = []

    def send(index: int, pair: tuple[int, int]) -> None:
        while len(per_index) <= index:
            per_index.append([])
        if pair not in per_index[index]:
            per_index[index].append(pair)

    a = list(args)
    if guest == "load":
        send(0, (a[2], 2) if export == "load_echo" else f32_2)
    elif export == "echo":
        send(0, (a[0], a[1]))
    elif export == "padded":
        send(0, (a[0], 2))
    elif export == "multi":
        for i, (t, shape) in enumerate(zip(_nibbles(a[1], a[0]), _nibbles(a[2], a[0]), strict=True)):
            send(i, (t, _rank(shape)))
    elif export == "rounds":
        for shape in _nibbles(a[2], a[1]):
            send(0, (a[0], _rank(shape)))
    elif export == "contexts":
        for k in range(a[0] * a[1]):
            send(0, (a[2], _rank(k + 1)))
    elif export == "mismatch":
        send(0, (a[0], _rank(a[1])))
        send(0, f32_2)
    elif export == "bad_dims":
        send(0, (a[0], 2))
        send(0, f32_2)
    elif export == "short_buffer":
        send(0, (a[0], _rank(a[1])))
    elif export == "output_index":
        for i in range(a[0]):
            send(i, (i % 6, 2))
    else:  # the other error cases: an f32 [2,3] echo, before or after the call under test
        send(0, f32_2)
    return tuple(tuple(pairs) for pairs in per_index)


# What a case asks beyond one echo of one input, in cases.json's "needs" (NEEDS says each in words).
NEEDS = {
    "pytorch": "loads a TorchScript identity module from guest bytes with `load` (a PyTorch backend)",
    "several-inputs": "the echo graph takes several inputs in one context (input i echoed as output i)",
    "any-type-per-input": "one input index is sent tensors of different types within the case",
    "any-rank-per-input": "one input index is sent tensors of different ranks within the case",
}

# Expectations the spec leaves open, by export or case name: the suite holds these hosts' choices.
CHOICES = {
    "short_buffer": "the spec does not say what get_output answers for a buffer too small: too_large with the size "
    "needed in bytes_written is WasmEdge's behaviour and this suite's",
    "early_output": "the spec does not say what get_output answers before compute: invalid_argument is this suite's "
    "reading",
    "pointers": "the spec does not say what a pointer outside linear memory gets: an errno, and the guest going on, "
    "is this suite's choice (wasmtime traps the guest)",
    "load/onnx-encoding-unsupported": "invalid_encoding for TorchScript bytes declared as ONNX assumes the host reads "
    "no ONNX or refuses them as such",
    "load/autodetect-f32": "what autodetect recognises is the host's choice; this host recognises TorchScript",
    "load/autodetect-i64": "what autodetect recognises is the host's choice; this host recognises TorchScript",
}


def _needs(guest: str, inputs: Signature) -> tuple[str, ...]:
    needs = ["pytorch"] if guest == "load" else []
    if len(inputs) > 1:
        needs.append("several-inputs")
    if any(len({t for t, _ in pairs}) > 1 for pairs in inputs):
        needs.append("any-type-per-input")
    if any(len({r for _, r in pairs}) > 1 for pairs in inputs):
        needs.append("any-rank-per-input")
    return tuple(needs)


def cases(target: str = "cpu") -> list[Case]:
    """Every case, in run order; ``target`` is what the load cases pass to ``load``."""
    tgt = TARGETS[target]
    out: list[Case] = []

    def add(group: str, what: str, export: str, *args: int, guest: str = "echo", **more: Any) -> None:
        name = f"{group}/{what}"
        inputs = signature(guest, export, args)
        why = CHOICES.get(name) or CHOICES.get(export) or CHOICES.get(group, "")
        basis: Basis = "choice" if why else "spec"
        case = Case(name, group, guest, export, tuple(args), needs=_needs(guest, inputs), inputs=inputs, **more)
        out.append(replace(case, basis=basis, why=why))

    def echo(group: str, type_name: str, shape: tuple[int, ...]) -> None:
        dims = (*shape, 0, 0, 0, 0, 0)[:5]
        add(group, f"{type_name}{_dims(shape)}", "echo", TYPES[type_name], len(shape), *dims)

    shape: tuple[int, ...]
    shapes: tuple[int, ...]
    # every tensor type, an even and an odd element count
    for type_name in TYPES:
        for shape in ((2, 3), (17,)):
            echo("types", type_name, shape)

    # ranks 0 to 5, zero-sized dimensions, and tensors that fill a 16 KiB input slot
    for shape in ((), (5,), (3, 4), (2, 3, 4), (1, 2, 3, 2), (2, 1, 2, 1, 3)):
        echo("shapes", "f32", shape)
    for type_name, shape in (
        ("u8", ()),
        ("f64", ()),
        ("i64", ()),
        ("f32", (0,)),
        ("i32", (2, 0, 3)),
        ("u8", (4, 0)),
        ("f16", (1, 2, 0, 2, 1)),
        ("i64", (0, 0, 0, 0, 0)),
        ("f32", (64, 64)),
        ("u8", (16384,)),
        ("f64", (2, 4, 256)),
    ):
        echo("shapes", type_name, shape)

    # n inputs -> n outputs, each its own type and shape, read back with room to spare in the buffer
    for what, types, shapes in (
        ("2-inputs-f32[2,3]", (1, 1), (2, 2)),
        ("6-inputs-every-type", (0, 1, 2, 3, 4, 5), (2, 5, 6, 7, 8, 9)),
        ("8-inputs-mixed", (5, 4, 3, 2, 1, 0, 1, 3), (0, 3, 4, 7, 1, 13, 12, 15)),
        ("3-inputs-zero-sized", (1, 2, 3), (3, 4, 13)),
        ("1-input-roomy-buffer", (4,), (5,)),
    ):
        add(
            "multi",
            what,
            "multi",
            len(types),
            _pack(types),
            _pack(shapes),
            notes="each output read with 64 spare bytes",
        )

    # handles used again: one context many times, many contexts from one graph, several graph handles
    for what, type_code, shapes in (
        ("compute-twice-same-context", TYPES["f32"], (2, 2)),
        ("3-rounds-new-shapes", TYPES["i64"], (2, 5, 1)),
        ("8-rounds-every-rank", TYPES["u8"], tuple(range(8))),
    ):
        add("reuse", what, "rounds", type_code, len(shapes), _pack(shapes), counts="round")
    for what, graphs, per_graph, type_code in (
        ("2-contexts-from-1-graph", 1, 2, TYPES["f32"]),
        ("4-contexts-from-1-graph", 1, 4, TYPES["i32"]),
        ("2-graph-handles-2-contexts-each", 2, 2, TYPES["f16"]),
        ("8-graph-handles", 8, 1, TYPES["f64"]),
    ):
        add("reuse", what, "contexts", graphs, per_graph, type_code, counts="graph or context")

    # handles never issued
    for what, handle in (("never-issued", 1), ("0xffffffff", 0xFFFFFFFF)):
        add("handles", f"graph-{what}", "bad_graph", handle, expect=INVALID_ARGUMENT)
        for call in (4, 5, 6):
            add("handles", f"{CALLS[call]}-context-{what}", "bad_context", call, handle, expect=INVALID_ARGUMENT)

    # names no graph has
    for which, what in enumerate(("no-such-graph", "prefix-ech", "echo-with-NUL")):
        add(
            "names",
            what,
            "unknown_name",
            which,
            expect="not_found (8) or model_not_found (103)",
            notes="WasmEdge answers model_not_found (103); both are accepted",
        )

    # tensor structs: bad type bytes, garbage padding, data lengths that disagree with the dims
    for code in (6, 7, 255):
        add("tensors", f"type-byte-{code}", "bad_type", code, expect=INVALID_ARGUMENT)
    for type_name, garbage in (("f32", 0xADBEEF), ("u8", 0x010203), ("i64", 0xFFFFFF)):
        add(
            "tensors",
            f"{type_name}-garbage-padding-{garbage:06x}",
            "padded",
            TYPES[type_name],
            garbage,
            notes="the 3 bytes after the type byte are padding: only the type byte may be read",
        )
    for type_name, shape_at, delta in (
        ("f32", 2, 1),
        ("f32", 2, -1),
        ("f32", 2, -24),
        ("f32", 2, 24),
        ("u8", 3, 1),
        ("f64", 0, -8),
        ("i32", 4, 4),
        ("f16", 7, -2),
    ):
        add(
            "tensors",
            f"{type_name}{_dims(SHAPES[shape_at])}-data-len{delta:+d}",
            "mismatch",
            TYPES[type_name],
            shape_at,
            delta & 0xFFFFFFFF,
            expect=INVALID_ARGUMENT,
        )
    for type_name, d0, d1, data_len, what in (
        ("u8", 0x10000, 0x10000, 0, "element-count-wraps-to-0"),
        ("f32", 0x40000000, 1, 0, "byte-size-wraps-to-0"),
        ("u8", 0x80000001, 2, 2, "element-count-wraps-to-2"),
    ):
        add(
            "tensors",
            f"{type_name}[{d0:#x},{d1}]-{what}",
            "bad_dims",
            TYPES[type_name],
            d0,
            d1,
            data_len,
            expect=INVALID_ARGUMENT,
            notes="the dims' product, taken in 32 bits, equals data_len",
        )

    # get_output too early, and past the last output
    add("outputs", "before-set_input", "early_output", 0, expect=INVALID_ARGUMENT)
    add("outputs", "before-compute", "early_output", 1, expect=INVALID_ARGUMENT)
    for n, index in ((1, 1), (3, 3), (2, 0xFFFFFFFF), (1, 0x80000000)):
        add("outputs", f"{n}-outputs-index-{index:#x}", "output_index", n, index, expect=INVALID_ARGUMENT)

    # output buffers too small: too_large with the size needed, then a retry with that size
    for type_name, shape_at, short in (
        ("f32", 2, 1),
        ("f32", 2, 24),
        ("i64", 5, 8),
        ("u8", 8, 16),
        ("f16", 0, 1),
        ("f64", 7, 95),
    ):
        add(
            "buffers",
            f"{type_name}{_dims(SHAPES[shape_at])}-{short}-bytes-short",
            "short_buffer",
            TYPES[type_name],
            shape_at,
            short,
            expect="too_large (7) with the size needed in bytes_written",
        )

    # wild pointers and lengths near 4 GiB
    wild: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
        ("echo", "wild_tensor", "set_input-tensor", ()),
        ("echo", "wild_dims", "set_input-dims", ("dims_len-4GiB",)),
        ("echo", "wild_data", "set_input-data", ("data_len-near-4GiB",)),
        ("echo", "wild_output", "get_output-buffer", ()),
        ("echo", "wild_written", "get_output-bytes_written", ()),
        ("echo", "wild_name", "load_by_name-name", ("name_len-near-4GiB",)),
        ("echo", "wild_graph_out", "load_by_name-graph-out", ()),
        ("echo", "wild_context_out", "init_execution_context-context-out", ()),
        ("load", "wild_builders", "load-builder-array", ("builder-count-4GiB",)),
        ("load", "wild_builder", "load-builder-bytes", ("builder-len-near-4GiB",)),
        ("load", "wild_load_out", "load-graph-out", ()),
    )
    for guest, export, what, extra in wild:
        for mode, how in enumerate(WILD_MODES + extra):
            args = (mode, tgt) if guest == "load" else (mode,)
            add("pointers", f"{what}-{how}", export, *args, guest=guest, expect=INVALID_ARGUMENT)

    # load: model bytes from the guest
    for type_name in TYPES:
        add("load", f"pytorch-{type_name}", "load_echo", ENCODINGS["pytorch"], tgt, TYPES[type_name], guest="load")
    for type_name in ("f32", "i64"):
        add(
            "load", f"autodetect-{type_name}", "load_echo", ENCODINGS["autodetect"], tgt, TYPES[type_name], guest="load"
        )
    add(
        "load",
        "onnx-encoding-unsupported",
        "load_invalid",
        ENCODINGS["onnx"],
        tgt,
        0,
        guest="load",
        expect="invalid_encoding (2)",
        notes="TorchScript bytes declared as onnx, which this host does not read",
    )
    for encoding in ("pytorch", "autodetect"):
        add(
            "load",
            f"garbage-bytes-{encoding}",
            "load_invalid",
            ENCODINGS[encoding],
            tgt,
            1,
            guest="load",
            expect="invalid_encoding (2)",
        )
    return out


# -- result codes in words -----------------------------------------------------------------------------------------


def _errno(value: int) -> str:
    if value >= 999_999:
        return "an errno of 999999 or more"
    return f"{WITX_ERRNO_NAMES.get(value, 'an unknown errno')} ({value})"


def describe(code: int, case: Case) -> str:
    """What a guest's nonzero result code says went wrong (the encoding is documented in common.wat)."""
    if code < 0 or code // 100_000_000 not in (1, 2, 3, 4, 9):
        return f"unexpected result code {code}"
    kind, step, value = code // 100_000_000, code // 1_000_000 % 100, code % 1_000_000
    if kind == 9:
        return f"bad case: argument check {value} of export {case.export} failed for args {list(case.args)}"
    phase, call = divmod(step, 10)
    name = CALLS.get(call, f"call {call}")
    where = {
        9: f"{name} (the call under test)",
        8: f"{name} (afterwards, checking the guest still works)",
    }.get(phase, f"{name} ({case.counts} {phase})")
    if kind == 1:
        return f"{where} answered {_errno(value)}; expected {case.expect if phase == 9 else 'success'}"
    if kind == 2:
        written = "999999 or more (the guest preset 0xDEADBEEF: never written?)" if value == 999_999 else str(value)
        return f"{where}: bytes_written is {written} instead of the output's size"
    if kind == 3:
        return f"{where}: output bytes differ at offset {value}"
    return f"{where}: the host wrote past the output, at buffer offset {value}"


def kind_of(code: int) -> str:
    """A nonzero result code's kind, for machines (CaseResult.kind)."""
    kinds = {1: "errno", 2: "bytes_written", 3: "bytes", 4: "overrun", 9: "bad-case"}
    return kinds.get(code // 100_000_000, "bad-result") if code >= 0 else "bad-result"


# -- assembling the guests -----------------------------------------------------------------------------------------


def identity_torchscript() -> bytes:
    """A TorchScript module whose forward returns its one input: the echo graph for ``load``."""
    import torch

    class Identity(torch.nn.Module):
        # No annotations: TorchScript takes an unannotated x for a Tensor (and reads "# type:" comments here).
        def forward(self, x):
            return x

    return torchscript_bytes(Identity())


def torchscript_bytes(module: Any) -> bytes:
    """``module`` scripted and saved as the archive a guest hands ``load``, without torch's deprecation warning."""
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # torch 2.10+ calls TorchScript deprecated; it is what `load` reads here
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


def guest_wat(guest: str, model: bytes | None = None) -> str:
    """A guest's WAT with common.wat pasted in and, for ``load``, the model bytes spliced into its data segment."""
    text = (GUESTS_DIR / f"{guest}.wat").read_text()
    if COMMON_MARK not in text:
        raise ValueError(f"{guest}.wat has no {COMMON_MARK.strip()!r} line")
    text = text.replace(COMMON_MARK, (GUESTS_DIR / "common.wat").read_text())
    if "@MODEL_BYTES@" in text:
        if model is None:
            raise ValueError(f"{guest}.wat needs the model bytes")
        if len(model) > 0x10000 - 0x800:
            raise ValueError(f"the model is {len(model)} bytes; the guest has room for {0x10000 - 0x800}")
        text = text.replace("@MODEL_BYTES@", "".join(f"\\{b:02x}" for b in model))
        text = text.replace("@MODEL_LEN@", str(len(model)))
    return text


def assemble(guest: str, model: bytes | None = None) -> bytes:
    """A guest's wasm bytes (ValueError if its WAT does not parse)."""
    return wat_to_wasm(guest_wat(guest, model))


# -- running -------------------------------------------------------------------------------------------------------


def _i32(value: int) -> int:
    """A u32 argument as the signed i32 that wasm and the runtimes' command lines take."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def run_suite(
    target: str = "cpu",
    session: Session | None = None,
    progress: Callable[[CaseResult], None] | None = None,
    select: str | None = None,
) -> Report:
    """Run the cases (those whose name contains ``select``) against our host; every case gets a fresh instance.

    With no ``session``, a new host gets the built-in echo graph for ``target``, and is closed at the end. A given
    session is used as it is (so a test can put its own graph under the name ``echo``) and left open; the echo
    graph is registered only where it has none. Other hosts: ``hosts.run_host``.
    """
    from .hosts import WasinnHost, run_host  # hosts builds on this module

    return run_host(WasinnHost(session), target, select=select, progress=progress)


# -- emitting the suite for other hosts ----------------------------------------------------------------------------

RUNNING = """\
# Running the wasi-nn echo-model conformance suite on another host

Files: `echo.wasm` (graphs by name), `load.wasm` (a model loaded from guest bytes), `cases.json` (every case),
`echo/model.pt` (a TorchScript identity module, for hosts whose echo graph is a PyTorch model). Written by
`wasinn_jupyter.conformance.emit(..., target="{target}")`: the `load` cases pass target {target} ({target_code}).

## What the host must provide

Both guests are reactor modules (no `_start`) that import only the witx functions of module `wasi_ephemeral_nn`
(`load`, `load_by_name`, `init_execution_context`, `set_input`, `compute`, `get_output`) and export `memory`.
`echo.wasm` loads a graph named **`echo`** with `load_by_name`. An echo graph takes any number n of inputs, of any
tensor type (witx 0 f16, 1 f32, 2 f64, 3 u8, 4 i32, 5 i64) and any shape (rank 0 to 5, zero-sized dimensions
too), and answers n outputs, output i equal to input i: the same type, the same dims, the same bytes.
`echo/model.pt` is such a graph for one input only: the cases whose `needs` hold `several-inputs` need an echo
that takes several. `load.wasm` carries `echo/model.pt` in its data and loads it with `load` (encodings pytorch 3
and autodetect 5); those cases say `pytorch` in `needs`: they need a PyTorch backend.

A host whose models have typed inputs of a fixed rank (OpenVINO) needs one identity model per case: each case's
`inputs` lists, per input index, the tensor types and ranks that index is sent. Where an index is sent more than
one (`needs`: `any-type-per-input`, `any-rank-per-input`), no such model is the case's echo: the case is not
expressible on that host. `wasinn conformance --host wasmtime` writes these models itself (see the project's
RUNNING.md). Cases whose `basis` is `choice` hold an answer the spec leaves open (`why` says whose choice it is).

## Running one case

Each case in `cases.json` names a wasm file, an export and its i32 arguments (written as signed decimals); the
export returns **0** when the host did what wasi-nn requires. For example, case `{example_name}`:

    wasmtime run -S nn -S nn-graph=pytorch::./echo --invoke {example_export} {example_wasm} {example_args}
    wasmedge --nn-preload echo:PyTorch:{preload}:echo/model.pt --reactor {example_wasm} {example_export} {example_args}

(wasmtime names a graph after its directory, so `./echo` gives the name `echo`, and its pytorch backend reads
`echo/model.pt`; WasmEdge names it in `--nn-preload NAME:ENCODING:TARGET:PATH`. The stock wasmtime CLI has only
the OpenVINO backend; a pytorch one needs a wasmtime built with `--features pytorch`. `wasinn conformance --host
wasmtime` runs the stock CLI with an OpenVINO identity model per case.) Every case, with `jq`:

    jq -r '.cases[] | [.name, .wasm, .export, (.args | map(tostring) | join(" "))] | @tsv' cases.json |
    while IFS=$'\\t' read -r name wasm export args; do
      got=$(wasmtime run -S nn -S nn-graph=pytorch::./echo --invoke "$export" "$wasm" $args 2>&1 | tail -n 1)
      [ "$got" = 0 ] && echo "pass  $name" || echo "FAIL  $name  $got"
    done

A trap (wasmtime traps where a guest passes a wild pointer, instead of answering invalid_argument) or a crash of
the host process is a failure of that case.

## Reading a nonzero result

    result = KIND * 100000000 + STEP * 1000000 + VALUE,   STEP = PHASE * 10 + CALL

- CALL: 1 load, 2 load_by_name, 3 init_execution_context, 4 set_input, 5 compute, 6 get_output
- PHASE: 0..7 the k-th tensor, round, context or graph handle (the case's `counts`); 8 afterwards (the guest
  checking it still works after the call under test); 9 the call under test
- KIND 1: the call answered errno VALUE, not what the case expects (`expect`; success for every other call).
  errno: 0 success, 1 invalid_argument, 2 invalid_encoding, 3 missing_memory, 4 busy, 5 runtime_error,
  6 unsupported_operation, 7 too_large, 8 not_found, 103 model_not_found (WasmEdge)
- KIND 2: get_output's bytes_written was VALUE, not the output's size (999999: never written)
- KIND 3: the output bytes differ from the input at offset VALUE
- KIND 4: get_output wrote past the output's bytes, at buffer offset VALUE
- KIND 9: the arguments are out of range for the export: a broken case, not a host failure

## What the suite holds a host to

- Round trips: every type, ranks 0 to 5, zero-sized tensors, several inputs, get_output into a buffer of exactly
  the output's size and into a larger one (nothing written past the output).
- Handles: one context computed many times with new data; several contexts from one graph handle; several graph
  handles; handles never issued answer invalid_argument (1).
- Errors answer their errno and leave the guest working: an unknown name not_found (8) or model_not_found (103);
  a type byte that is no witx type, data_len that disagrees with the dims (also where the dims' product wraps in
  32 bits), get_output before compute or past the last output: invalid_argument (1); a buffer too small:
  too_large (7) with the size needed in bytes_written, and a retry with that size succeeds; an unsupported
  encoding or bytes that are no model: invalid_encoding (2).
- Wild pointers and lengths (at the end of memory, straddling it, wrapping past 4 GiB, lengths near 4 GiB):
  invalid_argument (1), never a trap, never a write outside the guest's buffers.
- Only the type byte of a tensor struct is read: its 3 padding bytes may hold garbage.
"""


def emit(directory: Path, target: str = "cpu") -> list[Path]:
    """Write the assembled guests, cases.json, the identity model and RUNNING.md, to run the suite elsewhere."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r} (choose from {', '.join(TARGETS)})")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = identity_torchscript()
    written: list[Path] = []

    def write(name: str, data: bytes) -> None:
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)

    for guest in GUESTS:
        write(f"{guest}.wasm", assemble(guest, model))
    write("echo/model.pt", model)
    table = cases(target)
    listing = {
        "suite": "wasi-nn echo-model conformance",
        "version": __version__,
        "target": target,
        "graph": ECHO,
        "needs": NEEDS,
        "basis": {
            "spec": "the spec's text decides the expectation",
            "choice": "the spec leaves it open; the expectation is a host's choice, said in `why`",
        },
        "cases": [
            {
                "name": c.name,
                "group": c.group,
                "wasm": f"{c.guest}.wasm",
                "export": c.export,
                "args": [_i32(a) for a in c.args],
                "expected_result": 0,
                "expect": c.expect,
                "counts": c.counts,
                "needs": list(c.needs),
                "inputs": [[{"type": TYPE_NAMES[t], "rank": r} for t, r in pairs] for pairs in c.inputs],
                "basis": c.basis,
                **({"why": c.why} if c.why else {}),
                "notes": c.notes,
            }
            for c in table
        ],
    }
    write("cases.json", (json.dumps(listing, indent=2) + "\n").encode())
    example = next(c for c in table if c.export == "echo")
    running = RUNNING.format(
        target=target,
        target_code=TARGETS[target],
        preload=target.upper(),
        example_name=example.name,
        example_export=example.export,
        example_wasm=f"{example.guest}.wasm",
        example_args=" ".join(str(_i32(a)) for a in example.args),
    )
    write("RUNNING.md", running.encode())
    return written
