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
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    import numpy as np

from ..backends.base import Graph, GraphInfo, TensorInfo
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
# Environment a worker inherits: what torch and the C runtime need to find and size themselves (thread pools
# included: OMP_*, MKL_*, KMP_*), nothing else (no tokens or credentials the user's environment may hold).
PASSED_ENV = ("LANG", "LC_ALL", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
PASSED_PREFIXES = ("OMP_", "MKL_", "KMP_")


def _never() -> str | None:
    return None


def _worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in PASSED_ENV or k.startswith(PASSED_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # the host's own view: where this package is
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


def _recv_within(sock: socket.socket, timeout_s: float | None) -> dict[str, Any] | None:
    """One message, or None after ``timeout_s``; EOFError/ProtocolError as :func:`protocol.recv` raises them."""
    ready, _, _ = select.select([sock], [], [], timeout_s)
    if not ready:
        return None
    message, fds = protocol.recv(sock)
    for fd in fds:  # neither a zygote nor a worker ever sends descriptors
        os.close(fd)
    return message


class Zygote:
    """The host process's one unconfined helper that forks sandbox workers (see :mod:`.worker`).

    Started on the first guest ``load`` of the process and shared by every Host in it; a new one replaces it if it
    died. It never sees guest bytes: it forks, reaps, and says how a worker ended.
    """

    _lock = threading.Lock()
    _shared: Zygote | None = None

    @classmethod
    def shared(cls) -> Zygote:
        with cls._lock:
            if cls._shared is None or cls._shared.proc.poll() is not None:
                cls._shared = Zygote()
            return cls._shared

    def __init__(self, start_timeout_s: float = START_TIMEOUT_S) -> None:
        self._lock = threading.Lock()
        control, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # stderr: read when it (or a worker, before confinement) fails to start; a worker cannot grow it
        self.stderr = tempfile.TemporaryFile()
        argv = [sys.executable, "-s", "-B", "-m", __package__ + ".worker", str(zygote_end.fileno())]
        try:
            self.proc = subprocess.Popen(
                argv,
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
            hello = _recv_within(control, start_timeout_s)
        except (EOFError, ConnectionError, protocol.ProtocolError):
            hello = None
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

    def ask(self, message: dict[str, Any], fds: Sequence[int] = ()) -> dict[str, Any]:
        with self._lock:
            try:
                protocol.send(self.control, message, fds)
                reply = _recv_within(self.control, 30.0)
            except (OSError, EOFError, protocol.ProtocolError) as exc:
                reply = {"ok": False, "message": str(exc)}
        if reply is None or reply.get("ok") is not True:
            self.proc.kill()
            why = (reply or {}).get("message", "no answer in 30 s")
            fail(ErrorCode.RUNTIME_ERROR, f"sandbox: the worker factory failed ({why}); the next load starts a new one")
        return reply

    def fork(self, sock: socket.socket, memory_bytes: int, device: str) -> int:
        pid = self.ask({"op": "fork", "budget": memory_bytes, "device": device}, [sock.fileno()]).get("pid")
        if type(pid) is not int:
            fail(ErrorCode.RUNTIME_ERROR, "sandbox: the worker factory sent no pid")
        return pid

    def status(self, pid: int, wait_s: float = 2.0) -> int | None:
        """How worker ``pid`` ended (negative: the signal), once reaped; None if it has not (yet)."""
        deadline = time.monotonic() + wait_s
        while True:
            status = self.ask({"op": "status", "pid": pid}).get("status")
            if type(status) is int or time.monotonic() > deadline:
                return status if type(status) is int else None
            time.sleep(0.02)


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
        self._lock = threading.Lock()
        self._next_graph = 0
        self.zygote = Zygote.shared()
        host_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = host_end
        try:
            self.pid = self.zygote.fork(worker_end, memory_bytes, device)
        except BaseException:
            host_end.close()
            raise
        finally:
            worker_end.close()
        self._signalled = False
        self._pidfd: int | None = None  # killing through it cannot hit a reused pid
        try:
            self._pidfd = os.pidfd_open(self.pid)  # it cannot have been reaped yet: it waits to send its hello
        except OSError:  # no pidfds (an old kernel, gVisor): kill by pid, while it is known to be ours
            pass
        hello = self._await(start_timeout_s, "starting", stoppable=False)
        if hello.get("ok") is not True:
            self.kill("did not start")
            protocol.raise_for(hello)
        self.confinement = protocol.text(hello.get("confinement", ""))
        log.info("sandbox worker %s ready on %s: %s", self.pid, device, self.confinement)

    # -- talking -------------------------------------------------------------------------------------------

    def request(
        self, message: dict[str, Any], fds: Sequence[int] = (), *, timeout_s: float | None, what: str
    ) -> dict[str, Any]:
        """Send one request and wait for its reply; every failure of the worker becomes a WasiNNError."""
        with self._lock:
            if self.dead is not None:
                fail(ErrorCode.RUNTIME_ERROR, f"the sandbox worker for this guest's models {self.dead}")
            try:
                protocol.send(self.sock, message, fds)
            except OSError:
                self._gone(what)
            reply = self._await(timeout_s, what)
            self._charge(reply.get("data"), what)
        return protocol.raise_for(reply)

    def _await(self, timeout_s: float | None, what: str, stoppable: bool = True) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s if timeout_s is not None else None
        while True:
            ready, _, _ = select.select([self.sock], [], [], POLL_S)
            if ready:
                try:
                    reply, fds = protocol.recv(self.sock)
                except (EOFError, ConnectionError):
                    self._gone(what)
                except protocol.ProtocolError as exc:
                    self.kill(f"broke the protocol ({exc})")
                    fail(ErrorCode.RUNTIME_ERROR, f"sandbox: {what}: the worker broke the protocol: {exc}")
                for fd in fds:  # a worker never sends descriptors
                    os.close(fd)
                return reply
            reason = self.stop_check() if stoppable else None
            if reason is not None:
                self.kill(f"was stopped while {what} ({reason})")
                fail(ErrorCode.RUNTIME_ERROR, f"sandbox: {what} stopped: {reason}; the graph's worker was killed")
            if deadline is not None and time.monotonic() > deadline:
                self.kill(f"was killed after {timeout_s} s {what}")
                fail(ErrorCode.TIMEOUT, f"sandbox: {what} took over {timeout_s} s; the graph's worker was killed")

    def _gone(self, what: str) -> None:
        """The worker closed its socket: it died. Say how, free what it cost, fail the call."""
        reason = _describe_exit(self.exit_status())
        detail = f": {self.zygote.stderr_tail()}" if what == "starting" else ""
        self.kill(f"{reason} while {what}")
        fail(ErrorCode.RUNTIME_ERROR, f"sandbox: the worker {reason} while {what}{detail}")

    def exit_status(self, wait_s: float = 2.0) -> int | None:
        """How the worker ended (negative: the signal), or None while it runs."""
        try:
            return self.zygote.status(self.pid, wait_s)
        except WasiNNError:
            return None

    def _charge(self, data: object, what: str) -> None:
        """Charge the worker's growth to the guest's budget; past it, the worker goes."""
        if type(data) is not int or data < 0:
            self.kill("sent a bad memory figure")
            fail(ErrorCode.RUNTIME_ERROR, f"sandbox: {what}: the worker sent a bad memory figure")
        try:
            self.budget.charge(data - self.charged)
        except WasiNNError:
            self.kill(f"grew to {data} bytes, past the guest's memory budget")
            fail(
                ErrorCode.TOO_LARGE,
                f"sandbox: {what}: the guest's models grew to {data} bytes, past the guest's memory budget of "
                f"{self.budget.limit} (max_guest_bytes); the graph's worker was killed",
            )
        self.charged = data

    def kill(self, reason: str = "was closed") -> None:
        """End the worker now (idempotent); its graphs answer runtime_error from then on."""
        if self.dead is None:
            self.dead = reason
        if not self._signalled:
            self._signalled = True
            try:
                if self._pidfd is not None:
                    signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
                else:  # no pidfd: by pid (a pid reused after the worker died unnoticed is the residual risk)
                    os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it had exited already
            if self._pidfd is not None:
                os.close(self._pidfd)
        self.sock.close()
        self.budget.charge(-self.charged)
        self.charged = 0

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

    def input_names(self) -> list[str] | None:
        return self._input_names

    def info(self) -> GraphInfo:
        return self._info

    def run(self, inputs: list[Tensor]) -> list[Tensor] | dict[str, Tensor]:
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
        out_fd = protocol.new_memfd(out_size, "wasinn-outputs") if out_size else None
        try:
            process.request({"op": "outputs"}, [out_fd] if out_fd is not None else [],
                            timeout_s=self.compute_timeout_s, what="handing over outputs")  # fmt: skip
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

    def free(self) -> None:
        """Let the worker drop this graph (when the guest unloads it)."""
        if self.process.alive:
            try:
                self.process.request({"op": "free", "graph": self.handle}, timeout_s=10, what="freeing a graph")
            except WasiNNError as exc:
                log.info("sandbox: freeing graph %s: %s", self.name, exc.message)
