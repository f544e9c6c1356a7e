"""The ``wasinn`` command: run guests the way other wasi-nn hosts' documented command lines do, and the suite.

    wasinn run [--dir HOST[::GUEST]]... [--nn-preload NAME:ENCODING:TARGET:PATH]... [--nn-graph ENCODING::DIR]...
               GUEST.wasm [ARGS...]
    wasinn conformance [--target cpu|gpu] [--json FILE] [--emit DIR]

``--nn-preload`` is WasmEdge's flag, ``--nn-graph`` wasmtime's (``--wasi nn-graph=ENCODING::DIR``): the graph is
named after the directory and read from ``DIR/model.pt``. A ``--dir`` with one colon is WasmEdge's ``GUEST:HOST``.
Encoding and target names are case-insensitive. Exit codes: the guest's own; 1 when the host could not set up
(bad model, guest does not compile); 2 for usage errors; 130 when interrupted; 134 when the guest trapped.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .host import GuestError, GuestLimits, GuestStopped, GuestTrap, Host, Session, WasiNNError, WasiOptions
from .host.encodings import Encoding, Target


def _dir(spec: str) -> tuple[str, str]:
    if "::" in spec:
        host, guest = spec.split("::", 1)
    elif ":" in spec:
        guest, host = spec.split(":", 1)  # WasmEdge's GUEST:HOST
    else:
        host = guest = spec
    if not Path(host).is_dir():
        raise argparse.ArgumentTypeError(f"--dir {spec}: {host} is not a directory")
    return host, guest


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
    key, sep, value = spec.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--env {spec!r}: expected KEY=VALUE")
    return key, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wasinn", description="A wasi-nn host backed by PyTorch.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the host does")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a command guest (.wasm or .wat)")
    run.add_argument("--dir", type=_dir, action="append", default=[], metavar="HOST[::GUEST]", help="preopen a dir")
    run.add_argument("--env", type=_env, action="append", default=[], metavar="KEY=VALUE")
    run.add_argument(
        "--nn-preload", type=_preload, action="append", default=[], metavar="NAME:ENCODING:TARGET:PATH",
        help="register a graph by name (WasmEdge's form; target cpu, gpu or auto)",
    )  # fmt: skip
    run.add_argument(
        "--nn-graph", type=_graph, action="append", default=[], metavar="ENCODING::DIR",
        help="register DIR/model.pt under DIR's name (wasmtime's form)",
    )  # fmt: skip
    run.add_argument("--cpu-fallback", action="store_true", help="run gpu graphs on the CPU when there is no CUDA")
    run.add_argument("--model-dir", action="append", help="allow model files only below these directories")
    run.add_argument("--errno-dialect", choices=["auto", "spec", "wasmedge"], default="auto")
    run.add_argument("--deadline", type=float, help="stop the guest after this many seconds")
    run.add_argument("--fuel", type=int, help="stop the guest after this much fuel")
    run.add_argument("--max-memory", type=int, default=GuestLimits.memory_bytes, help="guest memory limit, bytes")
    run.add_argument("--timeline", action="store_true", help="print a summary of the wasi-nn calls at exit")
    run.add_argument("guest", type=Path)
    run.add_argument("args", nargs=argparse.REMAINDER)

    conf = sub.add_parser("conformance", help="run the echo-model conformance suite against this host")
    conf.add_argument("--target", choices=["cpu", "gpu"], default="cpu")
    conf.add_argument("--json", type=Path, help="write the report as JSON here")
    conf.add_argument("--select", help="only cases whose name contains this")
    conf.add_argument("--emit", type=Path, metavar="DIR", help="write the suite's guests for another host, then exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="wasinn: %(message)s")
    if args.command == "run":
        return _run(args)
    return _conformance(args)


def _run(args: argparse.Namespace) -> int:
    host = Host(cpu_fallback=args.cpu_fallback, model_dirs=args.model_dir)
    try:
        for name, encoding, target, path in [*args.nn_preload, *args.nn_graph]:
            source = "echo" if path == "echo" else path
            host.register(name, source, encoding, target)  # a CPU fallback is logged as a warning
    except WasiNNError as exc:
        print(f"wasinn: cannot register graph: {exc}", file=sys.stderr)
        return 1
    session = Session(host, fuel=args.fuel is not None)
    limits = GuestLimits(memory_bytes=args.max_memory, deadline_s=args.deadline, fuel=args.fuel)
    wasi = WasiOptions(argv=[args.guest.name, *args.args], env=dict(args.env), dirs=args.dir)
    try:
        module = session.compile(args.guest)
        guest = session.instantiate(module, wasi=wasi, limits=limits, dialect=args.errno_dialect)
        code = guest.run()
    except FileNotFoundError as exc:
        print(f"wasinn: {exc}", file=sys.stderr)
        return 1
    except GuestStopped as exc:
        print(f"wasinn: {exc}", file=sys.stderr)
        return 130
    except GuestTrap as exc:
        print(f"wasinn: {exc}", file=sys.stderr)
        return 134
    except GuestError as exc:
        print(f"wasinn: {exc}", file=sys.stderr)
        return 1
    finally:
        if host.last_error:
            logging.getLogger("wasinn").info("last wasi-nn error: %s", host.last_error)
        if args.timeline:
            _print_timeline(host)
    return code


def _print_timeline(host: Host) -> None:
    summary = host.timeline.summary()
    print(f"{'call':<28}{'count':>8}{'errors':>8}{'mean µs':>12}{'total ms':>12}", file=sys.stderr)
    for call, row in summary.items():
        count, errors, mean, total_ms = row["count"], row["errors"], row["mean_us"], row["total_us"] / 1000
        print(f"{call:<28}{count:>8.0f}{errors:>8.0f}{mean:>12.1f}{total_ms:>12.2f}", file=sys.stderr)


def _conformance(args: argparse.Namespace) -> int:
    from . import conformance

    if args.emit:
        for path in conformance.emit(args.emit, target=args.target):
            print(path)
        return 0
    report = conformance.run_suite(target=args.target, select=args.select)
    print(report.table())
    if args.json:
        args.json.write_text(json.dumps(report.to_json(), indent=2))
    print(report.summary_line())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
