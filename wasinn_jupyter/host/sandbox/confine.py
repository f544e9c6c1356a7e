"""Confine the current process for good: no files, no network, no other process, no privileges, bounded memory.

Called once by a sandbox worker after it has warmed up torch, and before it reads a single byte a guest sent.
Every layer is applied by the process to itself and none can be undone:

- **privileges**: a worker of a root host becomes ``nobody`` (uid and gid 65534, no groups), which clears every
  capability; where that is impossible (a user namespace with one uid), every capability is dropped instead.
  Either way a worker that still holds one refuses to run.
- **rlimits**: data segment (private writable memory, what torch allocates) at the worker's size now plus the
  guest's budget (the host lowers the soft limit to what the guest has left before each request), no core files,
  few descriptors, no locked memory, a fixed stack. (Files cannot grow: none can be opened, and the shared memory
  the host hands over is sealed at its size.)
- **seccomp-bpf, an allowlist** (required): the worker may read and write descriptors it has, map private memory,
  run threads, wait, sleep and tell the time, and nothing else: no path is opened, created, changed or run, no
  socket, no process, no signal to another process, no shared memory (so nothing escapes RLIMIT_DATA), no limit
  raised, no ``ioctl`` (except for a CUDA worker's driver). A syscall off the list answers EPERM; another
  architecture's numbers kill the process. The filter is installed for every thread (TSYNC).
- **Landlock** (where the kernel has it): a ruleset that handles every filesystem right and grants none, TCP bind
  and connect denied, and (ABI 6+) signals and abstract sockets scoped to the worker. A second, independent lock.

What stays possible, knowingly: ``stat`` of a path (metadata, never content; glibc's ``fstat`` is the same syscall
with an empty path, which BPF cannot tell apart), and the CPU and time the host's limits allow.
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
PR_SET_DUMPABLE = 4
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NAME, PR_GET_NAME = 15, 16
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
EPERM = 1
ENOSYS = 38
CLONE_THREAD = 0x00010000
MAP_SHARED = 0x01  # MAP_SHARED_VALIDATE (3) has it too
AT_EMPTY_PATH = 0x1000
NOBODY = 65534
STACK_BYTES = 8 << 20
# fcntl commands a worker uses: F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC, F_GET_SEALS (never
# F_SETOWN/F_SETSIG, which signal other processes, nor F_ADD_SEALS)
FCNTL_ALLOWED = (0, 1, 2, 3, 4, 1030, 1034)

# What a worker may call, by name, with no check on the arguments.
_ALLOWED_NAMES = (
    "read", "write", "readv", "writev", "pread64", "pwrite64", "lseek", "close", "dup", "dup3",
    "fstat", "newfstatat", "statx",
    "mprotect", "munmap", "mremap", "madvise", "brk",
    "recvmsg", "sendmsg", "recvfrom", "sendto", "poll", "ppoll", "select", "pselect6",
    "futex", "set_robust_list", "rseq", "set_tid_address", "sched_yield", "sched_getaffinity", "sched_getparam",
    "sched_getscheduler", "getcpu", "get_mempolicy", "membarrier",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall",
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid",
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "times", "getrusage",
    "uname", "sysinfo", "getrandom", "exit", "exit_group",
)  # fmt: skip

# Numbers from the kernel's tables (x86_64: arch/x86/entry/syscalls/syscall_64.tbl; aarch64: the generic
# include/uapi/asm-generic/unistd.h, which has no open, poll, select, fork...).
_X86_64 = {
    "read": 0, "write": 1, "readv": 19, "writev": 20, "pread64": 17, "pwrite64": 18, "lseek": 8, "close": 3,
    "dup": 32, "dup3": 292, "fstat": 5, "newfstatat": 262, "statx": 332, "mmap": 9, "mprotect": 10,
    "munmap": 11, "mremap": 25, "madvise": 28, "brk": 12, "recvmsg": 47, "sendmsg": 46, "recvfrom": 45,
    "sendto": 44, "poll": 7, "ppoll": 271, "select": 23, "pselect6": 270, "futex": 202, "set_robust_list": 273,
    "rseq": 334, "set_tid_address": 218, "sched_yield": 24, "sched_getaffinity": 204, "sched_getparam": 143,
    "sched_getscheduler": 145, "getcpu": 309, "get_mempolicy": 239, "membarrier": 324, "rt_sigaction": 13,
    "rt_sigprocmask": 14, "rt_sigreturn": 15, "sigaltstack": 131, "restart_syscall": 219, "getpid": 39,
    "gettid": 186, "getppid": 110, "getuid": 102, "geteuid": 107, "getgid": 104, "getegid": 108,
    "clock_gettime": 228, "clock_getres": 229, "clock_nanosleep": 230, "nanosleep": 35, "gettimeofday": 96,
    "times": 100, "getrusage": 98, "uname": 63, "sysinfo": 99, "getrandom": 318, "exit": 60, "exit_group": 231,
    "clone": 56, "clone3": 435, "tgkill": 234, "fcntl": 72, "prctl": 157, "prlimit64": 302, "ioctl": 16,
    "capset": 126,
}  # fmt: skip

_AARCH64 = {
    "read": 63, "write": 64, "readv": 65, "writev": 66, "pread64": 67, "pwrite64": 68, "lseek": 62, "close": 57,
    "dup": 23, "dup3": 24, "fstat": 80, "newfstatat": 79, "statx": 291, "mmap": 222, "mprotect": 226,
    "munmap": 215, "mremap": 216, "madvise": 233, "brk": 214, "recvmsg": 212, "sendmsg": 211, "recvfrom": 207,
    "sendto": 206, "ppoll": 73, "pselect6": 72, "futex": 98, "set_robust_list": 99, "rseq": 293,
    "set_tid_address": 96, "sched_yield": 124, "sched_getaffinity": 123, "sched_getparam": 121,
    "sched_getscheduler": 120, "getcpu": 168, "get_mempolicy": 236, "membarrier": 283, "rt_sigaction": 134,
    "rt_sigprocmask": 135, "rt_sigreturn": 139, "sigaltstack": 132, "restart_syscall": 128, "getpid": 172,
    "gettid": 178, "getppid": 173, "getuid": 174, "geteuid": 175, "getgid": 176, "getegid": 177,
    "clock_gettime": 113, "clock_getres": 114, "clock_nanosleep": 115, "nanosleep": 101, "gettimeofday": 169,
    "times": 153, "getrusage": 165, "uname": 160, "sysinfo": 179, "getrandom": 278, "exit": 93, "exit_group": 94,
    "clone": 220, "clone3": 435, "tgkill": 131, "fcntl": 25, "prctl": 167, "prlimit64": 261, "ioctl": 29,
    "capset": 91,
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
    privileges: str = ""
    rlimits: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        limits = ", ".join(f"{k}={v}" for k, v in self.rlimits.items())
        return f"{self.privileges}; seccomp: {self.seccomp}; landlock: {self.landlock}; rlimits: {limits}"


def _status(field_name: str) -> str:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return line.split(":", 1)[1].strip()
    return ""


def _set_limits(memory_bytes: int, confinement: Confinement) -> None:
    data = int(_status("VmData").split()[0]) * 1024 + memory_bytes
    for name, value in (
        ("RLIMIT_DATA", data),
        ("RLIMIT_CORE", 0),
        ("RLIMIT_NOFILE", 64),
        ("RLIMIT_MEMLOCK", 0),
        ("RLIMIT_MSGQUEUE", 0),
        ("RLIMIT_STACK", STACK_BYTES),
    ):
        resource.setrlimit(getattr(resource, name), (value, value))
        confinement.rlimits[name] = value


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32))


def _drop_privileges(confinement: Confinement, table: dict[str, int]) -> None:
    """Become nobody if root; else (or if that fails) drop every capability. A capability left is an error."""
    how = "unprivileged already"
    if os.geteuid() == 0:
        try:
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            how = f"root became uid/gid {NOBODY} (nobody)"
        except OSError as exc:
            how = f"root, uid change refused ({exc.strerror}): capabilities dropped"
    if int(_status("CapEff") or "0", 16) or int(_status("CapPrm") or "0", 16):
        for cap in range(64):
            _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # fails harmlessly past the last capability
        header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()  # _LINUX_CAPABILITY_VERSION_3: all zero
        if _libc.syscall(table["capset"], ctypes.byref(header), ctypes.byref(data)) != 0:
            raise ConfineError(ctypes.get_errno(), "capabilities could not be dropped")
    if int(_status("CapEff") or "0", 16):
        raise ConfineError(EPERM, f"the worker still holds capabilities ({_status('CapEff')})")
    confinement.privileges = how


def _landlock(confinement: Confinement) -> None:
    abi = _libc.syscall(_LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION)
    if abi < 1:
        confinement.landlock = f"unavailable (errno {ctypes.get_errno()})"
        return
    if len(os.listdir("/proc/self/task")) != 1:  # Landlock binds the calling thread only (seccomp syncs them all)
        confinement.landlock = "skipped: the worker has threads already (seccomp still covers them)"
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
_DENY = _RET_ERRNO | EPERM
_NR, _ARCH = 0, 4  # offsets in struct seccomp_data


def _arg(i: int, high: bool = False) -> int:
    """The offset of args[i]'s low (or high) 32 bits in struct seccomp_data (little-endian)."""
    return 16 + 8 * i + (4 if high else 0)


def _when(nr: int, checks: list[bytes]) -> list[bytes]:
    """``if nr matches: <checks, which return>``; the checks must end in a return."""
    return [_bpf(_JEQ, 0, len(checks), nr), *checks]


def _one_of(offset: int, values: tuple[int, ...]) -> list[bytes]:
    """Allow if the 32-bit argument at ``offset`` is one of ``values``, else deny."""
    out = [_bpf(_LD_W_ABS, 0, 0, offset)]
    for i, value in enumerate(values):
        out.append(_bpf(_JEQ, len(values) - i, 0, value))  # to the ALLOW after the DENY
    return [*out, _bpf(_RET, 0, 0, _DENY), _bpf(_RET, 0, 0, _RET_ALLOW)]


def seccomp_program(machine: str, pid: int, ioctl: bool = False) -> bytes:
    """The BPF allowlist described in the module docstring, for ``machine`` (``ioctl``: a CUDA worker's driver)."""
    try:
        audit_arch, table, x32_bit = _ARCHES[machine]
    except KeyError:
        raise ConfineError(EPERM, f"no seccomp syscall table for {machine}") from None
    allow, deny = _bpf(_RET, 0, 0, _RET_ALLOW), _bpf(_RET, 0, 0, _DENY)
    prog = [
        _bpf(_LD_W_ABS, 0, 0, _ARCH),
        _bpf(_JEQ, 1, 0, audit_arch),
        _bpf(_RET, 0, 0, _RET_KILL_PROCESS),  # another ABI's numbers mean other syscalls: never guess
        _bpf(_LD_W_ABS, 0, 0, _NR),
    ]
    if x32_bit is not None:
        prog += [_bpf(_JGE, 0, 1, x32_bit), deny]
    for name in (*_ALLOWED_NAMES, *(("ioctl",) if ioctl else ())):
        if name in table:  # aarch64 has no poll, select, fstat-less variants
            prog += [_bpf(_JEQ, 0, 1, table[name]), allow]
    # each case below loads an argument, so it ends in a return and the syscall number is not needed again
    cases = [
        # libc falls back to clone, whose flags are visible
        _when(table["clone3"], [_bpf(_RET, 0, 0, _RET_ERRNO | ENOSYS)]),
        # clone: threads only
        _when(table["clone"], [_bpf(_LD_W_ABS, 0, 0, _arg(0)), _bpf(_JSET, 1, 0, CLONE_THREAD), deny, allow]),
        # tgkill: this process's own threads (abort() and thread cancellation use it)
        _when(table["tgkill"], _one_of(_arg(0), (pid,))),
        # mmap: private mappings only: shared memory would escape RLIMIT_DATA and outlive the worker's view
        _when(table["mmap"], [_bpf(_LD_W_ABS, 0, 0, _arg(3)), _bpf(_JSET, 0, 1, MAP_SHARED), deny, allow]),
        _when(table["fcntl"], _one_of(_arg(1), FCNTL_ALLOWED)),
        # prctl: thread names only (no PDEATHSIG reset, no dumpable, no seccomp changes)
        _when(table["prctl"], _one_of(_arg(0), (PR_SET_NAME, PR_GET_NAME))),
        # prlimit64: its own limits only (pid 0). Without capabilities it can lower them, or raise a soft limit to
        # its hard one, never past: the host asks it to lower RLIMIT_DATA to what the guest has left
        _when(
            table["prlimit64"],
            [
                _bpf(_LD_W_ABS, 0, 0, _arg(0)),
                _bpf(_JEQ, 1, 0, 0),
                deny,
                _bpf(_LD_W_ABS, 0, 0, _arg(0, high=True)),
                _bpf(_JEQ, 1, 0, 0),
                deny,
                allow,
            ],
        ),
    ]
    for case in cases:
        prog += case
        prog.append(_bpf(_LD_W_ABS, 0, 0, _NR))  # unreachable after a case that matched: each one returns
    prog.append(deny)
    return b"".join(prog)


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def _seccomp(confinement: Confinement, table: dict[str, int], ioctl: bool) -> None:
    machine = platform.machine()
    program = seccomp_program(machine, os.getpid(), ioctl)
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    seccomp_nr = {"x86_64": 317, "aarch64": 277}[machine]
    if _libc.syscall(seccomp_nr, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, ctypes.byref(fprog)) != 0:
        raise ConfineError(ctypes.get_errno(), "seccomp filter could not be installed on every thread")
    confinement.seccomp = f"{machine}: an allowlist of {len(program) // 8} instructions, on every thread"


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent (thread) dies: a worker must never outlive its zygote."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def confine(memory_bytes: int, ioctl: bool = False, landlock: bool = True) -> Confinement:
    """Lock this process down (see the module docstring). Raises :class:`ConfineError` where that is impossible.

    ``landlock=False`` leaves Landlock out, as on a kernel without it: the tests show seccomp alone holds.
    """
    machine = platform.machine()
    if machine not in _ARCHES:
        raise ConfineError(EPERM, f"no seccomp syscall table for {machine}")
    table = _ARCHES[machine][1]
    confinement = Confinement()
    _set_limits(memory_bytes, confinement)
    _drop_privileges(confinement, table)
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # no ptrace attach by same-uid processes, no core
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise ConfineError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
    if landlock:
        _landlock(confinement)
    _seccomp(confinement, table, ioctl)  # last: it forbids what the steps above needed
    return confinement
