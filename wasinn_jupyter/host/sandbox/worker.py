"""The sandbox worker: loads and runs the TorchScript a guest handed to ``load``, confined, in its own process.

Workers are forked from a **zygote**, started once per host process by :class:`~.remote.Zygote` as ``python -m
wasinn_jupyter.host.sandbox.worker CONTROL_FD``: it imports torch (about a second) and scripts the
warm-up model, but runs nothing that starts threads or touches a device, so forking it is safe and a new worker is
ready in about 0.03 s. The zygote itself never reads a byte a guest sent; it only forks, reaps and
reports exit statuses. Each worker runs the warm-up model once (so that what torch loads lazily is loaded while
files can still be opened), confines itself for good (:mod:`.confine`), says it is ready, and then serves requests
until the host closes its socket. It never writes to stdout or stderr and never unpickles what the host sends.

Zygote requests: ``fork`` (fd: the new worker's socket; budget, device) → its pid; ``status`` (pid) → its exit
status once reaped (negative: the signal), or null.

Worker requests (``op``): ``load`` (fd: the archive) → input names and info; ``run`` (fd: the inputs) → output
descriptors, then ``outputs`` (fd: shared memory the host sized) or ``drop``; ``free``; ``properties`` (graph) →
the specs of its precision and threads; ``set_property`` (graph, name, value). Every reply carries
``data``: how many bytes this process's data segment has grown since it was ready, which the host charges to the
guest's budget.
"""

from __future__ import annotations

import encodings.cp437  # noqa: F401 - zipfile decodes legacy entry names with it, lazily: a confined worker cannot
import io
import os
import resource
import signal
import socket
import sys
import zlib  # noqa: F401 - deflated archive entries, loaded before confinement
from dataclasses import asdict
from typing import Any

from ..backends import backend_for
from ..encodings import Encoding
from ..errors import ErrorCode, WasiNNError, fail
from ..tensors import Tensor
from . import protocol
from .confine import confine, die_with_parent

# What a sandboxed graph's worker changes (the host keeps device and residence fixed: the worker was started for
# one device and confined there, and outputs always cross to host memory).
SANDBOX_PROPERTIES = ("precision", "threads")
MAX_NAMES = 256  # input or output names a reply carries (each cut to MAX_NAME characters)
MAX_NAME = 128


def _names(names: list[str] | None) -> list[str] | None:
    if names is None:
        return None
    if len(names) > MAX_NAMES:
        fail(ErrorCode.TOO_LARGE, f"the graph has {len(names)} named tensors; at most {MAX_NAMES} can cross")
    return [n[:MAX_NAME] for n in names]


class Worker:
    def __init__(self, sock: socket.socket, device: str) -> None:
        self.sock = sock
        self.device = device
        self.graphs: dict[int, Any] = {}
        self.pending: list[Tensor] | None = None

    def warm_up(self, archive: bytes) -> None:
        """Load and run ``archive`` once: torch loads what serving needs while this process can still open files."""
        import torch

        graph = backend_for(Encoding.PYTORCH).from_bytes(archive, self.device, "warm-up", 1 << 20)
        graph.run([Tensor.from_value(torch.zeros(1, 1, 2, 2))])
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def serve(self) -> None:
        while True:
            try:
                message, fds = protocol.recv(self.sock)
            except EOFError:
                return
            try:
                reply = self.handle(message, fds)
            except BaseException as exc:  # noqa: BLE001 - every failure is an answer, the loop goes on
                self.pending = None
                reply = protocol.error_reply(exc)
            finally:
                for fd in fds:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            reply["id"] = message.get("id")  # the host matches replies to requests
            try:
                protocol.send(self.sock, reply)
            except protocol.ProtocolError as exc:  # too long to send: say so instead
                protocol.send(self.sock, {**protocol.error_reply(WasiNNError(ErrorCode.TOO_LARGE, str(exc))),
                                          "id": message.get("id")})  # fmt: skip

    def handle(self, message: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        allow = message.get("allow")
        if type(allow) is int:  # what the guest's budget has left for this worker's memory
            _, hard = resource.getrlimit(resource.RLIMIT_DATA)
            resource.setrlimit(resource.RLIMIT_DATA, (min(allow, hard), hard))
        op = message.get("op")
        if op == "load":
            return self.load(message, fds)
        if op == "run":
            return self.run(message, fds)
        if op == "outputs":
            return self.outputs(message, fds)
        if op == "drop":
            self.pending = None
            return {"ok": True}
        if op == "free":
            self.graphs.pop(message.get("graph"), None)  # type: ignore[arg-type]
            return {"ok": True}
        if op == "properties":
            specs = self._graph(message).describe_properties()
            return {"ok": True, "properties": [asdict(specs[k]) for k in SANDBOX_PROPERTIES if k in specs]}
        if op == "set_property":
            name, value = message.get("name"), message.get("value")
            if name not in SANDBOX_PROPERTIES or not isinstance(value, str):
                fail(ErrorCode.INVALID_ARGUMENT, f"a sandboxed graph's property {name!r} cannot be set")
            self._graph(message).set_property(name, value)
            return {"ok": True}
        raise protocol.ProtocolError(f"unknown request {op!r}")

    def _graph(self, message: dict[str, Any]) -> Any:
        graph = self.graphs.get(message.get("graph"))  # type: ignore[arg-type]
        if graph is None:
            fail(ErrorCode.INVALID_ARGUMENT, "this graph was freed")
        return graph

    def load(self, message: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        size = message["size"]
        mm = protocol.map_fd(fds.pop(), size, writable=False) if fds else None
        data = mm[:] if mm is not None else b""
        backend = backend_for(Encoding[str(message["encoding"])])
        graph = backend.from_bytes(data, self.device, str(message["name"]), int(message["max_bytes"]))
        del data
        self.graphs[message["graph"]] = graph
        info = graph.info()
        return {
            "ok": True,
            "inputs": _names(graph.input_names()),
            "parameters": info.parameters,
            "dtypes": info.dtypes,
        }

    def run(self, message: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        graph = self.graphs.get(message["graph"])
        if graph is None:
            fail(ErrorCode.INVALID_ARGUMENT, "this graph was freed")
        size = message["size"]
        mm = protocol.map_fd(fds.pop(), size, writable=False) if size else None
        inputs = protocol.unpack(mm, message["inputs"], size)
        result = graph.run(inputs)
        names = _names(list(result)) if isinstance(result, dict) else None
        outputs = list(result.values()) if isinstance(result, dict) else list(result)
        if len(outputs) > protocol.MAX_TENSORS:
            fail(ErrorCode.TOO_LARGE, f"{len(outputs)} outputs; at most {protocol.MAX_TENSORS} can cross")
        descs, total = protocol.layout(outputs)
        self.pending = outputs
        return {"ok": True, "outputs": descs, "names": names, "size": total}

    def outputs(self, message: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        outputs, self.pending = self.pending, None
        if outputs is None:
            fail(ErrorCode.INVALID_ARGUMENT, "no outputs are pending")
        descs, _ = protocol.layout(outputs)
        if fds:  # written, not mapped: a worker may map nothing shared, so the host can seal the bytes after
            for tensor, desc in zip(outputs, descs, strict=True):
                protocol.write_all(fds[0], tensor.raw_numpy(), desc["offset"])
        return {"ok": True}


def run_worker(sock: socket.socket, budget: int, device: str, warm_up: bytes) -> None:
    """A forked worker's life: warm up, confine, serve; the host learns of any failure before confinement."""
    try:
        worker = Worker(sock, device)
        worker.warm_up(warm_up)
        confinement = confine(budget, ioctl=device.startswith("cuda"))  # the CUDA driver speaks ioctl
    except BaseException as exc:  # noqa: BLE001 - told to the host, which refuses guest models then
        protocol.send(sock, {"ok": False, "code": ErrorCode.UNSUPPORTED_OPERATION.value, "message": protocol.text(
            f"the sandbox for guest models could not start: {type(exc).__name__}: {exc}")})  # fmt: skip
        return
    protocol.send(sock, {"ok": True, "pid": os.getpid(), "confinement": confinement.describe()})
    worker.serve()


def warm_up_archive() -> bytes:
    """A small TorchScript model (a convolution and a ReLU) every worker loads and runs before it is confined."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), torch.nn.ReLU()))
        buffer = io.BytesIO()
        torch.jit.save(module, buffer)
    return buffer.getvalue()


class Zygote:
    """Forks workers on request, reaps them, and keeps their exit statuses for the host to ask about."""

    KEEP = 4096  # exit statuses remembered

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.warm_up = warm_up_archive()
        self.devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        self.statuses: dict[int, int] = {}
        signal.signal(signal.SIGCHLD, self._reap)

    def _reap(self, *_: object) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.statuses[pid] = os.waitstatus_to_exitcode(status)
            while len(self.statuses) > self.KEEP:
                del self.statuses[next(iter(self.statuses))]

    def serve(self) -> None:
        while True:
            try:
                message, fds = protocol.recv(self.control)
            except EOFError:
                return
            op = message.get("op")
            reply: dict[str, object]
            pidfd: list[int] = []
            if op == "fork" and len(fds) == 1:
                try:
                    pid, fd = self.fork(fds[0], int(message["budget"]), str(message["device"]))
                    reply, pidfd = {"ok": True, "pid": pid}, [fd]
                except OSError as exc:
                    reply = {"ok": False, "message": f"fork failed: {exc}"}
            elif op == "status":
                asked = message.get("pid")
                reply = {"ok": True, "status": self.statuses.get(asked) if type(asked) is int else None}
            else:
                reply = {"ok": False, "message": f"unknown request {op!r}"}
            for fd in fds:
                os.close(fd)
            protocol.send(self.control, reply, pidfd)
            for fd in pidfd:
                os.close(fd)

    def fork(self, fd: int, budget: int, device: str) -> tuple[int, int]:
        """A new worker on socket ``fd``: its pid and a pidfd for the host (kills through it cannot hit a reused
        pid: SIGCHLD is held until the pidfd exists, so the worker cannot be reaped before)."""
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            raise
        if pid:
            try:
                self.statuses.pop(pid, None)  # a reused pid's old status
                return pid, os.pidfd_open(pid)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        try:  # the child: nothing of the zygote's but the code, the warm-up archive and /dev/null
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            self.control.close()
            os.dup2(self.devnull, 2)  # not the zygote's stderr file: the worker could write or truncate it
            os.close(self.devnull)
            die_with_parent(os.getppid())
            run_worker(socket.socket(fileno=fd), budget, device, self.warm_up)
        finally:
            os._exit(0)


def main(argv: list[str]) -> int:
    # No PR_SET_PDEATHSIG here: it fires when the host *thread* that started the zygote ends (a guest's worker
    # thread, often). The zygote ends when its control socket closes, which the host's death does; its workers,
    # forked by its one thread, die with it.
    control = socket.socket(fileno=int(argv[0]))
    try:
        zygote = Zygote(control)
    except BaseException as exc:  # noqa: BLE001 - told to the host, which refuses guest models then
        protocol.send(control, {"ok": False, "code": ErrorCode.UNSUPPORTED_OPERATION.value, "message": protocol.text(
            f"the sandbox for guest models could not start: {type(exc).__name__}: {exc}")})  # fmt: skip
        return 1
    protocol.send(control, {"ok": True, "pid": os.getpid()})
    zygote.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
