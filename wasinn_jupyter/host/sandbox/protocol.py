"""What the host and a sandbox worker say to each other: JSON messages, and tensors in shared memory.

Messages travel over a ``SOCK_SEQPACKET`` socket pair (one datagram is one message, boundaries kept) as JSON
objects, never pickles: the host must be able to read what a worker says even after hostile code has run in it.
Tensor bytes travel in anonymous shared memory (``memfd``) whose descriptor rides along with the message
(``SCM_RIGHTS``), so no side opens a file. The host creates every memfd, the worker's outputs included, so that
the host checks an output's size against the guest's budget before it holds a byte of it.

Everything :func:`unpack` reads comes from the other side and is checked as if written by an attacker: known
type names, bounded rank, non-negative dims whose bytes fit the shared memory.
"""

from __future__ import annotations

import fcntl
import json
import mmap
import os
import socket
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backends.base import model_error, out_of_host_memory
from ..errors import ErrorCode, WasiNNError
from ..tensors import BY_NAME, MAX_RANK, Tensor, element_count

MAX_MESSAGE = 1 << 16  # bytes of JSON in one message; a longer one is a broken (or hostile) peer
MAX_TENSORS = 1024
MAX_TEXT = 4000  # characters of an error message carried across
ALIGN = 64


class ProtocolError(Exception):
    """The other side sent something that is not a valid message: the host stops trusting (and kills) it."""


def send(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    data = json.dumps(message, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(data)} bytes is over {MAX_MESSAGE}")
    socket.send_fds(sock, [data], list(fds)) if fds else sock.sendall(data)


def recv(sock: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """One message and the descriptors that came with it; ``EOFError`` when the other side has gone."""
    data, fds, flags, _ = socket.recv_fds(sock, MAX_MESSAGE + 1, 1)
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(data) > MAX_MESSAGE:
        for fd in fds:
            os.close(fd)
        raise ProtocolError("message too long, or too many descriptors")
    if not data and not fds:
        raise EOFError("the other side closed the connection")
    try:
        message = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"message is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("message is not a JSON object")
    return message, fds


def text(value: object) -> str:
    """An error message, cut to what a message may carry."""
    s = str(value)
    return s if len(s) <= MAX_TEXT else s[: MAX_TEXT - 20] + " ... (cut)"


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def layout(tensors: Sequence[Tensor]) -> tuple[list[dict[str, Any]], int]:
    """Descriptors (type, dims, offset) for ``tensors`` packed one after another, and the bytes they need."""
    descs, offset = [], 0
    for t in tensors:
        descs.append({"type": t.type.name, "dims": list(t.dims), "offset": offset})
        offset += _aligned(t.nbytes)
    return descs, offset


def new_memfd(size: int, name: str = "wasinn-tensors", seal_writes_later: bool = False) -> int:
    """Shared memory of exactly ``size`` bytes, sealed at that size before anyone else sees it.

    The seals matter for outputs: the host maps the memory after the worker wrote it and keeps the mapping as the
    output tensors' storage. Unsealed, a hostile worker that kept the descriptor could shrink it, and the host's
    next read of the mapping would be SIGBUS: a dead kernel. ``seal_writes_later`` leaves room for
    :func:`seal_writes`, once the worker has written it.
    """
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | (0 if seal_writes_later else fcntl.F_SEAL_SEAL)
    try:
        os.ftruncate(fd, size)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    except OSError:
        os.close(fd)
        raise
    return fd


def seal_writes(fd: int) -> bool:
    """Freeze a memfd's bytes (the worker's outputs, once written); False if someone still maps it writable."""
    try:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
    except OSError:
        return False
    return True


def write_all(fd: int, data: Any, offset: int = 0) -> None:
    """Write a bytes-like object (a view of guest memory, say) at ``offset`` of ``fd``, however many calls it takes."""
    view = memoryview(data).cast("B")
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


def map_fd(fd: int, size: int, writable: bool) -> mmap.mmap | None:
    """Map ``size`` bytes of a memfd; the mapping outlives the descriptor, which is closed here."""
    try:
        if size == 0:
            return None
        if os.fstat(fd).st_size < size:
            raise ProtocolError(f"shared memory holds {os.fstat(fd).st_size} bytes, {size} were announced")
        return mmap.mmap(fd, size, access=mmap.ACCESS_WRITE if writable else mmap.ACCESS_COPY)
    finally:
        os.close(fd)


def pack(tensors: Sequence[Tensor]) -> tuple[list[dict[str, Any]], int, int | None]:
    """Copy ``tensors`` into a new memfd: (descriptors, size, fd or None when there are no bytes)."""
    descs, size = layout(tensors)
    if not size:
        return descs, 0, None
    fd = new_memfd(size)
    with mmap.mmap(fd, size) as mm:
        write(mm, tensors, descs)
    return descs, size, fd


def write(mm: mmap.mmap | None, tensors: Sequence[Tensor], descs: Sequence[dict[str, Any]]) -> None:
    if mm is None:
        return
    buf = np.frombuffer(mm, dtype=np.uint8)
    for t, d in zip(tensors, descs, strict=True):
        t.copy_into(buf[d["offset"] : d["offset"] + t.nbytes])
    del buf  # no exported buffer may outlive the caller's mapping


def unpack(mm: mmap.mmap | None, descs: object, size: int) -> list[Tensor]:
    """Tensors viewing ``mm`` per ``descs``, after checking every field (the descriptors come from the other side)."""
    if not isinstance(descs, list) or len(descs) > MAX_TENSORS:
        raise ProtocolError(f"tensor descriptors must be a list of at most {MAX_TENSORS}")
    out = []
    for d in descs:
        if not isinstance(d, dict):
            raise ProtocolError("a tensor descriptor is not an object")
        name, dims, offset = d.get("type"), d.get("dims"), d.get("offset")
        ttype = BY_NAME.get(name) if type(name) is str else None
        if ttype is None:
            raise ProtocolError(f"unknown tensor type {name!r}")
        if (
            not isinstance(dims, list)
            or len(dims) > MAX_RANK
            or not all(type(x) is int and 0 <= x < 1 << 40 for x in dims)
        ):
            raise ProtocolError(f"bad dims {dims!r}")
        if type(offset) is not int or offset < 0 or offset % ALIGN:
            raise ProtocolError(f"bad offset {offset!r}")
        nbytes = element_count(tuple(dims)) * ttype.itemsize
        if offset + nbytes > size:
            raise ProtocolError(f"tensor of {nbytes} bytes at {offset} runs past the {size} shared bytes")
        if nbytes:
            assert mm is not None
            raw = np.frombuffer(mm, dtype=np.uint8, count=nbytes, offset=offset)
        else:
            raw = np.empty(0, np.uint8)
        out.append(Tensor.from_bytes(tuple(dims), ttype, raw))
    return out


def error_reply(exc: BaseException) -> dict[str, Any]:
    """What the worker answers for a failed request: a wasi-nn code and the message."""
    if isinstance(exc, WasiNNError):
        return {"ok": False, "code": exc.code.value, "message": text(exc.message)}
    message = text(model_error(exc))
    if out_of_host_memory(exc):
        return {
            "ok": False,
            "code": ErrorCode.TOO_LARGE.value,
            "message": text(f"the graph's code went past the guest's memory budget: {message}"),
        }
    return {"ok": False, "code": ErrorCode.RUNTIME_ERROR.value, "message": message}


def raise_for(reply: dict[str, Any]) -> dict[str, Any]:
    """The reply, or the WasiNNError it carries (codes outside the known set become runtime_error)."""
    if reply.get("ok") is True:
        return reply
    try:
        code = ErrorCode(reply.get("code"))
    except ValueError:
        code = ErrorCode.RUNTIME_ERROR
    raise WasiNNError(code, "sandbox: " + text(reply.get("message", "no message")))
