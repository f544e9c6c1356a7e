"""``%wasinn`` / ``%%wasinn``: guests and graphs from notebook cells, over the host's public API.

One :class:`~wasinn_jupyter.host.Session` per shell, private to the magics object (made at first use, replaced on
``%wasinn reset``); :func:`~.workbench.workbench` tells widgets when it is replaced. Failures a user can act on
(bad arguments, compile errors, traps, errnos, missing toolchains, an expression that raises) raise
:class:`CellError`, which IPython shows as a few lines with no traceback; the cell still fails. A ``#`` that starts
a word on a magic's line (outside quotes) starts a comment, as in a shell.

``%%wasinn compute`` always crosses the wasm boundary, through a guest that follows the compute convention of
:mod:`wasinn_jupyter.host.abi.convention` (``wasinn_alloc`` + ``wasinn_compute``): the named ``--guest``, or a
fresh instance of the shipped driver guest, which forwards the tensors through the witx ABI.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from traitlets import Bool, Float, Int, TraitError, Unicode, validate

from ..guests import (
    Compiled,
    CompileError,
    as_tensors,
    compile_source,
    compute,
    convention_problem,
    driver_wat,
    normalize_lang,
)
from ..host import (
    GUEST_MODEL_MODES,
    Encoding,
    Guest,
    GuestError,
    GuestLimits,
    GuestModule,
    GuestTrap,
    Host,
    Limits,
    Session,
    Target,
    Tensor,
    TensorInfo,
    WasiNNError,
    WasinnError,
    default_guest_bytes,
    parse_dir,
    parse_env,
)
from .display import CellError, GraphCard, GuestCard, GuestOutput, GuestSummary, Listing, Progress
from .timeline_plot import timeline_command, timeline_parser
from .workbench import workbench

argument = magic_arguments.argument
CARDS_KEPT = 8  # compute cards whose sliders still work (each holds its tensors)
HELP = ("-h", "--help")


# -- the subcommands' parsers (IPython's magic_arguments: each one's help is its usage) --------------------------


@magic_arguments.magic_arguments(name="%wasinn guest")
@argument("name", help="the guest's name, for %%wasinn run and %%%%wasinn compute --guest")
@argument("--lang", "-l", default=None, help="wat, c, rust, assemblyscript or python (default: WasinnMagics.lang)")
@argument("-f", "--force", action="store_true", help="compile again even if the cache holds this source")
@argument("--flags", default="", help="extra compiler flags as one string: --flags='-O3 -DN=4'")
def _guest_parser() -> None:
    """%%wasinn guest NAME: compile the cell to wasm and instantiate it against the wasi-nn host.

    C builds with zig (`zig cc -target wasm32-wasi`, the ziglang package), Rust with a rustc that has the
    wasm32-wasi target, AssemblyScript with asc; `#include "wasi_nn.h"` (C) and `mod wasi_nn;` (Rust) are the
    bindings this package ships. Without a main the module is built as a reactor (a library of exports).
    Python builds a WIT component with componentize-py: the cell runs as wasi:cli/run, `import nn` gives it
    wasi-nn (nn.load_by_name, nn.compute, nn.tensor, nn.ask), and %wasinn run NAME runs it.
    Compiled modules are cached by source, flags, compiler command line and toolchain (WasinnMagics.cache_dir);
    files that flags pull in (-I, -include) are not hashed: -f compiles again after changing them.
    """


@magic_arguments.magic_arguments(name="wasinn run")
@argument(
    "--dir", action="append", default=[], metavar="HOST[::GUEST]",
    help="preopen a directory: HOST::GUEST, WasmEdge's GUEST:HOST, or DIR as itself (repeatable)",
)  # fmt: skip
@argument("--env", action="append", default=[], metavar="KEY=VALUE", help="set an environment variable")
@argument("name", help="a command guest (one with _start) from %%%%wasinn guest")
@argument("args", nargs=argparse.REMAINDER, help="arguments for the guest (argv[1:])")
def _run_parser() -> None:
    """%wasinn run NAME [ARGS...]: run a command guest's _start with WASI; its output streams into the cell.

    The interrupt button stops a runaway guest (epoch interruption); a trap shows the guest's backtrace.
    """


@magic_arguments.magic_arguments(name="wasinn map")
@argument("name", help="a command guest (one with _start) from %%%%wasinn guest")
@argument("--over", required=True, metavar="DIR|GLOB|FILE.txt", help="the inputs (a .txt file lists paths)")
@argument("--workers", type=int, default=None, help="worker processes or actors (default: one per CPU)")
@argument("--ray", default=None, metavar="auto|local|ADDRESS", help="run the workers as Ray actors on this cluster")
@argument(
    "--dir", action="append", default=[], metavar="HOST[::GUEST]",
    help="preopen a directory too, after the input's (repeatable)",
)  # fmt: skip
@argument("--env", action="append", default=[], metavar="KEY=VALUE", help="set an environment variable")
@argument(
    "--nn-preload", action="append", default=[], metavar="NAME:ENCODING:TARGET:PATH",
    help="a graph for the workers (the kernel's graphs loaded from files, and echo, go to them anyway)",
)  # fmt: skip
@argument("--input-mount", default=".", metavar="GUEST", help="the guest path of each input's directory")
@argument("-o", "--output", default=None, metavar="VAR", help="store the MapSummary (every result) in this variable")
def _map_parser() -> None:
    """%wasinn map NAME --over DIR|GLOB|FILE.txt [-- ARGS]: run a command guest once per input, on workers.

    {} in ARGS stands for each input's path as the guest sees it (its directory is preopened first); without {}
    the path is appended. Workers are local processes (or Ray actors with --ray), each compiling the guest once
    and loading each graph once. A progress bar shows done, failed and rate; every worker's wasi-nn calls reach
    this kernel's timeline, tagged with node and worker. A guest that traps or runs past the deadline
    (%config WasinnMagics.deadline) fails that input only.
    """


@magic_arguments.magic_arguments(name="wasinn load")
@argument("name", help="the name guests use with load_by_name")
@argument("source", help="echo, a .pt/.pt2 file or a directory, or a notebook variable holding a torch model")
@argument("--encoding", "-e", default="autodetect", help="graph encoding (pytorch or autodetect)")
@argument("--target", "-t", default=None, help="cpu or gpu (default: WasinnMagics.target)")
@argument(
    "--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
    help="serve it by Ray actors (on the cluster ADDRESS names: auto, the default, or local, or HOST:PORT)",
)  # fmt: skip
@argument("--replicas", type=int, default=1, help="with --ray: how many actors serve it (default 1)")
@argument("--num-gpus", type=float, default=0, help="with --ray: GPUs per actor (default 0)")
def _load_parser() -> None:
    """%wasinn load NAME SOURCE: register a graph by name, and show what is known of it.

    SOURCE is looked up as a notebook variable (an nn.Module, ScriptModule or ExportedProgram, or a path held in
    a variable) first, then as `echo`, then as a file or directory.
    """


@magic_arguments.magic_arguments(name="%wasinn compute")
@argument("graph", help="a graph registered with %%wasinn load")
@argument("--guest", "-g", default=None, help="a guest that exports wasinn_alloc and wasinn_compute")
@argument("-o", "--output", default=None, metavar="VAR", help="store the outputs in this notebook variable")
def _compute_parser() -> None:
    """%%wasinn compute GRAPH: run GRAPH on the inputs the cell evaluates to, through a guest.

    The cell is one Python expression: an array or tensor, a list of them, or a dict of input name to array or
    tensor. The tensors cross into a guest's memory and go through the witx ABI: with --guest, that guest's
    wasinn_compute export; without it, the driver guest shipped with this package. Outputs come back as torch
    tensors: one tensor, a dict when the graph names its outputs, else a list.
    """


@magic_arguments.magic_arguments(name="%wasinn prompt")
@argument("graph", help="a prompt graph (a language model) registered with %%wasinn load")
@argument("-n", "--n-predict", type=int, default=None, help="tokens the reply may have at most (-1: until full)")
@argument("--temp", type=float, default=None, help="sampling temperature (0: always the most likely token)")
@argument("--top-k", type=int, default=None, help="sample among the k most likely tokens (0: all)")
@argument("--top-p", type=float, default=None, help="sample among the most likely tokens adding up to p")
@argument("--seed", type=int, default=None, help="the sampler's seed: the same seed gives the same reply")
@argument("--ctx-size", type=int, default=None, help="positions the prompt and the reply share")
@argument("-o", "--output", default=None, metavar="VAR", help="store the reply (a str) in this notebook variable")
def _prompt_parser() -> None:
    """%%wasinn prompt GRAPH: the language model's reply to the cell's text, streamed as it is produced.

    The options apply to this reply only (WasmEdge's n-predict, temp, top-k, top-p, seed, ctx-size); the graph's
    properties (%wasinn params GRAPH) apply otherwise. The interrupt button stops the reply. The timeline
    records the call with its token count, so the panel shows tokens per second.
    """


@magic_arguments.magic_arguments(name="wasinn list")
def _list_parser() -> None:
    """%wasinn list: the registered graphs and the compiled guests."""


@magic_arguments.magic_arguments(name="wasinn info")
@argument("name", help="a graph or a guest")
def _info_parser() -> None:
    """%wasinn info NAME: what is known of a graph or a guest."""


@magic_arguments.magic_arguments(name="wasinn unload")
@argument("name", help="a graph or a guest")
@argument("--graph", action="store_true", help="only the graph of that name")
@argument("--guest", action="store_true", help="only the guest of that name")
def _unload_parser() -> None:
    """%wasinn unload NAME: unregister a graph or drop a guest."""


@magic_arguments.magic_arguments(name="wasinn reset")
def _reset_parser() -> None:
    """%wasinn reset: drop every guest and graph and start a new session (the compile cache stays)."""


@magic_arguments.magic_arguments(name="wasinn params")
@argument("name", help="a graph registered with %%wasinn load")
def _params_parser() -> None:
    """%wasinn params NAME: a graph's weights and buffers as a tree, and its properties as controls.

    Changing a control sets the property (precision, device, threads...) for the graph's next compute; a value
    the graph refuses shows its message and the control goes back.
    """


SUBCOMMANDS: dict[str, tuple[Callable[[], None], bool]] = {  # name -> (parser function, takes a cell)
    "guest": (_guest_parser, True),
    "run": (_run_parser, False),
    "map": (_map_parser, False),
    "load": (_load_parser, False),
    "compute": (_compute_parser, True),
    "prompt": (_prompt_parser, True),
    "list": (_list_parser, False),
    "info": (_info_parser, False),
    "params": (_params_parser, False),
    "unload": (_unload_parser, False),
    "reset": (_reset_parser, False),
    "timeline": (timeline_parser, False),
}


def _parser(fn: Callable[[], None]) -> magic_arguments.MagicArgumentParser:
    parser: magic_arguments.MagicArgumentParser = getattr(fn, "parser")  # noqa: B009 - set by magic_arguments
    return parser


def _help(fn: Callable[[], None]) -> str:
    text = _parser(fn).format_help()
    return text.removeprefix("::\n\n").strip("\n")


def usage() -> str:
    """The overview `%wasinn --help` prints."""
    lines = ["%wasinn SUBCOMMAND ...: WebAssembly guests against this kernel's wasi-nn host.", ""]
    for fn, cell in SUBCOMMANDS.values():
        summary = (_parser(fn).description or "").strip().splitlines()[0]
        synopsis, _, what = summary.partition(": ")
        prefix = "%%" if cell else "%"
        lines.append(f"  {prefix}{synopsis.lstrip('%')}")
        lines.append(f"      {what}")
    lines += [
        "",
        "`%wasinn SUBCOMMAND --help` for a subcommand's options. Defaults: `%config WasinnMagics` (lang, target,",
        "cache_dir, memory_limit, deadline, cpu_fallback, rustc, asc, timeline_size).",
    ]
    return "\n".join(lines)


@dataclass
class GuestEntry:
    """A compiled guest. Every run and every compute gets a fresh instance of its module, so no state, handle or
    trap carries over from one cell to the next (and a guest cannot run out of handles over many computes)."""

    name: str
    compiled: Compiled
    module: GuestModule
    output: GuestOutput

    @property
    def exports(self) -> list[str]:
        return self.module.export_names

    def summary(self) -> GuestSummary:
        exports = self.exports
        return GuestSummary(
            name=self.name,
            lang=self.compiled.lang,
            toolchain=self.compiled.toolchain,
            size=len(self.compiled.wasm),
            kind="command" if self.module.is_command else "reactor",
            exports=exports,
            nn_imports=list(self.module.nn_imports),
            compute=convention_problem(self.module) is None,
            cached_at=str(self.compiled.path) if self.compiled.path else None,
        )


@magics_class
class WasinnMagics(Magics):
    """The ``%wasinn`` line and cell magic. Settings: ``%config WasinnMagics.<name> = <value>``."""

    lang = Unicode("wat", help="language of %%wasinn guest cells given no --lang").tag(config=True)
    target = Unicode("cpu", help="execution target of %wasinn load given no --target (cpu or gpu)").tag(config=True)
    cache_dir = Unicode(
        "", help="where compiled guests are cached; empty: $WASINN_CACHE_DIR or ~/.cache/wasinn-jupyter"
    ).tag(config=True)
    memory_limit = Int(2 << 30, help="bytes of linear memory a guest may grow to").tag(config=True)
    deadline = Float(0.0, help="seconds one call into a guest may run; 0: no limit").tag(config=True)
    cpu_fallback = Bool(
        False, help="run target gpu on the CPU where there is no CUDA (applies from the next %wasinn reset)"
    ).tag(config=True)
    max_model_bytes = Int(2 << 30, help="largest model a guest or a file may load (from the next reset)").tag(
        config=True
    )
    guest_models = Unicode(
        "sandbox",
        help="what `load` does with a guest's model bytes (code): sandbox (a confined worker process), in-process "
        "(for guests you trust as yourself) or off (from the next %wasinn reset)",
    ).tag(config=True)
    max_guest_bytes = Int(
        default_guest_bytes(),
        help="each guest's memory budget on the host: its tensors and its models' memory (from the next reset)",
    ).tag(config=True)
    rustc = Unicode("", help="the rustc for Rust guests; empty: one with the wasm32-wasi target").tag(config=True)
    asc = Unicode("", help="the AssemblyScript compiler; empty: asc on PATH or in ./node_modules").tag(config=True)
    timeline_size = Int(
        100_000, help="wasi-nn calls the timeline keeps, the oldest dropped first; 0 records none (from the next reset)"
    ).tag(config=True)
    widgets = Bool(True, help="show %%wasinn compute's tensors as widgets in a kernel (the returned value stays)").tag(
        config=True
    )

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, parent=shell, **kwargs)
        self._session: Session | None = None
        self._driver: GuestModule | None = None
        self._seen_outputs: dict[str, list[TensorInfo]] = {}  # graph -> what its last compute gave
        self.guests: dict[str, GuestEntry] = {}
        self.last_compute_s: float | None = None  # wall time of the last %%wasinn compute, guest call included
        self._cards: list[Any] = []  # the last compute cards' widgets, which hold their tensors for the sliders

    @validate("lang")
    def _check_lang(self, proposal: Any) -> str:
        try:
            return normalize_lang(proposal["value"])
        except CompileError as exc:
            raise TraitError(exc.message) from None

    @validate("deadline")
    def _check_deadline(self, proposal: Any) -> float:
        value = proposal["value"]
        if not math.isfinite(value) or value < 0:
            raise TraitError(f"deadline must be a finite number of seconds (0: no limit), not {value}")
        return float(value)

    @validate("guest_models")
    def _check_guest_models(self, proposal: Any) -> str:
        if proposal["value"] not in GUEST_MODEL_MODES:
            raise TraitError(f"guest_models must be one of {', '.join(GUEST_MODEL_MODES)}, not {proposal['value']!r}")
        return str(proposal["value"])

    @validate("memory_limit", "max_model_bytes", "max_guest_bytes")
    def _check_bytes(self, proposal: Any) -> int:
        value = proposal["value"]
        if not 0 <= value < 1 << 63:
            raise TraitError(f"{proposal['trait'].name} must be a number of bytes from 0, not {value}")
        return int(value)

    @validate("timeline_size")
    def _check_timeline_size(self, proposal: Any) -> int:
        if not 0 <= proposal["value"] <= 1 << 32:
            raise TraitError(f"timeline_size must be a number of records from 0, not {proposal['value']}")
        return int(proposal["value"])

    @validate("target")
    def _check_target(self, proposal: Any) -> str:
        try:
            return str(Target.parse(proposal["value"]))
        except WasiNNError as exc:
            raise TraitError(exc.message) from None

    # -- state ------------------------------------------------------------------------------------------------

    @property
    def _shell(self) -> Any:
        if self.shell is None:
            raise CellError("%wasinn needs an IPython shell")
        return self.shell

    def _live_session(self) -> Session:
        """The shell's Session, made at first use so `%load_ext` stays instant; the workbench is told."""
        if self._session is None:
            limits = Limits(
                max_model_bytes=self.max_model_bytes,
                max_guest_bytes=self.max_guest_bytes,
                guest_models=self.guest_models,
            )
            host = Host(cpu_fallback=self.cpu_fallback, limits=limits, timeline_size=self.timeline_size)
            self._session = Session(host)
            self._driver = None
            workbench()._replace(self._session)
        return self._session

    def limits(self) -> GuestLimits:
        return GuestLimits(memory_bytes=self.memory_limit, deadline_s=self.deadline or None)

    def close(self) -> None:
        """Drop every guest, free the graphs and end the session (used by reset and by %unload_ext).

        The models are freed and the epoch ticker ended right here, not when the Session is collected: something
        (a traceback kept by IPython, a user's variable) may still hold the Session for a long time.
        """
        session, self._session = self._session, None
        self.guests.clear()
        self._driver = None
        self._seen_outputs.clear()
        if session is not None:
            session.close()
            if workbench().session is session:
                workbench()._replace(None)

    # -- the magic ------------------------------------------------------------------------------------------

    @line_cell_magic
    def wasinn(self, line: str, cell: str | None = None) -> Any:
        """WebAssembly guests against this kernel's wasi-nn host: `%wasinn --help` lists the subcommands."""
        try:
            return self._dispatch(line, cell)
        except UsageError as exc:  # a bad argument fails the cell like any other error, not as a note on stderr
            raise CellError(str(exc), "see %wasinn --help, and %wasinn SUBCOMMAND --help") from None
        except CompileError as exc:
            raise CellError(exc.message, exc.log) from None
        except GuestError as exc:
            raise _failure(None, exc) from None
        except WasiNNError as exc:
            raise CellError(f"{exc.code.value}: {exc.message}") from None

    def _dispatch(self, line: str, cell: str | None) -> Any:
        try:
            argv = shlex.split(strip_comment(line))
        except ValueError as exc:  # an unclosed quote
            raise UsageError(f"%wasinn: {exc}") from None
        if not argv or argv[0] in (*HELP, "help"):
            print(usage())
            return None
        sub = argv[0]
        if sub not in SUBCOMMANDS:
            raise UsageError(f"%wasinn: unknown subcommand {sub!r} (one of {', '.join(SUBCOMMANDS)}; --help)")
        fn, takes_cell = SUBCOMMANDS[sub]
        guest_args: list[str] = []
        if sub == "map" and "--" in argv:  # the guest's arguments are all that follows --
            cut = argv.index("--")
            argv, guest_args = argv[:cut], argv[cut + 1 :]
        own = argv[1:]
        if sub == "run":  # after the guest's name, everything belongs to the guest
            own = own[: next((i for i, a in enumerate(own) if not a.startswith("-")), len(own))]
        if any(a in HELP for a in own):
            print(_help(fn))
            return None
        try:
            args = _parser(fn).parse_args(argv[1:])
        except UsageError as exc:
            prefix = "%%" if takes_cell else "%"
            raise UsageError(f"{prefix}wasinn {sub}: {exc}") from None
        if takes_cell and cell is None:
            raise UsageError(f"%%wasinn {sub} is a cell magic: put it on the first line of a cell")
        if not takes_cell and cell is not None:
            raise UsageError(f"%wasinn {sub} is a line magic: it takes no cell")
        if sub == "map":
            args.guest_args = guest_args
        return getattr(self, f"_{sub}")(args, cell)

    # -- guest ------------------------------------------------------------------------------------------------

    def _guest(self, args: argparse.Namespace, cell: str) -> None:
        lang = normalize_lang(args.lang or self.lang)
        progress = Progress(self.shell)
        try:
            compiled = compile_source(
                cell,
                lang,
                name=args.name,
                flags=shlex.split(args.flags),
                cache_dir=self.cache_dir or None,
                force=args.force,
                progress=progress,
                rustc=self.rustc or None,
                asc=self.asc or None,
            )
        finally:
            progress.close()
        if compiled.log:
            print(compiled.log, file=sys.stderr)
        try:
            module = self._live_session().compile(compiled.wasm, name=args.name)
            entry = GuestEntry(args.name, compiled, module, GuestOutput())
            self._instantiate(entry).close()  # links it now: an unknown import fails here, not at run
        except GuestError as exc:
            raise _failure(args.name, exc) from None
        self.guests[args.name] = entry
        how = "from the cache" if compiled.cached else f"compiled in {compiled.seconds:.2f} s"
        summary = entry.summary()
        print(f"guest {args.name!r}: {lang}, {len(compiled.wasm):,} bytes, {how}. Use: {summary.usage()}")

    def _instantiate(self, entry: GuestEntry, argv: list[str] | None = None, **wasi: Any) -> Guest:
        options = entry.output.options(argv=argv or [entry.name], **wasi)
        guest = self._live_session().instantiate(entry.module, wasi=options, limits=self.limits(), label=entry.name)
        if "_initialize" in entry.exports and "_start" not in entry.exports:
            try:
                with entry.output.bound():
                    guest.call("_initialize")
            except BaseException:
                guest.close()
                raise
        return guest

    def _entry(self, name: str) -> GuestEntry:
        entry = self.guests.get(name)
        if entry is None:
            known = ", ".join(sorted(self.guests)) or "none yet: %%wasinn guest NAME compiles one"
            raise CellError(f"no guest named {name!r} (guests: {known})")
        return entry

    # -- run --------------------------------------------------------------------------------------------------

    def _run(self, args: argparse.Namespace, cell: None) -> None:
        entry = self._entry(args.name)
        if not entry.module.is_command:  # a core module's _start, or a component's wasi:cli/run
            raise CellError(
                f"guest {args.name!r} is not a command (it exports no _start)",
                f"exports: {', '.join(entry.exports) or 'none'}",
            )
        try:
            dirs = [parse_dir(spec) for spec in args.dir]
            env = dict(parse_env(spec) for spec in args.env)
        except ValueError as exc:
            raise UsageError(f"%wasinn run: {exc}") from None
        guest: Guest | None = None
        try:
            guest = self._instantiate(entry, argv=[args.name, *args.args], env=env, dirs=dirs)
            try:
                with entry.output.bound():
                    code = guest.run()
            finally:
                guest.close()
        except GuestError as exc:
            failure = _failure(args.name, exc)
            if isinstance(exc, GuestTrap) and guest is not None:
                failure = _blame(failure, guest)
            raise failure from None
        if code != 0:
            raise _blame(CellError(f"guest {args.name!r} exited with code {code}"), guest)

    # -- map ----------------------------------------------------------------------------------------------------

    def _map(self, args: argparse.Namespace, cell: None) -> Any:
        from ..scale import MapError, MapJob, Preload, expand_inputs, map_inputs

        entry = self._entry(args.name)
        if "_start" not in entry.exports:
            raise CellError(f"guest {args.name!r} is not a command (it exports no _start)")
        if args.output is not None and not args.output.isidentifier():
            raise UsageError(f"-o {args.output}: not a Python variable name")
        if args.workers is not None and args.workers < 1:
            raise UsageError("--workers: expected 1 or more")
        try:
            inputs = expand_inputs(args.over)
            dirs = [parse_dir(spec) for spec in args.dir]
            env = dict(parse_env(spec) for spec in args.env)
            preloads = [_preload(spec) for spec in args.nn_preload]
        except ValueError as exc:
            raise UsageError(f"%wasinn map: {exc}") from None
        host = self._live_session().host
        named = {p.name for p in preloads}
        for name, info in host.graphs().items():  # the kernel's graphs that a worker can load too
            if name in named:
                continue
            if info.kind == "echo":
                preloads.append(Preload(name, "autodetect", "cpu", "echo"))
            elif info.source and Path(info.source).is_file() and "on Ray" not in info.kind:
                preloads.append(Preload(name, "autodetect", str(self.target), info.source))
            else:
                print(f"graph {name!r} ({info.kind}) stays in this kernel: map workers get only graphs from files")
        job = MapJob(
            wasm=entry.compiled.wasm,
            guest_name=args.name,
            args=list(args.guest_args),
            preloads=preloads,
            dirs=[(str(Path(h).resolve()), g) for h, g in dirs],
            env=env,
            mount=args.input_mount,
            memory_bytes=self.memory_limit,
            deadline_s=self.deadline or None,
            cpu_fallback=self.cpu_fallback,
            guest_models=self.guest_models,
            max_guest_bytes=self.max_guest_bytes,
        )
        progress = _map_progress(self.shell)
        try:
            summary = map_inputs(
                job, inputs, workers=args.workers, ray=args.ray, progress=progress, timeline=host.timeline
            )
        except (MapError, WasinnError) as exc:
            raise CellError(f"%wasinn map: {exc}") from None
        if args.output is not None:
            self._shell.user_ns[args.output] = summary
        for result in summary.results:
            if not result.ok:
                why = result.error or result.stderr.strip().splitlines()[-1:] or ["no output"]
                print(f"{result.input}: exit {result.exit_code}: {why if isinstance(why, str) else why[0]}")
        return summary

    # -- graphs -----------------------------------------------------------------------------------------------

    def _load(self, args: argparse.Namespace, cell: None) -> GraphCard:
        source = self._source(args.source)
        target = args.target or self.target
        host = self._live_session().host
        if args.ray is not None:
            from ..scale.ray_graphs import register_ray_graph

            options = {"replicas": args.replicas, "num_gpus": args.num_gpus, "address": args.ray}
            try:
                info = register_ray_graph(host, args.name, source, encoding=args.encoding, target=target, **options)
            except (WasinnError, ValueError) as exc:
                if isinstance(exc, WasiNNError):
                    raise
                raise CellError(str(exc)) from None
        else:
            info = host.register(args.name, source, Encoding.parse(args.encoding), Target.parse(target))
        self._seen_outputs.pop(args.name, None)
        return GraphCard(info)

    def _source(self, text: str) -> Any:
        user_ns = self._shell.user_ns
        if text.isidentifier() and text in user_ns:
            value = user_ns[text]
            return str(value) if isinstance(value, (str, os.PathLike)) else value
        if text == "echo":
            return "echo"
        path = Path(text).expanduser()
        if path.exists():
            return str(path)
        raise CellError(
            f"SOURCE {text!r} is not a notebook variable, 'echo', or an existing file or directory",
            "give a torch model's variable name, a .pt/.pt2 file, a directory holding model.pt, or echo",
        )

    def _list(self, args: argparse.Namespace, cell: None) -> Listing:
        graphs = list(self._session.host.graphs().values()) if self._session is not None else []
        return Listing(graphs, [e.summary() for e in self.guests.values()])

    def _info(self, args: argparse.Namespace, cell: None) -> Any:
        graphs = self._live_session().host.graphs()
        cards: list[Any] = []
        if args.name in graphs:
            cards.append(GraphCard(graphs[args.name], self._seen_outputs.get(args.name)))
        if args.name in self.guests:
            cards.append(GuestCard(self.guests[args.name].summary()))
        if not cards:
            raise CellError(
                f"no graph or guest named {args.name!r}",
                f"graphs: {', '.join(graphs) or 'none'}; guests: {', '.join(self.guests) or 'none'}",
            )
        if len(cards) == 1:
            return cards[0]
        from IPython.display import display

        for card in cards:
            display(card)
        return None

    def _params(self, args: argparse.Namespace, cell: None) -> Any:
        host = self._live_session().host
        if args.name not in host.graphs():
            known = ", ".join(host.graphs()) or "none yet: %wasinn load NAME SOURCE registers one"
            raise CellError(f"no graph named {args.name!r} (graphs: {known})")
        from ..widgets import ParamsWidget

        return ParamsWidget(host, args.name)

    def _unload(self, args: argparse.Namespace, cell: None) -> None:
        both = not args.graph and not args.guest
        host = self._live_session().host
        is_graph = args.name in host.graphs() and (args.graph or both)
        is_guest = args.name in self.guests and (args.guest or both)
        if both and is_graph and is_guest:
            raise CellError(f"{args.name!r} names both a graph and a guest: add --graph or --guest")
        if is_graph:
            host.unregister(args.name)
            self._seen_outputs.pop(args.name, None)
            print(f"graph {args.name!r} unregistered")
        elif is_guest:
            del self.guests[args.name]
            print(f"guest {args.name!r} dropped")
        else:
            raise CellError(f"nothing named {args.name!r} to unload")

    def _timeline(self, args: argparse.Namespace, cell: None) -> Any:
        session = self._session  # no session yet: nothing recorded, and none is started just to say so
        return timeline_command(session.host.timeline if session is not None else None, args, self._shell.user_ns)

    def _reset(self, args: argparse.Namespace, cell: None) -> None:
        graphs = len(self._session.host.graphs()) if self._session is not None else 0
        guests = len(self.guests)
        self.close()
        print(f"reset: {guests} guest(s) and {graphs} graph(s) dropped")

    # -- compute ----------------------------------------------------------------------------------------------

    def _prompt(self, args: argparse.Namespace, cell: str) -> None:
        if args.output is not None and not args.output.isidentifier():
            raise UsageError(f"-o {args.output}: not a Python variable name")
        keys = {"n_predict": "n-predict", "temp": "temp", "top_k": "top-k", "top_p": "top-p", "seed": "seed",
                "ctx_size": "ctx-size"}  # fmt: skip
        options = {key: getattr(args, attr) for attr, key in keys.items() if getattr(args, attr) is not None}
        text = cell.strip("\n")
        if not text:
            raise UsageError("%%wasinn prompt: the cell (the prompt) is empty")

        def show(piece: str) -> None:
            sys.stdout.write(piece)
            sys.stdout.flush()  # each piece as the model produces it

        host = self._live_session().host
        start = time.perf_counter()
        reply = host.prompt(args.graph, text, show, options=options, label="%%wasinn prompt")
        elapsed = time.perf_counter() - start
        sys.stdout.write("\n")
        if args.output is not None:
            self._shell.user_ns[args.output] = reply
        calls = [r for r in host.timeline.records(last=4) if r.call == "prompt" and r.graph == args.graph][-1:]
        tokens = calls[0].tokens if calls and calls[0].tokens is not None else None
        if tokens is not None:
            rate = f", {tokens / elapsed:.1f} tokens/s" if elapsed > 0 else ""
            print(f"[{tokens} tokens in {elapsed:.2f} s{rate}]", file=sys.stderr)

    def _compute(self, args: argparse.Namespace, cell: str) -> Any:
        if args.output is not None and not args.output.isidentifier():
            raise UsageError(f"-o {args.output}: not a Python variable name")
        graphs = self._live_session().host.graphs()
        info = graphs.get(args.graph)
        if info is None and args.guest is None:
            known = ", ".join(graphs) or "none yet: %wasinn load NAME SOURCE registers one"
            raise CellError(f"no graph named {args.graph!r} (graphs: {known})")
        expression = cell.strip()
        if not expression:
            raise UsageError("%%wasinn compute: the cell must be a Python expression giving the inputs")
        try:
            value = self._shell.ev(expression)
        except SyntaxError as exc:
            raise CellError(
                "the cell must be one Python expression giving the inputs", f"SyntaxError: {exc.msg}"
            ) from None
        except Exception as exc:  # noqa: BLE001 - the user's expression failed: its error and frames, not ours
            raise CellError(
                f"the cell's inputs could not be evaluated: {type(exc).__name__}: {exc}",
                _user_frames(exc.__traceback__),
            ) from None
        names = [t.name for t in info.inputs] if info is not None and info.inputs else None
        tensors = as_tensors(value, names)
        _check_inputs(tensors)

        start = time.perf_counter()
        via = args.guest or "driver"
        try:
            if args.guest is not None:
                entry = self._entry(args.guest)
                with entry.output.bound():
                    guest = self._instantiate(entry)
                    try:
                        outputs = compute(guest, args.graph, tensors)
                    finally:
                        guest.close()
            else:
                guest = self._driver_guest()
                try:
                    outputs = compute(guest, args.graph, tensors)
                finally:
                    guest.close()
        except GuestError as exc:
            raise _failure(via, exc, f"compute {args.graph!r} through guest {via!r}") from None
        self.last_compute_s = time.perf_counter() - start
        self._seen_outputs[args.graph] = [
            TensorInfo(o.name or f"output{i}", str(o.tensor.type), list(o.tensor.dims)) for i, o in enumerate(outputs)
        ]

        results = [o.tensor.to_torch() for o in outputs]
        names_out = [o.name for o in outputs]
        result: Any
        if len(results) == 1:
            result = results[0]
        elif results and all(names_out):
            result = dict(zip(names_out, results, strict=True))
        else:
            result = results
        if self.widgets and getattr(self.shell, "kernel", None) is not None:
            labels = names or (list(value) if isinstance(value, dict) else [])
            self._show_card(
                f"compute {args.graph!r} through {via!r} in {self.last_compute_s * 1e3:.1f} ms",
                [(labels[i] if i < len(labels) else f"input{i}", t) for i, t in enumerate(tensors)],
                [(n or f"output{i}", r) for i, (n, r) in enumerate(zip(names_out, results, strict=True))],
            )
        if args.output:
            self._shell.user_ns[args.output] = result
        return result

    def _show_card(self, title: str, inputs: list[tuple[str, Any]], outputs: list[tuple[str, Any]]) -> None:
        """The inputs and outputs as tensor widgets (above the returned value, which frontends without widgets
        show as before); older cards let go of their tensors, so re-running a cell does not pile them up."""
        from IPython.display import display

        from ..widgets import ComputeView

        card = ComputeView(title, inputs, outputs)
        self._cards.append(card)
        for old in self._cards[:-CARDS_KEPT]:
            old.release()
        del self._cards[:-CARDS_KEPT]
        display(card)

    def _driver_guest(self) -> Guest:
        """A fresh instance of the shipped driver, so each compute starts with clean handles and memory.

        Every instance is labelled ``driver`` on the timeline; its records' ``guest_id`` tells them apart.
        """
        session = self._live_session()
        if self._driver is None:
            compiled = compile_source(driver_wat(), "wat", name="driver", cache_dir=self.cache_dir or None)
            self._driver = session.compile(compiled.wasm, name="driver")
        return session.instantiate(self._driver, limits=self.limits(), label="driver")


def _preload(spec: str) -> Any:
    """``--nn-preload NAME:ENCODING:TARGET:PATH`` (ValueError when it is not that)."""
    from ..scale import Preload

    parts = spec.split(":", 3)
    if len(parts) != 4 or not all(parts):
        raise ValueError(f"--nn-preload {spec!r}: expected NAME:ENCODING:TARGET:PATH")
    name, encoding, target, path = parts
    try:
        Encoding.parse(encoding), Target.parse(target)
    except WasiNNError as exc:
        raise ValueError(f"--nn-preload {spec!r}: {exc.message}") from None
    return Preload(name, encoding, target, path if path == "echo" else str(Path(path).expanduser().resolve()))


def _map_progress(shell: Any) -> Any:
    """An ipywidgets bar in a kernel (where ipywidgets is installed), else a terminal bar on stderr (a tty's)."""
    from ..scale.progress import TerminalProgress, WidgetProgress

    if getattr(shell, "kernel", None) is not None:
        try:
            return WidgetProgress()
        except ImportError:
            pass
    return TerminalProgress(sys.stderr)


def _check_inputs(tensors: list[Tensor]) -> None:
    """Only dense tensors with data can be copied into a guest: say so before anything tries (torch's own error
    surfaces deep in the copy, as a traceback)."""
    for i, tensor in enumerate(tensors):
        data = tensor.data
        if isinstance(data, np.ndarray):  # numpy arrays are always dense and in memory
            continue
        if str(data.layout) != "torch.strided":
            kind = str(data.layout).removeprefix("torch.").removeprefix("_")
            raise CellError(f"input {i} is a {kind} tensor: %%wasinn compute takes dense tensors (.to_dense())")
        if data.device.type == "meta":
            raise CellError(f"input {i} is on the meta device: it has a shape but no data to compute on")


def strip_comment(line: str) -> str:
    """``line`` up to a ``#`` that starts a word outside quotes: a shell's comment (``# a`` goes, ``a#b`` stays)."""
    quote: str | None = None
    word_start = True
    at = 0
    while at < len(line):
        char = line[at]
        if quote is not None:
            if char == "\\" and quote == '"':
                at += 1
            elif char == quote:
                quote = None
        elif char == "#" and word_start:
            return line[:at].rstrip()
        elif char == "\\":
            at += 1
        elif char in "'\"":
            quote = char
        word_start = quote is None and char.isspace()
        at += 1
    return line


def _user_frames(tb: TracebackType | None) -> str:
    """The traceback below the cell's expression (its own calls into user code), or "" when it failed right there.

    The frames above it are the magics' and IPython's: they say nothing about the user's mistake.
    """
    frames = traceback.extract_tb(tb)
    start = next((i for i, f in enumerate(frames) if f.filename == "<string>"), None)
    if start is None or start + 1 >= len(frames):
        return ""
    return "raised in:\n" + "".join(traceback.format_list(frames[start + 1 :])).rstrip()


def _blame(error: CellError, guest: Guest) -> CellError:
    """``error`` with the host's message for the guest's last wasi-nn call, where that call failed."""
    failed = guest.failed_last_call()
    if failed is None:
        return error
    details = "\n".join(part for part in (f"its last wasi-nn call failed: {failed}", error.details) if part)
    return CellError(error.title, details)


def _failure(name: str | None, exc: GuestError, doing: str | None = None) -> CellError:
    """A short error for a guest failure: its one-line message, and its backtrace once, as details."""
    message = exc.message
    if doing:
        message = f"{doing}: {message}"
    elif name and message.startswith("guest "):
        message = f"guest {name!r} {message.removeprefix('guest ')}"
    elif name:
        message = f"guest {name!r}: {message}"
    frames = "\n".join(f"  at {f}" for f in exc.frames)
    return CellError(message, f"guest backtrace:\n{frames}" if frames else "")


__all__ = ["CellError", "WasinnMagics", "strip_comment", "usage"]
