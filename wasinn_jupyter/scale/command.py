"""``wasinn map``'s command: flags to a :class:`~.job.MapJob`, results to stdout as JSON lines, a closing summary.

Each input's line is ``{"input", "exit_code", "stdout", "stderr", "time_s", "error", "node", "worker",
"attempts"}``, in input order, printed as soon as every input before it is done; the last line is
``{"summary": {...}}``. Exit status: 0 when every input's guest exited 0, 1 when any failed (or the workers could
not set up), 2 for usage errors, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..host import WASMEDGE_ONLY_ENCODINGS, Timeline, WasinnError
from .inputs import expand_inputs
from .job import InputResult, MapJob, Preload
from .mapping import MapError, map_inputs
from .progress import TerminalProgress


def job_from_args(args: argparse.Namespace, guest_args: list[str]) -> MapJob:
    """The job ``wasinn map``'s flags describe (they read as ``wasinn run``'s)."""
    preloads = []
    for name, encoding, target, path in [*args.nn_preload, *args.nn_graph]:
        if encoding in WASMEDGE_ONLY_ENCODINGS:
            what = f"graph {name!r} ({encoding.name.lower()})"
            print(f"wasinn: {what} is not run by this host: load_by_name answers not found", file=sys.stderr)
        source = path if path == "echo" else str(Path(path).expanduser().resolve())
        preloads.append(Preload(name, encoding.name.lower(), target.name.lower(), source))
    guest: Path = args.guest
    return MapJob(
        wasm=guest.read_bytes(),
        guest_name=guest.name,
        args=guest_args,
        preloads=preloads,
        dirs=[(str(Path(h).resolve()), g) for h, g in args.dir],
        env=dict(args.env),
        mount=args.input_mount,
        memory_bytes=args.max_memory,
        deadline_s=args.deadline,
        fuel=args.fuel,
        cpu_fallback=args.cpu_fallback,
        model_dirs=[str(Path(d).resolve()) for d in args.model_dir] if args.model_dir else None,
        guest_models=args.guest_models,
        max_guest_bytes=args.max_guest_bytes,
        errno_dialect=args.errno_dialect,
    )


def run_map(args: argparse.Namespace) -> int:
    guest_args = list(args.args)
    try:
        inputs = expand_inputs(args.over)
    except ValueError as exc:
        print(f"wasinn map: error: {exc}", file=sys.stderr)
        return 2
    try:
        job = job_from_args(args, guest_args)
    except OSError as exc:
        print(f"wasinn: cannot read {args.guest}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    timeline = Timeline()
    out = sys.stdout

    def emit(result: InputResult) -> None:
        out.write(json.dumps(result.as_json()) + "\n")
        out.flush()

    try:
        summary = map_inputs(
            job,
            inputs,
            workers=args.workers,
            ray=args.ray,
            progress=TerminalProgress(sys.stderr),
            on_result=emit,
            timeline=timeline,
        )
    except (MapError, WasinnError) as exc:
        print(f"wasinn: {exc}", file=sys.stderr)
        return 1
    out.write(json.dumps({"summary": summary.as_json()}) + "\n")
    out.flush()
    if args.timeline:
        _print_timeline(timeline.summary())
    return 0 if summary.failed == 0 else 1


def _print_timeline(summary: dict[str, dict[str, Any]]) -> None:
    print(f"{'call':<28}{'count':>8}{'errors':>8}{'mean µs':>12}{'total ms':>12}", file=sys.stderr)
    for call, row in summary.items():
        count, errors, mean, total_ms = row["count"], row["errors"], row["mean_us"], row["total_us"] / 1000
        print(f"{call:<28}{count:>8.0f}{errors:>8.0f}{mean:>12.1f}{total_ms:>12.2f}", file=sys.stderr)
