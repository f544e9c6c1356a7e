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
    import os, socket, sys, threading, mmap
    from wasinn_jupyter.host.sandbox.confine import confine
    secret, parent = sys.argv[1], int(sys.argv[2])
    keep = os.memfd_create("probe")  # made and sized by the host: a confined worker only maps what it receives
    os.ftruncate(keep, 4096)
    c = confine(1 << 30)
    print("confined", c.describe(), flush=True)

    def attempt(name, fn):
        try:
            fn()
            print(name, "ALLOWED", flush=True)
        except (OSError, ValueError) as exc:  # Python reports EPERM from setrlimit as ValueError
            print(name, "denied", getattr(exc, "errno", exc), flush=True)

    attempt("read", lambda: open(secret).read())
    attempt("create", lambda: open("/tmp/wasinn-confine-probe", "w"))
    attempt("list", lambda: os.listdir("/"))
    attempt("socket", lambda: socket.socket())
    attempt("exec", lambda: os.execv("/bin/true", ["true"]))
    attempt("fork", lambda: os.fork() or os._exit(0))
    attempt("signal-parent", lambda: os.kill(parent, 0))
    attempt("raise-limit", lambda: __import__("resource").setrlimit(__import__("resource").RLIMIT_NOFILE, (1024, 1024)))
    box = []
    t = threading.Thread(target=lambda: box.append(1)); t.start(); t.join()
    print("thread", "ok" if box else "failed", flush=True)
    attempt("grow-memfd", lambda: os.ftruncate(keep, 8192))
    with mmap.mmap(keep, 4096) as mm:
        mm[:5] = b"hello"
        print("memfd", bytes(mm[:5]).decode(), flush=True)
    """
)


def test_a_confined_process_reaches_no_file_socket_process_or_signal(tmp_path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("top secret")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(secret), str(os.getpid())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert out.returncode == 0, out.stderr
    assert "seccomp" in lines["confined"]
    for attempt in ("read", "create", "list", "socket", "exec", "fork", "signal-parent", "raise-limit", "grow-memfd"):
        assert lines[attempt].startswith("denied"), (attempt, lines[attempt])
    assert lines["thread"] == "ok" and lines["memfd"] == "hello"
    assert not os.path.exists("/tmp/wasinn-confine-probe")


def test_the_filter_covers_both_architectures_and_refuses_unknown_ones() -> None:
    for machine in ("x86_64", "aarch64"):
        program = confine.seccomp_program(machine, 1234)
        assert len(program) % 8 == 0 and len(program) // 8 < 4096  # BPF's limit
    with pytest.raises(confine.ConfineError):
        confine.seccomp_program("mips", 1)
