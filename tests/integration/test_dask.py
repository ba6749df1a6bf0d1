"""run --dask: every shard as a task on a LocalCluster against the simulator, including a
worker killed (kill -9) in the middle of its shard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from backfill.config import load_config
from backfill.engine import Options
from backfill.journal import Status, load_manifest, parse_line
from backfill.shards import Shard, shard_manifest
from backfill.shards.dask import Target, connect, plan_jobs, submit_shards
from backfill.shards.view import consolidate, load_state
from backfill.simulator import Faults, run_simulator

from ..faults.conftest import planned
from .conftest import TODAY, make_config
from .test_shards import ROOT, write_config

pytest.importorskip("distributed")
pytestmark = pytest.mark.anyio
ENV = {"MOE_TEST_KEY": "test-key", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}


def check_complete(config_path: Path, sim: Any) -> None:
    """The main manifest alone (the shards merged into it) holds every planned file once;
    every completed one is in the output with the simulator's bytes."""
    config = load_config(config_path, ENV)
    main = config.run.output_dir / "manifest.jsonl"
    lines = main.read_bytes().splitlines()
    records = [parse_line(line) for line in lines]
    assert sorted(r.key for r in records) == sorted(t.key for t in planned(config))
    done = [r for r in records if r.status is Status.COMPLETED]
    assert len(done) > len(records) // 2
    for r in done:
        assert r.path is not None
        data = (config.run.output_dir / r.path).read_bytes()
        assert data == sim.expected_body(r.app_id, r.filename)
    assert not list(main.parent.glob("manifest.shard-*.jsonl"))  # merged, then removed


async def test_run_dask_local_completes_every_file(tmp_path: Path) -> None:
    async with run_simulator(make_config(tmp_path / "sim"), today=TODAY) as sim:
        path = write_config(tmp_path, sim.base_url)
        proc = await anyio.run_process(
            [sys.executable, "-m", "backfill", "run", str(path), "--today", str(TODAY),
             "--dask", "local:2", "--json"], env=ENV, check=False)
        assert proc.returncode == 0, proc.stderr.decode()
        doc = json.loads(proc.stdout)
        assert [s["shard"] for s in doc["shards"]] == ["0/2", "1/2"]
        assert all(s["exit_code"] == 0 and s["pid"] for s in doc["shards"])
        assert doc["exit_code"] == 0 and doc["totals"]["failed"] == 0
        check_complete(path, sim)
        progress = proc.stderr.decode()
        assert "shard 0/2:" in progress and "— done" in progress


async def test_a_worker_killed_mid_shard_is_retried_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    faults = Faults(latency_s=0.1)
    async with run_simulator(make_config(tmp_path / "sim"), today=TODAY, faults=faults) as sim:
        path = write_config(tmp_path, sim.base_url)
        text = path.read_text().replace("concurrency = 8", "concurrency = 2")
        path.write_text(text)
        config = load_config(path, ENV)
        main = config.run.output_dir / "manifest.jsonl"
        killed: list[int] = []
        seen: list[dict[str, Any]] = []
        lock = threading.Lock()

        def on_progress(msg: dict[str, Any]) -> None:
            with lock:
                seen.append(msg)
                if not killed and msg["shard"] == 0 and msg["done"] >= 4 and not msg["final"]:
                    killed.append(msg["pid"])
                    os.kill(msg["pid"], signal.SIGKILL)

        def drive() -> list[Any]:
            os.environ["MOE_TEST_KEY"] = "test-key"  # the workers' own environment
            with connect(Target(None, 2)) as client:
                jobs = plan_jobs(path, Options(today=TODAY), 2, [w.name for w in
                                                               config.workspaces])
                return submit_shards(client, jobs, on_progress)

        try:
            results = await anyio.to_thread.run_sync(drive)
        finally:
            os.environ.pop("MOE_TEST_KEY", None)
        assert killed, "the shard finished before it could be killed"
        assert [r.exit_code for r in results] == [0, 0]
        rerun = [m["pid"] for m in seen if m["shard"] == 0 and m["pid"] != killed[0]]
        assert rerun and results[0].pid == rerun[-1]  # shard 0 ran again elsewhere
        # In the journal of shard 0, no file was recorded completed twice: what the
        # killed run had completed was kept, not fetched again.
        journal = shard_manifest(main, Shard(0, 2)).read_bytes().splitlines()
        completed = [parse_line(line).key for line in journal
                     if parse_line(line).status is Status.COMPLETED]
        assert len(completed) == len(set(completed))
        assert {r.key for r in load_state(main)} == {t.key for t in planned(config)}
        report = consolidate(main)
        assert report.conflicts == ()
        check_complete(path, sim)
        assert all(r.status is not Status.FAILED for r in load_manifest(main))


def test_missing_extra_is_one_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9")
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "distributed.py").write_text("raise ImportError('no distributed here')\n")
    env = dict(ENV, PYTHONPATH=f"{blocker}:{ROOT}")
    proc = subprocess.run([sys.executable, "-m", "backfill", "run", str(path), "--dask",
                           "local:1"], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("backfill: error: --dask needs Dask distributed: "
                                   "pip install 'moe-backfill[dask]'")
