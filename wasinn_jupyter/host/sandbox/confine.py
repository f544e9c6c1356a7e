"""Confine the current process for good: no files, no network, no new processes, no signals out, bounded memory.

Called once by the sandbox worker after it has imported and warmed up torch, and before it reads a single byte a
guest sent. Every layer is applied by the process to itself, unprivileged, and none can be undone:

- **rlimits**: data segment (private writable memory, what torch allocates) at the worker's size now plus the
  guest's budget, no core files, no file growth, few descriptors.
- **seccomp-bpf** (required): every syscall that names a path to open, create, change or run, every way to make a
  socket or a process, to signal or trace another process, to raise a limit or to leave the filter's view
  (io_uring, x32 numbers) answers EPERM. Threads stay allowed (``clone`` with CLONE_THREAD), ``clone3`` answers
  ENOSYS so that libc falls back to ``clone``, where the flags can be checked.
- **Landlock** (where the kernel has it): a ruleset that handles every filesystem right and grants none, TCP bind
  and connect denied, and (ABI 6+) signals and abstract sockets scoped to the worker.

seccomp alone already keeps the worker off the filesystem (it cannot open anything), so Landlock is a second,
independent lock where available; a machine without seccomp cannot run the sandbox, and :func:`confine` raises.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import signal
import struct
from dataclasses import dataclass, field

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
PR_SET_DUMPABLE = 4
PR_SET_PDEATHSIG = 1
SECCOMP_MODE_FILTER = 2
EPERM = 1
ENOSYS = 38
CLONE_THREAD = 0x00010000

# Syscalls the worker may never make, by architecture. Numbers from the kernel's tables (x86_64: arch/x86/entry/
# syscalls/syscall_64.tbl; aarch64: include/uapi/asm-generic/unistd.h).
_DENIED_NAMES = (
    # paths: open, create, change, run
    "open", "openat", "openat2", "creat", "truncate", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat",
    "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmodat", "fchmodat2",
    "chown", "lchown", "fchownat", "mknod", "mknodat", "open_by_handle_at", "name_to_handle_at", "chroot",
    "execve", "execveat", "mount", "umount2", "pivot_root", "swapon", "swapoff", "acct", "quotactl",
    "fanotify_init", "inotify_init", "inotify_init1",
    # network
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
    # processes and other processes
    "fork", "vfork", "kill", "tkill", "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_open",
    "pidfd_send_signal", "pidfd_getfd", "kcmp", "setns", "unshare",
    # limits, privileges, kernel facilities that bypass or outlive the filter
    "setrlimit", "prlimit64", "capset", "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
    "setgroups", "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "kexec_load", "kexec_file_load", "init_module", "finit_module",
    "delete_module", "reboot", "syslog", "personality", "seccomp", "mq_open", "memfd_secret",
)  # fmt: skip

_X86_64 = {
    "open": 2, "openat": 257, "openat2": 437, "creat": 85, "truncate": 76, "mkdir": 83, "mkdirat": 258,
    "rmdir": 84, "unlink": 87, "unlinkat": 263, "rename": 82, "renameat": 264, "renameat2": 316, "link": 86,
    "linkat": 265, "symlink": 88, "symlinkat": 266, "chmod": 90, "fchmodat": 268, "fchmodat2": 452, "chown": 92,
    "lchown": 94, "fchownat": 260, "mknod": 133, "mknodat": 259, "open_by_handle_at": 304,
    "name_to_handle_at": 303, "chroot": 161, "execve": 59, "execveat": 322, "mount": 165, "umount2": 166,
    "pivot_root": 155, "swapon": 167, "swapoff": 168, "acct": 163, "quotactl": 179, "fanotify_init": 300,
    "inotify_init": 253, "inotify_init1": 294,
    "socket": 41, "socketpair": 53, "connect": 42, "bind": 49, "listen": 50, "accept": 43, "accept4": 288,
    "fork": 57, "vfork": 58, "kill": 62, "tkill": 200, "ptrace": 101, "process_vm_readv": 310,
    "process_vm_writev": 311, "pidfd_open": 434, "pidfd_send_signal": 424, "pidfd_getfd": 438, "kcmp": 312,
    "setns": 308, "unshare": 272,
    "setrlimit": 160, "prlimit64": 302, "capset": 126, "setuid": 105, "setgid": 106, "setreuid": 113,
    "setregid": 114, "setresuid": 117, "setresgid": 119, "setgroups": 116, "keyctl": 250, "add_key": 248,
    "request_key": 249, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "kexec_load": 246, "kexec_file_load": 320,
    "init_module": 175, "finit_module": 313, "delete_module": 176, "reboot": 169, "syslog": 103,
    "personality": 135, "seccomp": 317, "mq_open": 240, "memfd_secret": 447,
    "clone": 56, "clone3": 435, "tgkill": 234,
}  # fmt: skip

_AARCH64 = {
    "openat": 56, "openat2": 437, "truncate": 45, "mkdirat": 34, "unlinkat": 35, "renameat": 38,
    "renameat2": 276, "linkat": 37, "symlinkat": 36, "fchmodat": 53, "fchmodat2": 452, "fchownat": 54,
    "mknodat": 33, "open_by_handle_at": 265, "name_to_handle_at": 264, "chroot": 51, "execve": 221,
    "execveat": 281, "mount": 40, "umount2": 39, "pivot_root": 41, "swapon": 224, "swapoff": 225, "acct": 89,
    "quotactl": 60, "fanotify_init": 262, "inotify_init1": 26,
    "socket": 198, "socketpair": 199, "connect": 203, "bind": 200, "listen": 201, "accept": 202, "accept4": 242,
    "kill": 129, "tkill": 130, "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271,
    "pidfd_open": 434, "pidfd_send_signal": 424, "pidfd_getfd": 438, "kcmp": 272, "setns": 268, "unshare": 97,
    "setrlimit": 164, "prlimit64": 261, "capset": 91, "setuid": 146, "setgid": 144, "setreuid": 145,
    "setregid": 143, "setresuid": 147, "setresgid": 149, "setgroups": 159, "keyctl": 219, "add_key": 217,
    "request_key": 218, "bpf": 280, "perf_event_open": 241, "userfaultfd": 282, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "kexec_load": 104, "kexec_file_load": 294,
    "init_module": 105, "finit_module": 273, "delete_module": 106, "reboot": 142, "syslog": 116,
    "personality": 92, "seccomp": 277, "mq_open": 180, "memfd_secret": 447,
    "clone": 220, "clone3": 435, "tgkill": 131,
}  # fmt: skip

# (audit arch, syscall table, lowest number that is not a native syscall: x32 numbers on x86_64 carry bit 30)
_ARCHES = {
    "x86_64": (0xC000003E, _X86_64, 0x40000000),
    "aarch64": (0xC00000B7, _AARCH64, None),
}

# Landlock (include/uapi/linux/landlock.h)
_LANDLOCK_CREATE_RULESET, _LANDLOCK_RESTRICT_SELF = 444, 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_FS_RIGHTS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_NET_BIND_CONNECT_TCP = 0b11  # ABI 4
_SCOPE_ABSTRACT_SOCKET_AND_SIGNAL = 0b11  # ABI 6


class ConfineError(OSError):
    """The process could not be confined; the sandbox then refuses to run guest models."""


@dataclass
class Confinement:
    """What was applied, for logs and ``info``."""

    seccomp: str = ""
    landlock: str = "unavailable"
    rlimits: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        limits = ", ".join(f"{k}={v}" for k, v in self.rlimits.items())
        return f"seccomp: {self.seccomp}; landlock: {self.landlock}; rlimits: {limits}"


def _vm_data_bytes() -> int:
    """This process's data segment now (VmData), which RLIMIT_DATA counts."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def _set_limits(memory_bytes: int, confinement: Confinement) -> None:
    data = _vm_data_bytes() + memory_bytes
    nofile = 64
    for name, value in (
        ("RLIMIT_DATA", data),
        ("RLIMIT_CORE", 0),
        ("RLIMIT_FSIZE", 0),
        ("RLIMIT_NOFILE", nofile),
        ("RLIMIT_MEMLOCK", 0),
        ("RLIMIT_MSGQUEUE", 0),
    ):
        resource.setrlimit(getattr(resource, name), (value, value))
        confinement.rlimits[name] = value


def _landlock(confinement: Confinement) -> None:
    abi = _libc.syscall(_LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION)
    if abi < 1:
        confinement.landlock = f"unavailable (errno {ctypes.get_errno()})"
        return
    fs = _FS_RIGHTS_BY_ABI[max(k for k in _FS_RIGHTS_BY_ABI if k <= abi)]
    net = _NET_BIND_CONNECT_TCP if abi >= 4 else 0
    scoped = _SCOPE_ABSTRACT_SOCKET_AND_SIGNAL if abi >= 6 else 0
    attr = struct.pack("<QQQ", fs, net, scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    buf = ctypes.create_string_buffer(attr[:size], size)
    ruleset = _libc.syscall(_LANDLOCK_CREATE_RULESET, buf, ctypes.c_size_t(size), 0)
    if ruleset < 0:
        raise ConfineError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        if _libc.syscall(_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
            raise ConfineError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    confinement.landlock = (
        f"ABI {abi}: no filesystem rights"
        + (", no TCP" if net else "")
        + (", signals and abstract sockets scoped" if scoped else "")
    )


def _bpf(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k & 0xFFFFFFFF)


_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_RET_ALLOW, _RET_KILL_PROCESS = 0x7FFF0000, 0x80000000
_RET_ERRNO = 0x00050000
_NR, _ARCH, _ARG0_LOW = 0, 4, 16  # offsets in struct seccomp_data (little-endian: the low half of args[0])


def seccomp_program(machine: str, pid: int) -> bytes:
    """The BPF program: the filter described in the module docstring, for ``machine``."""
    try:
        audit_arch, table, x32_bit = _ARCHES[machine]
    except KeyError:
        raise ConfineError(EPERM, f"no seccomp syscall table for {machine}") from None
    deny = _RET_ERRNO | EPERM
    prog = [
        _bpf(_LD_W_ABS, 0, 0, _ARCH),
        _bpf(_JEQ, 1, 0, audit_arch),
        _bpf(_RET, 0, 0, _RET_KILL_PROCESS),  # another ABI's numbers mean other syscalls: never guess
        _bpf(_LD_W_ABS, 0, 0, _NR),
    ]
    if x32_bit is not None:
        prog += [_bpf(_JGE, 0, 1, x32_bit), _bpf(_RET, 0, 0, deny)]
    for name in _DENIED_NAMES:
        if name in table:  # aarch64 has no open, fork, ... at all
            prog += [_bpf(_JEQ, 0, 1, table[name]), _bpf(_RET, 0, 0, deny)]
    prog += [
        _bpf(_JEQ, 0, 1, table["clone3"]),
        _bpf(_RET, 0, 0, _RET_ERRNO | ENOSYS),  # libc then uses clone, whose flags are visible below
        # clone: threads only
        _bpf(_JEQ, 0, 4, table["clone"]),
        _bpf(_LD_W_ABS, 0, 0, _ARG0_LOW),
        _bpf(_JSET, 0, 1, CLONE_THREAD),
        _bpf(_RET, 0, 0, _RET_ALLOW),
        _bpf(_RET, 0, 0, deny),
        # tgkill: only this process's own threads (abort() and thread cancellation use it)
        _bpf(_JEQ, 0, 4, table["tgkill"]),
        _bpf(_LD_W_ABS, 0, 0, _ARG0_LOW),
        _bpf(_JEQ, 0, 1, pid),
        _bpf(_RET, 0, 0, _RET_ALLOW),
        _bpf(_RET, 0, 0, deny),
        _bpf(_RET, 0, 0, _RET_ALLOW),
    ]
    return b"".join(prog)


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def _seccomp(confinement: Confinement) -> None:
    machine = platform.machine()
    program = seccomp_program(machine, os.getpid())
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    if _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise ConfineError(ctypes.get_errno(), "seccomp filter could not be installed")
    confinement.seccomp = f"{machine}: {len(program) // 8} instructions, paths/sockets/processes denied"


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when the host dies (a worker must never outlive its kernel)."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the host died before the line above
        os._exit(1)


def confine(memory_bytes: int) -> Confinement:
    """Lock this process down (see the module docstring). Raises :class:`ConfineError` if seccomp is impossible."""
    confinement = Confinement()
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # no ptrace attach, no core
    _set_limits(memory_bytes, confinement)
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise ConfineError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
    _landlock(confinement)
    _seccomp(confinement)  # last: it forbids what the steps above needed
    return confinement
