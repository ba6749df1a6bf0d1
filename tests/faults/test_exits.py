"""Exit codes stay honest when the output goes away or a signal comes late, and the odd
inputs of items 11 and 14 of issue 12 give one line: ``run --json | head -c1`` with a
failure is 1, ``plan | head -1`` is 0, stderr closed mid-run loses no file and keeps the
code, SIGTERM while compacting is 130, ``--log-file /dev/full`` one warning line,
``simulate --port 99999`` exit 2."""

from __future__ import annotations

import io
import os
import signal
import subprocess
from pathlib import Path

import anyio
import pytest

from backfill.cli.progress import Progress
from backfill.events import FileFinished, RunStarted
from backfill.journal import load_manifest
from backfill.model import Status
from backfill.simulator import FirstN

from .conftest import TODAY
from .test_local_faults import (
    Case,
    cli,
    filler,
    on_disk,
    one_line,
    run_cli,
    run_until,
    scenario,
)

pytestmark = pytest.mark.anyio


def fail_one_file(case: Case) -> tuple[str, str]:
    key = sorted(case.expected())[0]
    case.sim.faults.first_n = [FirstN(key[1], 99, 500, app_id=key[0])]
    return key


async def run_with_closed(command: list[str], which: str) -> tuple[int, bytes]:
    """Run ``command`` with its stdout or stderr a pipe nobody reads (closed at once)."""
    read, write = os.pipe()
    os.close(read)  # every write to it now fails with EPIPE
    try:
        kwargs = {"stdout": write, "stderr": subprocess.PIPE} if which == "stdout" else {
            "stdout": subprocess.DEVNULL, "stderr": write}
        with anyio.fail_after(90):
            result = await anyio.run_process(command, check=False, **kwargs)  # type: ignore[arg-type]
    finally:
        os.close(write)
    return result.returncode, result.stderr or b""


async def test_run_json_into_a_closed_pipe_keeps_exit_1(tmp_path: Path) -> None:
    async with scenario(tmp_path) as case:
        fail_one_file(case)
        code, err = await run_with_closed(case.run("--json"), "stdout")
    assert code == 1, err.decode()
    assert b"Traceback" not in err


async def test_plan_into_a_closed_pipe_is_0(tmp_path: Path) -> None:
    async with scenario(tmp_path) as case:
        for extra in ((), ("--json",)):
            code, err = await run_with_closed(
                cli("plan", str(case.cfg), "--today", TODAY.isoformat(), *extra), "stdout")
            assert code == 0, err.decode()
            assert err == b""


@pytest.mark.parametrize("failing", [False, True])
async def test_stderr_closed_mid_run_loses_nothing_and_keeps_the_code(
        tmp_path: Path, failing: bool) -> None:
    """Progress lines (not --no-progress) and -v log lines all go to a dead stderr."""
    async with scenario(tmp_path) as case:
        bad = fail_one_file(case) if failing else None
        command = cli("run", str(case.cfg), "--today", TODAY.isoformat(), "-v")
        code, _ = await run_with_closed(command, "stderr")
    assert code == (1 if failing else 0)
    state = load_manifest(case.manifest)
    for key in case.expected():
        record = state.get(key)
        assert record is not None
        assert record.status is (Status.FAILED if key == bad else Status.COMPLETED), record


def test_progress_turns_itself_off_when_its_stream_is_gone() -> None:
    read, write = os.pipe()
    os.close(read)
    stream = io.TextIOWrapper(io.FileIO(write, "w"), encoding="utf-8")
    progress = Progress(stream=stream, interval_s=0)
    with progress:
        progress(RunStarted({"acme": 2}))
        progress(FileFinished("acme", "a.zip", Status.COMPLETED, 10, 1, None, True))
        assert not progress.enabled
        progress(FileFinished("acme", "b.zip", Status.COMPLETED, 10, 1, None, True))
    stream.close()


async def test_sigterm_while_compacting_exits_130(tmp_path: Path) -> None:
    async with scenario(tmp_path) as case:
        first = await run_cli(case.run())
        assert first.returncode == 0, first.stderr.decode()
        old = filler(100_000) + filler(100_000) + case.manifest.read_bytes()
        case.manifest.write_bytes(old)
        tmp = case.manifest.with_name(case.manifest.name + ".compact.tmp")

        async def compacting() -> None:
            with anyio.fail_after(60):
                await on_disk(tmp.exists)

        code, stderr = await run_until(case.run(), compacting, signal.SIGTERM)
    assert code == 130, stderr.decode()
    state = load_manifest(case.manifest)
    assert {k for k in case.expected() if state.get(k)} == case.expected()


async def test_log_file_on_a_full_disk_is_one_warning(tmp_path: Path) -> None:
    async with scenario(tmp_path) as case:
        result = await run_cli(case.run("--log-file", "/dev/full", "-v"))
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "Logging error" not in err and "Traceback" not in err
    warnings = [line for line in err.splitlines() if "/dev/full" in line]
    assert len(warnings) == 1 and "cannot write" in warnings[0], err


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
async def test_simulate_with_a_bad_port_is_one_line(port: str) -> None:
    result = await run_cli(cli("simulate", "--port", port))
    assert result.returncode == 2
    assert "port" in one_line(result.stderr)


@pytest.mark.parametrize(("start", "end"), [
    ("2026-11-26", "2026-11-20"),  # both absolute
    ("2026-12-05", "today"),  # one side relative: resolved in each workspace's today
    ("today", "2026-11-01"),
    ("-2d", "-5d"),
])
@pytest.mark.parametrize("command", ["run", "plan"])
async def test_start_after_end_is_refused(tmp_path: Path, command: str, start: str,
                                          end: str) -> None:
    async with scenario(tmp_path) as case:
        result = await run_cli(cli(command, str(case.cfg), "--today", TODAY.isoformat(),
                                   "--start", start, "--end", end))
        assert case.sim.counters.total == 0
    assert result.returncode == 2
    assert "is after" in one_line(result.stderr)
    assert not case.manifest.exists()


async def test_a_range_with_nothing_fetchable_says_so(tmp_path: Path) -> None:
    async with scenario(tmp_path) as case:
        result = await run_cli(case.run("--start", "-30d", "--end", "-20d"))
        assert case.sim.counters.total == 0
    err = " ".join(result.stderr.decode().split())  # the summary wraps at 80 columns
    assert result.returncode == 0, err
    assert "Nothing to fetch" in err and "7-day window" in err and "All done" not in err
