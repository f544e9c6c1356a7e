"""--over: a directory, a glob, a list file; what names nothing is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasinn_jupyter.scale import expand_inputs
from wasinn_jupyter.scale.job import MapJob


def test_directory_glob_and_list(tmp_path: Path) -> None:
    for name in ("b.bin", "a.bin", "c.txt", ".hidden"):
        (tmp_path / name).write_text(name)
    (tmp_path / "sub").mkdir()
    assert [p.name for p in expand_inputs(tmp_path)] == ["a.bin", "b.bin", "c.txt"]
    assert [p.name for p in expand_inputs(f"{tmp_path}/*.bin")] == ["a.bin", "b.bin"]
    listing = tmp_path / "sub" / "inputs.txt"
    listing.write_text(f"# the order given is kept\n../c.txt\n\n{tmp_path / 'a.bin'}\n")
    assert [p.resolve() for p in expand_inputs(listing)] == [tmp_path / "c.txt", tmp_path / "a.bin"]


@pytest.mark.parametrize(
    ("over", "words"),
    [
        ("missing", "no such directory or file"),
        ("*.nothing", "matches no files"),
        ("empty", "holds no files"),
        ("list.txt", "line 1: gone.bin is not a file"),
    ],
)
def test_what_names_nothing(tmp_path: Path, over: str, words: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "list.txt").write_text("gone.bin\n")
    with pytest.raises(ValueError, match=words):
        expand_inputs(tmp_path / over)


def test_placeholder_and_mount() -> None:
    job = MapJob(wasm=b"", guest_name="g", args=["--in={}", "x"])
    assert job.argv("a.bin") == ["g", "--in=a.bin", "x"]
    job.mount = "/data/"
    assert job.argv("a.bin") == ["g", "--in=/data/a.bin", "x"]
    job.args = ["x"]  # no {}: the path goes last, as xargs does
    assert job.argv("a.bin") == ["g", "x", "/data/a.bin"]
