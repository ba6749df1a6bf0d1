"""Server faults, each alone and mixed at random: no fault loses a file or tears one.

Every scenario ends with :func:`check_promise`: each fetchable file is ``completed`` with
exactly the server's bytes, or ``failed`` with the reason its fault calls for; nothing but
the manifest, its lock and completed files is left under the output directory.

The config has one workspace and two reports over ten days (ages 0..9): ages 0..6 are
fetched, age 7 is tried (the simulator answers 400 there: expired), ages 8 and 9 must never
be requested. One report is served at 10 KiB (stored in one hop), the other at 600 kB (the
chunked storage path), so every body fault hits both write paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web

from backfill.client import Client
from backfill.clock import ScaledClock
from backfill.config import Config, HttpSettings
from backfill.engine import Backfill, Options
from backfill.errors import RedirectError
from backfill.events import Event, FileFinished, HostPaused, HostResumed, RetryScheduled
from backfill.journal import Status
from backfill.planner import Kind
from backfill.simulator import Faults, FirstN, build_body, run_simulator
from backfill.summary import EXIT_REJECTED

from .conftest import (
    BIG,
    SMALL,
    TODAY,
    Outcome,
    big_sizes,
    check_promise,
    make_config,
    planned,
    pointed_at,
    run_engine,
)

pytestmark = pytest.mark.anyio

FOREVER = 10**6
# A fault kind → the reasons a file it hits on every attempt may end with.
TIMEOUT = {"timeout"}
PERMANENT: dict[Any, tuple[set[str], int | None]] = {
    # fault: (failure reasons, attempts per file; None = max_attempts)
    429: ({"http 429"}, None),
    500: ({"http 500"}, None),
    502: ({"http 502"}, None),
    503: ({"http 503"}, None),
    "reset": ({"connection lost"}, None),
    "truncate": ({"connection lost", "invalid body"}, None),
    "truncate_close": ({"invalid body"}, None),
    "html": ({"invalid body"}, None),
    "json": ({"invalid body"}, None),
    "corrupt": ({"invalid body"}, None),
    "close": ({"connection lost"}, None),
    "stall_headers": (TIMEOUT, None),
    "stall_body": (TIMEOUT, None),
    "drip": (TIMEOUT, None),
    "too_large": ({"too large"}, 1),
    "redirect": ({"redirect refused"}, 1),  # to another origin: refused, not followed
    "redirect_loop": ({"redirect refused"}, 1),
}
# Faults the simulator applies before it looks the file up: the age-7 files fail too.
EARLY_FAULTS = (429, 500, 502, 503, "close", "stall_headers")


def config_for(tmp: Path, **sections: dict[str, Any]) -> Any:
    run = {"start": "-9d", "concurrency": 16, "max_file_bytes": 1_000_000}
    run.update(sections.pop("run", {}))
    http = {"connect_timeout_s": 2, "read_timeout_s": 0.3, "file_timeout_s": 0.8}
    http.update(sections.pop("http", {}))
    return make_config(tmp, [{"name": "acme", "app_id": "ACME01", "concurrency": 16,
                              "reports": [SMALL, BIG], "timezone": "Europe/Berlin"}],
                       run=run, http=http, **sections)


def faults_for(config: Any, fault: Any, n: int, **knobs: Any) -> Faults:
    """``fault`` on the first ``n`` attempts at every planned file."""
    names = [t.filename for t in planned(config)]
    return Faults(first_n=[FirstN(name, n, fault) for name in names], sizes=big_sizes(config),
                  stall_s=3.0, drip_interval_s=0.1, too_large_bytes=3_000_000, **knobs)


def served_ages(sim: Any) -> set[int]:
    """Ages (against TODAY) of every file the server was asked for."""
    ages = set()
    for (_, filename, _) in sim.counters.requests:
        stamp = filename.rsplit("_", 1)[1][:8]
        day = TODAY.replace(year=int(stamp[:4]), month=int(stamp[4:6]), day=int(stamp[6:]))
        ages.add((TODAY - day).days)
    return ages


# ---------------------------------------------------------------- each fault alone

RECOVERABLE = [429, 500, 502, 503, "reset", "truncate", "truncate_close", "html", "json",
               "corrupt", "close", "stall_headers", "stall_body", "drip"]


@pytest.mark.parametrize("fault", RECOVERABLE, ids=str)
async def test_a_fault_on_the_first_two_attempts_is_retried_to_the_exact_bytes(
    tmp_path: Path, fault: Any
) -> None:
    # Timeouts open the breaker, which then probes one file at a time; each probe waits
    # out its timeout, so keep the breaker out of the slow cases (it has its own tests).
    threshold = 1000 if fault in ("stall_headers", "stall_body", "drip") else 5
    config = config_for(tmp_path, retry={"max_attempts": 4, "breaker_threshold": threshold})
    async with run_simulator(config, today=TODAY,
                             faults=faults_for(config, fault, 2, retry_after_s=0.5)) as sim:
        cfg = pointed_at(config, sim.base_url)
        with anyio.fail_after(30):
            out = await run_engine(cfg)
        got = check_promise(cfg, sim)  # no failure reason allowed at all
        assert len(got[Status.COMPLETED]) == 14
        assert len(got[Status.EXPIRED]) == 2 * 3  # ages 8, 9 unrequested; age 7 tried (400)
        assert max(served_ages(sim)) == 7
        # the fault really happened, twice per fetched file (the server counts them)
        hits = sum(n for (_, _, kind), n in sim.counters.faults.items() if kind == str(fault))
        assert hits >= 2 * 14
        assert out.summary.retries > 0 and out.summary.exit_code == 0


@pytest.mark.parametrize("fault", list(PERMANENT), ids=str)
async def test_a_fault_on_every_attempt_fails_the_file_with_its_reason(
    tmp_path: Path, fault: Any
) -> None:
    max_attempts = 3
    # A high breaker threshold: each file exhausts its own attempts (the breaker has its
    # own tests below), so the reason recorded is the fault's own.
    # Short timeouts only where a timeout is the fault: elsewhere a slow, loaded machine
    # must not turn one attempt at a too-large body into a timeout and a retry.
    slow = fault in ("stall_headers", "stall_body", "drip")
    http = {} if slow else {"read_timeout_s": 10, "file_timeout_s": 30}
    config = config_for(tmp_path, retry={"max_attempts": max_attempts,
                                         "breaker_threshold": 1000}, http=http)
    async with run_simulator(config, today=TODAY) as other, \
            run_simulator(config, today=TODAY) as sim:
        sim.faults = faults_for(config, fault, FOREVER, redirect_to=other.base_url)
        cfg = pointed_at(config, sim.base_url)
        with anyio.fail_after(60):
            out = await run_engine(cfg)
        reasons, attempts = PERMANENT[fault]
        got = check_promise(cfg, sim, failures=reasons)
        failed = got[Status.FAILED]
        assert len(failed) == (16 if fault in EARLY_FAULTS else 14)
        assert {r.attempts for r in failed} == {attempts or max_attempts}
        assert not got[Status.COMPLETED]
        assert out.summary.exit_code == 1
        assert other.counters.total == 0  # credentials never went to the other origin
        assert max(served_ages(sim)) == 7


@pytest.mark.parametrize("variant", ["seconds", "absent", "http-date"])
async def test_429_retry_after_is_honoured_in_every_form(tmp_path: Path, variant: str) -> None:
    # Capped at 30 s: a date 600 s ahead gives exactly the cap, however far the scaled
    # clock has run ahead of real time by the time the 429 is read.
    config = config_for(tmp_path, retry={"max_attempts": 4, "retry_after_max_s": 30})
    knobs = {"seconds": {"retry_after_s": 2.0}, "absent": {"retry_after_s": None},
             "http-date": {"retry_after_s": 600.0, "retry_after_date": True}}[variant]
    async with run_simulator(config, today=TODAY,
                             faults=faults_for(config, 429, 1, **knobs)) as sim:
        cfg = pointed_at(config, sim.base_url)
        out = await run_engine(cfg)
        check_promise(cfg, sim)
        waits = [e.delay_s for e in out.events if isinstance(e, RetryScheduled)]
        assert len(waits) >= 14
        if variant == "seconds":
            assert min(waits) >= 2.0
        elif variant == "absent":  # plain jittered backoff, bounded by backoff_max_s
            assert max(waits) <= cfg.retry.backoff_max_s
        else:
            assert min(waits) == 30.0


async def test_latency_delays_but_loses_nothing(tmp_path: Path) -> None:
    config = config_for(tmp_path, http={"read_timeout_s": 2.0, "file_timeout_s": 5.0})
    faults = Faults(latency_s=0.1, jitter_s=0.2, sizes=big_sizes(config))
    async with run_simulator(config, today=TODAY, faults=faults) as sim:
        cfg = pointed_at(config, sim.base_url)
        out = await run_engine(cfg)
        got = check_promise(cfg, sim)
        assert len(got[Status.COMPLETED]) == 14 and out.summary.retries == 0


async def test_cross_origin_redirect_with_strip_is_followed_without_credentials(
    tmp_path: Path
) -> None:
    config = config_for(tmp_path, http={"cross_origin_redirects": "strip"})
    async with run_simulator(config, today=TODAY) as other, \
            run_simulator(config, today=TODAY) as sim:
        sim.faults = faults_for(config, "redirect", FOREVER, redirect_to=other.base_url)
        other.faults.sizes = big_sizes(config)
        cfg = pointed_at(config, sim.base_url)
        await run_engine(cfg)
        got = check_promise(cfg, other)  # the bytes are the other origin's
        assert len(got[Status.COMPLETED]) == 14
        assert len(other.counters.redirected_headers) == 14
        for headers in other.counters.redirected_headers:
            lowered = {k.lower() for k in headers}
            assert not lowered & {"authorization", "signature", "moe-appkey"}


# ---------------------------------------------------------------- outages

@pytest.mark.parametrize("mode", ["closed", "refused"])
async def test_an_outage_of_two_seconds_mid_run_pauses_and_loses_nothing(
    tmp_path: Path, mode: str
) -> None:
    # Six attempts with backoff ≤ 0.05 s last far less than the outage: only the breaker
    # pausing the host (instead of burning attempts) lets every file complete.
    config = config_for(tmp_path, run={"concurrency": 4},
                        retry={"max_attempts": 6, "breaker_threshold": 3})
    faults = Faults(latency_s=0.05, sizes=big_sizes(config))
    async with run_simulator(config, today=TODAY, faults=faults) as sim:
        cfg = pointed_at(config, sim.base_url)
        events: list[Event] = []
        engine = Backfill(cfg, Options(today=TODAY), clock=ScaledClock(speed=1.0))
        engine.subscribe(events.append)
        async with anyio.create_task_group() as tg:
            tg.start_soon(engine.run)
            with anyio.fail_after(30):
                await sim.wait_until(lambda c: c.statuses()[200] >= 3)
                sim.start_outage(2.0, mode=mode)  # type: ignore[arg-type]
                await sim.wait_outage_over()
        got = check_promise(cfg, sim)
        assert len(got[Status.COMPLETED]) == 14
        assert any(isinstance(e, HostPaused) for e in events)
        assert any(isinstance(e, HostResumed) for e in events)
        # polite: while down, the host is probed, not hammered: threshold + in flight +
        # one probe per interval (≥ 0.05 s), doubled for aiohttp's silent resend of a GET
        # on a dropped connection (a loop retrying at once would make thousands)
        assert sim.counters.statuses()["outage"] <= 2 * (3 + 4 + 2.0 / 0.05)


async def test_an_outage_longer_than_max_outage_fails_files_and_a_rerun_recovers(
    tmp_path: Path
) -> None:
    config = config_for(tmp_path, retry={"breaker_threshold": 2})
    async with run_simulator(config, today=TODAY, faults=Faults(sizes=big_sizes(config))) as sim:
        cfg = pointed_at(config, sim.base_url)
        sim.start_outage(60.0, mode="refused")
        out = await run_engine(cfg, max_outage_s=5.0)
        got = check_promise(cfg, sim, failures={"outage"})
        assert len(got[Status.FAILED]) == 16 and out.summary.exit_code == 1
        await sim.end_outage()
        await run_engine(cfg)
        got = check_promise(cfg, sim)
        assert len(got[Status.COMPLETED]) == 14


# ---------------------------------------------------------------- mixed at random

MIX = {"rate_429": 0.05, "rate_500": 0.03, "rate_502": 0.03, "rate_503": 0.04,
       "rate_reset": 0.04, "rate_truncate": 0.04, "rate_truncate_close": 0.04,
       "rate_html": 0.03, "rate_json": 0.03, "rate_corrupt": 0.04, "rate_close": 0.04,
       "rate_stall_headers": 0.02, "rate_stall_body": 0.02, "rate_drip": 0.02,
       "rate_too_large": 0.02, "rate_redirect_loop": 0.02, "rate_redirect": 0.02}
ANY_REASON = {"http 429", "http 500", "http 502", "http 503", "connection lost",
              "invalid body", "timeout", "too large", "redirect refused", "outage"}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 23, 42])
async def test_every_fault_mixed_at_random_then_a_clean_rerun(tmp_path: Path, seed: int) -> None:
    """Half the attempts fail in seventeen ways, on three workspaces at once. Whatever
    the seed: completed means the exact bytes; a re-run on a healthy server fetches only
    what is not completed yet, and then everything is."""
    workspaces = [
        {"name": "acme", "app_id": "ACME01", "timezone": "Europe/Berlin", "concurrency": 6},
        {"name": "globex", "app_id": "GLOBEX7", "timezone": "America/New_York",
         "secret_key": "globex-secret"},
        {"name": "initech", "app_id": "INITECH3", "timezone": "Asia/Kolkata",
         "concurrency": 2},
    ]
    config = make_config(tmp_path, workspaces, run={"start": "-9d", "concurrency": 8,
                                                    "max_file_bytes": 1_000_000},
                         http={"read_timeout_s": 0.4, "file_timeout_s": 1.5},
                         retry={"max_attempts": 5})
    async with run_simulator(config, today=TODAY) as other, \
            run_simulator(config, today=TODAY, seed=seed) as sim:
        sim.faults = Faults(**MIX, sizes=big_sizes(config), stall_s=3.0, drip_interval_s=0.25,
                            too_large_bytes=3_000_000, redirect_to=other.base_url,
                            retry_after_s=1.0, missing_rate=0.1)
        cfg = pointed_at(config, sim.base_url)
        with anyio.fail_after(60):
            first = await run_engine(cfg)
        got = check_promise(cfg, sim, failures=ANY_REASON, allow_missing=True)
        assert got[Status.COMPLETED] and sum(sim.counters.faults.values()) > 20
        assert other.counters.total == 0
        assert first.summary.exit_code == (1 if got[Status.FAILED] else 0)

        done = {r.key for r in got[Status.COMPLETED]}
        sim.faults = Faults(sizes=big_sizes(config), missing_rate=0.1)
        sim.counters.reset()
        with anyio.fail_after(30):
            second = await run_engine(cfg)
        got2 = check_promise(cfg, sim, allow_missing=True)
        assert not got2[Status.FAILED] and second.summary.exit_code == 0
        assert {r.key for r in got2[Status.COMPLETED]} >= done
        requested = {(a, f) for (a, f, _) in sim.counters.requests}
        assert not requested & done, "a completed file was fetched again"


# ---------------------------------------------------------------- a hostile server

def _hostile_app(behaviour: dict[str, Any]) -> web.Application:
    """Answers every GET as ``behaviour['mode']`` says; no auth (not under test here)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        behaviour["requests"] = behaviour.get("requests", 0) + 1
        mode = behaviour["mode"]
        resp = web.StreamResponse(headers={"Content-Type": "application/gzip"})
        resp.enable_chunked_encoding()  # no Content-Length: only our own count stops it
        await resp.prepare(request)
        if mode == "endless":
            chunk = b"\0" * 65536
            for _ in range(10_000):  # 650 MB if nobody stops reading
                await resp.write(chunk)
        else:  # a valid zip, chunked
            body = behaviour["body"]
            for i in range(0, len(body), 7777):
                await resp.write(body[i:i + 7777])
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


async def run_against(app: web.Application, config: Config) -> Outcome:
    """The engine against ``app`` on 127.0.0.1: for servers the simulator cannot imitate."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        with anyio.fail_after(30):
            return await run_engine(pointed_at(config, f"http://127.0.0.1:{port}"))
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("mode", ["endless", "valid"])
async def test_a_chunked_body_without_length_is_capped_or_stored_exactly(
    tmp_path: Path, mode: str
) -> None:
    config = config_for(tmp_path, run={"start": "-1d", "end": "-1d", "max_file_bytes": 300_000})
    task = next(t for t in planned(config) if t.report.name == SMALL)
    from backfill.simulator import BodySpec

    body = build_body(BodySpec(0, "ACME01", task.filename, 200_000))
    behaviour: dict[str, Any] = {"mode": mode, "body": body}
    out = await run_against(_hostile_app(behaviour), config)
    rec = out.records[task.filename]
    files = [p for p in config.run.output_dir.rglob("*") if p.is_file()]
    if mode == "endless":
        assert (rec.status, rec.error, rec.attempts) == (Status.FAILED, "too large", 1)
        assert {p.name for p in files} == {"manifest.jsonl", "manifest.jsonl.lock"}
    else:
        assert rec.status is Status.COMPLETED
        assert (config.run.output_dir / (rec.path or "")).read_bytes() == body
        assert not [p for p in files if p.suffix == ".part"]


# ---------------------------------------------------------------- redirect rules

CREDS = {"Authorization": "Basic QUNNRTAxOnRlc3Qta2V5", "Signature": "ab" * 32,
         "MOE-APPKEY": "ACME01", "Accept": "*/*"}
HERE = "https://api-01.moengage.com/campaign_reports/rest_api/ACME01/R_20261127.zip"


@pytest.mark.parametrize(("location", "problem"), [
    ("http://api-01.moengage.com/campaign_reports/rest_api/ACME01/R_20261127.zip",
     "https to http"),
    ("http://evil.example/x", "https to http"),
    ("https://evil.example/x", "another origin"),
    ("//evil.example/x", "another origin"),
    ("https://api-01.moengage.com@evil.example/x", "credentials in the URL"),
    ("https://api-01.moengage.com:8443/x", "another origin"),
    ("ftp://api-01.moengage.com/x", "non-http"),
    ("javascript:alert(1)", "non-http"),
    (HERE, "loop"),
    (None, "without Location"),
    ("", "without Location"),
    # aiohttp raises ValueError on these: one file's bad redirect must not end the run
    ("https://user:pass@api-01.moengage.com/x", "credentials in the URL"),
    ("https://:pass@api-01.moengage.com/x", "credentials in the URL"),
    ("https://[::1/x", "invalid URL"),
    ("https://api-01.moengage.com:99999/x", "invalid URL"),
    ("https://api-01.moengage.com:-1/x", "invalid URL"),
])
def test_refused_redirects(location: str | None, problem: str) -> None:
    client = Client(HttpSettings(), limit=1, limit_per_host=1)
    with pytest.raises(RedirectError, match=problem):
        client._next_hop(HERE, location, dict(CREDS), {HERE}, HERE)


@pytest.mark.parametrize(("location", "target"), [
    ("/elsewhere/R.zip", "https://api-01.moengage.com/elsewhere/R.zip"),
    ("R2.zip", "https://api-01.moengage.com/campaign_reports/rest_api/ACME01/R2.zip"),
    ("https://API-01.moengage.com:443/x", "https://API-01.moengage.com:443/x"),
])
def test_same_origin_redirects_keep_credentials(location: str, target: str) -> None:
    client = Client(HttpSettings(), limit=1, limit_per_host=1)
    url, sent = client._next_hop(HERE, location, dict(CREDS), {HERE}, HERE)
    assert url == target and sent == CREDS


@pytest.mark.parametrize("location", [
    "http://evil.example/x", "http://127.0.0.1:1/x", "http://api-01.moengage.com:8443/x",
])
def test_strip_mode_follows_other_origins_without_any_credential(location: str) -> None:
    here = HERE.replace("https://", "http://")
    client = Client(HttpSettings(cross_origin_redirects="strip"), limit=1, limit_per_host=1)
    url, sent = client._next_hop(here, location, dict(CREDS), {here}, here)
    assert url == location and sent == {"Accept": "*/*"}
    # ... and coming back to the first origin does not bring them back
    _, again = client._next_hop(url, here + "?2", sent, {here, url}, here)
    assert again == {"Accept": "*/*"}


def test_strip_mode_still_refuses_a_downgrade() -> None:
    client = Client(HttpSettings(cross_origin_redirects="strip"), limit=1, limit_per_host=1)
    with pytest.raises(RedirectError, match="https to http"):
        client._next_hop(HERE, "http://evil.example/x", dict(CREDS), {HERE}, HERE)


async def test_no_request_ever_reaches_age_8(tmp_path: Path) -> None:
    config = config_for(tmp_path, run={"start": "-40d"})
    async with run_simulator(config, today=TODAY, faults=Faults(boundary_available=True)) as sim:
        cfg = pointed_at(config, sim.base_url)
        out = await run_engine(cfg)
        got = check_promise(cfg, sim, boundary_served=True)
        assert max(served_ages(sim)) == 7 and len(got[Status.COMPLETED]) == 16
        expired = [t for t in planned(cfg) if t.kind is Kind.EXPIRED]
        assert len(got[Status.EXPIRED]) == len(expired) == 2 * 33
        finished = [e for e in out.events if isinstance(e, FileFinished) and e.fetched]
        assert len(finished) == 16


def _redirecting_app(location: str) -> web.Application:
    """302 to ``location`` (PORT: this server's port); '?hop' answers a valid empty zip."""

    async def handle(request: web.Request) -> web.Response:
        if "hop" in request.query:
            return web.Response(body=b"PK\x05\x06" + b"\0" * 18)
        return web.Response(status=302, headers={
            "Location": location.replace("PORT", str(request.url.port))})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


@pytest.mark.parametrize(("location", "status"), [
    ("http://user:pass@127.0.0.1:PORT/x?hop=1", Status.FAILED),
    ("http://[::1/x", Status.FAILED),
    ("http://127.0.0.1:99999/x", Status.FAILED),
    ("/x?hop=1", Status.COMPLETED),
])
async def test_a_malformed_redirect_fails_one_file_not_the_run(
    tmp_path: Path, location: str, status: Status
) -> None:
    config = config_for(tmp_path, run={"start": "-1d", "end": "-1d"})
    out = await run_against(_redirecting_app(location), config)
    assert {r.status for r in out.records.values()} == {status}
    if status is Status.FAILED:
        assert {r.error for r in out.records.values()} == {"redirect refused"}


def _raw_400_app(body: bytes) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=400, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


@pytest.mark.parametrize("body", [b"[" * 60_000, b'{"error": ' * 20_000, b"\xff\xfe{",
                                  b'{"error": {"message": 12, "request_id": [1]}}', b"null"],
                         ids=["deep-array", "deep-object", "not-utf8", "odd-types", "null"])
async def test_a_hostile_400_body_is_only_a_missing_file(tmp_path: Path, body: bytes) -> None:
    """The 400 body is parsed for the vendor's message: whatever it holds (nesting deep
    enough to exhaust the parser's recursion, bytes that are not text), the file is
    classified by its age and the run goes on."""
    config = config_for(tmp_path, run={"start": "-7d", "end": "-6d"})
    out = await run_against(_raw_400_app(body), config)
    statuses = sorted(r.status.value for r in out.records.values())
    assert statuses == ["expired"] * 2 + ["missing"] * 2
    # every request of the report a 400 and never a file: the run says the report looks
    # rejected as a whole (a wrong name) and exits 4, instead of a silent 0
    assert out.summary.exit_code == EXIT_REJECTED
