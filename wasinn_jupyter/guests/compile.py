"""Guest source to wasm: WAT, C (zig), Rust (rustc) and AssemblyScript (asc), behind one disk cache.

A compiled module is cached under a hash of the language, the source, the whole compiler command line (fixed
arguments and the cell's flags, with placeholder paths), the toolchain's identity (its version), the bindings we
ship, the wasmtime version and this package's version (which covers the post-processing, :func:`strip_debug`), so
re-running a cell costs a file read, and anything that could change the output makes a new entry. Files that flags
pull in (``-I dir``, ``-include file``) are not hashed: after changing one, compile again with ``force``. A
missing toolchain raises :class:`ToolchainMissing`, whose message is the one line that says how to install it; a
failed build raises :class:`CompileError` carrying the compiler's own output, with the temporary directory taken
out of the paths so it reads ``guest.c:3:5: error: ...``.

Nothing here knows about IPython: progress goes to a callback.

    WasinnError (wasinn_jupyter.host.errors: the package's one root)
     └── CompileError
          └── ToolchainMissing
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .._version import __version__
from ..host import WasinnError, wat_to_wasm

Progress = Callable[[str], None]

LANGUAGES = ("wat", "c", "rust", "assemblyscript", "python")  # python: a component (guests/python_component.py)
ALIASES = {"wasm": "wat", "wast": "wat", "rs": "rust", "as": "assemblyscript", "ts": "assemblyscript", "py": "python"}
BINDINGS = Path(__file__).parent / "bindings"
MAX_LOG_LINES = 40

# Names a cached module may carry: guest names become file names only after this filter.
_SAFE = re.compile(r"[^A-Za-z0-9_]+")


class CompileError(WasinnError):
    """The source did not compile; ``log`` is the compiler's output, trimmed and with temporary paths removed."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.log = log

    def __str__(self) -> str:
        return f"{self.message}\n{self.log}".rstrip() if self.log else self.message


class ToolchainMissing(CompileError):
    """The language's compiler is not installed; the message says how to install it."""


@dataclass
class Compiled:
    """A compiled guest: its wasm bytes, where they are cached, and how they were made."""

    wasm: bytes
    path: Path | None
    lang: str
    toolchain: str
    cached: bool
    seconds: float
    log: str = ""  # compiler warnings, if any
    command: bool = True  # built as a WASI command (has main/_start) rather than a reactor


def normalize_lang(lang: str) -> str:
    key = lang.strip().lower()
    key = ALIASES.get(key, key)
    if key not in LANGUAGES:
        raise CompileError(f"unknown guest language {lang!r} (choose from {', '.join(LANGUAGES)})")
    return key


def default_cache_dir() -> Path:
    """``$WASINN_CACHE_DIR``, else ``$XDG_CACHE_HOME/wasinn-jupyter``, else ``~/.cache/wasinn-jupyter``."""
    env = os.environ.get("WASINN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "wasinn-jupyter"


# -- toolchains -----------------------------------------------------------------------------------------------


class Toolchain:
    """One language's compiler: how to find it, name its version, and build a source file."""

    lang = ""
    suffix = ""
    program = ""  # how errors name the compiler

    def identity(self) -> str:
        """A version string for the cache key; raises ToolchainMissing when the compiler cannot be found."""
        raise NotImplementedError

    def command(self, src: Path, out: Path, flags: Sequence[str], is_command: bool) -> list[str]:
        raise NotImplementedError

    def is_command(self, source: str) -> bool:
        """Whether the source is a WASI command (it has a main) rather than a library of exports."""
        return True

    def source_name(self, stem: str) -> str:
        """The file name the cell's source is built from (error messages show it)."""
        return f"{stem}{self.suffix}"

    def prepare(self, workdir: Path) -> None:
        """Put what the build needs beside the source (the bindings)."""

    def slow_note(self) -> str | None:
        """Said before a build that is known to be slow (zig's first build)."""
        return None


class Zig(Toolchain):
    lang = "c"
    suffix = ".c"
    program = "zig cc"
    _MAIN = re.compile(r"\b(?:int|void)\s+main\s*\(")

    def identity(self) -> str:
        try:
            version = metadata.version("ziglang")
        except metadata.PackageNotFoundError:
            raise ToolchainMissing("C guests need zig: pip install ziglang") from None
        return f"zig {version}"

    def is_command(self, source: str) -> bool:
        return bool(self._MAIN.search(source))

    def command(self, src: Path, out: Path, flags: Sequence[str], is_command: bool) -> list[str]:
        cmd = [sys.executable, "-m", "ziglang", "cc", "-target", "wasm32-wasi", "-O2", "-I", str(BINDINGS)]
        if not is_command:
            cmd.append("-mexec-model=reactor")
        return [*cmd, *flags, src.name, "-o", str(out)]

    def slow_note(self) -> str | None:
        if _zig_cache_warm():
            return None
        return "zig's first wasm32-wasi build compiles its C library into zig's cache (about 25 s, once)"


def _zig_cache_warm() -> bool:
    env = os.environ.get("ZIG_GLOBAL_CACHE_DIR")
    if env:
        root = Path(env)
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zig"
    try:
        return any((d / "libc.a").is_file() for d in (root / "o").iterdir())
    except OSError:
        return False


class Rustc(Toolchain):
    lang = "rust"
    suffix = ".rs"
    program = "rustc"
    TARGETS = ("wasm32-wasi", "wasm32-wasip1")
    HINT = (
        "Rust guests need rustc with the wasm32-wasi target: apt-get install rustc libstd-rust-dev-wasm32 "
        "(Debian/Ubuntu) or rustup target add wasm32-wasip1"
    )
    _MAIN = re.compile(r"\bfn\s+main\s*\(")

    def __init__(self, rustc: str | None = None) -> None:
        self.rustc = rustc

    def _found(self) -> tuple[str, str]:
        for candidate in _rustc_candidates(self.rustc):
            target = _rust_wasm_target(candidate)
            if target:
                return candidate, target
        raise ToolchainMissing(self.HINT)

    def identity(self) -> str:
        rustc, target = self._found()
        return f"{_version(rustc)} {target}"

    def is_command(self, source: str) -> bool:
        return bool(self._MAIN.search(source))

    def source_name(self, stem: str) -> str:
        # the prefix keeps the cell's file apart from the bindings beside it (a guest may be named wasi_nn)
        return f"guest_{stem}{self.suffix}"

    def prepare(self, workdir: Path) -> None:
        shutil.copy(BINDINGS / "wasi_nn.rs", workdir / "wasi_nn.rs")

    def command(self, src: Path, out: Path, flags: Sequence[str], is_command: bool) -> list[str]:
        rustc, target = self._found()
        cmd = [rustc, "--edition", "2021", "--target", target, "--crate-name", "guest", "-O", "-C", "debuginfo=0"]
        if not is_command:
            cmd += ["--crate-type", "cdylib"]
        return [*cmd, *flags, src.name, "-o", str(out)]


def _rustc_candidates(explicit: str | None) -> list[str]:
    if explicit:
        return [explicit]
    out = []
    env = os.environ.get("WASINN_RUSTC")
    if env:
        out.append(env)
    # Debian's rustc first: a rustup rustc on PATH (~/.cargo/bin) often lacks any wasm target.
    out.append("/usr/bin/rustc")
    found = shutil.which("rustc")
    if found:
        out.append(found)
    return [c for c in dict.fromkeys(out) if Path(c).is_file()]


@functools.lru_cache(maxsize=16)
def _rust_wasm_target(rustc: str) -> str | None:
    for target in Rustc.TARGETS:
        try:
            libdir = subprocess.run(
                [rustc, "--print", "target-libdir", "--target", target],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return None
        if libdir and any(Path(libdir).glob("libstd-*.rlib")):
            return target
    return None


class Asc(Toolchain):
    lang = "assemblyscript"
    suffix = ".ts"
    program = "asc"
    HINT = (
        "AssemblyScript guests need node and asc: install node.js, then npm install -g assemblyscript "
        "(or npm install assemblyscript in the notebook's directory)"
    )

    def __init__(self, asc: str | None = None) -> None:
        self.asc = asc

    def _found(self) -> list[str]:
        """The command that runs asc: a given path, asc on PATH or in ./node_modules/.bin, else ``npx asc``."""
        if shutil.which("node") is None:
            raise ToolchainMissing(self.HINT)
        candidates = [self.asc] if self.asc else [os.environ.get("WASINN_ASC"), shutil.which("asc")]
        candidates.append(str(Path.cwd() / "node_modules" / ".bin" / "asc"))
        for candidate in candidates:
            if candidate and Path(candidate).is_file():
                return [candidate]
        npx = None if self.asc else shutil.which("npx")
        if npx is not None:  # --no-install: use an asc npm can find, never download one during a build
            return [npx, "--no-install", "asc"]
        raise ToolchainMissing(self.HINT)

    def identity(self) -> str:
        asc = self._found()
        try:
            return f"asc {_version(tuple(asc))}"
        except ToolchainMissing:
            if len(asc) > 1:  # npx runs, but finds no asc to run
                raise ToolchainMissing(self.HINT) from None
            raise

    def is_command(self, source: str) -> bool:
        return "_start" in source

    def command(self, src: Path, out: Path, flags: Sequence[str], is_command: bool) -> list[str]:
        return [*self._found(), src.name, "-O3", "--runtime", "stub", "--use", "abort=", *flags, "-o", str(out)]


@functools.lru_cache(maxsize=16)
def _version(tool: str | tuple[str, ...]) -> str:
    """The first line of ``tool --version``, asked once per command per process (node takes a while to start)."""
    argv = [tool] if isinstance(tool, str) else list(tool)
    try:
        done = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolchainMissing(f"{' '.join(argv)} does not run: {exc}") from None
    text = (done.stdout or done.stderr).strip()
    if done.returncode != 0:
        last = text.splitlines()[-1] if text else f"exit {done.returncode}"
        raise ToolchainMissing(f"{' '.join(argv)} --version failed: {last}")
    return text.splitlines()[0] if text else " ".join(argv)


def toolchain(lang: str, *, rustc: str | None = None, asc: str | None = None) -> Toolchain:
    lang = normalize_lang(lang)
    if lang == "c":
        return Zig()
    if lang == "rust":
        return Rustc(rustc)
    if lang == "assemblyscript":
        return Asc(asc)
    if lang == "python":
        from .python_component import ComponentizePy

        return ComponentizePy()
    raise CompileError(f"{lang} is not built by an external toolchain")


# -- compiling --------------------------------------------------------------------------------------------------


def cache_key(lang: str, source: str, flags: Sequence[str], identity: str, command: Sequence[str] = ()) -> str:
    """The hash a compiled module is cached under: everything that could change the wasm.

    ``command`` is the compiler's command line with placeholder paths, so its fixed arguments count too. Files
    that flags pull in (``-I``, ``-include``) are not read, hence not hashed.
    """
    bindings = hashlib.sha256()
    if lang != "wat":  # the shipped bindings are part of every C and Rust build
        for path in sorted(BINDINGS.iterdir()):
            bindings.update(path.name.encode() + b"\0" + path.read_bytes())
    material = {
        "lang": lang,
        "source": source,
        "flags": list(flags),
        "command": list(command),
        "toolchain": identity,
        "bindings": bindings.hexdigest(),
        "wasmtime": _wasmtime_version(),
        "package": __version__,  # covers what this package does to the compiler's output (strip_debug)
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _wasmtime_version() -> str:
    try:
        return metadata.version("wasmtime")
    except metadata.PackageNotFoundError:
        return "unknown"


def compile_source(
    source: str,
    lang: str = "wat",
    *,
    name: str = "guest",
    flags: Sequence[str] = (),
    cache_dir: str | Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
    rustc: str | None = None,
    asc: str | None = None,
) -> Compiled:
    """Compile ``source`` to wasm, from the disk cache unless ``force``; ``name`` names the source file in errors."""
    lang = normalize_lang(lang)
    start = time.perf_counter()
    tool = None if lang == "wat" else toolchain(lang, rustc=rustc, asc=asc)
    identity = f"wat2wasm (wasmtime {_wasmtime_version()})" if tool is None else tool.identity()
    is_command = True if tool is None else tool.is_command(source)
    command = [] if tool is None else tool.command(Path(f"SOURCE{tool.suffix}"), Path("OUT.wasm"), flags, is_command)
    key = cache_key(lang, source, flags, identity, command)
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    stem = _SAFE.sub("_", name)[:40] or "guest"
    cached = cache / "guests" / f"{stem}-{lang}-{key[:32]}.wasm"
    if not force and cached.is_file():
        return Compiled(cached.read_bytes(), cached, lang, identity, True, time.perf_counter() - start, "", is_command)

    if tool is None:
        wasm, log = _wat(source), ""
    else:
        wasm, log = _build(tool, source, stem, flags, is_command, progress)
    path = _store(cached, wasm)
    return Compiled(wasm, path, lang, identity, False, time.perf_counter() - start, log, is_command)


def _wat(source: str) -> bytes:
    try:
        return wat_to_wasm(source)
    except ValueError as exc:
        raise CompileError("the WAT does not parse:", _trim(str(exc).strip())) from None


def _build(
    tool: Toolchain, source: str, stem: str, flags: Sequence[str], is_command: bool, progress: Progress | None
) -> tuple[bytes, str]:
    with tempfile.TemporaryDirectory(prefix="wasinn-build-") as tmp:
        workdir = Path(tmp)
        src = workdir / tool.source_name(stem)
        src.write_text(source)
        tool.prepare(workdir)
        out = workdir / f"{stem}.wasm"
        cmd = tool.command(src, out, flags, is_command)
        note = tool.slow_note()
        if note and progress:
            progress(f"compiling {tool.lang}: {note}")
        returncode, log = _run(cmd, workdir, tool.lang, progress, note)
        log = _trim(log.replace(str(workdir) + os.sep, "").replace(str(workdir), "."))
        if returncode != 0 or not out.is_file():
            raise CompileError(f"{tool.lang} guest {stem!r} did not compile ({tool.program}, exit {returncode}):", log)
        return strip_debug(out.read_bytes()), log


def strip_debug(wasm: bytes) -> bytes:
    """Drop DWARF (``.debug_*`` custom sections), keeping the ``name`` section that trap backtraces use.

    zig links libc's DWARF into every module (a 2.6 KiB hello world becomes 900 KiB), and its ``-s`` drops the
    names too; this keeps what a notebook needs.
    """
    if wasm[:4] != b"\0asm":
        return wasm
    out = bytearray(wasm[:8])
    i = 8
    try:
        while i < len(wasm):
            start = i
            section = wasm[i]
            size, i = _leb128(wasm, i + 1)
            end = i + size
            if section == 0:
                name_len, j = _leb128(wasm, i)
                if wasm[j : j + name_len].startswith(b".debug"):
                    i = end
                    continue
            out += wasm[start:end]
            i = end
    except IndexError:
        return wasm  # not well-formed: leave it to the engine to say so
    return bytes(out)


def _leb128(data: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def _run(cmd: list[str], cwd: Path, lang: str, progress: Progress | None, note: str | None = None) -> tuple[int, str]:
    """Run a compiler, reporting elapsed time (and ``note``) every second while it runs; Ctrl-C stops it."""
    try:
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
        )
    except OSError as exc:
        raise ToolchainMissing(f"cannot run {cmd[0]}: {exc}") from None
    start = time.monotonic()
    try:
        while True:
            try:
                out, _ = proc.communicate(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                if progress:
                    line = f"compiling {lang}... {time.monotonic() - start:.0f} s"
                    progress(f"{line} ({note})" if note else line)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc.returncode, out or ""


def _trim(log: str) -> str:
    lines = log.rstrip().splitlines()
    if len(lines) > MAX_LOG_LINES:
        lines = [*lines[:MAX_LOG_LINES], f"... ({len(lines) - MAX_LOG_LINES} more lines)"]
    return "\n".join(lines)


def _store(path: Path, wasm: bytes) -> Path | None:
    """Write atomically; a read-only cache only costs the caching."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(wasm)
        os.replace(tmp, path)
        return path
    except OSError:
        return None
