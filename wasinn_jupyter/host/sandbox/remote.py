"""The host's side of the sandbox: a worker process per guest, and the graphs that live in it.

A guest's ``load`` bytes are code (a TorchScript archive runs in ``__setstate__`` while it loads and in
``forward``), so they are loaded and run only in a :class:`SandboxProcess`: a fresh Python that confines itself
(:mod:`.confine`) before it reads them. Each guest gets its own worker (per device), started on its first
``load``, so a guest's code meets only its own graphs; it ends when the guest's client closes.

What the host does not trust about a worker: anything it says (:mod:`.protocol` checks every field), how long it
takes (a time limit per request, and the guest's own stop: interrupt, deadline; past either the worker is killed)
and whether it lives (a crash is an errno for the call that was running, and the graphs it held answer
``runtime_error`` from then on; the next ``load`` starts a new worker). How much memory it holds is charged to the
guest's budget after every request; past the budget the worker is killed and the call answers ``too_large``.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, Union

if TYPE_CHECKING:
    import numpy as np

from ..backends.base import PROPERTY_KINDS, Graph, GraphInfo, PropertySpec, TensorInfo
from ..encodings import Encoding
from ..errors import ErrorCode, WasiNNError, fail
from ..handles import ByteBudget, Limits
from ..tensors import Tensor
from . import protocol

log = logging.getLogger(__name__)

StopCheck = Callable[[], "str | None"]
Buffer = Union[bytes, memoryview, "np.ndarray"]  # model bytes, possibly a view of guest memory
POLL_S = 0.05
START_TIMEOUT_S = 120.0  # importing torch on a cold, busy machine
ZYGOTE_TIMEOUT_S = 30.0
MAX_CRASHES_PER_GUEST = 3  # then the guest's loads are refused
CRASHES_PER_ZYGOTE = 16  # then a new zygote (a new memory layout) serves the next fork
PAGE = os.sysconf("SC_PAGE_SIZE")
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# Environment a worker inherits: what torch and the C runtime need to find and size themselves (thread pools
# included: OMP_*, MKL_*, KMP_*), nothing else (no tokens or credentials the user's environment may hold).
PASSED_ENV = ("LANG", "LC_ALL", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
PASSED_PREFIXES = ("OMP_", "MKL_", "KMP_")


def _never() -> str | None:
    return None


def _worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in PASSED_ENV or k.startswith(PASSED_PREFIXES)}
    env["PATH"] = os.defpath
    env["HOME"] = "/nonexistent"
    return env


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of its memory budget?)" if name == "SIGABRT" else ""
        return f"crashed with {name}{hint}"
    return f"exited with status {code}"


def _data_bytes(pid: int) -> int | None:
    """A process's data segment (what RLIMIT_DATA counts), read by the host: a worker's word is not taken for it."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[5]) * PAGE
    except (OSError, IndexError, ValueError):
        return None


def _recv_within(sock: socket.socket, timeout_s: float | None) -> tuple[dict[str, Any], list[int]] | None:
    """One message and its descriptors, or None after ``timeout_s``; EOFError/ProtocolError as recv raises them."""
    ready, _, _ = select.select([sock], [], [], timeout_s)
    if not ready:
        return None
    return protocol.recv(sock)


class Zygote:
    """The host process's one unconfined helper that forks sandbox workers (see :mod:`.worker`).

    Started on the first guest ``load`` of the process, isolated from the host's environment and import path
    (``python -I``: nothing a guest could write into the host's working directory is importable in it), and shared
    by every Host in the process. A new one replaces it for later forks when it dies, fails to answer, or has seen
    too many of its workers crash; workers of the old one keep it alive until they end. It never sees guest
    bytes: it forks, reaps, and says how a worker ended.
    """

    _shared_lock = threading.Lock()
    _shared: Zygote | None = None

    @classmethod
    def shared(cls) -> Zygote:
        with cls._shared_lock:
            current = cls._shared
            if current is None or current.retired or current.proc.poll() is not None:
                current = cls._shared = Zygote()
            return current

    @classmethod
    def _forget(cls) -> None:
        """In a child of a fork of the host: the zygote's socket belongs to the parent."""
        cls._shared = None

    def __init__(self, start_timeout_s: float = START_TIMEOUT_S) -> None:
        self._lock = threading.Lock()
        self.retired = False
        self.crashes = 0
        control, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.stderr = tempfile.TemporaryFile()  # read when it fails to start; its workers write to /dev/null
        # the package as installed; only a source tree that is not installed adds its root, and last
        boot = (
            "import importlib.util, sys\n"
            f"if importlib.util.find_spec('wasinn_jupyter') is None: sys.path.append({PACKAGE_ROOT!r})\n"
            "from wasinn_jupyter.host.sandbox.worker import main\nsys.exit(main(sys.argv[1:]))"
        )
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-B", "-c", boot, str(zygote_end.fileno())],
                pass_fds=[zygote_end.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self.stderr,
                env=_worker_env(),
                cwd="/",
                start_new_session=True,  # Ctrl-C at a terminal reaches the host, which decides
            )
        except OSError as exc:
            control.close()
            fail(ErrorCode.UNSUPPORTED_OPERATION, f"the sandbox for guest models could not start: {exc}")
        finally:
            zygote_end.close()
        self.control = control
        try:
            got = _recv_within(control, start_timeout_s)
        except (EOFError, OSError, protocol.ProtocolError):
            got = None
        hello = got[0] if got else None
        if hello is None or hello.get("ok") is not True:
            self.proc.kill()
            detail = (hello or {}).get("message") or self.stderr_tail() or _describe_exit(self.proc.wait())
            fail(ErrorCode.UNSUPPORTED_OPERATION, f"the sandbox for guest models could not start: {detail}")

    def stderr_tail(self) -> str:
        try:
            self.stderr.seek(0)
            lines = self.stderr.read()[-2000:].decode("utf-8", "replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def ask(self, message: dict[str, Any], fds: Sequence[int] = ()) -> tuple[dict[str, Any], list[int]]:
        with self._lock:
            try:
                protocol.send(self.control, message, fds)
                got = _recv_within(self.control, ZYGOTE_TIMEOUT_S)
            except (OSError, EOFError, protocol.ProtocolError) as exc:
                got = ({"ok": False, "message": str(exc)}, [])
        reply, received = got if got is not None else ({"ok": False, "message": "no answer in 30 s"}, [])
        if reply.get("ok") is not True:
            for fd in received:
                os.close(fd)
            self.retired = True  # later forks get a new zygote; this one's workers carry on
            why = reply.get("message", "no reason")
            fail(ErrorCode.RUNTIME_ERROR, f"sandbox: the worker factory failed ({why}); the next load starts a new one")
        return reply, received

    def fork(self, sock: socket.socket, memory_bytes: int, device: str) -> tuple[int, int | None]:
        """A new worker on ``sock``: its pid, and a pidfd where the kernel has them."""
        reply, fds = self.ask({"op": "fork", "budget": memory_bytes, "device": device}, [sock.fileno()])
        pid = reply.get("pid")
        if type(pid) is not int or len(fds) > 1:
            for fd in fds:
                os.close(fd)
            fail(ErrorCode.RUNTIME_ERROR, "sandbox: the worker factory sent no pid")
        return pid, (fds[0] if fds else None)

    def status(self, pid: int, wait_s: float = 2.0) -> int | None:
        """How worker ``pid`` ended (negative: the signal), once reaped; None if it has not (yet)."""
        deadline = time.monotonic() + wait_s
        while True:
            status = self.ask({"op": "status", "pid": pid})[0].get("status")
            if type(status) is int or time.monotonic() > deadline:
                return status if type(status) is int else None
            time.sleep(0.02)

    def crashed(self) -> None:
        self.crashes += 1
        if self.crashes >= CRASHES_PER_ZYGOTE:
            self.retired = True


os.register_at_fork(after_in_child=Zygote._forget)


class SandboxProcess:
    """One confined worker process, its socket, and what it costs the guest's budget."""

    def __init__(
        self,
        budget: ByteBudget,
        memory_bytes: int,
        device: str,
        stop_check: StopCheck | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self.budget = budget
        self.device = device
        self.stop_check = stop_check or _never
        self.charged = 0
        self.dead: str | None = None
        self.crashed = False
        self._lock = threading.RLock()  # one request (or one run: run + outputs) at a time
        self._kill_lock = threading.Lock()
        self._next_graph = 0
        self._next_id = 0
        self._base = 0
        self._limit_s: float | None = start_timeout_s
        self._signalled = False
        self.zygote = Zygote.shared()
        host_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = host_end
        try:
            self.pid, self._pidfd = self.zygote.fork(worker_end, memory_bytes, device)
        except BaseException:
            host_end.close()
            raise
        finally:
            worker_end.close()
        hello = self._await(start_timeout_s, "starting", stoppable=False)
        if hello.get("ok") is not True:
            self.kill("did not start")
            protocol.raise_for(hello)
        self._base = _data_bytes(self.pid) or 0
        self._hard = memory_bytes
        self.confinement = protocol.text(hello.get("confinement", ""))
        host_end.setblocking(False)  # sends wait in select, under the same deadline and stop as replies
        log.info("sandbox worker %s ready on %s: %s", self.pid, device, self.confinement)

    # -- talking -------------------------------------------------------------------------------------------

    def request(
        self, message: dict[str, Any], fds: Sequence[int] = (), *, timeout_s: float | None, what: str
    ) -> dict[str, Any]:
        """Send one request and wait for its reply; every failure of the worker becomes a WasiNNError."""
        with self._lock:
            if self.dead is not None:
                fail(ErrorCode.RUNTIME_ERROR, f"the sandbox worker for this guest's models {self.dead}")
            deadline = time.monotonic() + timeout_s if timeout_s is not None else None
            self._limit_s = timeout_s
            self._next_id += 1
            message = {**message, "id": self._next_id, "allow": self._allowance()}
            self._send(message, fds, deadline, what)
            reply = self._await(None if deadline is None else max(0.0, deadline - time.monotonic()), what)
            if reply.get("id") != self._next_id:
                self.kill("answered another request")
                fail(ErrorCode.RUNTIME_ERROR, f"sandbox: {what}: the worker answered another request")
            self._charge(what)
        return protocol.raise_for(reply)

    def _allowance(self) -> int:
        """The data segment the worker may reach now: what it had at the start plus what the guest has left.

        The worker sets its soft RLIMIT_DATA to this before it serves the request. A hostile one may ignore it,
        up to its hard limit (its start plus the whole budget), but the host measures it after every request and
        kills it past the budget: the allowance is what turns a big allocation into too_large instead.
        """
        left = self.budget.limit - self.budget.used + self.charged
        return self._base + max(0, min(left, self._hard))

    def _send(self, message: dict[str, Any], fds: Sequence[int], deadline: float | None, what: str) -> None:
        while True:
            try:
                protocol.send(self.sock, message, fds)
                return
            except BlockingIOError:
                pass
            except OSError:
                self._gone(what)
            self._wait_for(lambda: select.select([], [self.sock], [], POLL_S)[1], deadline, what)

    def _wait_for(self, ready: Callable[[], Any], deadline: float | None, what: str) -> None:
        """Poll ``ready`` until it is true, failing on the guest's stop, the deadline or the worker's death."""
        while True:
            try:
                if ready():
                    return
            except (OSError, ValueError):  # the socket went under us (killed from another thread)
                self._gone(what)
            reason = self.stop_check() if what != "starting" else None
            if reason is not None:
                self.kill(f"was stopped while {what} ({reason})")
                fail(ErrorCode.RUNTIME_ERROR, f"sandbox: {what} stopped: {reason}; the graph's worker was killed")
            if deadline is not None and time.monotonic() > deadline:
                self.kill(f"was killed after its time limit of {self._limit_s} s, {what}")
                fail(ErrorCode.TIMEOUT, f"sandbox: {what} took over {self._limit_s} s; the graph's worker was killed")
            if self.dead is not None:
                self._gone(what)

    def _await(self, timeout_s: float | None, what: str, stoppable: bool = True) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s if timeout_s is not None else None
        self._wait_for(
            lambda: select.select([self.sock], [], [], POLL_S)[0], deadline, what if stoppable else "starting"
        )
        try:
            reply, fds = protocol.recv(self.sock)
        except (EOFError, OSError):
            self._gone(what)
        except protocol.ProtocolError as exc:
            self.kill(f"broke the protocol ({exc})")
            fail(ErrorCode.RUNTIME_ERROR, f"sandbox: {what}: the worker broke the protocol: {exc}")
        for fd in fds:  # a worker never sends descriptors
            os.close(fd)
        return reply

    def _gone(self, what: str) -> NoReturn:
        """The worker closed its socket, or was killed: say how, free what it cost, fail the call."""
        if self.dead is not None and self._signalled:  # killed from another thread: this one, holding the lock, closes
            self._close()
            fail(ErrorCode.RUNTIME_ERROR, f"sandbox: the worker {self.dead}")
        status = self.exit_status()
        reason = _describe_exit(status)
        if status is not None and status < 0 and status != -signal.SIGKILL:
            self.crashed = True
            self.zygote.crashed()
        detail = f": {self.zygote.stderr_tail()}" if what == "starting" else ""
        self.kill(f"{reason} while {what}")
        self._close()
        fail(ErrorCode.RUNTIME_ERROR, f"sandbox: the worker {reason} while {what}{detail}")

    def exit_status(self, wait_s: float = 2.0) -> int | None:
        """How the worker ended (negative: the signal), or None while it runs."""
        try:
            return self.zygote.status(self.pid, wait_s)
        except WasiNNError:
            return None

    def _charge(self, what: str) -> None:
        """Charge the worker's growth, as the host measures it, to the guest's budget; past it, the worker goes."""
        if self.dead is not None:
            return
        data = _data_bytes(self.pid)
        if data is None:
            self._gone(what)
        grown = max(0, data - self._base)
        try:
            self.budget.charge(grown - self.charged)
        except WasiNNError:
            self.kill(f"grew to {grown} bytes, past the guest's memory budget")
            fail(
                ErrorCode.TOO_LARGE,
                f"sandbox: {what}: the guest's models grew to {grown} bytes, past the guest's memory budget of "
                f"{self.budget.limit} (max_guest_bytes); the graph's worker was killed",
            )
        self.charged = grown
        if self.dead is not None:  # killed from another thread meanwhile: its refund missed this charge
            self.budget.charge(-grown)
            self.charged = 0

    def kill(self, reason: str = "was closed") -> None:
        """End the worker now, from any thread (idempotent); its graphs answer runtime_error from then on."""
        with self._kill_lock:
            if self.dead is None:
                self.dead = reason
            if not self._signalled:
                self._signalled = True
                try:
                    if self._pidfd is not None:
                        signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
                    else:  # no pidfds here: by pid (a pid reused after the worker died unnoticed is the residual)
                        os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass  # it had exited already
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)  # wakes a thread waiting on it
                except OSError:
                    pass
                self.budget.charge(-self.charged)
                self.charged = 0
        if self._lock.acquire(blocking=False):  # no request in flight: close now (else its thread does, below)
            try:
                self._close()
            finally:
                self._lock.release()

    def _close(self) -> None:
        """Release the socket and pidfd (idempotent): only from the thread that holds the request lock."""
        self.sock.close()
        with self._kill_lock:
            if self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None

    @property
    def alive(self) -> bool:
        return self.dead is None

    # -- graphs ----------------------------------------------------------------------------------------------

    def load(self, data: Buffer, encoding: Encoding, name: str, limits: Limits) -> RemoteGraph:
        """Load ``data`` (a TorchScript archive, possibly a view of guest memory) in the worker."""
        handle = self._next_graph
        self._next_graph += 1
        fd = protocol.new_memfd(len(data), "wasinn-model") if len(data) else None
        try:
            if fd is not None:
                protocol.write_all(fd, data)
            message = {
                "op": "load",
                "graph": handle,
                "encoding": encoding.name,
                "name": name,
                "size": len(data),
                "max_bytes": limits.max_model_bytes,
            }
            reply = self.request(
                message, [fd] if fd is not None else [], timeout_s=limits.sandbox_load_s, what="loading"
            )
        finally:
            if fd is not None:
                os.close(fd)
        names = reply.get("inputs")
        if names is not None and not (
            isinstance(names, list) and len(names) <= protocol.MAX_TENSORS and all(isinstance(n, str) for n in names)
        ):
            self.kill("sent bad input names")
            fail(ErrorCode.RUNTIME_ERROR, "sandbox: the worker sent bad input names")
        parameters = reply.get("parameters")
        dtypes = reply.get("dtypes")
        info = GraphInfo(
            name=name,
            kind="torchscript (sandboxed)",
            device=self.device,
            inputs=[TensorInfo(protocol.text(n)) for n in names] if names is not None else None,
            parameters=parameters if type(parameters) is int else None,
            dtypes=[protocol.text(d) for d in dtypes][:16] if isinstance(dtypes, list) else [],
            source=f"{len(data)} bytes from the guest, in sandbox worker {self.pid}",
        )
        graph = RemoteGraph(self, handle, name, [protocol.text(n) for n in names] if names else names, info)
        graph.compute_timeout_s = limits.sandbox_compute_s
        return graph


class RemoteGraph(Graph):
    """A graph living in a sandbox worker: inputs go over in shared memory, outputs come back the same way."""

    def __init__(
        self, process: SandboxProcess, handle: int, name: str, input_names: list[str] | None, info: GraphInfo
    ) -> None:
        self.process = process
        self.handle = handle
        self.name = name
        self.device = process.device
        self._input_names = input_names
        self._info = info
        self.compute_timeout_s: float | None = None

    @property
    def input_device(self) -> str:
        return "cpu"  # inputs cross to the worker in host memory, whatever device it computes on

    def input_names(self) -> list[str] | None:
        return self._input_names

    def info(self) -> GraphInfo:
        return self._info

    def run(self, inputs: list[Tensor]) -> list[Tensor] | dict[str, Tensor]:
        with self.process._lock:  # run, then outputs or drop: no other request of this worker in between
            return self._run(inputs)

    def _run(self, inputs: list[Tensor]) -> list[Tensor] | dict[str, Tensor]:
        process = self.process
        descs, size, fd = protocol.pack(inputs)
        try:
            message = {"op": "run", "graph": self.handle, "inputs": descs, "size": size}
            reply = process.request(message, [fd] if fd is not None else [], timeout_s=self.compute_timeout_s,
                                    what="computing")  # fmt: skip
        finally:
            if fd is not None:
                os.close(fd)
        out_size, names = reply.get("size"), reply.get("names")
        if type(out_size) is not int or out_size < 0:
            process.kill("sent a bad output size")
            fail(ErrorCode.RUNTIME_ERROR, "sandbox: the worker sent a bad output size")
        try:
            process.budget.check(out_size)
        except WasiNNError:
            process.request({"op": "drop"}, timeout_s=self.compute_timeout_s, what="dropping outputs")
            raise
        out_fd = protocol.new_memfd(out_size, "wasinn-outputs", seal_writes_later=True) if out_size else None
        try:
            process.request({"op": "outputs"}, [out_fd] if out_fd is not None else [],
                            timeout_s=self.compute_timeout_s, what="handing over outputs")  # fmt: skip
            if out_fd is not None and not protocol.seal_writes(out_fd):
                process.kill("kept a way to change its outputs")
                fail(ErrorCode.RUNTIME_ERROR, "sandbox: the worker kept a writable mapping of its outputs")
            mm = protocol.map_fd(out_fd, out_size, writable=False) if out_fd is not None else None
            out_fd = None  # map_fd closed it
            outputs = protocol.unpack(mm, reply.get("outputs"), out_size)
        except protocol.ProtocolError as exc:
            process.kill(f"broke the protocol ({exc})")
            fail(ErrorCode.RUNTIME_ERROR, f"sandbox: the worker's outputs are malformed: {exc}")
        finally:
            if out_fd is not None:
                os.close(out_fd)
        if names is None:
            return outputs
        if not (isinstance(names, list) and len(names) == len(outputs) and all(isinstance(n, str) for n in names)):
            process.kill("sent bad output names")
            fail(ErrorCode.RUNTIME_ERROR, "sandbox: the worker sent bad output names")
        return {protocol.text(n): t for n, t in zip(names, outputs, strict=True)}

    # -- properties: precision and threads live in the worker; device and residence are fixed here ------------

    abilities = frozenset({"properties"})

    def describe_properties(self) -> dict[str, PropertySpec]:
        reply = self.process.request(
            {"op": "properties", "graph": self.handle}, timeout_s=10, what="reading properties"
        )
        specs = _checked_specs(reply.get("properties"))
        if specs is None:
            self.process.kill("sent malformed properties")
            fail(ErrorCode.RUNTIME_ERROR, "sandbox: the worker sent malformed properties")
        device = "cuda:0" if self.device == "cuda" else self.device
        specs["device"] = PropertySpec(
            "device", device, "choice", (device,), doc="fixed: the sandbox worker was started for this device"
        )
        specs["residence"] = PropertySpec(
            "residence", "memory", "choice", ("memory",), doc="fixed: outputs cross from the sandbox to host memory"
        )
        return specs

    def set_property(self, name: str, value: str) -> None:
        if name in ("device", "residence"):
            spec = self.property_spec(name)
            spec.parse(value)  # invalid_argument, naming the one value it has
            return
        if len(name) > 64 or len(value) > 256:
            fail(ErrorCode.INVALID_ARGUMENT, f"property {name[:64]!r}: name or value too long")
        self.process.request(
            {"op": "set_property", "graph": self.handle, "name": name, "value": value},
            timeout_s=self.compute_timeout_s, what="setting a property",
        )  # fmt: skip

    def free(self) -> None:
        """Let the worker drop this graph (when the guest unloads it)."""
        if self.process.alive:
            try:
                self.process.request({"op": "free", "graph": self.handle}, timeout_s=10, what="freeing a graph")
            except WasiNNError as exc:
                log.info("sandbox: freeing graph %s: %s", self.name, exc.message)


def _checked_specs(raw: object) -> dict[str, PropertySpec] | None:
    """Property specs a worker sent, checked field by field (None: malformed); only precision and threads."""
    if not isinstance(raw, list) or len(raw) > 4:
        return None
    specs: dict[str, PropertySpec] = {}
    for item in raw:
        if not isinstance(item, dict):
            return None
        name, value, kind, choices = item.get("name"), item.get("value"), item.get("kind"), item.get("choices")
        low, high, doc = item.get("minimum"), item.get("maximum"), item.get("doc", "")
        if name not in ("precision", "threads") or name in specs or kind not in PROPERTY_KINDS:
            return None
        if not (isinstance(value, str) and len(value) <= 64 and isinstance(doc, str)):
            return None
        if choices is not None and not (
            isinstance(choices, list)
            and len(choices) <= 8
            and all(isinstance(c, str) and len(c) <= 16 for c in choices)
        ):
            return None
        if any(b is not None and type(b) not in (int, float) for b in (low, high)):
            return None
        specs[name] = PropertySpec(
            name, value, kind, tuple(choices) if choices is not None else None, low, high, protocol.text(doc)[:200]
        )
    return specs
