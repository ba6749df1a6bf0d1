"""Shards against the simulator: --shard I/N splits a run by workspace, every reader sees
the shard manifests merged, `backfill manifest merge` merges them into one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from backfill.config import Config
from backfill.engine import Backfill, Options
from backfill.journal import ManifestLock, Record, Status, load_manifest
from backfill.shards import Shard, shard_manifest
from backfill.shards.view import load_state
from backfill.simulator import run_simulator
from backfill.summary import Summary

from ..faults.conftest import planned
from .conftest import TODAY, make_config, pointed_at

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


async def run(config: Config, shard: Shard | None = None) -> Summary:
    return await Backfill(config, Options(today=TODAY, shard=shard)).run()


def main_manifest(config: Config) -> Path:
    return config.run.output_dir / "manifest.jsonl"


def keys(path: Path) -> set[tuple[str, str]]:
    return {r.key for r in load_manifest(path)}


def requests(summary: Summary) -> int:
    return sum(t.requests for t in summary.workspaces.values())


async def test_two_shards_complete_exactly_the_plan_disjoint(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    plan = {t.key for t in planned(config)}
    async with run_simulator(config, today=TODAY) as sim:
        config = pointed_at(config, sim.base_url)
        s0 = await run(config, Shard(0, 2))
        s1 = await run(config, Shard(1, 2))
    assert s0.exit_code == s1.exit_code == 0
    assert set(s0.workspaces) == {"globex", "initech"} and set(s1.workspaces) == {"acme"}
    main = main_manifest(config)
    k0, k1 = keys(shard_manifest(main, Shard(0, 2))), keys(shard_manifest(main, Shard(1, 2)))
    assert k0 and k1 and not k0 & k1
    assert k0 | k1 == plan
    assert not main.exists()
    view = load_state(main)
    assert {r.key for r in view} == plan
    for rec in view:
        if rec.status is Status.COMPLETED:
            assert rec.path is not None
            data = (config.run.output_dir / rec.path).read_bytes()
            assert (len(data), rec.sha256) == sim.expected_digest(rec.app_id, rec.filename)


async def test_moving_between_one_and_n_shards_fetches_nothing_twice(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    async with run_simulator(config, today=TODAY) as sim:
        config = pointed_at(config, sim.base_url)
        await run(config, Shard(1, 2))  # half the work on 2 shards
        sim.counters.reset()
        plain = await run(config)  # a plain run fetches only the other half
        fetched_by_plain = sim.counters.total
        again = [await run(config, Shard(i, 3)) for i in range(3)]  # then 3 shards: nothing
        assert sim.counters.total == fetched_by_plain
    assert plain.exit_code == 0 and fetched_by_plain == requests(plain) > 0
    assert all(requests(s) == 0 and s.exit_code == 0 for s in again)
    main = main_manifest(config)
    done_by_shard = keys(shard_manifest(main, Shard(1, 2)))
    assert not keys(main) & done_by_shard  # the plain run skipped what the shard had
    assert {r.key for r in load_state(main)} == {t.key for t in planned(config)}


async def test_shard_runs_share_the_output_never_with_a_plain_run(tmp_path: Path) -> None:
    from backfill.errors import LockedError
    from backfill.shards.lock import ShardLocks

    config = make_config(tmp_path)
    main = main_manifest(config)
    out = config.run.output_dir
    # Partial downloads: of a shard run going on beside (acme is shard 1's), and one a
    # crashed run of shard 0 left.
    # (each shard manifest keeps its partial files in its own private folder)
    from backfill.store.local import LocalStore

    def partials(shard: Shard) -> Path:
        return LocalStore(out, owner=str(shard_manifest(main, shard).absolute())).partials

    theirs = partials(Shard(1, 2)) / "inflight.part"
    mine = partials(Shard(0, 2)) / "crashed.part"
    for part in (theirs, mine):
        part.parent.mkdir(parents=True)
        part.write_bytes(b"partial")
    async with run_simulator(config, today=TODAY) as sim:
        config = pointed_at(config, sim.base_url)
        sibling = ShardLocks(main)
        sibling.acquire()  # another shard run is going on
        assert sibling.alone
        sibling.swept()
        try:
            assert (await run(config, Shard(0, 2))).exit_code == 0
            assert theirs.exists() and mine.exists()  # no sweep beside a sibling
            with pytest.raises(LockedError, match="in use by another run"):
                await run(config)  # a plain run would sweep every .part: it waits
        finally:
            sibling.release()
        with ManifestLock(main), pytest.raises(LockedError, match="without --shard"):
            await run(config, Shard(1, 2))
        with ManifestLock(shard_manifest(main, Shard(0, 2))), pytest.raises(LockedError):
            await run(config, Shard(0, 2))  # one run per shard manifest
        assert (await run(config, Shard(1, 2))).exit_code == 0  # alone: it sweeps its own
        assert not theirs.exists() and mine.exists()  # shard 0's are shard 0's to sweep
        assert (await run(config, Shard(0, 2))).exit_code == 0
        assert not mine.exists()
        assert (await run(config)).exit_code == 0


# ------------------------------------------------------------------ CLI


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = env or {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "backfill", *args], capture_output=True,
                          text=True, env=env, check=False)


def write_config(tmp: Path, base_url: str) -> Path:
    from .conftest import REPORTS, WORKSPACES_TOML

    path = tmp / "backfill.toml"
    path.write_text(f"""
[run]
start = "-6d"
end = "today"
output_dir = "out"
concurrency = 8

[retry]
backoff_base_s = 0.01
backoff_max_s = 0.05

[defaults]
api_key = "${{MOE_TEST_KEY}}"
base_url = "{base_url}"
reports = {json.dumps(REPORTS)}

""" + WORKSPACES_TOML)
    return path


async def test_status_and_merge_see_every_shard(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    async with run_simulator(config, today=TODAY) as sim:
        path = write_config(tmp_path, sim.base_url)
        env = {"MOE_TEST_KEY": "test-key", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
        for i in (0, 1):
            proc = await anyio.to_thread.run_sync(lambda i=i: cli(
                "run", str(path), "--today", str(TODAY), "--shard", f"{i}/2",
                "--no-progress", "--json", env=env))
            assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    status = json.loads(cli("status", str(path), "--json", env=env).stdout)
    assert status["totals"]["completed"] == 3 * 2 * 7 - status["totals"]["missing"] - (
        status["totals"]["pending"] + status["totals"]["expired"])
    assert [Path(p).name for p in status["manifests"]] == [
        "manifest.jsonl", "manifest.shard-0-of-2.jsonl", "manifest.shard-1-of-2.jsonl"]
    assert sum(status["totals"].values()) == 3 * 2 * 7
    merged = out / "merged.jsonl"
    shards = sorted(str(p) for p in out.glob("manifest.shard-*.jsonl"))
    proc = cli("manifest", "merge", str(merged), *shards, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["records"] == 3 * 2 * 7 and doc["conflicts"] == []
    assert len(merged.read_text().splitlines()) == 3 * 2 * 7


def _completed(sha: str, at: str) -> Record:
    return Record(workspace="acme", app_id="ACME01", report="r", date="2026-11-20",
                  filename="r_20261120.zip", status=Status.COMPLETED, path="acme/r.zip",
                  bytes=1, sha256=sha, updated_at=at)


def test_merge_reports_conflicts_and_refuses_bad_input(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(_completed("a" * 64, "2026-11-27T00:00:00Z").to_line())
    b.write_bytes(_completed("b" * 64, "2026-11-27T00:00:05Z").to_line())
    out = tmp_path / "out.jsonl"
    proc = cli("manifest", "merge", str(out), str(a), str(b))
    assert proc.returncode == 1
    assert f"kept sha256 {'b' * 64} ({b}" in proc.stderr and f"{a} has sha256" in proc.stderr
    assert [r.sha256 for r in load_manifest(out)] == ["b" * 64]

    before = out.read_bytes()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n" + _completed("c" * 64, "").to_line().decode())
    proc = cli("manifest", "merge", str(out), str(a), str(bad))
    assert proc.returncode == 2 and f"{bad}:1: corrupt manifest line" in proc.stderr
    assert "Traceback" not in proc.stderr and out.read_bytes() == before
    proc = cli("manifest", "merge", str(out), str(tmp_path / "none.jsonl"))
    assert proc.returncode == 2 and "no such manifest" in proc.stderr
    with ManifestLock(out):
        proc = cli("manifest", "merge", str(out), str(a))
    assert proc.returncode == 75 and "in use by another run" in proc.stderr


async def test_verify_marks_a_bad_file_in_the_shard_manifest_that_holds_it(
    tmp_path: Path,
) -> None:
    from backfill.verify import verify

    config = make_config(tmp_path)
    async with run_simulator(config, today=TODAY) as sim:
        config = pointed_at(config, sim.base_url)
        await run(config, Shard(1, 2))
        main = main_manifest(config)
        shard_path = shard_manifest(main, Shard(1, 2))
        victim = next(r for r in load_manifest(shard_path) if r.status is Status.COMPLETED)
        assert victim.path is not None
        (config.run.output_dir / victim.path).write_bytes(b"altered")
        result = await verify(config)
        assert [b["filename"] for b in result["bad"]] == [victim.filename]
        assert load_manifest(shard_path).get(victim.key).status is Status.FAILED  # type: ignore[union-attr]
        sim.counters.reset()
        await run(config)  # the plain run refetches it (and the other shard's half)
    assert load_state(main).get(victim.key).status is Status.COMPLETED  # type: ignore[union-attr]
    assert (config.run.output_dir / victim.path).read_bytes() == sim.expected_body(
        victim.app_id, victim.filename)


async def test_a_shard_run_holds_only_its_own_workspaces_records(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    async with run_simulator(config, today=TODAY) as sim:
        config = pointed_at(config, sim.base_url)
        await run(config)
        shard = Backfill(config, Options(today=TODAY, shard=Shard(1, 2)))
        summary = await shard.run()
    assert summary.exit_code == 0 and requests(summary) == 0  # all done by the plain run
    assert shard.last_run is not None  # the state it started from: acme's records only
    assert {r.workspace for r in shard.last_run.journal.state} == {"acme"}
    acme = {t.key for t in planned(config) if t.workspace.name == "acme"}
    assert {r.key for r in shard.last_run.journal.state} == acme
    everyone = {r.workspace for r in load_state(main_manifest(config))}  # a plain reader
    assert everyone == {"acme", "globex", "initech"}
