"""The echo-model suite over WIT: ``wasi:nn@0.2.0-rc-2024-10-28`` from a component (``guests/wit_echo.wat``).

The same idea as the witx suite (``runner.py``): each case is one call of an export of a hand-written component,
which builds its tensors, calls the host and checks what comes back itself; its u32 result is the verdict (0:
the host behaved). The cases follow the witx groups where WIT can say the same thing (every type, now with BF16;
ranks 0 to 5 and zero-sized tensors; several inputs; reuse; unknown names; data that disagrees with its dims;
loading model bytes) and add what only WIT has: named inputs and outputs, tensors' own getters, resources that
outlive others. Pointer cases have no WIT counterpart: the canonical ABI checks every pointer before the host
sees it.

What remains slow: every ``list<u8>`` crosses wasmtime's component boundary one value per byte (see
``benchmarks/wit_throughput.py``), and a guest cannot pass the host more than about 2.67 MiB in one list
(wasmtime's hostcall fuel). Tensors here stay far below both; the witx suite is the one for big tensors.

Result codes: ``KIND * 100000000 + STEP * 1000000 + VALUE`` with ``STEP = PHASE * 10 + CALL`` as in the witx
suite; CALL 1 load, 2 load-by-name, 3 init-execution-context, 5 compute, 6 reading an output; KIND 1 an error
(VALUE: its WIT error-code ordinal + 1), 2 wrong output count or empty message, 3 output bytes differ at VALUE,
4 output data length VALUE, 5 dims differ (at dimension VALUE; 99 the rank), 6 type differs (VALUE: the type got),
7 output name differs (output VALUE), 8 a call succeeded that had to fail, 9 a bad case.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..host import GuestError, GuestLimits, GuestModule, Session, wat_to_wasm
from . import runner
from .runner import CASE_DEADLINE_S, SHAPES, Case, Signature, _dims, _pack

GUESTS_DIR = Path(__file__).parent / "guests"
WIT_GUESTS = ("wit_echo",)
ABI = "wit"

# WIT tensor-type ordinals (not the witx numbers), graph-encoding and execution-target ordinals, from the WIT text.
WIT_TYPES = {"f16": 0, "f32": 1, "f64": 2, "bf16": 3, "u8": 4, "i32": 5, "i64": 6}
WIT_ENCODINGS = {"onnx": 1, "pytorch": 3, "autodetect": 6}
WIT_TARGETS = {"cpu": 0, "gpu": 1}
WIT_CODES = (
    "invalid-argument",
    "invalid-encoding",
    "timeout",
    "runtime-error",
    "unsupported-operation",
    "too-large",
    "not-found",
    "security",
    "unknown",
)
WIT_CALLS = {1: "load", 2: "load-by-name", 3: "init-execution-context", 5: "compute", 6: "reading an output"}
# The guest's shape table: entry 0 is a scalar (or the echo export's own dims), 1..15 as the witx suite's.
WIT_SHAPES: tuple[tuple[int, ...], ...] = ((), *SHAPES[1:16])
LIMIT_NOTE = (
    "WIT list<u8> crosses wasmtime-py's component boundary element by element (this host: ~13 MB/s, wasmtime-py's "
    "own conversion ~1 MB/s), and a guest passes at most ~2.67 MiB in one list (wasmtime's hostcall fuel)"
)


def _case(group: str, what: str, export: str, *args: int, expect: str = "success", **more: Any) -> Case:
    inputs = wit_signature(export, args)
    needs = (*more.pop("needs", ()), *runner._needs("wit_echo", inputs))  # several inputs, several types or ranks
    fields: dict[str, Any] = {"expect": expect, "abi": ABI, "inputs": inputs, "needs": needs, **more}
    return Case(f"wit/{group}/{what}", f"wit/{group}", "wit_echo", export, tuple(args), **fields)


def _nibble(x: int, i: int) -> int:
    return (x >> (4 * i)) & 15


def _wit_rank(entry: int) -> int:
    return len(WIT_SHAPES[entry]) if entry < len(WIT_SHAPES) else -1


def wit_signature(export: str, args: Sequence[int]) -> Signature:
    """What each input index of the echo graph is sent in one WIT case: (WIT type ordinal, rank) pairs, as
    ``wit_echo.wat`` builds them (the WIT ordinals, not witx's: WIT has bf16). Every case that ends by checking the
    guest still works sends f32 [2,3] last; ``getters`` sends nothing (any echo graph serves it)."""
    f32_2 = (WIT_TYPES["f32"], 2)
    a = list(args)
    if export == "echo":
        sent = [[(a[0], a[1])]]
    elif export == "multi":
        sent = [[(_nibble(a[1], i), _wit_rank(_nibble(a[2], i)))] for i in range(a[0])]
    elif export == "rounds":
        sent = [[(a[0], _wit_rank(_nibble(a[2], k))) for k in range(a[1])]]
    elif export == "contexts":
        sent = [[(a[1], _wit_rank(i + 1)) for i in range(a[0])]]
    elif export == "outputs-outlive":
        sent = [[(a[0], 2), f32_2]]
    elif export == "mismatch":
        sent = [[(a[0], _wit_rank(a[1])), f32_2]]
    elif export == "bad-dims":
        sent = [[(a[0], 2), f32_2]]
    elif export == "load-echo":
        sent = [[(a[2], 2)]]
    elif export == "getters" or export == "load-invalid":
        sent = []
    else:  # unknown-name, duplicate-name, no-inputs: f32 [2,3] at most
        sent = [[f32_2]]
    return tuple(tuple(dict.fromkeys(pairs)) for pairs in sent)


WIT_TYPE_NAMES = {code: name for name, code in WIT_TYPES.items()}


def openvino_not_expressible(case: Case) -> str | None:
    """Why no OpenVINO identity model is this WIT case's echo graph, or None when one is (``write_openvino``)."""
    if "pytorch" in case.needs:
        return "loads a TorchScript model from guest bytes (encoding pytorch); an OpenVINO backend cannot run it"
    for index, pairs in enumerate(case.inputs):
        if len(pairs) > 1:
            sent = ", ".join(f"{WIT_TYPE_NAMES.get(t, t)} rank {r}" for t, r in pairs)
            return f"input {index} is sent {sent}: an OpenVINO input has one element type and one rank"
    return None


def openvino_key(case: Case) -> str:
    """The name of the OpenVINO identity model that serves ``case`` (one per signature)."""
    return "wit-" + ("_".join(f"{WIT_TYPE_NAMES[p[0][0]]}-r{p[0][1]}" for p in case.inputs) or "any")


def write_openvino(directory: Path, case: Case) -> Path:
    """An OpenVINO identity model for ``case`` in ``directory`` (model.xml, model.bin): input i named ``in{i}``,
    as the guest names its inputs (over WIT a host sets inputs by name), of the type and rank it is sent; a case
    that sends nothing gets f32 rank 2."""
    import openvino as ov

    inputs = case.inputs or (((WIT_TYPES["f32"], 2),),)
    parameters = [
        ov.opset13.parameter(ov.PartialShape([-1] * rank), getattr(ov.Type, WIT_TYPE_NAMES[ty]), name=f"in{i}")
        for i, ((ty, rank),) in enumerate(inputs)
    ]
    model = ov.Model([p.output(0) for p in parameters], parameters, runner.ECHO)
    directory.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(directory / "model.xml"), compress_to_fp16=False)
    return directory


def wave_call(case: Case) -> str:
    """The case as ``wasmtime run --invoke`` takes a component export: a WAVE call, ``echo(1, 2, 2, 3, 0, 0, 0)``."""
    return f"{case.export}({', '.join(str(a & 0xFFFFFFFF) for a in case.args)})"


def wit_cases(target: str = "cpu") -> list[Case]:
    """Every WIT case, in run order; ``target`` is what the load cases pass to ``load``."""
    tgt = WIT_TARGETS[target]
    out: list[Case] = []
    shape: tuple[int, ...]

    def echo(group: str, type_name: str, shape: tuple[int, ...]) -> None:
        dims = (*shape, 0, 0, 0, 0, 0)[:5]
        out.append(_case(group, f"{type_name}{_dims(shape)}", "echo", WIT_TYPES[type_name], len(shape), *dims))

    for type_name in WIT_TYPES:
        for shape in ((2, 3), (17,)):
            echo("types", type_name, shape)
    for shape in ((), (5,), (3, 4), (2, 3, 4), (1, 2, 3, 2), (2, 1, 2, 1, 3)):
        echo("shapes", "f32", shape)
    for type_name, shape in (
        ("u8", ()),
        ("bf16", ()),
        ("f32", (0,)),
        ("i32", (2, 0, 3)),
        ("i64", (0, 0, 0, 0, 0)),
        ("f32", (64, 64)),
        ("u8", (16384,)),
        ("f64", (2, 4, 256)),
        ("u8", (1024, 1024)),
    ):
        echo("shapes", type_name, shape)
    for what, types, shapes in (
        ("2-inputs-f32", (1, 1), (2, 2)),
        ("7-inputs-every-type", (0, 1, 2, 3, 4, 5, 6), (2, 5, 6, 7, 8, 9, 1)),
        ("8-inputs-mixed", (6, 5, 4, 3, 2, 1, 0, 4), (0, 3, 4, 7, 1, 13, 12, 15)),
    ):
        out.append(
            _case("multi", what, "multi", len(types), _pack(types), _pack(shapes), notes="outputs keep input names")
        )
    for what, type_name, shapes in (
        ("compute-twice-same-context", "f32", (2, 2)),
        ("8-rounds-every-rank", "u8", (0, 1, 2, 5, 6, 7, 2, 1)),
    ):
        out.append(_case("reuse", what, "rounds", WIT_TYPES[type_name], len(shapes), _pack(shapes)))
    for k, type_name in ((2, "f32"), (4, "bf16")):
        out.append(_case("reuse", f"{k}-contexts-from-1-graph", "contexts", k, WIT_TYPES[type_name]))
    out.append(_case("resources", "outputs-outlive-context-and-graph", "outputs-outlive", WIT_TYPES["f64"]))
    for type_name, shape_at in (("f32", 2), ("u8", 0), ("i64", 4), ("bf16", 6)):
        name = f"getters-{type_name}{_dims(WIT_SHAPES[shape_at])}"
        out.append(_case("resources", name, "getters", WIT_TYPES[type_name], shape_at))
    for which, what in enumerate(("no-such-graph", "prefix-ech", "echo-with-NUL")):
        out.append(_case("names", what, "unknown-name", which, expect="not-found, with a message"))
    invalid = "invalid-argument"
    for type_name, shape_at, delta in (("f32", 2, 1), ("f32", 2, -1), ("u8", 3, 1), ("f64", 0, -8), ("i32", 4, 4)):
        what = f"{type_name}{_dims(WIT_SHAPES[shape_at])}-data-len{delta:+d}"
        out.append(
            _case("tensors", what, "mismatch", WIT_TYPES[type_name], shape_at, delta & 0xFFFFFFFF, expect=invalid)
        )
    for type_name, d0, d1, data_len, what in (
        ("u8", 0x10000, 0x10000, 0, "element-count-wraps-to-0"),
        ("f32", 0x40000000, 1, 0, "byte-size-wraps-to-0"),
    ):
        out.append(
            _case(
                "tensors",
                f"{type_name}[{d0:#x},{d1}]-{what}",
                "bad-dims",
                WIT_TYPES[type_name],
                d0,
                d1,
                data_len,
                expect=invalid,
            )
        )
    out.append(_case("inputs", "duplicate-name", "duplicate-name", expect=invalid))
    out.append(_case("inputs", "no-inputs", "no-inputs", expect=invalid))
    for type_name in ("f32", "i64", "bf16"):
        out.append(
            _case(
                "load",
                f"pytorch-{type_name}",
                "load-echo",
                WIT_ENCODINGS["pytorch"],
                tgt,
                WIT_TYPES[type_name],
                needs=("pytorch",),
            )
        )
    for encoding, garbage, what in (("onnx", 0, "onnx-encoding-unsupported"), ("pytorch", 1, "garbage-bytes")):
        out.append(
            _case(
                "load",
                what,
                "load-invalid",
                WIT_ENCODINGS[encoding],
                tgt,
                garbage,
                expect="invalid-encoding",
                needs=("pytorch",),
            )
        )
    return out


def identity_torchscript() -> bytes:
    """A TorchScript module returning its one input, named ``in0`` as the guest names its first input (over WIT
    inputs go by name, and this host takes a TorchScript model's names from its ``forward``)."""
    import torch

    class Identity(torch.nn.Module):
        # No annotations (TorchScript reads an unannotated x as a Tensor, and reads "# type:" comments here).
        def forward(self, in0):
            return in0

    return runner.torchscript_bytes(Identity())


NAMES_CHECKED = "(global $check-names (mut i32) (i32.const 1))"


def wit_guest_wat(guest: str = "wit_echo", model: bytes | None = None, check_names: bool = True) -> str:
    """The component's WAT with its shape table and the model bytes (empty without one) spliced in.

    ``check_names=False`` makes the guest accept any output names: a peer that names its outputs otherwise is
    run again so, to say what else its echo got right (the suite's verdict stays the checked one)."""
    text = (GUESTS_DIR / f"{guest}.wat").read_text()
    if not check_names:
        if NAMES_CHECKED not in text:
            raise ValueError(f"{guest}.wat has no {NAMES_CHECKED}")
        text = text.replace(NAMES_CHECKED, NAMES_CHECKED.replace("i32.const 1", "i32.const 0"))
    table = b"".join(
        b"".join(v.to_bytes(4, "little") for v in (len(shape), *(*shape, 0, 0, 0, 0, 0)[:5])) for shape in WIT_SHAPES
    )
    model = model or b""
    if len(model) > 0x10000 - 4096:
        raise ValueError(f"the model is {len(model)} bytes; the guest has room for {0x10000 - 4096}")
    text = text.replace("@SHAPES@", "".join(f"\\{b:02x}" for b in table))
    text = text.replace("@MODEL_BYTES@", "".join(f"\\{b:02x}" for b in model))
    return text.replace("@MODEL_LEN@", str(len(model)))


def assemble_wit(guest: str = "wit_echo", model: bytes | None = None, check_names: bool = True) -> bytes:
    return wat_to_wasm(wit_guest_wat(guest, model, check_names))


def describe_wit(code: int, case: Case) -> str:
    """A WIT guest's nonzero result code in words."""
    kind, step, value = code // 100_000_000, code // 1_000_000 % 100, code % 1_000_000
    phase, call = divmod(step, 10)
    name = WIT_CALLS.get(call, f"call {call}")
    where = {9: f"{name} (the call under test)", 8: f"{name} (afterwards, checking the guest still works)"}.get(
        phase, f"{name} (round {phase})"
    )
    if kind == 1:
        error = WIT_CODES[value - 1] if 1 <= value <= len(WIT_CODES) else f"error-code {value - 1}"
        return f"{where} answered {error}; expected {case.expect if phase == 9 else 'success'}"
    texts = {
        2: f"{where}: {value} outputs (or an empty error message) where the inputs asked for another count",
        3: f"{where}: output bytes differ at offset {value}",
        4: f"{where}: output data is {value} bytes, not the input's size",
        5: f"{where}: output dims differ " + ("in rank" if value == 99 else f"at dimension {value}"),
        6: f"{where}: output type is {value}, not the input's",
        7: f"{where}: output {value} is not named as its input",
        8: f"{where} succeeded; expected {case.expect}",
        9: f"bad case: argument check {value} of export {case.export} failed for args {list(case.args)}",
    }
    return texts.get(kind, f"unexpected result code {code}")


def kind_of_wit(code: int) -> str:
    kinds = {
        1: "errno",
        2: "count",
        3: "bytes",
        4: "bytes",
        5: "dims",
        6: "type",
        7: "name",
        8: "no-error",
        9: "bad-case",
    }
    return kinds.get(code // 100_000_000, "bad-result")


def compile_wit(session: Session, chosen: Sequence[Case]) -> dict[str, GuestModule | tuple[str, str]]:
    """The WIT guests the chosen cases need, compiled once (the model spliced in where load cases are chosen)."""
    modules: dict[str, GuestModule | tuple[str, str]] = {}
    for guest in sorted({c.guest for c in chosen if c.guest in WIT_GUESTS}):
        model = None
        if any(c.guest == guest and "pytorch" in c.needs for c in chosen):
            try:
                model = identity_torchscript()
            except ImportError:
                model = None  # its load cases are skipped by run_wit_case
        try:
            modules[guest] = session.compile(assemble_wit(guest, model), name=f"{guest}.wasm")
        except (GuestError, ValueError) as exc:
            modules[guest] = "fail", f"the {guest} component does not build: {exc}"
    return modules


def run_wit_case(session: Session, module: GuestModule, case: Case) -> tuple[str, str, str, int | None]:
    """One case on a fresh instance: (status, detail, kind, code)."""
    if "pytorch" in case.needs:
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            return "skip", f"needs a PyTorch backend: torch is not importable ({exc})", "", None
    limits = GuestLimits(deadline_s=CASE_DEADLINE_S)
    try:
        with session.instantiate(module, label=f"conformance:{case.name}", limits=limits) as guest:
            code = int(guest.call(case.export, *case.args, watch=False))
            host_said = guest.client.last_error
    except GuestError as exc:
        return "fail", exc.message, "trap", None
    except Exception as exc:  # noqa: BLE001 - whatever a host does wrong fails this case, never the run
        return "fail", f"the call raised {type(exc).__name__}: {exc}", "host-error", None
    if code == 0:
        return "pass", "", "", 0
    detail = describe_wit(code, case)
    if code // 100_000_000 == 1 and host_said:
        detail += f" (host: {host_said})"
    return "fail", detail, kind_of_wit(code), code


def run_wit_suite(
    target: str = "cpu", session: Session | None = None, select: str | None = None
) -> list[tuple[Case, str, str, float]]:
    """Run the WIT cases on our host: (case, status, detail, seconds) each. ``runner`` reports them with the witx
    cases; this is the plain loop, for tests and for a host without the runner."""
    from ..host import Host

    if session is None:
        with Session(Host()) as own:
            return run_wit_suite(target, own, select)
    if runner.ECHO not in session.host.graphs():
        session.host.register(runner.ECHO, "echo", target=target)
    chosen = [c for c in wit_cases(target) if select is None or select in c.name]
    modules = compile_wit(session, chosen)
    out = []
    for case in chosen:
        since = time.perf_counter()
        module = modules[case.guest]
        if isinstance(module, tuple):
            status, detail = module
        else:
            status, detail, _, _ = run_wit_case(session, module, case)
        out.append((case, status, detail, time.perf_counter() - since))
    return out


__all__ = [
    "LIMIT_NOTE",
    "WIT_GUESTS",
    "assemble_wit",
    "compile_wit",
    "describe_wit",
    "openvino_not_expressible",
    "run_wit_case",
    "run_wit_suite",
    "wave_call",
    "wit_cases",
    "wit_signature",
    "write_openvino",
]
