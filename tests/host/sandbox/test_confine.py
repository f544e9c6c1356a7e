"""The confinement a sandbox worker applies to itself, tried from inside a confined process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from wasinn_jupyter.host.sandbox import confine

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox is Linux-only")

PROBE = textwrap.dedent(
    """
    import ctypes, fcntl, mmap, os, socket, struct, sys, threading
    from wasinn_jupyter.host.sandbox.confine import confine
    secret, parent, landlock = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "landlock"
    keep = os.memfd_create("probe")  # made and sized by the host: a confined worker only uses what it receives
    os.ftruncate(keep, 4096)
    libc = ctypes.CDLL(None, use_errno=True)
    status = os.open("/proc/self/status", os.O_RDONLY)  # read after confinement through this descriptor
    c = confine(1 << 30, landlock=landlock)
    print("confined", c.describe(), flush=True)

    def attempt(name, fn):
        try:
            fn()
            print(name, "ALLOWED", flush=True)
        except (OSError, ValueError) as exc:  # Python reports EPERM from setrlimit as ValueError
            print(name, "denied", getattr(exc, "errno", exc), flush=True)

    def raw(name, *args):
        def call():
            if libc.syscall(*args) == -1:
                raise OSError(ctypes.get_errno(), name)
        return call

    attempt("read", lambda: open(secret).read())
    attempt("create", lambda: open("/tmp/wasinn-confine-probe", "w"))
    attempt("list", lambda: os.listdir("/"))
    attempt("socket", lambda: socket.socket())
    attempt("exec", lambda: os.execv("/bin/true", ["true"]))
    attempt("fork", lambda: os.fork() or os._exit(0))
    attempt("signal-parent", lambda: os.kill(parent, 0))
    attempt("sigqueue-parent", raw("rt_sigqueueinfo", 129, parent, 0, 0))  # x86_64
    attempt("setxattr", lambda: os.setxattr(secret, "user.x", b"1"))
    attempt("chmod", lambda: os.chmod(secret, 0o777))
    attempt("shmget", raw("shmget", 29, 0, 4096, 0o1666))
    attempt("setpriority", lambda: os.setpriority(os.PRIO_PROCESS, parent, 19))
    attempt("pdeathsig-off", raw("prctl", 157, 1, 0, 0, 0, 0))
    attempt("setsid", lambda: os.setsid())
    attempt("ifconf", lambda: fcntl.ioctl(0, 0x8912, struct.pack("iL", 0, 0)))
    attempt("raise-limit", lambda: __import__("resource").setrlimit(__import__("resource").RLIMIT_NOFILE, (1024, 1024)))
    attempt("shared-map", lambda: mmap.mmap(keep, 4096))
    attempt("grow-memfd", lambda: os.ftruncate(keep, 8192))
    box = []
    t = threading.Thread(target=lambda: box.append(1)); t.start(); t.join()
    print("thread", "ok" if box else "failed", flush=True)
    os.pwrite(keep, b"hello", 0)
    with mmap.mmap(keep, 4096, access=mmap.ACCESS_COPY) as mm:  # private mappings stay allowed
        print("memfd", bytes(mm[:5]).decode(), flush=True)
    print("uid", os.getuid(), os.geteuid(), flush=True)
    print("capeff", os.pread(status, 1 << 16, 0).decode().split("CapEff:")[1].split()[0], flush=True)
    """
)

DENIED = ("read", "create", "list", "socket", "exec", "fork", "signal-parent", "sigqueue-parent", "setxattr",
          "chmod", "shmget", "setpriority", "pdeathsig-off", "setsid", "ifconf", "raise-limit", "shared-map",
          "grow-memfd")  # fmt: skip


@pytest.mark.parametrize("landlock", ["landlock", "seccomp-only"])
def test_a_confined_process_reaches_no_file_socket_process_signal_or_privilege(tmp_path, landlock) -> None:
    secret = tmp_path / "secret"
    secret.write_text("top secret")
    secret.chmod(0o600)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(secret), str(os.getpid()), landlock],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert out.returncode == 0, out.stderr
    assert "an allowlist" in lines["confined"]
    for attempt in DENIED:
        assert lines[attempt].startswith("denied"), (attempt, lines[attempt])
    assert lines["thread"] == "ok" and lines["memfd"] == "hello"
    assert lines["capeff"] == "0000000000000000"
    if os.geteuid() == 0:
        assert lines["uid"] == "65534 65534"  # a root host's worker is nobody
    assert not os.path.exists("/tmp/wasinn-confine-probe")
    assert oct(secret.stat().st_mode & 0o777) == "0o600" and os.getpriority(os.PRIO_PROCESS, os.getpid()) == 0


def test_the_filter_covers_both_architectures_and_refuses_unknown_ones() -> None:
    for machine in ("x86_64", "aarch64"):
        program = confine.seccomp_program(machine, 1234, ioctl=True)
        assert len(program) % 8 == 0 and len(program) // 8 < 4096  # BPF's limit
    with pytest.raises(confine.ConfineError):
        confine.seccomp_program("mips", 1)
