"""`backfill run` / `status` / `verify` as a user runs them: real processes, real signals,
against an in-process simulator on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from backfill.journal import Status, load_manifest
from backfill.simulator import Faults, run_simulator

from .conftest import SIMULATED_TOML, TODAY, make_config

pytestmark = pytest.mark.anyio

CONFIG = """
[run]
start = "-6d"
end = "today"
output_dir = "out"
concurrency = {concurrency}

""" + SIMULATED_TOML

TOTAL = 3 * 2 * 7


def write_config(tmp: Path, base_url: str, concurrency: int = 4) -> Path:
    path = tmp / "backfill.toml"
    path.write_text(CONFIG.format(base_url=base_url, concurrency=concurrency))
    return path


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "backfill", *args]


async def run_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process(cli(*args), check=False)


async def drain(proc: Process) -> bytes:
    assert proc.stderr is not None
    chunks = []
    async for chunk in proc.stderr:
        chunks.append(chunk)
    return b"".join(chunks)


def simulator_for(tmp: Path, latency: float = 0.0):  # type: ignore[no-untyped-def]
    workspaces = make_config(tmp / "sim").workspaces
    return run_simulator(workspaces, today=TODAY, faults=Faults(latency_s=latency))


async def test_kill_9_mid_run_then_rerun_loses_and_repeats_nothing(tmp_path: Path) -> None:
    async with simulator_for(tmp_path, latency=0.03) as sim:
        cfg = write_config(tmp_path, sim.base_url)
        manifest = tmp_path / "out" / "manifest.jsonl"
        async with await anyio.open_process(
            cli("run", str(cfg), "--today", TODAY.isoformat(), "--no-progress")
        ) as proc:
            with anyio.fail_after(60):
                await sim.wait_until(lambda c: c.statuses()[200] >= 12)
            proc.kill()
            await proc.wait()
        assert proc.returncode == -signal.SIGKILL
        done_before = {r.key for r in load_manifest(manifest) if r.status is Status.COMPLETED}
        served_before = dict(sim.counters.requests)
        result = await run_cli("run", str(cfg), "--today", TODAY.isoformat(), "--no-progress")
        assert result.returncode == 0, result.stderr.decode()
        state = load_manifest(manifest)
        assert len(state) == TOTAL
        assert all(r.status is Status.COMPLETED for r in state)
        assert state.lines == TOTAL  # compacted: one line per file
        assert not list((tmp_path / "out").rglob("*.part"))
        for r in state:
            data = (tmp_path / "out" / (r.path or "")).read_bytes()
            assert data == sim.expected_body(r.app_id, r.filename)
        for app, name in done_before:  # durable before the kill → not fetched again
            assert sim.counters.requests[(app, name, 200)] == served_before[(app, name, 200)]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_signal_exits_130_and_a_rerun_completes(tmp_path: Path, signum: int) -> None:
    async with simulator_for(tmp_path, latency=0.05) as sim:
        cfg = write_config(tmp_path, sim.base_url, concurrency=2)
        async with await anyio.open_process(
            cli("run", str(cfg), "--today", TODAY.isoformat(), "--no-progress")
        ) as proc:
            with anyio.fail_after(60):
                await sim.wait_until(lambda c: c.statuses()[200] >= 4)
            proc.send_signal(signum)
            stderr = await drain(proc)
            await proc.wait()
        assert proc.returncode == 130, stderr.decode()
        assert b"Traceback" not in stderr
        manifest = tmp_path / "out" / "manifest.jsonl"
        partial = load_manifest(manifest)
        assert 0 < len(partial) < TOTAL
        assert not list((tmp_path / "out").rglob("*.part"))
        result = await run_cli("run", str(cfg), "--today", TODAY.isoformat(), "--json")
        assert result.returncode == 0
        doc = json.loads(result.stdout)
        assert doc["totals"]["completed"] == TOTAL


async def test_second_run_on_the_same_manifest_exits_75(tmp_path: Path) -> None:
    async with simulator_for(tmp_path, latency=0.2) as sim:
        cfg = write_config(tmp_path, sim.base_url, concurrency=1)
        async with await anyio.open_process(
            cli("run", str(cfg), "--today", TODAY.isoformat(), "--no-progress")
        ) as first:
            with anyio.fail_after(60):
                await sim.wait_until(lambda c: c.total >= 1)
            second = await run_cli("run", str(cfg), "--today", TODAY.isoformat())
            assert second.returncode == 75
            message = second.stderr.decode()
            assert f"pid {first.pid}" in message and "Traceback" not in message
            first.send_signal(signal.SIGINT)
            await drain(first)
            await first.wait()


async def test_run_json_status_and_dry_run(tmp_path: Path) -> None:
    async with simulator_for(tmp_path) as sim:
        cfg = write_config(tmp_path, sim.base_url)
        dry = await run_cli("run", str(cfg), "--today", TODAY.isoformat(), "--dry-run", "--json")
        assert dry.returncode == 0
        planned = json.loads(dry.stdout)
        assert planned["count"] == TOTAL and sim.counters.total == 0
        assert not (tmp_path / "out" / "manifest.jsonl").exists()
        result = await run_cli("run", str(cfg), "--today", TODAY.isoformat(), "--json")
        assert result.returncode == 0
        doc = json.loads(result.stdout)
        assert set(doc["totals"]) == {"completed", "missing", "expired", "failed", "pending"}
        assert doc["totals"]["completed"] == TOTAL and doc["requests"] == TOTAL
        assert {w["name"] for w in doc["workspaces"]} == {"acme", "globex", "initech"}
        for key in ("requests", "retries", "duration_s", "bytes"):
            assert key in doc
        status = await run_cli("status", str(cfg), "--json")
        assert status.returncode == 0
        sdoc = json.loads(status.stdout)
        assert sdoc["totals"] == doc["totals"] and sdoc["bytes"] == doc["bytes"]
        by_manifest = await run_cli("status", str(tmp_path / "out" / "manifest.jsonl"), "--json")
        assert json.loads(by_manifest.stdout)["totals"] == doc["totals"]
        again = await run_cli("run", str(cfg), "--today", TODAY.isoformat(), "--dry-run")
        assert again.returncode == 0 and again.stdout == b""  # nothing left to request


async def test_split_by_machine_manifest_is_read_back_by_status_and_verify(
        tmp_path: Path) -> None:
    async with simulator_for(tmp_path) as sim:
        cfg = write_config(tmp_path, sim.base_url)
        cfg.write_text(cfg.read_text().replace('"test-key"', '"${MOE_TEST_KEY}"'))
        env = {k: v for k, v in os.environ.items() if k != "MOE_TEST_KEY"}
        machine = ["--manifest", str(tmp_path / "m1.jsonl"), "--output-dir",
                   str(tmp_path / "m1")]
        run = await anyio.run_process(
            cli("run", str(cfg), "--today", TODAY.isoformat(), "--workspace", "acme",
                "--no-progress", *machine),
            check=False, env={**env, "MOE_TEST_KEY": "test-key"})
        assert run.returncode == 0, run.stderr.decode()
    status = await anyio.run_process(cli("status", str(cfg), "--json", *machine),
                                     check=False, env=env)
    assert status.returncode == 0, status.stderr.decode()
    doc = json.loads(status.stdout)
    assert doc["totals"]["completed"] == 2 * 7 and doc["manifest"] == str(tmp_path / "m1.jsonl")
    # verify sends nothing, so it runs without the API key in the environment
    ok = await anyio.run_process(cli("verify", str(cfg), "--json", *machine), check=False,
                                 env=env)
    assert ok.returncode == 0, ok.stderr.decode()
    assert json.loads(ok.stdout)["checked"] == 2 * 7
    victim = next((tmp_path / "m1").rglob("*.zip"))
    victim.write_bytes(b"altered")
    bad = await anyio.run_process(cli("verify", str(cfg), "--json", *machine), check=False,
                                  env=env)
    assert bad.returncode == 1
    assert [b["path"] for b in json.loads(bad.stdout)["bad"]] == [
        str(victim.relative_to(tmp_path / "m1"))]
    mixed = await anyio.run_process(
        cli("status", str(tmp_path / "m1.jsonl"), "--manifest", "x"), check=False, env=env)
    assert mixed.returncode == 2 and b"go with a CONFIG" in mixed.stderr


async def test_ctrl_c_on_a_terminal_gives_the_cursor_back(tmp_path: Path) -> None:
    import pty

    # (the forced exit of a second Ctrl-C calls Progress.restore_terminal: test_progress)
    async with simulator_for(tmp_path, latency=3.0) as sim:
        cfg = write_config(tmp_path, sim.base_url, concurrency=2)
        master, slave = pty.openpty()
        try:
            async with await anyio.open_process(
                cli("run", str(cfg), "--today", TODAY.isoformat()), stdin=slave,
                stdout=slave, stderr=slave,
            ) as proc:
                os.close(slave)
                seen = b""

                async def until(marker: bytes) -> None:
                    nonlocal seen
                    while marker not in seen:
                        seen += await anyio.to_thread.run_sync(os.read, master, 65536)

                with anyio.fail_after(60):
                    await until(b"\x1b[?25l")  # the live panel hid the cursor
                    await sim.wait_until(lambda c: c.in_flight >= 1)
                    proc.send_signal(signal.SIGINT)
                    await until(b"stopping")
                    await proc.wait()
                    try:
                        while chunk := await anyio.to_thread.run_sync(os.read, master, 65536):
                            seen += chunk
                    except OSError:  # EIO: the child closed the terminal
                        pass
        finally:
            os.close(master)
    assert proc.returncode == 130
    assert seen.rindex(b"\x1b[?25h") > seen.rindex(b"\x1b[?25l")
