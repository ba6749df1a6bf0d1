"""First contact: the help, bare `backfill`, completion scripts, hints that work as typed,
durations for --max-outage."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from backfill.cli import main
from backfill.cli.argtypes import duration
from backfill.cli.helptext import COMMANDS
from backfill.cli.hints import prog


def test_help_says_what_it_does_lists_commands_examples_and_exit_codes(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as code:
        main(["--help"])
    assert code.value.code == 0
    text = capsys.readouterr().out
    assert text.splitlines()[2] == "Download MoEngage campaign reports before they expire."
    assert "argument parsing" not in text and "``" not in text
    for name in COMMANDS:
        assert f"\n  {name} " in text
    for part in ("examples:", "exit codes:", "  75 ", "configs/example.toml"):
        assert part in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_bare_backfill_prints_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "commands:" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_help_fits_80_columns_and_has_no_markup(
        name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([name, "--help"])
    text = capsys.readouterr().out
    assert text.startswith(f"usage: backfill {name}")
    assert "``" not in text and ":data:" not in text
    assert all(len(line) <= 80 for line in text.splitlines()), text


def test_demo_flags_all_have_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = capsys.readouterr().out
    for flag in ("--workspaces", "--reports", "--days", "--faults", "--output-dir",
                 "--resume", "--no-progress"):
        line = next(line for line in text.splitlines() if line.strip().startswith(flag))
        assert len(line.split()) > 1 or flag == "--output-dir", line


@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete"), ("zsh", "#compdef"),
                                               ("fish", "complete -c backfill")])
def test_completion_scripts(shell: str, marker: str, capsys: pytest.CaptureFixture[str]
                            ) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert marker in script
    for name in ("plan", "run", "status", "check"):
        assert name in script


def test_bash_completion_script_is_valid_bash(capsys: pytest.CaptureFixture[str]) -> None:
    main(["completion", "bash"])
    script = capsys.readouterr().out
    result = subprocess.run(["bash", "-n"], input=script.encode(), capture_output=True,
                            check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800),
                                               ("2h", 7200), ("1.5h", 5400), ("1d", 86400)])
def test_max_outage_durations(text: str, seconds: float) -> None:
    assert duration(text) == seconds


def test_a_bad_duration_is_one_usage_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        duration("2 hours")
    assert main(["run", "x.toml", "--max-outage", "soon"]) == 2
    err = capsys.readouterr().err
    assert "'soon' is not a duration" in err and "Traceback" not in err


def test_hints_name_the_command_as_it_can_be_typed(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    exe = venv_bin / "backfill"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert prog(str(exe)) == ".venv/bin/backfill"  # not on PATH: the path that works
    monkeypatch.setenv("PATH", f"{venv_bin}:/usr/bin:/bin")
    assert prog(str(exe)) == "backfill"
    assert prog("/x/backfill/__main__.py", str(venv_bin / "python")) == \
        ".venv/bin/python -m backfill"


def test_usage_error_hint_works_as_typed() -> None:
    result = subprocess.run([sys.executable, "-m", "backfill", "run"], capture_output=True,
                            check=False)
    err = result.stderr.decode()
    assert result.returncode == 2
    assert "-m backfill run --help'" in err  # python -m backfill: not a bare 'backfill'
