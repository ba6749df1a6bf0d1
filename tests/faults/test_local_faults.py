"""Local faults (issue 6, part 2): kill -9 at random moments, SIGINT/SIGTERM, a full disk,
an unwritable output directory, damaged manifests, deleted or altered report files.

Every test runs the real command line (``python -m backfill …``) in a subprocess against
an in-process simulator on 127.0.0.1 and checks design.md's "Nothing lost, nothing torn":
after the re-runs every file is ``completed`` exactly once with the server's exact bytes,
no ``.part`` is left, the manifest loads, and a file that was durable before a fault is
not downloaded again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from backfill.config import Config, load_config
from backfill.journal import ManifestState, Record, Status, load_manifest
from backfill.planner import tasks, windows
from backfill.simulator import Faults, Simulator, run_simulator

from ..integration.conftest import WORKSPACES_TOML

pytestmark = pytest.mark.anyio

TODAY = date(2026, 11, 27)
REPORTS = ("Daily campaign summary", "Email - delivery (EU)")
TOTAL = 3 * len(REPORTS) * 7  # three workspaces, two daily reports, ages 0..6
BIG = 600 * 1024  # > the storage's 256 KiB buffer: streamed through a .part file

CONFIG = """\
[run]
start = "-6d"
end = "today"
output_dir = "{output_dir}"
concurrency = {concurrency}

[http]
connect_timeout_s = 5
read_timeout_s = {read_timeout}
file_timeout_s = 60

[retry]
backoff_base_s = 0.01
backoff_max_s = 0.05
probe_interval_s = 0.05
probe_interval_max_s = 0.2

[defaults]
api_key = "test-key"
base_url = "{base_url}"
reports = {reports}

""" + WORKSPACES_TOML


# Runs the CLI under a file-size limit: a write past it fails with EFBIG (SIGXFSZ
# ignored, as CPython does anyway), which is what a full disk looks like to the program.
LIMITED = """\
import os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), hard))
os.execv(sys.executable, [sys.executable, "-m", "backfill", *sys.argv[2:]])
"""


@dataclass
class Case:
    """One scenario: a config file pointed at a running simulator."""

    tmp: Path
    cfg: Path
    config: Config
    sim: Simulator

    @property
    def out(self) -> Path:
        return self.config.run.output_dir

    @property
    def manifest(self) -> Path:
        return self.config.run.manifest or self.out / "manifest.jsonl"

    def expected(self) -> set[tuple[str, str]]:
        """Keys of every file the plan fetches (all of them exist on the server)."""
        today = {ws.name: TODAY for ws in self.config.workspaces}
        return {t.key for t in tasks(windows(self.config, today)) if t.kind.requested}

    def run(self, *extra: str) -> list[str]:
        return cli("run", str(self.cfg), "--today", TODAY.isoformat(), "--no-progress", *extra)

    def served(self, key: tuple[str, str]) -> int:
        """Complete 200 responses the server sent for ``key``."""
        return self.sim.counters.requests[(*key, 200)]


def config_text(base_url: str, *, output_dir: str = "out", concurrency: int = 4,
                read_timeout: float = 5) -> str:
    return CONFIG.format(base_url=base_url, output_dir=output_dir, concurrency=concurrency,
                         read_timeout=read_timeout, reports=json.dumps(list(REPORTS)))


@contextlib.asynccontextmanager
async def scenario(tmp: Path, faults: Faults | None = None, **options: object
                   ) -> AsyncIterator[Case]:
    cfg = tmp / "backfill.toml"
    cfg.write_text(config_text("http://127.0.0.1:1", **options))  # type: ignore[arg-type]
    async with run_simulator(load_config(cfg), today=TODAY, faults=faults or Faults()) as sim:
        cfg.write_text(config_text(sim.base_url, **options))  # type: ignore[arg-type]
        yield Case(tmp, cfg, load_config(cfg), sim)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "backfill", *args]


def limited(fsize: int, command: list[str]) -> list[str]:
    """``command`` (a ``cli(...)`` list) run under RLIMIT_FSIZE = ``fsize`` bytes."""
    return [sys.executable, "-c", LIMITED, str(fsize), *command[3:]]


async def run_cli(command: list[str]) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process(command, check=False)


async def drain(proc: Process) -> bytes:
    assert proc.stderr is not None
    chunks = [chunk async for chunk in proc.stderr]
    return b"".join(chunks)


async def run_until(command: list[str], trigger: Callable[[], Awaitable[None]],
                    signum: signal.Signals = signal.SIGKILL) -> tuple[int, bytes]:
    """Run ``command``; once ``trigger()`` returns, send it ``signum`` (if it still runs).
    Returns (returncode, stderr)."""
    async with (await anyio.open_process(command, stdout=subprocess.DEVNULL) as proc,
                anyio.create_task_group() as tg):

        async def fire() -> None:
            await trigger()
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)

        tg.start_soon(fire)
        with anyio.fail_after(90):
            stderr = await drain(proc)
            await proc.wait()
        tg.cancel_scope.cancel()
    assert proc.returncode is not None
    return proc.returncode, stderr


def completed(state: ManifestState) -> set[tuple[str, str]]:
    return {r.key for r in state if r.status is Status.COMPLETED}


def parts(root: Path) -> list[Path]:
    return sorted(root.rglob("*.part"))


def listing(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


async def on_disk(check: Callable[[], bool]) -> None:
    """Return once ``check()`` holds. What another process does to the file system cannot
    be awaited, so this polls every millisecond; callers bound it with ``fail_after``."""
    while not check():  # noqa: ASYNC110
        await anyio.sleep(0.001)


def check_journal(case: Case) -> ManifestState:
    """What holds at every instant, even right after a kill -9: the manifest loads (a torn
    last line at most) and every completed record's file is whole: the recorded size and
    sha256, and exactly the bytes the server sent."""
    state = load_manifest(case.manifest)
    for rec in state:
        if rec.status is not Status.COMPLETED:
            continue
        assert rec.path is not None
        data = (case.out / rec.path).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (rec.bytes, rec.sha256), rec
        assert data == case.sim.expected_body(rec.app_id, rec.filename), rec
    return state


def check_done(case: Case, *, others: int = 0) -> ManifestState:
    """After a clean end: every planned file completed, exactly once (one latest record
    per key, its file whole), every line whole, no .part, no compaction leftovers.
    ``others``: records of keys outside the plan that the manifest also holds."""
    state = check_journal(case)
    expected = case.expected()
    assert len(expected) == TOTAL
    assert completed(state) == expected
    assert len(state) == TOTAL + others
    assert state.torn_line is None
    assert case.manifest.read_bytes().endswith(b"\n")
    assert parts(case.tmp) == []
    assert not case.manifest.with_name(case.manifest.name + ".compact.tmp").exists()
    return state


def filler(n: int) -> bytes:
    """``n`` valid records of a workspace that is not in the config (an older pull)."""
    return b"".join(
        Record(workspace="archive", app_id="ARCHIVE", report="Old report", date="2026-01-01",
               filename=f"Old_report_{i:07d}.zip", status=Status.EXPIRED, attempts=0,
               updated_at="2026-01-09T00:00:00Z").to_line()
        for i in range(n))


def one_line(stderr: bytes) -> str:
    """The single error line a failing command prints (no traceback, nothing else)."""
    text = stderr.decode()
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# ------------------------------------------------------------------------------- kill -9


@pytest.mark.slow
@pytest.mark.parametrize("seed", [20261127, 1, 2])
async def test_kill_9_at_random_moments_until_a_run_finishes(tmp_path: Path, seed: int) -> None:
    """Seeded random kill points: during start-up (before or after the lock and the load),
    between responses, mid-download (half the big bodies stall with a .part open), while
    records are journaled, and after the last response (close, compaction, exit). Runs are
    killed until every file is journaled; then one more run must finish cleanly."""
    rng = random.Random(seed)
    faults = Faults(latency_s=0.01, jitter_s=0.04, rate_stall_body=0.5, stall_s=0.15,
                    sizes={f"Email_-_delivery_(EU)_{TODAY - timedelta(days=age):%Y%m%d}.zip": BIG
                           for age in range(7)})
    async with scenario(tmp_path, faults, concurrency=6) as case:
        sim = case.sim
        kills = kills_with_parts = torn = 0
        for round_ in range(30):
            before = check_journal(case)
            done_before = completed(before)
            served_before = {key: case.served(key) for key in done_before}
            remaining = TOTAL - len(done_before)
            base = sim.counters.statuses()[200]
            # Kill once k more bodies have been sent (k = 0: during start-up; k = remaining:
            # while the last records are journaled, or later), plus a random instant. When
            # everything is journaled, the run goes unharmed.
            k = rng.randint(0, min(remaining, 24)) if remaining and round_ < 15 else None
            delay = rng.uniform(0, 0.6) if k == 0 else rng.uniform(0, 0.05)

            async def trigger(k: int | None = k, base: int = base, delay: float = delay) -> None:
                if k is None:  # never
                    await anyio.sleep_forever()
                else:
                    await sim.wait_until(lambda c: c.statuses()[200] >= base + k)
                    await anyio.sleep(delay)  # a random instant, not a wait for an event

            code, stderr = await run_until(case.run(), trigger)
            for key in done_before:  # durable before the kill → never downloaded again
                assert case.served(key) == served_before[key], key
            if k is None:
                assert code == 0, stderr.decode()
                break
            assert code in (0, -signal.SIGKILL), stderr.decode()
            kills += code == -signal.SIGKILL
            kills_with_parts += bool(parts(case.out))
            torn += check_journal(case).torn_line is not None  # consistent, whenever killed
        print(f"{kills} kills ({kills_with_parts} left a .part, {torn} a torn last line), "
              f"{round_ + 1} runs")
        assert kills >= 1, kills  # not vacuous (more kills are likely, but timing varies)
        check_done(case)


@pytest.mark.slow
async def test_kill_9_during_compaction_leaves_the_old_or_the_new_manifest(
        tmp_path: Path) -> None:
    """A big journal (100,000 records of an older pull, each written twice) takes the
    end-of-run compaction a measurable time; the run is killed at random instants after
    ``manifest.jsonl.compact.tmp`` appears. The manifest is then byte for byte the old
    file or the compacted one, and the next run finishes the job."""
    rng = random.Random(6)
    async with scenario(tmp_path) as case:
        first = await run_cli(case.run())
        assert first.returncode == 0, first.stderr.decode()
        others = 100_000
        old = filler(others) + filler(others) + case.manifest.read_bytes()  # half superseded
        case.manifest.write_bytes(old)
        new = b"".join(r.to_line() for r in load_manifest(case.manifest))  # one line per key
        tmp = case.manifest.with_name(case.manifest.name + ".compact.tmp")
        served = case.sim.counters.statuses()[200]
        outcomes = []
        # Writing the 100,042 lines takes ~0.5 s: kill at its start, in it, maybe after it.
        for delay in (0.0, rng.uniform(0, 0.15), rng.uniform(0.15, 0.35), rng.uniform(0.5, 2)):
            case.manifest.write_bytes(old)
            tmp.unlink(missing_ok=True)  # left by the previous kill; wait for a fresh one

            async def compacting(delay: float = delay) -> None:
                with anyio.fail_after(60):
                    await on_disk(tmp.exists)
                await anyio.sleep(delay)

            code, stderr = await run_until(case.run(), compacting)
            assert code in (-signal.SIGKILL, 0), stderr.decode()
            now = case.manifest.read_bytes()
            assert now in (old, new)
            outcomes.append((code, now == new, tmp.exists()))
            state = load_manifest(case.manifest)
            assert state.torn_line is None and len(state) == others + TOTAL
            assert completed(state) == case.expected()
        print(f"(exit code, compacted, .compact.tmp left) per kill: {outcomes}")
        assert (-signal.SIGKILL, False, True) in outcomes  # killed in the middle of it
        result = await run_cli(case.run())
        assert result.returncode == 0, result.stderr.decode()
        assert case.manifest.read_bytes() == new
        check_done(case, others=others)
        assert case.sim.counters.statuses()[200] == served  # nothing was fetched again


# ------------------------------------------------------------------------------- signals


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_signal_cancels_downloads_in_flight_and_removes_their_parts(
        tmp_path: Path, signum: signal.Signals) -> None:
    """Every body stalls halfway with its .part open; one signal ends the run at once
    (not after the stall) with exit 130, no .part and no record of an unfinished file."""
    faults = Faults(size=BIG, rate_stall_body=1.0, stall_s=60)
    async with scenario(tmp_path, faults, concurrency=3, read_timeout=60) as case:

        async def parts_open() -> None:
            with anyio.fail_after(30):
                await case.sim.wait_until(lambda c: c.in_flight >= 3)
                await on_disk(lambda: len(parts(case.out)) >= 3)

        with anyio.fail_after(20):  # far less than the 60 s stall
            code, stderr = await run_until(case.run(), parts_open, signum)
        assert code == 130, stderr.decode()
        assert "Traceback" not in stderr.decode()
        assert parts(case.tmp) == []
        state = check_journal(case)
        assert completed(state) == set()
        faults.rate_stall_body = 0.0
        result = await run_cli(case.run())
        assert result.returncode == 0, result.stderr.decode()
        check_done(case)


async def test_one_signal_at_random_moments_leaves_no_part_and_a_whole_journal(
        tmp_path: Path) -> None:
    """SIGINT or SIGTERM at seeded random moments once the run is under way: each run
    exits 130 (or 0 if it finished first) without a traceback, and a graceful stop never
    leaves a .part; completed files are not fetched again."""
    rng = random.Random(130)
    faults = Faults(latency_s=0.01, jitter_s=0.04, size=BIG, rate_stall_body=0.4,
                    stall_s=0.1)
    async with scenario(tmp_path, faults, concurrency=6) as case:
        sim = case.sim
        for round_ in range(30):
            done_before = completed(check_journal(case))
            served_before = {key: case.served(key) for key in done_before}
            base = sim.counters.total
            k = rng.randint(1, TOTAL - len(done_before) + 2) if round_ < 20 else 10**6
            delay = rng.uniform(0, 0.05)
            signum = rng.choice([signal.SIGINT, signal.SIGTERM])

            async def trigger(k: int = k, base: int = base, delay: float = delay) -> None:
                await sim.wait_until(lambda c: c.total >= base + k)
                await anyio.sleep(delay)  # a random instant, not a wait for an event

            code, stderr = await run_until(case.run(), trigger, signum)
            assert code in (0, 130), stderr.decode()
            assert "Traceback" not in stderr.decode()
            assert parts(case.tmp) == []
            check_journal(case)
            for key in done_before:
                assert case.served(key) == served_before[key], key
            if code == 0:
                break
        else:
            pytest.fail("no run finished in 30 rounds")
        assert round_ >= 1  # at least one run was stopped by the signal
        check_done(case)


async def test_second_signal_quits_at_once_and_the_next_run_completes(
        tmp_path: Path) -> None:
    """SIGTERM, then SIGINT while the run is stopping: the process leaves at once (exit
    130, possibly with .part files); the journal is whole and the next run finishes."""
    faults = Faults(latency_s=0.02, jitter_s=0.05, size=BIG, rate_stall_body=0.5,
                    stall_s=0.2)
    async with scenario(tmp_path, faults, concurrency=4) as case:
        async with await anyio.open_process(case.run(), stdout=subprocess.DEVNULL) as proc:
            assert proc.stderr is not None
            with anyio.fail_after(60):
                await case.sim.wait_until(lambda c: c.statuses()[200] >= 8)
                proc.send_signal(signal.SIGTERM)
                seen = b""
                async for chunk in proc.stderr:  # wait for "stopping", then insist
                    seen += chunk
                    if b"stopping" in seen:
                        with contextlib.suppress(ProcessLookupError):
                            proc.send_signal(signal.SIGINT)
                        break
                seen += await drain(proc)
                await proc.wait()
        assert proc.returncode == 130, seen.decode()
        assert "Traceback" not in seen.decode()
        done_before = completed(check_journal(case))
        served_before = {key: case.served(key) for key in done_before}
        result = await run_cli(case.run())
        assert result.returncode == 0, result.stderr.decode()
        check_done(case)
        assert {key: case.served(key) for key in done_before} == served_before


# ------------------------------------------------------------------------------- disk full


async def test_disk_full_while_storing_a_report(tmp_path: Path) -> None:
    """Report bodies larger than the file-size limit: the first save fails with EFBIG.
    One clear line naming the file, exit 1, no .part, a loadable manifest; then a normal
    run completes everything."""
    async with scenario(tmp_path, Faults(size=64 * 1024, latency_s=0.01)) as case:
        result = await run_cli(limited(48 * 1024, case.run()))
        assert result.returncode == 1, result.stderr.decode()
        line = one_line(result.stderr)
        print(line)
        assert line.startswith("backfill: error: ") and "disk full" in line, line
        assert str(case.out) in line and ".zip" in line, line
        assert parts(case.tmp) == []
        assert completed(check_journal(case)) == set()
        again = await run_cli(case.run())
        assert again.returncode == 0, again.stderr.decode()
        check_done(case)


async def test_disk_full_while_journaling(tmp_path: Path) -> None:
    """The manifest reaches the file-size limit a few records into the run (its last write
    may be cut short: a torn last line). One clear line naming the manifest, exit 1, no
    .part, a loadable manifest; a normal run then completes, and files journaled before
    the failure are not fetched again."""
    limit = 64 * 1024
    async with scenario(tmp_path, Faults(latency_s=0.01)) as case:
        case.out.mkdir()
        old = filler(1)
        case.manifest.write_bytes(filler((limit - 1500) // len(old)))
        result = await run_cli(limited(limit, case.run()))
        assert result.returncode == 1, result.stderr.decode()
        line = one_line(result.stderr)
        print(line)
        assert line.startswith("backfill: error: ") and "disk full" in line, line
        assert str(case.manifest) in line, line
        assert parts(case.tmp) == []
        state = check_journal(case)
        others = len(state) - len(completed(state))
        done_before = completed(state)
        assert 0 < len(done_before) < TOTAL
        served_before = {key: case.served(key) for key in done_before}
        again = await run_cli(case.run())
        assert again.returncode == 0, again.stderr.decode()
        check_done(case, others=others)
        assert {key: case.served(key) for key in done_before} == served_before


# ------------------------------------------------------------------------------- unwritable


@pytest.mark.parametrize("where", ["output_dir is a file", "output_dir under a file",
                                   "--manifest under a file"])
async def test_unwritable_output_is_refused_with_exit_2(tmp_path: Path, where: str) -> None:
    """A regular file where a directory must be: a real error even for root. One line
    naming the path, exit 2, no request, nothing written."""
    async with scenario(tmp_path, output_dir="blocker/out" if "under" in where and
                        "output_dir" in where else "out") as case:
        extra: tuple[str, ...] = ()
        blocked = case.out if where == "output_dir is a file" else tmp_path / "blocker"
        blocked.write_bytes(b"not a directory\n")
        if where == "--manifest under a file":
            extra = ("--manifest", str(blocked / "manifest.jsonl"))
        before = listing(tmp_path)
        result = await run_cli(case.run(*extra))
        line = one_line(result.stderr)
        assert result.returncode == 2, line
        assert str(blocked) in line, line
        assert listing(tmp_path) == before  # nothing written
        assert case.sim.counters.total == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions; the "
                    "file-in-place-of-a-directory cases above give a real error as root")
async def test_read_only_output_dir_is_refused_with_exit_2(tmp_path: Path) -> None:
    async with scenario(tmp_path) as case:
        case.out.mkdir()
        case.out.chmod(0o555)
        try:
            result = await run_cli(case.run())
        finally:
            case.out.chmod(0o755)
        line = one_line(result.stderr)
        assert result.returncode == 2, line
        assert str(case.out) in line, line
        assert list(case.out.iterdir()) == []
        assert case.sim.counters.total == 0


# ------------------------------------------------------------------------------- manifests


async def test_torn_last_line_is_reported_by_status_and_repaired_by_run(
        tmp_path: Path) -> None:
    """A kill mid-append leaves half a line at the end: ``status`` ignores it and says so,
    ``run`` cuts it off, fetches that one file again and compacts."""
    async with scenario(tmp_path) as case:
        first = await run_cli(case.run())
        assert first.returncode == 0, first.stderr.decode()
        lines = case.manifest.read_bytes().splitlines(keepends=True)
        torn = json.loads(lines[-1])
        case.manifest.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])

        status = await run_cli(cli("status", str(case.cfg)))
        assert status.returncode == 0, status.stderr.decode()
        assert f"manifest.jsonl:{TOTAL}: torn last line ignored" in status.stderr.decode()
        doc = json.loads((await run_cli(cli("status", str(case.cfg), "--json"))).stdout)
        assert doc["torn_line"] == TOTAL
        assert doc["totals"]["completed"] == TOTAL - 1

        served = case.sim.counters.statuses()[200]
        result = await run_cli(case.run())
        assert result.returncode == 0, result.stderr.decode()
        check_done(case)
        assert case.sim.counters.statuses()[200] == served + 1  # only the torn record's file
        assert case.served((torn["app_id"], torn["filename"])) == 2


async def test_last_line_without_newline_is_kept(tmp_path: Path) -> None:
    """A whole last record that only lacks its newline is a record, not a torn line."""
    async with scenario(tmp_path) as case:
        first = await run_cli(case.run())
        assert first.returncode == 0, first.stderr.decode()
        case.manifest.write_bytes(case.manifest.read_bytes().rstrip(b"\n"))
        doc = json.loads((await run_cli(cli("status", str(case.cfg), "--json"))).stdout)
        assert doc["torn_line"] is None and doc["totals"]["completed"] == TOTAL
        served = case.sim.counters.statuses()[200]
        result = await run_cli(case.run())
        assert result.returncode == 0, result.stderr.decode()
        check_done(case)
        assert case.sim.counters.statuses()[200] == served


async def test_corrupt_line_in_the_middle_is_refused_naming_it(tmp_path: Path) -> None:
    """One bad line that is not the last: ``run``, ``status`` and ``verify`` refuse with
    exit 2 naming ``manifest.jsonl:LINE``; nothing is requested or written."""
    async with scenario(tmp_path) as case:
        first = await run_cli(case.run())
        assert first.returncode == 0, first.stderr.decode()
        lines = case.manifest.read_bytes().splitlines(keepends=True)
        bad = 17
        lines[bad - 1] = lines[bad - 1].replace(b'"status":"completed"', b'"status":"compl\x00')
        damaged = b"".join(lines)
        case.manifest.write_bytes(damaged)
        requests = case.sim.counters.total
        for command in (case.run(), cli("status", str(case.cfg)),
                        cli("status", str(case.manifest)), cli("verify", str(case.cfg))):
            result = await run_cli(command)
            line = one_line(result.stderr)
            assert result.returncode == 2, line
            assert f"{case.manifest}:{bad}: corrupt manifest line" in line, line
        assert case.manifest.read_bytes() == damaged
        assert case.sim.counters.total == requests


async def test_deleted_or_altered_files_are_found_by_verify_and_fetched_again(
        tmp_path: Path) -> None:
    async with scenario(tmp_path) as case:
        first = await run_cli(case.run())
        assert first.returncode == 0, first.stderr.decode()
        records = sorted(load_manifest(case.manifest), key=lambda r: r.key)
        deleted, flipped, cut = records[3], records[20], records[33]
        assert deleted.path and flipped.path and cut.path
        (case.out / deleted.path).unlink()
        target = case.out / flipped.path
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01  # same size, one bit
        target.write_bytes(data)
        target = case.out / cut.path
        target.write_bytes(target.read_bytes()[:-100])

        result = await run_cli(cli("verify", str(case.cfg)))
        assert result.returncode == 1, result.stderr.decode()
        out = result.stdout.decode()
        assert f"{TOTAL} completed files checked: {TOTAL - 3} ok, 3 bad" in out, out
        assert f"{deleted.path}: missing" in out, out
        assert f"{flipped.path}: sha256 mismatch" in out, out
        assert f"{cut.path}: size {cut.bytes - 100} != {cut.bytes}" in out, out  # type: ignore[operator]

        served = {r.key: case.served(r.key) for r in records}
        again = await run_cli(case.run())
        assert again.returncode == 0, again.stderr.decode()
        check_done(case)
        for r in records:
            refetched = r in (deleted, flipped, cut)
            assert case.served(r.key) == served[r.key] + refetched, r.key
        ok = await run_cli(cli("verify", str(case.cfg)))
        assert ok.returncode == 0 and f"{TOTAL} ok, 0 bad" in ok.stdout.decode()
