"""The `unflat` command itself: help for every sub-command, errors as one line, the console script."""

from __future__ import annotations

import subprocess
import sys

import pytest

from unflat import cli


def test_top_level_help_lists_every_command(capsys) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


@pytest.mark.parametrize("command", ["generate", "export", "invert", "reconstruct"])
def test_run_commands_explain_every_option(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--out" in out and "--device" in out


def test_unknown_command_and_missing_run_are_one_line_errors(tmp_path, capsys) -> None:
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err
    code = cli.main(["generate", str(tmp_path / "nope")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "nope" in err


def test_python_dash_m_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "unflat", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip()
