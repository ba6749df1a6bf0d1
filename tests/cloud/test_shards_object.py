"""Shards with ``output_dir = "s3://…"``: each shard keeps its manifest and lock in the
bucket, so machines that share no disk (a fresh TMPDIR each) need no shared volume.
Real processes against the simulator and moto on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import tomllib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import obstore
import pytest

from backfill.journal import Record, Status, load_manifest
from backfill.simulator import run_simulator
from backfill.store.object import StorageOptions, open_destination, parse_object_url
from backfill.store.object.destination import ObjectDestination
from backfill.store.object.remote import LockInfo

from ..integration.conftest import TODAY, make_config
from .test_cli_object import CONFIG, TOTAL, Bucket, backfill, process_env

pytestmark = pytest.mark.anyio
DAY = ("--today", TODAY.isoformat(), "--no-progress")


def shard_state(bucket: Bucket, tmp: Path, name: str) -> list[Record]:
    local = tmp / name
    local.write_bytes(bucket.get(name))
    return list(load_manifest(local))


def objects(bucket: Bucket) -> set[str]:
    prefix = bucket.dest.url.prefix
    listed = obstore.list_with_delimiter(bucket.dest.store, prefix)
    return {Path(m["path"]).name for m in listed["objects"]}



@contextlib.asynccontextmanager
async def pods_in_bucket(
        s3_env: dict[str, str], tmp_path: Path) -> AsyncIterator[tuple[str, Bucket, Any, Path]]:
    """Two pods' shard runs landed in the bucket; (url, bucket, simulator, config), the
    simulator still serving."""
    url = f"s3://{s3_env['BUCKET']}/landing"
    bucket = Bucket(url, s3_env, tmp_path / "test-staging")
    async with run_simulator(make_config(tmp_path / "sim").workspaces, today=TODAY) as sim:
        cfg = tmp_path / "backfill.toml"
        cfg.write_text(CONFIG.format(output_dir=url, base_url=sim.base_url))
        await run_pods(s3_env, tmp_path, cfg)
        yield url, bucket, sim, cfg


async def run_pods(s3_env: dict[str, str], tmp_path: Path, cfg: Path, n: int = 2) -> None:
    """``run --shard i/n`` for each i, as n pods would: each with a disk of its own."""
    for i in range(n):
        proc = await backfill(process_env(s3_env, tmp_path / f"pod{i}"), "run", str(cfg),
                              *DAY, "--shard", f"{i}/{n}")
        assert proc.returncode == 0, proc.stderr.decode()


async def test_shards_on_machines_without_a_shared_disk(
        s3_env: dict[str, str], tmp_path: Path) -> None:
    url = f"s3://{s3_env['BUCKET']}/landing"
    bucket = Bucket(url, s3_env, tmp_path / "test-staging")
    async with run_simulator(make_config(tmp_path / "sim").workspaces, today=TODAY) as sim:
        cfg = tmp_path / "backfill.toml"
        cfg.write_text(CONFIG.format(output_dir=url, base_url=sim.base_url))
        await run_pods(s3_env, tmp_path, cfg)  # two pods, each with a disk of its own
        served = sim.counters.total
        assert served > 0
        names = objects(bucket)
        assert {"manifest.shard-0-of-2.jsonl", "manifest.shard-1-of-2.jsonl"} <= names
        assert "manifest.jsonl" not in names and not any(n.endswith(".lock") for n in names)
        parts = [shard_state(bucket, tmp_path, f"manifest.shard-{i}-of-2.jsonl")
                 for i in range(2)]
        keys = [{r.key for r in p} for p in parts]
        assert keys[0] and keys[1] and not keys[0] & keys[1]
        assert len(keys[0] | keys[1]) == TOTAL
        for rec in parts[0] + parts[1]:
            assert rec.status is Status.COMPLETED and rec.path is not None
            assert bucket.get(rec.path) == sim.expected_body(rec.app_id, rec.filename)

        # Another machine reads every shard's manifest from the bucket, merged.
        elsewhere = process_env(s3_env, tmp_path / "laptop")
        status = await backfill(elsewhere, "status", str(cfg), "--json")
        assert status.returncode == 0, status.stderr.decode()
        doc = json.loads(status.stdout)
        assert doc["totals"]["completed"] == TOTAL
        assert doc["manifests"] == [f"{url}/manifest.jsonl"] + [  # (the main one: none yet)
            f"{url}/manifest.shard-{i}-of-2.jsonl" for i in range(2)]
        plan = await backfill(elsewhere, "run", str(cfg), *DAY, "--dry-run", "--json",
                              "--shard", "1/3")
        assert plan.returncode == 0 and json.loads(plan.stdout)["count"] == 0

        # From 2 shards to a plain run, then to 3 shards: nothing is fetched again.
        for i, shard in enumerate([None, "0/3", "1/3", "2/3"]):
            extra = () if shard is None else ("--shard", shard)
            proc = await backfill(process_env(s3_env, tmp_path / f"next{i}"), "run",
                                  str(cfg), *DAY, *extra)
            assert proc.returncode == 0, proc.stderr.decode()
        assert sim.counters.total == served


async def test_a_shard_run_and_a_plain_run_exclude_each_other(
        s3_env: dict[str, str], tmp_path: Path) -> None:
    url = f"s3://{s3_env['BUCKET']}/landing"
    bucket = Bucket(url, s3_env, tmp_path / "test-staging")
    now = datetime.now(UTC)

    def lock(expires: datetime) -> bytes:
        return LockInfo("pod-7", 4242, "t0k3n", expires).to_json()

    async with run_simulator(make_config(tmp_path / "sim").workspaces, today=TODAY) as sim:
        cfg = tmp_path / "backfill.toml"
        cfg.write_text(CONFIG.format(output_dir=url, base_url=sim.base_url))
        env = process_env(s3_env, tmp_path / "host")
        bucket.put("manifest.jsonl.lock", lock(now + timedelta(hours=1)))  # a plain run on
        shard = await backfill(env, "run", str(cfg), *DAY, "--shard", "0/2")
        lines = shard.stderr.decode().strip().splitlines()
        assert shard.returncode == 75 and len(lines) == 1, lines
        assert "in use by a run without --shard (pid 4242 on pod-7)" in lines[0]

        bucket.put("manifest.jsonl.lock", lock(now - timedelta(hours=1)))  # it died: expired
        bucket.put("manifest.shard-1-of-2.jsonl.lock", lock(now + timedelta(hours=1)))
        plain = await backfill(env, "run", str(cfg), *DAY)
        lines = plain.stderr.decode().strip().splitlines()
        assert plain.returncode == 75 and len(lines) == 1, lines
        assert "manifest.shard-1-of-2.jsonl: shard 1/2 is running (pid 4242" in lines[0]
        assert sim.counters.total == 0  # refused before any request

        shard = await backfill(env, "run", str(cfg), *DAY, "--shard", "0/2")  # beside 1/2
        assert shard.returncode == 0, shard.stderr.decode()
        assert sim.counters.total > 0


async def test_shards_on_one_machine_never_sweep_each_others_uploads(
        s3_env: dict[str, str], tmp_path: Path) -> None:
    url = parse_object_url(f"s3://{s3_env['BUCKET']}/landing")

    def dest(scope: str) -> ObjectDestination:
        return open_destination(url, options=StorageOptions(retry_timeout=5.0), env=s3_env,
                                max_file_bytes=1 << 20, staging_root=tmp_path, scope=scope)

    a, b, plain = dest("shard-0-of-2"), dest("shard-1-of-2"), dest("")
    store = a.store
    tmp_a = f"{a._run_tmp}/0001"
    tmp_b = f"{b._run_tmp}/0001"
    assert tmp_a.startswith("landing/.backfill-tmp/shard-0-of-2/run-")
    for key in (tmp_a, tmp_b):
        await obstore.put_async(store, key, b"partial upload in flight")
    assert await b.sweep() == 1  # its own, nothing of a's
    assert a.staging.run_dir.is_dir()
    assert (await obstore.head_async(store, tmp_a))["size"] > 0
    with pytest.raises(FileNotFoundError):
        await obstore.head_async(store, tmp_b)
    assert await plain.sweep_temporary() == 1  # alone: all
    for d in (a, b, plain):
        await d.close()


async def test_the_k8s_job_needs_no_shared_volume(s3_env: dict[str, str], tmp_path: Path,
                                                  ) -> None:
    """The Indexed Job's container command, once per index, each pod with a disk of its
    own, the config's s3:// output pointed at moto: every shard's manifest is in the
    bucket, and `status` on another machine reads them all."""
    from backfill.config import parse_config

    from ..integration.test_k8s_job import documents, expand

    docs = documents()
    job, secret = docs["Job"], docs["Secret"]
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert not [m for m in container["volumeMounts"] if not m.get("readOnly")]  # config only
    count = job["spec"]["completions"]
    text = docs["ConfigMap"]["data"]["backfill.toml"]
    url = tomllib.loads(text)["run"]["output_dir"]
    keys = {n: f"key-of-{n.lower()}" for n in secret["stringData"] if n.startswith("MOE_")}
    sim_config = parse_config(tomllib.loads(text), tmp_path / "sim.toml", keys)
    async with run_simulator(sim_config) as sim:
        ours = f"s3://{s3_env['BUCKET']}/reports"
        config_path = tmp_path / "backfill.toml"
        config_path.write_text(text.replace(url, ours).replace(
            "[defaults]", f'[defaults]\nbase_url = "{sim.base_url}"'))
        for index in range(count):
            env = {**process_env(s3_env, tmp_path / f"pod-{index}"), **keys,
                   "JOB_COMPLETION_INDEX": str(index)}
            args = [expand(a, env) for a in container["args"]]
            args[1] = str(config_path)  # where the ConfigMap is mounted in the pod
            proc = await backfill(env, *args)
            assert proc.returncode == 0, proc.stderr.decode()[-2000:]
        status = await backfill(process_env(s3_env, tmp_path / "laptop"), "status",
                                str(config_path), "--json")
    assert status.returncode == 0, status.stderr.decode()
    doc = json.loads(status.stdout)
    assert doc["manifests"][1:] == [f"{ours}/manifest.shard-{i}-of-{count}.jsonl"
                                    for i in range(count)]
    assert sum(doc["totals"].values()) == 2 * 8  # 2 workspaces × 1 report × 8 days
    assert doc["totals"]["failed"] == 0 and doc["totals"]["completed"] > 0


async def test_run_dask_local_to_s3_keeps_the_shard_manifests_in_the_bucket(
        s3_env: dict[str, str], tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    url = f"s3://{s3_env['BUCKET']}/landing"
    bucket = Bucket(url, s3_env, tmp_path / "test-staging")
    async with run_simulator(make_config(tmp_path / "sim").workspaces, today=TODAY) as sim:
        cfg = tmp_path / "backfill.toml"
        cfg.write_text(CONFIG.format(output_dir=url, base_url=sim.base_url))
        env = process_env(s3_env, tmp_path / "host")
        proc = await backfill(env, "run", str(cfg), *DAY, "--dask", "local:2", "--json")
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
        served = sim.counters.total
        again = await backfill(process_env(s3_env, tmp_path / "other"), "run", str(cfg), *DAY)
        assert again.returncode == 0 and sim.counters.total == served
    doc = json.loads(proc.stdout)
    assert doc["totals"]["completed"] == TOTAL and doc["merge"] is None
    assert doc["manifest"] == f"{url}/manifest.jsonl"
    assert {"manifest.shard-0-of-2.jsonl", "manifest.shard-1-of-2.jsonl"} <= objects(bucket)


async def test_verify_marks_a_bad_object_failed_in_the_shard_manifest_in_the_bucket(
        s3_env: dict[str, str], tmp_path: Path) -> None:
    async with pods_in_bucket(s3_env, tmp_path) as (_, bucket, sim, cfg):
        victim = shard_state(bucket, tmp_path, "manifest.shard-1-of-2.jsonl")[0]
        assert victim.path is not None
        bucket.put(victim.path, b"PK\x05\x06" + b"\0" * 18)
        env = process_env(s3_env, tmp_path / "laptop")
        bad = await backfill(env, "verify", str(cfg), "--json")
        assert bad.returncode == 1, bad.stderr.decode()
        doc = json.loads(bad.stdout)
        assert doc["checked"] == TOTAL and [b["path"] for b in doc["bad"]] == [victim.path]
        marked = {r.key: r for r in shard_state(bucket, tmp_path, "manifest.shard-1-of-2.jsonl")}
        assert marked[victim.key].status is Status.FAILED
        assert not any(n.endswith(".lock") for n in objects(bucket))  # every lock released
        status = await backfill(env, "status", str(cfg), "--json")
        assert json.loads(status.stdout)["totals"]["failed"] == 1
        served = sim.counters.total
        # an object store is never overwritten: the operator removes the bad object
        obstore.delete(bucket.dest.store, bucket.dest.url.key(victim.path))
        # on pod1, whose local journal still says completed: the bucket's copy counts
        again = await backfill(process_env(s3_env, tmp_path / "pod1"), "run", str(cfg),
                               *DAY, "--shard", "1/2")
        assert again.returncode == 0, again.stderr.decode()
        assert sim.counters.total == served + 1  # fetched again, that file only
    assert bucket.get(victim.path) == sim.expected_body(victim.app_id, victim.filename)


async def test_manifest_merge_reads_and_writes_manifests_in_the_bucket(
        s3_env: dict[str, str], tmp_path: Path) -> None:
    async with pods_in_bucket(s3_env, tmp_path) as (url, bucket, _, _):
        env = process_env(s3_env, tmp_path / "laptop")
        main, shards = f"{url}/manifest.jsonl", [f"{url}/manifest.shard-{i}-of-2.jsonl"
                                                 for i in range(2)]
        merged = await backfill(env, "manifest", "merge", main, main, *shards, "--json")
        assert merged.returncode == 0, merged.stderr.decode()
        doc = json.loads(merged.stdout)
        assert doc["out"] == main and doc["inputs"] == [main, *shards] and doc["records"] == TOTAL
        assert len(shard_state(bucket, tmp_path, "manifest.jsonl")) == TOTAL
        assert not any(n.endswith(".lock") for n in objects(bucket))
        local = tmp_path / "copy.jsonl"  # a local OUT from URL inputs works too
        again = await backfill(env, "manifest", "merge", str(local), *shards)
        assert again.returncode == 0 and len(load_manifest(local)) == TOTAL

        bucket.put("manifest.jsonl.lock", LockInfo("pod-7", 4242, "t", datetime.now(UTC)
                                                   + timedelta(hours=1)).to_json())
        held = await backfill(env, "manifest", "merge", main, *shards)
        assert held.returncode == 75 and b"locked by pid 4242" in held.stderr
        for bad in (f"{url}/manifest.shard-5-of-9.jsonl", "s3://"):
            missing = await backfill(env, "manifest", "merge", str(local), bad)
            lines = missing.stderr.decode().strip().splitlines()
            assert missing.returncode == 2 and len(lines) == 1, lines
