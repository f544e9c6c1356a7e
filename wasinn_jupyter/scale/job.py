"""One map job, and the worker that serves it: what each process of a map (local or on Ray) holds and does.

A :class:`MapJob` is plain data (picklable, so it travels to a spawned process or a Ray actor): the guest's wasm,
the graphs to preload, the flags ``wasinn run`` takes, and the argument template. A :class:`MapWorker` is built
from it once per worker: one Host with the preloads registered (each model loaded once), one Session and the
guest compiled once. Then :meth:`MapWorker.serve` runs one fresh instance per input, with the input's directory
preopened first (fd 3) and ``{}`` in the arguments standing for the input's path as the guest sees it. A guest
that traps, exits badly or runs past its limits fails that input only; the worker carries on.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..host import WasinnError

# A guest's output kept per input and stream; more is dropped (a hostile guest must not grow the caller's memory).
MAX_OUTPUT_BYTES = 1 << 20
PLACEHOLDER = "{}"


@dataclass(frozen=True)
class Preload:
    """A graph registered by name in every worker (``--nn-preload NAME:ENCODING:TARGET:PATH``)."""

    name: str
    encoding: str
    target: str
    source: str  # a path the worker can read, or "echo"


@dataclass
class MapJob:
    """What every worker of a map needs: the guest, its graphs and flags, and how an input becomes arguments."""

    wasm: bytes  # the guest (wasm bytes or WAT text as UTF-8), read once by the caller
    guest_name: str  # argv[0] and its label on the timeline
    args: list[str] = field(default_factory=list)  # with {} for the input's guest path (appended when absent)
    preloads: list[Preload] = field(default_factory=list)
    dirs: list[tuple[str, str]] = field(default_factory=list)  # more preopens, after the input's directory
    env: dict[str, str] = field(default_factory=dict)
    mount: str = "."  # the guest path of each input's directory
    memory_bytes: int = 2 << 30
    deadline_s: float | None = None
    fuel: int | None = None
    cpu_fallback: bool = False
    model_dirs: list[str] | None = None
    guest_models: str = "sandbox"
    max_guest_bytes: int | None = None
    errno_dialect: str = "auto"

    def guest_path(self, name: str) -> str:
        """Where the guest finds an input called ``name`` (its directory is preopened as :attr:`mount`)."""
        mount = self.mount.rstrip("/")
        return name if mount in ("", ".") else f"{mount}/{name}"

    def argv(self, name: str) -> list[str]:
        """The guest's argv for one input: ``{}`` replaced by its guest path, or that path appended (as xargs)."""
        path = self.guest_path(name)
        if any(PLACEHOLDER in a for a in self.args):
            return [self.guest_name, *(a.replace(PLACEHOLDER, path) for a in self.args)]
        return [self.guest_name, *self.args, path]


@dataclass
class InputResult:
    """How one input went: one JSON line of ``wasinn map``'s output (see :meth:`as_json`)."""

    index: int
    input: str
    exit_code: int  # the guest's own; 1 host could not run it, 130 stopped (deadline, fuel), 134 trapped
    stdout: str
    stderr: str
    time_s: float
    error: str | None = None  # the host's word on a failure (a trap, a stop, the guest's last failed wasi-nn call)
    node: str = ""
    worker: str = ""
    pid: int = 0
    attempts: int = 1  # more than 1: a worker died holding this input and another ran it

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("pid")
        data.pop("index")
        return data


def node_name() -> str:
    """This machine, as records and results name it."""
    return socket.gethostname()


def clock_domain() -> str:
    """Which ``perf_counter_ns`` this process's clock shares: processes of one boot of one machine share it."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return f"{node_name()}:{os.getpid()}"


class _Capture:
    """A guest's stdout or stderr for one input, capped at MAX_OUTPUT_BYTES."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.dropped = 0

    def __call__(self, chunk: bytes) -> None:
        room = MAX_OUTPUT_BYTES - len(self.data)
        self.data += chunk[: max(room, 0)]
        self.dropped += max(len(chunk) - max(room, 0), 0)

    def text(self) -> str:
        text = self.data.decode("utf-8", "replace")
        return text + (f"\n[wasinn: {self.dropped} more bytes dropped]" if self.dropped else "")


class SetupError(WasinnError):
    """A worker could not set up (a model that does not load, a guest that does not compile): the map cannot run."""


class MapWorker:
    """One worker's Host, Session and compiled guest; :meth:`serve` runs one input. Built in the worker process."""

    def __init__(self, job: MapJob, worker: str) -> None:
        from ..host import (
            WASMEDGE_ONLY_ENCODINGS,
            Encoding,
            GuestError,
            Host,
            Limits,
            Session,
            Target,
            WasiNNError,
            encodings_dialect,
        )

        self.job = job
        self.worker = worker
        self.node = node_name()
        self.pid = os.getpid()
        limits = Limits(guest_models=job.guest_models)
        if job.max_guest_bytes is not None:
            limits.max_guest_bytes = job.max_guest_bytes
        self.host = Host(cpu_fallback=job.cpu_fallback, model_dirs=job.model_dirs, limits=limits)
        encodings = []
        try:
            for p in job.preloads:
                encoding = Encoding.parse(p.encoding)
                encodings.append(encoding)
                if encoding in WASMEDGE_ONLY_ENCODINGS:
                    continue  # the caller warned once; load_by_name answers not found, as with `wasinn run`
                self.host.register(p.name, p.source, encoding, Target.parse(p.target))
        except WasiNNError as exc:
            raise SetupError(f"cannot register graph: {exc}") from None
        dialect = job.errno_dialect
        by_encoding = encodings_dialect(encodings)
        if dialect == "auto" and by_encoding is not None:
            dialect = by_encoding[0].value
        self.dialect = dialect
        self.session = Session(self.host, fuel=job.fuel is not None)
        try:
            self.module = self.session.compile(job.wasm, name=job.guest_name)
        except GuestError as exc:
            raise SetupError(str(exc)) from None
        self._seen = -1  # the last timeline record already sent to the caller

    def serve(self, index: int, input_name: str, host_dir: str, display: str) -> InputResult:
        """Run the guest on one input: a file ``input_name`` in ``host_dir``; ``display`` is how results name it."""
        from ..host import GuestError, GuestLimits, GuestStopped, GuestTrap, WasiOptions

        job = self.job
        out, err = _Capture(), _Capture()
        wasi = WasiOptions(
            argv=job.argv(input_name),
            env=dict(job.env),
            dirs=[(host_dir, job.mount), *job.dirs],
            stdout=out,
            stderr=err,
        )
        limits = GuestLimits(memory_bytes=job.memory_bytes, deadline_s=job.deadline_s, fuel=job.fuel)
        start = time.perf_counter()
        error: str | None = None
        guest = None
        try:
            guest = self.session.instantiate(
                self.module, wasi=wasi, limits=limits, dialect=self.dialect, label=job.guest_name
            )
            code = guest.run(watch=True)  # on a guest thread with a known stack, as `wasinn run` runs it
        except GuestStopped as exc:
            code, error = 130, str(exc)
        except GuestTrap as exc:
            code, error = 134, str(exc)
        except GuestError as exc:
            code, error = 1, str(exc)
        except Exception as exc:  # noqa: BLE001 - a host bug fails this input, not the worker
            code, error = 1, f"internal error: {type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - start
        if code != 0 and guest is not None:
            failed = guest.failed_last_call()
            if failed is not None:
                last = f"the guest's last wasi-nn call failed: {failed}"
                error = f"{error}; {last}" if error else last
        if guest is not None:
            guest.close()
        return InputResult(
            index=index,
            input=display,
            exit_code=code,
            stdout=out.text(),
            stderr=err.text(),
            time_s=round(elapsed, 6),
            error=error,
            node=self.node,
            worker=self.worker,
            pid=self.pid,
        )

    def new_records(self) -> list[dict[str, Any]]:
        """The timeline records made since the last call, as dicts (they go to the caller's timeline)."""
        records = self.host.timeline.records(since=self._seen)
        if records:
            self._seen = records[-1].seq
        return [r.as_dict() for r in records]

    def close(self) -> None:
        self.session.close()
