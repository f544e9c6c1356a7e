"""What ``--over`` names: a directory (its files, sorted), a glob pattern, or a text file listing one path a line.

Inputs keep the order they are named in, since results come back in that order. A text file's relative paths are
read against the file's own directory, blank lines and ``#`` comments skipped.
"""

from __future__ import annotations

import glob
from pathlib import Path

GLOB_CHARS = "*?["


def expand_inputs(over: str | Path) -> list[Path]:
    """The input files ``over`` names (ValueError, in one line, when it names none or names what is not there)."""
    text = str(over)
    path = Path(text).expanduser()
    if any(c in text for c in GLOB_CHARS) and not path.exists():
        found = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
        files = [p for p in found if p.is_file()]
        if not files:
            raise ValueError(f"--over {text}: the pattern matches no files")
        return files
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise ValueError(f"--over {text}: the directory holds no files")
        return files
    if path.is_file():
        return _listed(path)
    raise ValueError(f"--over {text}: no such directory or file, and no glob pattern")


def _listed(listing: Path) -> list[Path]:
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"--over {listing}: cannot read the list: {exc}") from None
    files = []
    for number, line in enumerate(lines, 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = Path(entry).expanduser()
        if not path.is_absolute():
            path = listing.parent / path
        if not path.is_file():
            raise ValueError(f"--over {listing}, line {number}: {entry} is not a file")
        files.append(path)
    if not files:
        raise ValueError(f"--over {listing}: the list names no files")
    return files
