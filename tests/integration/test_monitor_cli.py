"""Monitoring through the command line, as a cron job and a monitor use it: real
processes, the simulator and a webhook receiver on 127.0.0.1 (aiohttp.web), the metrics
file read with prometheus_client's parser."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
import trustme
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from backfill.config import parse_config
from backfill.journal import Record, Status
from backfill.simulator import run_simulator

pytestmark = pytest.mark.anyio

SECRET_PATH = "/services/T000/B000/s3cr3t-token"
TODAY = datetime.now(UTC).date()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Receiver:
    url: str = ""
    bodies: list[Any] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


@asynccontextmanager
async def receiver(answer: Callable[[int], Awaitable[web.StreamResponse]],
                   tls: ssl.SSLContext | None = None) -> AsyncIterator[Receiver]:
    """A webhook receiver; ``answer(n)`` makes the reply to the n-th POST (0-based)."""
    got = Receiver()

    async def handle(request: web.Request) -> web.StreamResponse:
        got.headers.append(dict(request.headers))
        got.bodies.append(await request.json())
        return await answer(len(got.bodies) - 1)

    app = web.Application()
    app.router.add_post(SECRET_PATH, handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = runner.addresses[0][1]
    got.url = (f"https://localhost:{port}{SECRET_PATH}" if tls
               else f"http://127.0.0.1:{port}{SECRET_PATH}")
    try:
        yield got
    finally:
        await runner.cleanup()


async def ok(n: int) -> web.StreamResponse:
    return web.Response(text="ok")


CONFIG = """
[run]
start = "-7d"
end = "today"
output_dir = "out"
concurrency = 4

[retry]
backoff_base_s = 0.01
backoff_max_s = 0.05

[notify]
webhook = "${{HOOK}}"
format = "{fmt}"
min_interval = "6h"
timeout_s = {timeout}

[[workspace]]
name = "acme"
app_id = "ACME01"
api_key = "k-acme-123"
base_url = "{base_url}"
reports = {reports}
"""


def write_config(tmp: Path, base_url: str = "http://127.0.0.1:9", *, fmt: str = "slack",
                 timeout: float = 5, reports: str = '["Daily"]') -> Path:
    path = tmp / "backfill.toml"
    path.write_text(CONFIG.format(base_url=base_url, fmt=fmt, timeout=timeout,
                                  reports=reports))
    return path


PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY",
              "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"}


async def cli(*args: str, hook: str | None = None, **extra: str,
              ) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env.update(HOOK=hook or "http://127.0.0.1:9/unused", **extra)
    return await anyio.run_process([sys.executable, "-m", "backfill", *args], check=False,
                                   env=env)


def write_manifest(tmp: Path, records: list[Record]) -> Path:
    path = tmp / "out" / "manifest.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(r.to_line() for r in records))
    return path


def record(age: int, status: Status, *, report: str = "Daily", error: str | None = None,
           updated: datetime | None = None) -> Record:
    day = TODAY - timedelta(days=age)
    return Record("acme", "ACME01", report, day.isoformat(), f"{report}_{day:%Y%m%d}.zip",
                  status, path=f"acme/{report}_{day:%Y%m%d}.zip" if status is Status.COMPLETED
                  else None, bytes=10 if status is Status.COMPLETED else None,
                  sha256="0" * 64 if status is Status.COMPLETED else None, error=error,
                  attempts=1, updated_at=(updated or datetime.now(UTC)).strftime(
                      "%Y-%m-%dT%H:%M:%SZ"))


def healthy(*, updated: datetime | None = None) -> list[Record]:
    """Every file of the window fetched but today's (which has 8 days left)."""
    return [record(age, Status.COMPLETED, updated=updated) for age in range(1, 8)]


# ------------------------------------------------------------------ status --check


async def test_check_is_quiet_when_healthy_and_names_each_problem(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    write_manifest(tmp_path, healthy())
    good = await cli("status", str(cfg), "--check")
    assert good.returncode == 0, good.stderr.decode()
    assert good.stdout.decode().startswith("OK: no file expires within 48 h unfetched")

    # Last write 30 h ago (no run record: the manifest's newest updated_at is the witness),
    # a failed file of 6 days ago (expires within 48 h) and a date no run covered.
    old = datetime.now(UTC) - timedelta(hours=30)
    records = healthy(updated=old)
    records[5] = record(6, Status.FAILED, error="http 500", updated=old)
    del records[3]  # age 4: no record at all
    write_manifest(tmp_path, records)
    bad = await cli("status", str(cfg), "--check", "--within", "4d")
    assert bad.returncode == 3, bad.stderr.decode()
    lines = bad.stdout.decode().splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("acme: last finished run ") and "(more than 26 h)" in lines[0]
    assert lines[1] == "acme: 1 file failed (http 500): run backfill again to retry them"
    assert lines[2].startswith("acme / Daily: 2 files expire within 96 h unfetched "
                               "(1 failed, 1 planned; the first, Daily_")
    relaxed = await cli("status", str(cfg), "--check", "--stale", "2d", "--within", "1h")
    assert relaxed.returncode == 3 and len(relaxed.stdout.splitlines()) == 1  # the failure

    as_json = await cli("status", str(cfg), "--check", "--json", "--within", "4d")
    doc = json.loads(as_json.stdout)
    assert as_json.returncode == 3 and not doc["ok"]
    assert [p["kind"] for p in doc["problems"]] == ["stale", "failed", "expiring"]

    manifest_only = await cli("status", str(tmp_path / "out" / "manifest.jsonl"), "--check")
    assert manifest_only.returncode == 3  # no config: records only, zones UTC


async def test_check_usage_errors_exit_2(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    write_manifest(tmp_path, healthy())
    bad = await cli("status", str(cfg), "--check", "--within", "soon")
    assert bad.returncode == 2
    assert b"'soon' is not a duration" in bad.stderr and b"Traceback" not in bad.stderr


async def test_check_metrics_file_parses_and_is_replaced_atomically(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    records = healthy()
    records[0] = record(1, Status.FAILED, error="auth")
    write_manifest(tmp_path, records)
    prom = tmp_path / "textfile" / "backfill.prom"
    prom.parent.mkdir()
    target = tmp_path / "elsewhere.txt"
    target.write_text("not ours")
    prom.symlink_to(target)  # planted: the tool replaces the link, never writes through it
    result = await cli("status", str(cfg), "--check", "--metrics-file", str(prom))
    assert result.returncode == 3
    assert target.read_text() == "not ours" and not prom.is_symlink()
    assert [p.name for p in prom.parent.iterdir()] == ["backfill.prom"]  # no temp left
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    assert not any(n.endswith("_created") for n in families)
    files = {s.labels["status"]: s.value for s in families["backfill_files"].samples}
    assert files == {"completed": 6, "failed": 1, "missing": 0, "expired": 0, "pending": 0}
    [risk] = families["backfill_files_at_risk"].samples
    assert risk.labels == {"workspace": "acme"} and risk.value == 2  # the failed one + today
    [soonest] = families["backfill_soonest_expiry_seconds"].samples
    assert 0 < soonest.value <= 7 * 86400
    expiring = {s.labels["within"]: s.value for s in families["backfill_files_expiring"].samples}
    assert expiring["6h"] <= expiring["24h"] <= expiring["48h"] <= 2
    [last] = families["backfill_last_run_timestamp_seconds"].samples
    assert last.value == 0  # no run recorded yet


# ------------------------------------------------------------------ webhooks


def failing_manifest(tmp: Path) -> None:
    records = healthy()
    records[5] = record(6, Status.FAILED, error="http 503")
    write_manifest(tmp, records)


async def test_webhook_429_with_retry_after_is_retried(tmp_path: Path) -> None:
    async def busy_once(n: int) -> web.StreamResponse:
        if n == 0:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response(text="ok")

    failing_manifest(tmp_path)
    async with receiver(busy_once) as hook:
        cfg = write_config(tmp_path)
        result = await cli("status", str(cfg), "--check", hook=hook.url)
    assert result.returncode == 3
    assert len(hook.bodies) == 2 and hook.bodies[0] == hook.bodies[1]
    assert hook.headers[0]["Content-Type"] == "application/json"
    assert hook.headers[0]["User-Agent"].startswith("moe-backfill/")
    assert set(hook.bodies[1]) == {"text", "blocks"}
    assert "acme: 1 file failed (http 503)" in hook.bodies[1]["text"]
    assert b"warning" not in result.stderr, result.stderr.decode()


async def test_a_hanging_or_failing_webhook_never_fails_the_check(tmp_path: Path) -> None:
    never = anyio.Event()

    async def hang(n: int) -> web.StreamResponse:
        await never.wait()
        raise AssertionError("unreachable")

    failing_manifest(tmp_path)
    cfg = write_config(tmp_path, timeout=0.3)
    async with receiver(hang) as hook:
        with anyio.fail_after(30):
            result = await cli("status", str(cfg), "--check", hook=hook.url)
        never.set()
    err = result.stderr.decode()
    assert result.returncode == 3 and len(hook.bodies) == 3  # three attempts, each bounded
    [line] = err.splitlines()
    port = hook.url.split(":")[2].split("/")[0]
    assert line == (f"backfill: warning: alert not sent: webhook http://127.0.0.1:{port}/***: "
                    "no answer within 0.3 s after 3 attempts")
    assert "s3cr3t" not in err and "s3cr3t" not in result.stdout.decode()

    async def broken(n: int) -> web.StreamResponse:
        return web.Response(status=404)

    async with receiver(broken) as hook:
        result = await cli("status", str(cfg), "--check", hook=hook.url)
    assert result.returncode == 3 and len(hook.bodies) == 1  # a 404 is not retried
    assert "HTTP 404 after 1 attempt" in result.stderr.decode()


async def test_https_webhook_through_the_runs_proxy_and_ca_bundle(tmp_path: Path) -> None:
    from .connect_proxy import connect_proxy

    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server)
    ca_file = tmp_path / "corp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    failing_manifest(tmp_path)
    cfg = write_config(tmp_path)
    cfg.write_text(cfg.read_text() + f'\n[http]\nca_bundle = "{ca_file}"\n')
    async with receiver(ok, tls=server) as hook, connect_proxy() as proxy:
        result = await cli("status", str(cfg), "--check", hook=hook.url, HTTPS_PROXY=proxy.url)
    assert result.returncode == 3 and b"warning" not in result.stderr, result.stderr.decode()
    assert len(hook.bodies) == 1
    port = hook.url.split(":")[2].split("/")[0]
    assert [s.line for s in proxy.seen] == [f"CONNECT localhost:{port} HTTP/1.1"]


async def test_generic_json_body_and_the_rate_limit(tmp_path: Path) -> None:
    failing_manifest(tmp_path)
    cfg = write_config(tmp_path, fmt="json")
    async with receiver(ok) as hook:
        first = await cli("status", str(cfg), "--check", hook=hook.url)
        again = await cli("status", str(cfg), "--check", hook=hook.url)
    assert first.returncode == again.returncode == 3
    [body] = hook.bodies  # the same alert is not repeated within min_interval
    assert body["source"] == "moe-backfill" and body["config"] == str(cfg)
    assert [p["kind"] for p in body["problems"]] == ["stale", "failed", "expiring"] or [
        p["kind"] for p in body["problems"]] == ["failed", "expiring"]
    state = json.loads((tmp_path / "out" / "manifest.jsonl.alerts.json").read_text())
    assert "failed|acme|" in state["sent"]


async def test_unset_webhook_variable_is_a_config_error(tmp_path: Path) -> None:
    failing_manifest(tmp_path)
    cfg = write_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "HOOK"}
    result = await anyio.run_process([sys.executable, "-m", "backfill", "status", str(cfg),
                                      "--check"], check=False, env=env)
    assert result.returncode == 2
    assert result.stderr.decode().strip().endswith(
        "[notify] webhook: environment variable HOOK is not set")


# ------------------------------------------------------------------ run


async def test_run_alerts_once_records_the_run_and_writes_metrics(tmp_path: Path) -> None:
    sim_cfg = parse_config({"workspace": [{"name": "acme", "app_id": "ACME01",
                                           "api_key": "k-acme-123", "reports": ["Daily"]}]},
                           tmp_path / "sim.toml")
    prom = tmp_path / "acme.prom"
    async with run_simulator(sim_cfg, today=TODAY) as sim, receiver(ok) as hook:
        # "Dialy" is not a report the server knows: every request gets a 400
        cfg = write_config(tmp_path, sim.base_url, reports='["Daily", "Dialy"]')
        first = await cli("run", str(cfg), "--no-progress", "-q", "--metrics-file",
                          str(prom), hook=hook.url)
        second = await cli("run", str(cfg), "--no-progress", "-q", hook=hook.url)
        check = await cli("status", str(cfg), "--check", hook=hook.url)
    # run itself says the report is rejected as a whole (exit 4, issue 12); the check too
    assert first.returncode == 4, first.stderr.decode()
    assert second.returncode == 4 and check.returncode == 3
    [body] = hook.bodies  # run, run again, check: one alert, the rest held back
    text = body["text"]
    assert text.startswith("moe-backfill: ") and "after run" in text.splitlines()[0]
    assert "acme / Dialy: never produced a file" in text
    assert "check the report name" in text
    assert "k-acme-123" not in json.dumps(body)
    for out in (first, second, check):
        assert b"s3cr3t" not in out.stderr + out.stdout
    assert "acme / Dialy: never produced a file" in check.stdout.decode()

    runs = json.loads((tmp_path / "out" / "manifest.jsonl.runs.json").read_text())
    acme = runs["workspaces"]["acme"]
    assert acme["finished_at"] and acme["succeeded_at"] and acme["requests"] > 0
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    status_doc = json.loads((await cli("status", str(cfg), "--json")).stdout)
    files = {s.labels["status"]: s.value for s in families["backfill_files"].samples}
    assert files == {k: float(v) for k, v in status_doc["totals"].items()}
    [stamp] = families["backfill_last_success_timestamp_seconds"].samples
    assert stamp.value == datetime.strptime(acme["finished_at"], "%Y-%m-%dT%H:%M:%SZ"
                                            ).replace(tzinfo=UTC).timestamp() or stamp.value > 0
    [requests] = families["backfill_last_run_requests"].samples
    assert requests.value > 0




async def test_a_workspace_stopped_on_auth_is_alerted_with_the_fix(tmp_path: Path) -> None:
    sim_cfg = parse_config({"workspace": [{"name": "acme", "app_id": "ACME01",
                                           "api_key": "the-rotated-key", "reports": ["Daily"]}]},
                           tmp_path / "sim.toml")
    async with run_simulator(sim_cfg, today=TODAY) as sim, receiver(ok) as hook:
        cfg = write_config(tmp_path, sim.base_url)
        result = await cli("run", str(cfg), "--no-progress", "-q", hook=hook.url)
    assert result.returncode == 1
    [body] = hook.bodies
    [auth] = [b for b in body["blocks"] if "Stopped on authentication" in str(b)]
    assert "fix api_key/secret_key, then run backfill again" in auth["text"]["text"]
    assert "acme: " in body["text"] and "failed (auth" in body["text"]
    assert "k-acme-123" not in json.dumps(body) and "the-rotated-key" not in json.dumps(body)


async def test_stale_counts_the_freshest_run_of_the_main_and_shard_manifests(
        tmp_path: Path) -> None:
    from backfill.monitor import runs

    cfg = write_config(tmp_path)
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=30)
    main = write_manifest(tmp_path, healthy(updated=old))
    main.with_name("manifest.jsonl.runs.json").write_text(
        runs.encode({"acme": runs.WorkspaceRun(old, old)}))
    stale = await cli("status", str(cfg), "--check", "--json")
    assert stale.returncode == 3, stale.stderr.decode()
    assert [p["kind"] for p in json.loads(stale.stdout)["problems"]] == ["stale"]

    # acme was run since by shard 1 of 2 (whose own manifest may live in an object store)
    recent = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    main.with_name("manifest.shard-1-of-2.jsonl.runs.json").write_text(
        runs.encode({"acme": runs.WorkspaceRun(recent, recent)}))
    main.with_name("notashard.jsonl.runs.json").write_text("not read\n")
    fresh = await cli("status", str(cfg), "--check")
    assert fresh.returncode == 0, (fresh.stdout.decode(), fresh.stderr.decode())
    assert fresh.stdout.decode().startswith("OK:")
