"""Components run like core modules: Session.run and ``wasinn run`` find their ``wasi:cli/run`` export."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.host.component.conftest import guest
from wasinn_jupyter.cli import main
from wasinn_jupyter.host import GuestLimits, GuestStopped, Host, Session


def write(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.wat"
    path.write_text(guest(name))
    return path


def test_session_runs_a_command_component(session: Session) -> None:
    module = session.compile(guest("cli_echo"))
    assert module.kind == "component" and module.is_command
    assert "wasi:cli/run@0.2.0#run" in module.export_names
    assert session.run(guest("cli_echo")) == 0
    events = [r.call for r in session.host.timeline.records() if r.kind == "lifecycle"]
    assert events[-3:] == ["run", "exit", "close"]


def test_run_returning_err_is_exit_code_1() -> None:
    with Session(Host()) as bare:  # no graph named echo: load-by-name fails, run returns err
        assert bare.run(guest("cli_echo")) == 1


def test_a_deadline_stops_a_component(session: Session) -> None:
    with pytest.raises(GuestStopped, match="deadline"):
        session.run(guest("cli_spin"), limits=GuestLimits(deadline_s=0.2))


def test_wasinn_run_takes_the_same_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    echo = write(tmp_path, "cli_echo")
    flags = ["--nn-preload", "echo:pytorch:cpu:echo", "--env", "A=1", "--dir", str(tmp_path)]
    assert main(["run", *flags, str(echo)]) == 0
    assert main(["run", str(echo)]) == 1
    assert "load_by_name: no graph named 'echo'" in capsys.readouterr().err
    assert main(["run", "--deadline", "0.2", str(write(tmp_path, "cli_spin"))]) == 130
