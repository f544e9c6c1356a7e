"""What a guest sees of the outside (:class:`WasiOptions`), and the one reading of ``--dir`` and ``--env``.

The ``wasinn`` command and ``%wasinn run`` take the same flags with the same meaning, so both parse them here:

- ``--dir HOST::GUEST`` is wasmtime's form, ``--dir GUEST:HOST`` (one colon) WasmEdge's, and a bare path is
  preopened under its own name; ``~`` in the host path is expanded.
- ``--env KEY=VALUE``; the value may be empty and may hold ``=``.

WASI passes UTF-8 text, so text that is not (a surrogate-escaped command-line argument) is refused here, naming
the flag, rather than deep inside wasmtime-py. Errors are ``ValueError`` with a one-line message; each front-end
turns them into its own usage error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Output = Callable[[bytes], None]


@dataclass
class WasiOptions:
    """What the guest sees of the outside: argv, environment, preopened directories, where its output goes."""

    argv: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    dirs: Sequence[tuple[str, str]] = ()  # (host path, guest path)
    stdout: Output | None = None  # None: inherit the process's stdout
    stderr: Output | None = None


def check_utf8(text: str, what: str) -> str:
    """``text`` unchanged, or ValueError when it cannot be encoded as UTF-8 (``what`` names it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} {text!r} is not valid UTF-8") from None
    return text


def parse_dir(spec: str) -> tuple[str, str]:
    """``HOST::GUEST``, ``GUEST:HOST`` or ``DIR`` as (host path, guest path); the host path must be a directory."""
    if "::" in spec:
        host, guest = spec.split("::", 1)
    elif ":" in spec:
        guest, host = spec.split(":", 1)  # WasmEdge's GUEST:HOST
    else:
        host = guest = spec
    if not host or not guest:
        raise ValueError(f"--dir {spec!r}: expected HOST::GUEST, GUEST:HOST or a directory")
    check_utf8(spec, "--dir")
    path = Path(host).expanduser()
    if not path.is_dir():
        raise ValueError(f"--dir {spec}: {host} is not a directory")
    return str(path), guest


def parse_env(spec: str) -> tuple[str, str]:
    """``KEY=VALUE`` as (key, value)."""
    key, sep, value = spec.partition("=")
    if not sep or not key:
        raise ValueError(f"--env {spec!r}: expected KEY=VALUE")
    check_utf8(spec, "--env")
    return key, value
