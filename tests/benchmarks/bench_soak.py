"""Soak: 100,000 files across 200 workspaces, every server fault, two kill -9 restarts.

The real command line (``python -m backfill run CONFIG --today D``) runs in a child
process against the simulator, which serves 200 workspaces × 125 daily reports × 4 days
(4 KiB zips) on 127.0.0.1 from this process, with a seeded mix of every fault the
simulator knows (429 with Retry-After, 500/502/503, resets, truncated bodies with and
without a Content-Length, HTML/JSON/corrupt bodies, stalled headers and bodies, a drip
slower than the file timeout, dropped connections, too-large bodies, redirects and
redirect loops) plus a 2-second refused-connection outage. The first run is killed with
SIGKILL after 30% of the files' worth of requests, the second one likewise; then runs
follow until one exits 0 (a failed file — too large, a redirect loop, retries used up —
is retried by the next run).

The final check reads the manifest and every file: a file counts as completed when its
latest record is ``completed`` and the file on disk has the recorded size and sha256, both
equal to what the server sends for it; *lost* = expected − completed; *torn* = files on
disk that differ from their record or from the server's bytes, ``.part`` files left, and a
torn manifest line. It also checks that no file journaled before a kill was downloaded
again. Printed: files/s over the whole soak (restarts and start-ups included; the final
check not), requests, retries (requests beyond one per file, whatever the run), faults by
kind, and ``N expected, N completed, 0 lost, 0 torn``. About 4 minutes on 2 CPUs.

Run: ``python -m tests.benchmarks.bench_soak [workspaces] [reports]`` (default 200 125).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ByteReceiveStream, Process

from backfill.config import Config, load_config
from backfill.journal import Status, load_manifest
from backfill.planner import tasks, windows
from backfill.simulator import Faults, Simulator, run_simulator

TODAY = date(2026, 11, 27)
DAYS = 4  # ages 0..3, all inside the 7-day window
SEED = 6
KILL_AT = (0.30, 0.30)  # each killed run: after this fraction of N requests (+ a jitter)
DEADLINE_S = 1200  # the whole soak, a bound rather than an expectation
MAX_RUNS = 10
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney")


def soak_faults() -> Faults:
    """About 6% of requests get a fault; every kind the simulator has is in the mix."""
    return Faults(
        latency_s=0.002, jitter_s=0.01, size=4096,
        rate_429=0.012, rate_500=0.005, rate_502=0.005, rate_503=0.005,
        rate_reset=0.004, rate_truncate=0.004, rate_truncate_close=0.002,
        rate_html=0.002, rate_json=0.002, rate_corrupt=0.002,
        rate_stall_headers=0.001, rate_stall_body=0.001, rate_drip=0.0002,
        rate_close=0.004, rate_too_large=0.0005, rate_redirect=0.002,
        rate_redirect_loop=0.0005,
        retry_after_s=0.5, stall_s=0.5, drip_interval_s=0.002,
        too_large_bytes=2 * 1024 * 1024,
    )


def soak_toml(base_url: str, workspaces: int, reports: int) -> str:
    names = ", ".join(f'"Report {j:03d}"' for j in range(reports))
    parts = [f"""\
[run]
start = "-{DAYS - 1}d"
end = "today"
output_dir = "out"
concurrency = 64
max_file_bytes = {1024 * 1024}

[http]
connect_timeout_s = 5
read_timeout_s = 2
file_timeout_s = 3

[retry]
backoff_base_s = 0.05
backoff_max_s = 0.5
probe_interval_s = 0.1
probe_interval_max_s = 0.5

[defaults]
api_key = "soak-api-key"
base_url = "{base_url}"
concurrency = 4
reports = [{names}]
"""]
    for i in range(workspaces):
        parts.append(f'\n[[workspace]]\nname = "soak-{i:03d}"\napp_id = "SOAK{i:03d}"\n'
                     f'timezone = "{ZONES[i % len(ZONES)]}"\n')
    return "".join(parts)


async def _collect(stream: ByteReceiveStream | None, into: bytearray) -> None:
    if stream is not None:
        async for chunk in stream:
            into += chunk


@contextlib.asynccontextmanager
async def _progress(sim: Simulator, n: int, t0: float) -> AsyncIterator[None]:
    async def report() -> None:
        while True:
            await anyio.sleep(10)
            ok = sim.counters.statuses()[200]
            print(f"  … {time.perf_counter() - t0:6.0f} s: {sim.counters.total:,} requests, "
                  f"{ok:,} bodies served for {n:,} files", flush=True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(report)
        yield
        tg.cancel_scope.cancel()


async def _run(cmd: list[str], sim: Simulator, kill_after: int | None, jitter: float,
               outage_after: int | None) -> tuple[int, bytes, bytes]:
    """One CLI run; SIGKILL it once ``kill_after`` more requests have started (+ jitter);
    start a 2 s outage once ``outage_after`` more have. (returncode, stdout, stderr)."""
    out, err = bytearray(), bytearray()
    base = sim.counters.total

    async def kill(proc: Process, k: int) -> None:
        await sim.wait_until(lambda c: c.total >= base + k)
        await anyio.sleep(jitter)  # a random instant between two events
        with contextlib.suppress(ProcessLookupError):
            proc.kill()

    async def outage(k: int) -> None:
        await sim.wait_until(lambda c: c.total >= base + k)
        sim.start_outage(2.0, mode="refused")

    async with await anyio.open_process(cmd) as proc, anyio.create_task_group() as tg:
        if kill_after is not None:
            tg.start_soon(kill, proc, kill_after)
        if outage_after is not None:
            tg.start_soon(outage, outage_after)
        async with anyio.create_task_group() as io:
            io.start_soon(_collect, proc.stdout, out)
            io.start_soon(_collect, proc.stderr, err)
        await proc.wait()
        tg.cancel_scope.cancel()
    assert proc.returncode is not None
    return proc.returncode, bytes(out), bytes(err)


def _check(config: Config, sim: Simulator, expected: set[tuple[str, str]]) -> dict[str, Any]:
    """The final check (see the module docstring)."""
    out = config.run.output_dir
    manifest = out / "manifest.jsonl"
    state = load_manifest(manifest)
    good = bad = 0
    for i, rec in enumerate(state):
        if rec.status is not Status.COMPLETED or rec.path is None:
            continue
        try:
            data = (out / rec.path).read_bytes()
        except FileNotFoundError:
            bad += 1
            continue
        mine = (len(data), hashlib.sha256(data).hexdigest())
        if mine == (rec.bytes, rec.sha256) == sim.expected_digest(rec.app_id, rec.filename):
            good += rec.key in expected
        else:
            bad += 1
        if i and i % 25_000 == 0:
            print(f"  … checked {i:,} records", flush=True)
    parts = sum(1 for _ in out.rglob("*.part"))
    return {"expected": len(expected), "completed": good,
            "lost": len(expected) - good,
            "torn": bad + parts + (state.torn_line is not None),
            "part_files_left": parts, "manifest_lines": state.lines,
            "manifest_records": len(state)}


async def _soak(root: Path, workspaces: int, reports: int) -> dict[str, Any]:
    rng = random.Random(SEED)
    cfg = root / "soak.toml"
    cfg.write_text(soak_toml("http://127.0.0.1:1", workspaces, reports))
    faults = soak_faults()
    async with run_simulator(load_config(cfg), seed=SEED, today=TODAY, faults=faults) as sim:
        cfg.write_text(soak_toml(sim.base_url, workspaces, reports))
        config = load_config(cfg)
        today = {ws.name: TODAY for ws in config.workspaces}
        expected = {t.key for t in tasks(windows(config, today)) if t.kind.requested}
        n = len(expected)
        manifest = config.run.output_dir / "manifest.jsonl"
        cmd = [sys.executable, "-m", "backfill", "run", str(cfg), "--today", TODAY.isoformat(),
               "--no-progress", "--json"]
        print(f"soak: {n:,} files ({workspaces} workspaces × {reports} reports × {DAYS} days, "
              f"4 KiB), {faults.total_rate():.1%} of requests faulted, seed {SEED}, "
              f"simulator at {sim.base_url}", flush=True)
        runs: list[dict[str, Any]] = []
        journaled: dict[tuple[str, str], int] = {}  # completed before a kill → 200s then
        retries = 0
        t0 = time.perf_counter()
        with anyio.fail_after(DEADLINE_S):
            async with _progress(sim, n, t0):
                for i in range(MAX_RUNS):
                    killed = i < len(KILL_AT)
                    kill_after = int(KILL_AT[i] * n) if killed else None
                    outage_after = n // 10 if i == len(KILL_AT) else None
                    start = time.perf_counter()
                    code, out, err = await _run(cmd, sim, kill_after, rng.uniform(0, 0.05),
                                                outage_after)
                    wall = time.perf_counter() - start
                    state = load_manifest(manifest)  # must load, whatever the kill left
                    done = {r.key for r in state if r.status is Status.COMPLETED}
                    row: dict[str, Any] = {"run": i + 1, "exit": code, "wall_s": round(wall, 1),
                                           "completed": len(done & expected),
                                           "torn_last_line": state.torn_line is not None,
                                           "part_files": sum(1 for _ in
                                                             config.run.output_dir.rglob("*.part"))}
                    if code >= 0 and out.strip():
                        doc = json.loads(out)
                        retries += doc["retries"]
                        row.update(requests=doc["requests"], retries=doc["retries"],
                                   failed=doc["totals"]["failed"], outages=doc["outages"])
                    runs.append(row)
                    print(f"  run {i + 1}: exit {code} after {wall:.1f} s; " + ", ".join(
                        f"{k} {v}" for k, v in row.items() if k not in ("run", "exit", "wall_s")),
                        flush=True)
                    if killed:
                        if code != -signal.SIGKILL:
                            raise RuntimeError(f"run {i + 1} was to be killed, exited {code}: "
                                               f"{err.decode()[-2000:]}")
                        for key in done - journaled.keys():
                            journaled[key] = sim.counters.requests[(*key, 200)]
                        continue
                    if code not in (0, 1):
                        raise RuntimeError(f"run {i + 1} exited {code}: {err.decode()[-2000:]}")
                    if code == 0:
                        break
                else:
                    raise RuntimeError(f"files still failed after {MAX_RUNS} runs")
        elapsed = time.perf_counter() - t0
        refetched = sum(1 for key, served in journaled.items()
                        if sim.counters.requests[(key[0], key[1], 200)] != served)
        print("  checking every file against its record and the server's bytes …", flush=True)
        check = await anyio.to_thread.run_sync(_check, config, sim, expected)
        faults_by_kind = Counter[str]()
        for (_, _, kind), count in sim.counters.faults.items():
            faults_by_kind[kind] += count
    figures: dict[str, Any] = {
        "files": n, "workspaces": workspaces, "runs": len(runs), "kills": len(KILL_AT),
        "wall_s": round(elapsed, 1), "files_per_s": round(n / elapsed),
        "requests": sim.counters.total, "retries": sim.counters.total - n,
        "engine_retries": retries,
        "faults": sum(faults_by_kind.values()), "refetched_after_journaled": refetched,
        **check,
    }
    print(f"soak: {n:,} files in {elapsed:.0f} s over {len(runs)} runs "
          f"({len(KILL_AT)} killed with SIGKILL): {figures['files_per_s']:,} files/s")
    print(f"  requests {figures['requests']:,}; retries {figures['retries']:,} (requests "
          f"beyond one per file, redirect hops included; the engine's own count in the "
          f"runs that finished: {retries:,})")
    print(f"  faults injected {figures['faults']:,}: "
          + ", ".join(f"{k} {v}" for k, v in faults_by_kind.most_common()))
    print(f"  journaled before a kill and downloaded again: {refetched}; "
          f"manifest {check['manifest_lines']:,} lines, {check['manifest_records']:,} records")
    print(f"  final check: {check['expected']:,} expected, {check['completed']:,} completed, "
          f"{check['lost']} lost, {check['torn']} torn", flush=True)
    return figures


def main(workspaces: int = 200, reports: int = 125) -> dict[str, Any]:
    """Run the soak; print and return the figures. Raises if anything was lost or torn."""
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        figures = anyio.run(_soak, Path(tmp), workspaces, reports)
    if figures["lost"] or figures["torn"] or figures["completed"] != figures["expected"] \
            or figures["refetched_after_journaled"]:
        raise RuntimeError(f"soak failed its final check: {figures}")
    return figures


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
