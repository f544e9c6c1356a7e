"""--dir and --env, read once (host/wasi.py) for the wasinn command and %wasinn run."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasinn_jupyter.host import parse_dir, parse_env


def test_the_three_forms_of_dir(tmp_path: Path) -> None:
    assert parse_dir(f"{tmp_path}::/data") == (str(tmp_path), "/data")  # wasmtime's HOST::GUEST
    assert parse_dir(f"/data:{tmp_path}") == (str(tmp_path), "/data")  # WasmEdge's GUEST:HOST
    assert parse_dir(str(tmp_path)) == (str(tmp_path), str(tmp_path))  # a directory as itself


def test_dir_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    assert parse_dir("~/models::.") == (str(tmp_path / "models"), ".")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("::/data", "expected HOST::GUEST, GUEST:HOST or a directory"),
        ("/data:", "expected HOST::GUEST, GUEST:HOST or a directory"),
        ("/definitely/not/here", "/definitely/not/here is not a directory"),
        ("/tmp::\udcff", "is not valid UTF-8"),
    ],
)
def test_bad_dirs_say_why(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_dir(spec)


def test_env() -> None:
    assert parse_env("K=V") == ("K", "V")
    assert parse_env("K=") == ("K", "")
    assert parse_env("K=a=b") == ("K", "a=b")
    for bad in ("K", "=V"):
        with pytest.raises(ValueError, match="expected KEY=VALUE"):
            parse_env(bad)
    with pytest.raises(ValueError, match="not valid UTF-8"):
        parse_env("K=\udcff")
