"""`backfill run` / `status` / `verify` / `plan` with ``output_dir = "s3://…"``, as a user
runs them: real processes against the simulator and moto on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from backfill.journal import Status, load_manifest
from backfill.simulator import run_simulator

from ..integration.conftest import SIMULATED_TOML, TODAY, make_config
from .helpers import destination

pytestmark = pytest.mark.anyio

CONFIG = """
[run]
start = "-2d"
end = "today"
output_dir = "{output_dir}"
concurrency = 4

[storage]
retry_timeout = 5

""" + SIMULATED_TOML

TOTAL = 3 * 2 * 3


async def backfill(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process([sys.executable, "-m", "backfill", *args], check=False,
                                   env=env)


def process_env(s3_env: dict[str, str], tmpdir: Path) -> dict[str, str]:
    """The run's environment: moto's credentials, and a private TMPDIR (the local journal
    and staging live there: a fresh one is a container without disk)."""
    tmpdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AZURE_"))}
    env.update({k: v for k, v in s3_env.items() if k != "BUCKET"}, TMPDIR=str(tmpdir))
    return env


class Bucket:
    """The test's own view of the bucket (obstore, as the tool's credentials allow)."""

    def __init__(self, url: str, s3_env: dict[str, str], staging: Path) -> None:
        import obstore

        self._ob, self.dest = obstore, destination(url, s3_env, staging)

    def get(self, key: str) -> bytes:
        return bytes(self._ob.get(self.dest.store, self.dest.url.key(key)).bytes())

    def put(self, key: str, data: bytes) -> None:
        self._ob.put(self.dest.store, self.dest.url.key(key), data)


async def test_run_to_s3_then_rerun_status_verify_and_plan(
        s3_env: dict[str, str], tmp_path: Path) -> None:
    url = f"s3://{s3_env['BUCKET']}/landing"
    bucket = Bucket(url, s3_env, tmp_path / "test-staging")
    workspaces = make_config(tmp_path / "sim").workspaces
    async with run_simulator(workspaces, today=TODAY) as sim:
        cfg = tmp_path / "backfill.toml"
        cfg.write_text(CONFIG.format(output_dir=url, base_url=sim.base_url))
        env = process_env(s3_env, tmp_path / "host1")
        day = ("--today", TODAY.isoformat())
        first = await backfill(env, "run", str(cfg), *day, "--no-progress")
        assert first.returncode == 0, first.stderr.decode()
        remote = tmp_path / "manifest.jsonl"
        remote.write_bytes(bucket.get("manifest.jsonl"))
        state = load_manifest(remote)
        assert len(state) == TOTAL and all(r.status is Status.COMPLETED for r in state)
        for r in state:
            body = bucket.get(str(r.path))
            assert body == sim.expected_body(r.app_id, r.filename)
        served = sim.counters.total

        # A container without disk (fresh TMPDIR) resumes from the manifest in the bucket.
        # Each run's exit code is checked: obstore's threads must not abort the exit.
        env2 = process_env(s3_env, tmp_path / "host2")
        for _ in range(3):
            again = await backfill(env2, "run", str(cfg), *day, "--no-progress")
            assert again.returncode == 0, again.stderr.decode()
        assert sim.counters.total == served  # nothing fetched again

        status = await backfill(env2, "status", str(cfg), "--json")
        assert status.returncode == 0, status.stderr.decode()
        assert json.loads(status.stdout)["totals"]["completed"] == TOTAL
        plan = await backfill(env2, "run", str(cfg), *day, "--dry-run", "--json")
        assert plan.returncode == 0, plan.stderr.decode()
        assert json.loads(plan.stdout)["count"] == 0

        ok = await backfill(env2, "verify", str(cfg), "--json")
        assert ok.returncode == 0, ok.stderr.decode()
        assert json.loads(ok.stdout)["ok"] == TOTAL
        victim = next(iter(state))
        bucket.put(str(victim.path), b"PK\x05\x06" + b"\0" * 18)
        bad = await backfill(env2, "verify", str(cfg), "--json")
        assert bad.returncode == 1, bad.stderr.decode()
        assert [b["path"] for b in json.loads(bad.stdout)["bad"]] == [victim.path]
        status = await backfill(env, "status", str(cfg), "--json")
        assert json.loads(status.stdout)["totals"]["failed"] == 1  # verify published it


async def test_an_object_of_other_bytes_at_a_key_fails_that_file_only(
        s3_env: dict[str, str], tmp_path: Path) -> None:
    """Someone's object at one file's key: never overwritten, that file fails naming the
    key, the run goes on and the others complete (exit 1); it used to stop the run."""
    workspaces = make_config(tmp_path / "sim").workspaces
    async with run_simulator(workspaces, today=TODAY) as sim:
        day = ("--today", TODAY.isoformat())
        first_url = f"s3://{s3_env['BUCKET']}/first"
        first_cfg = tmp_path / "first.toml"
        first_cfg.write_text(CONFIG.format(output_dir=first_url, base_url=sim.base_url))
        env = process_env(s3_env, tmp_path / "host1")
        assert (await backfill(env, "run", str(first_cfg), *day, "--no-progress")).returncode == 0
        first = Bucket(first_url, s3_env, tmp_path / "test-staging")
        (tmp_path / "first.jsonl").write_bytes(first.get("manifest.jsonl"))
        victim = sorted(load_manifest(tmp_path / "first.jsonl"), key=lambda r: r.key)[0]
        assert victim.path is not None

        url = f"s3://{s3_env['BUCKET']}/landing"
        bucket = Bucket(url, s3_env, tmp_path / "test-staging2")
        bucket.put(victim.path, b"their own object")
        cfg = tmp_path / "backfill.toml"
        cfg.write_text(CONFIG.format(output_dir=url, base_url=sim.base_url))
        run = await backfill(process_env(s3_env, tmp_path / "host2"), "run", str(cfg), *day,
                             "--no-progress")
        assert run.returncode == 1, run.stderr.decode()
        (tmp_path / "landing.jsonl").write_bytes(bucket.get("manifest.jsonl"))
        records = {r.key: r for r in load_manifest(tmp_path / "landing.jsonl")}
    assert bucket.get(victim.path) == b"their own object"
    bad = records.pop(victim.key)
    assert bad.status is Status.FAILED
    assert bad.error == f"{url}/{victim.path}: an object with other bytes is already there; " \
        "not overwritten"
    assert len(records) == TOTAL - 1
    assert {r.status for r in records.values()} == {Status.COMPLETED}


async def test_a_missing_bucket_or_missing_credentials_stop_before_any_request(
        s3_env: dict[str, str], tmp_path: Path) -> None:
    workspaces = make_config(tmp_path / "sim").workspaces
    async with run_simulator(workspaces, today=TODAY) as sim:
        cfg = tmp_path / "backfill.toml"
        cfg.write_text(CONFIG.format(output_dir="s3://no-such-bucket-here/landing",
                                     base_url=sim.base_url))
        env = process_env(s3_env, tmp_path / "host")
        missing = await backfill(env, "run", str(cfg), "--no-progress")
        lines = missing.stderr.decode().strip().splitlines()
        assert missing.returncode == 2 and len(lines) == 1, lines
        assert "no-such-bucket-here" in lines[0]
        no_keys = {k: v for k, v in env.items() if k not in ("AWS_ACCESS_KEY_ID",
                                                             "AWS_SECRET_ACCESS_KEY")}
        cfg.write_text(CONFIG.format(output_dir=f"s3://{s3_env['BUCKET']}/landing",
                                     base_url=sim.base_url))
        for command in ("run", "status", "verify"):
            result = await backfill(no_keys, command, str(cfg))
            lines = result.stderr.decode().strip().splitlines()
            assert result.returncode == 2 and len(lines) == 1, (command, lines)
            assert "AWS_ACCESS_KEY_ID" in lines[0]
        assert sim.counters.total == 0
        assert s3_env["AWS_SECRET_ACCESS_KEY"] not in missing.stderr.decode()
