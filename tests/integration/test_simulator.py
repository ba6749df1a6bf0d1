"""Contract tests of the simulator over 127.0.0.1 with a plain aiohttp client (api.md)."""

from __future__ import annotations

import asyncio
import csv
import email.utils
import hashlib
import io
import json
import sys
import time
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
import anyio
import pytest
import yarl

from backfill.config import Report, Schedule, Secret, Workspace
from backfill.naming import report_filename
from backfill.signing import basic_auth, signature
from backfill.simulator import Faults, FirstN, Simulator, run_simulator
from backfill.simulator.catalog import (
    MSG_APP,
    MSG_EXPIRED,
    MSG_FUTURE,
    MSG_MISSING,
    MSG_NAME,
    MSG_NOT_YET,
    MSG_REPORT,
    MSG_SCHEDULE,
)

pytestmark = pytest.mark.anyio

TODAY = date(2026, 11, 27)  # a Friday
DAILY = "Daily campaign summary"
WEEKLY = "Weekly push"  # Mondays: 2026-11-23
ODD = "Odd & (names) 100%/sub Ümlaut"


def _ws(name: str, app_id: str, key: str, secret: str, tz: str,
        reports: tuple[Report, ...]) -> Workspace:
    return Workspace(name=name, app_id=app_id, data_center="01", api_key=Secret(key),
                     secret_key=Secret(secret), timezone=tz, reports=reports)


WORKSPACES = (
    _ws("acme", "ACME01", "key-a", "secret-a", "Europe/Berlin",
        (Report(DAILY), Report(WEEKLY, Schedule.parse("weekly:mon")), Report(ODD))),
    _ws("globex", "GLOBEX7", "key-g", "key-g", "America/New_York", (Report(DAILY),)),
)


def fname(report: str = DAILY, age: int = 1) -> str:
    return report_filename(report, TODAY - timedelta(days=age))




@pytest.fixture
async def sim(anyio_backend: str) -> AsyncIterator[Simulator]:
    async with run_simulator(WORKSPACES, seed=7, today=TODAY) as s:
        yield s


@pytest.fixture
async def session(anyio_backend: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def fresh(anyio_backend: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A new connection per request: aiohttp retries a dropped *reused* connection once."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        yield s


async def fetch(session: aiohttp.ClientSession, sim: Simulator, app_id: str, filename: str,
                headers: dict[str, str] | None = None, **kw: Any) -> tuple[int, Any, bytes]:
    url = yarl.URL(sim.url(app_id, filename), encoded=True)
    h = sim.headers(app_id, filename) if headers is None else headers
    async with session.get(url, headers=h, allow_redirects=False, **kw) as r:
        return r.status, r.headers, await r.read()


def csv_rows(body: bytes) -> list[list[str]]:
    zf = zipfile.ZipFile(io.BytesIO(body))
    assert zf.testzip() is None
    [name] = zf.namelist()
    return list(csv.reader(io.StringIO(zf.read(name).decode())))


# ----------------------------------------------------------------------------- success

async def test_success_is_a_valid_zip(sim: Simulator, session: aiohttp.ClientSession) -> None:
    fn = fname()
    status, headers, body = await fetch(session, sim, "ACME01", fn)
    assert status == 200
    assert headers["Content-Type"] == "application/gzip"  # the real API's lie
    assert len(body) == 10 * 1024 == int(headers["Content-Length"])
    rows = csv_rows(body)
    assert rows[0][:4] == ["Campaign ID", "Campaign Name", "Campaign Type", "Channel"]
    assert {"All Platform Sent", "All Platform Clicks", "Conversions", "Revenue"} <= set(rows[0])
    assert len(rows) > 50 and all(len(r) == len(rows[0]) for r in rows)
    assert body == sim.expected_body("ACME01", fn)
    assert sim.counters.requests["ACME01", fn, 200] == 1
    assert sim.counters.bytes_sent == len(body)


async def test_bodies_are_cached(sim: Simulator, session: aiohttp.ClientSession) -> None:
    fn = fname()
    first = await fetch(session, sim, "ACME01", fn)
    misses = sim.cache.misses
    second = await fetch(session, sim, "ACME01", fn)
    assert first[2] == second[2] and sim.cache.misses == misses and sim.cache.hits >= 1


async def test_names_with_reserved_and_non_ascii_characters(
        sim: Simulator, session: aiohttp.ClientSession) -> None:
    fn = fname(ODD)
    assert fn == "Odd_&_(names)_100%/sub_Ümlaut_20261126.zip"
    assert "%2F" in sim.url("ACME01", fn) and "%25" in sim.url("ACME01", fn)
    status, _, body = await fetch(session, sim, "ACME01", fn)
    assert status == 200 and body == sim.expected_body("ACME01", fn)
    assert csv_rows(body)[0][0] == "Campaign ID"


async def test_weekly_report_on_its_day(sim: Simulator, session: aiohttp.ClientSession) -> None:
    status, _, _ = await fetch(session, sim, "ACME01", report_filename(WEEKLY, date(2026, 11, 23)))
    assert status == 200


async def test_large_body_is_streamed_and_valid(
        sim: Simulator, session: aiohttp.ClientSession) -> None:
    fn = fname(age=2)
    size = 20 * 1024 * 1024  # above the 16 MiB streaming threshold
    sim.faults.sizes[fn] = size
    status, headers, body = await fetch(session, sim, "ACME01", fn)
    assert status == 200 and int(headers["Content-Length"]) == size == len(body)
    assert csv_rows(body)[0][0] == "Campaign ID"
    assert (len(body), hashlib.sha256(body).hexdigest()) == sim.expected_digest("ACME01", fn)
    assert len(sim.cache) == 0  # streamed bodies are never held


async def test_same_seed_same_bytes_other_seed_other_bytes(
        session: aiohttp.ClientSession) -> None:
    fn = fname()
    bodies = []
    for seed in (7, 7, 8):
        async with run_simulator(WORKSPACES, seed=seed, today=TODAY) as s:
            bodies.append((await fetch(session, s, "ACME01", fn))[2])
    assert bodies[0] == bodies[1] != bodies[2]


# ----------------------------------------------------------------------------- 401

def _signed_wrong(case: str, fn: str) -> dict[str, str]:
    good = {"Authorization": basic_auth("ACME01", "key-a"),
            "Signature": signature("ACME01", fn, "secret-a")}
    if case == "no authorization":
        del good["Authorization"]
    elif case == "wrong api key":
        good["Authorization"] = basic_auth("ACME01", "key-x")
    elif case == "other workspace's credentials":
        good["Authorization"] = basic_auth("GLOBEX7", "key-g")
    elif case == "not basic":
        good["Authorization"] = "Bearer key-a"
    elif case == "no signature":
        del good["Signature"]
    elif case == "wrong signature":
        good["Signature"] = signature("ACME01", fn, "secret-x")
    elif case == "signed with the api key, not the secret":
        good["Signature"] = signature("ACME01", fn, "key-a")
    elif case == "signature over the encoded name":
        good["Signature"] = signature("ACME01", quote(fn, safe=""), "secret-a")
    elif case == "upper-case signature":
        good["Signature"] = signature("ACME01", fn, "secret-a").upper()
    return good


@pytest.mark.parametrize("case", [
    "no authorization", "wrong api key", "other workspace's credentials", "not basic",
    "no signature", "wrong signature", "signed with the api key, not the secret",
    "signature over the encoded name", "upper-case signature",
])
async def test_bad_credentials_give_401_with_empty_body(
        sim: Simulator, session: aiohttp.ClientSession, case: str) -> None:
    fn = fname(ODD)
    status, headers, body = await fetch(session, sim, "ACME01", fn, _signed_wrong(case, fn))
    assert (status, body) == (401, b"")
    assert headers["Content-Type"] == "application/json"


# ----------------------------------------------------------------------------- 400

@pytest.mark.parametrize(("app_id", "filename", "message"), [
    ("NOPE", fname(), MSG_APP),
    ("ACME01", "Daily_campaign_summary.zip", MSG_NAME),
    ("ACME01", "Daily_campaign_summary_20261340.zip", MSG_NAME),
    ("ACME01", "Daily_campaign_summary_20261126.csv", MSG_NAME),
    ("ACME01", "Daily_campaign_sumary_20261126.zip", MSG_REPORT),
    ("ACME01", "Daily campaign summary_20261126.zip", MSG_REPORT),  # spaces not replaced
    ("GLOBEX7", fname(WEEKLY, age=4), MSG_REPORT),  # another workspace's report
    ("ACME01", report_filename(WEEKLY, date(2026, 11, 24)), MSG_SCHEDULE),
    ("ACME01", fname(age=-1), MSG_FUTURE),
    ("ACME01", fname(age=8), MSG_EXPIRED),
    ("ACME01", fname(age=30), MSG_EXPIRED),
    ("ACME01", fname(age=7), MSG_EXPIRED),  # the boundary day, by default
])
async def test_bad_requests_give_400_json(sim: Simulator, session: aiohttp.ClientSession,
                                          app_id: str, filename: str, message: str) -> None:
    known = sim.catalog.get(app_id) is not None
    headers = sim.headers(app_id, filename) if known else {
        "Authorization": basic_auth(app_id, "key-a"),
        "Signature": signature(app_id, filename, "secret-a")}
    status, h, body = await fetch(session, sim, app_id, filename, headers)
    assert status == 400 and h["Content-Type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["attribute"] == "" and error["type"] == "BAD REQUEST"
    assert error["message"] == message
    assert isinstance(error["request_id"], str) and error["request_id"]


async def test_expired_message_and_unique_request_ids(
        sim: Simulator, session: aiohttp.ClientSession) -> None:
    ids = set()
    for _ in range(3):
        _, _, body = await fetch(session, sim, "ACME01", fname(age=8))
        error = json.loads(body)["error"]
        assert "older than 7 days" in error["message"]
        ids.add(error["request_id"])
    assert len(ids) == 3


async def test_boundary_day_and_todays_file_knobs(
        sim: Simulator, session: aiohttp.ClientSession) -> None:
    assert (await fetch(session, sim, "ACME01", fname(age=0)))[0] == 200
    sim.faults.boundary_available = True
    assert (await fetch(session, sim, "ACME01", fname(age=7)))[0] == 200
    assert (await fetch(session, sim, "ACME01", fname(age=8)))[0] == 400
    sim.faults.today_generated = False
    status, _, body = await fetch(session, sim, "ACME01", fname(age=0))
    assert status == 400 and json.loads(body)["error"]["message"] == MSG_NOT_YET
    assert (await fetch(session, sim, "ACME01", fname(age=1)))[0] == 200


async def test_missing_fraction_is_stable_per_file(
        sim: Simulator, session: aiohttp.ClientSession) -> None:
    sim.faults.missing_rate = 0.5
    files = [fname(r, age) for r in (DAILY, ODD) for age in range(7)]
    first = {fn: (await fetch(session, sim, "ACME01", fn))[0] for fn in files}
    again = {fn: (await fetch(session, sim, "ACME01", fn))[0] for fn in files}
    assert first == again and set(first.values()) == {200, 400}
    missing = next(fn for fn, s in first.items() if s == 400)
    _, _, body = await fetch(session, sim, "ACME01", missing)
    assert json.loads(body)["error"]["message"] == MSG_MISSING


async def test_today_is_taken_in_each_workspace_zone(
        sim: Simulator, session: aiohttp.ClientSession) -> None:
    # 02:00 UTC: already the 27th in Berlin, still the 26th in New York.
    sim.set_now(datetime(2026, 11, 27, 2, 0, tzinfo=UTC))
    assert (await fetch(session, sim, "ACME01", fname(age=0)))[0] == 200
    status, _, body = await fetch(session, sim, "GLOBEX7", fname(age=0))
    assert status == 400 and json.loads(body)["error"]["message"] == MSG_FUTURE
    assert (await fetch(session, sim, "GLOBEX7", fname(age=1)))[0] == 200
    sim.set_today(TODAY + timedelta(days=1))
    assert (await fetch(session, sim, "GLOBEX7", fname(age=0)))[0] == 200


@pytest.mark.parametrize("path", [
    "/", "/campaign_reports/rest_api/ACME01", "/campaign_reports/rest_api/ACME01/a/b.zip",
    "/campaign_report/rest_api/ACME01/Daily_campaign_summary_20261126.zip",
])
async def test_other_paths_give_404(sim: Simulator, session: aiohttp.ClientSession,
                                    path: str) -> None:
    async with session.get(yarl.URL(sim.base_url + path, encoded=True)) as r:
        assert r.status == 404


# ----------------------------------------------------------------------------- faults

@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_status_faults(sim: Simulator, session: aiohttp.ClientSession, status: int) -> None:
    setattr(sim.faults, f"rate_{status}", 1.0)
    code, headers, _ = await fetch(session, sim, "ACME01", fname())
    assert code == status
    assert ("Retry-After" in headers) == (status == 429)
    assert sim.counters.faults["ACME01", fname(), str(status)] == 1


async def test_retry_after_forms(sim: Simulator, session: aiohttp.ClientSession) -> None:
    sim.faults.rate_429 = 1.0
    sim.faults.retry_after_s = 3
    assert (await fetch(session, sim, "ACME01", fname()))[1]["Retry-After"] == "3"
    sim.faults.retry_after_date = True
    value = (await fetch(session, sim, "ACME01", fname()))[1]["Retry-After"]
    when = email.utils.parsedate_to_datetime(value)
    assert 0 <= (when - datetime.now(UTC)).total_seconds() <= 4
    sim.faults.retry_after_s = None
    assert "Retry-After" not in (await fetch(session, sim, "ACME01", fname()))[1]


async def test_first_n_attempts_fail(sim: Simulator, session: aiohttp.ClientSession) -> None:
    fn = fname()
    sim.faults.first_n.append(FirstN(fn, 2, 502, app_id="ACME01"))
    assert [(await fetch(session, sim, "ACME01", fn))[0] for _ in range(3)] == [502, 502, 200]
    assert (await fetch(session, sim, "GLOBEX7", fn))[0] == 200  # other app unaffected
    assert (await fetch(session, sim, "ACME01", fname(age=2)))[0] == 200


async def test_reset_mid_body(sim: Simulator, fresh: aiohttp.ClientSession) -> None:
    sim.faults.rate_reset = 1.0
    with pytest.raises(aiohttp.ClientPayloadError):
        await fetch(fresh, sim, "ACME01", fname())
    await sim.wait_until(lambda c: c.requests["ACME01", fname(), "reset"] == 1)


async def test_truncated_with_content_length(sim: Simulator, fresh: aiohttp.ClientSession) -> None:
    sim.faults.rate_truncate = 1.0
    with pytest.raises(aiohttp.ClientPayloadError, match="received 5120 of 10240"):
        await fetch(fresh, sim, "ACME01", fname())


async def test_truncated_without_content_length_looks_complete(
        sim: Simulator, fresh: aiohttp.ClientSession) -> None:
    sim.faults.rate_truncate_close = 1.0
    status, headers, body = await fetch(fresh, sim, "ACME01", fname())
    assert status == 200 and "Content-Length" not in headers
    assert body == sim.expected_body("ACME01", fname())[:5120]
    assert not zipfile.is_zipfile(io.BytesIO(body))


@pytest.mark.parametrize(("kind", "content_type"), [
    ("html", "text/html"), ("json", "application/json"),
])
async def test_200_with_a_body_that_is_not_a_zip(
        sim: Simulator, session: aiohttp.ClientSession, kind: str, content_type: str) -> None:
    setattr(sim.faults, f"rate_{kind}", 1.0)
    status, headers, body = await fetch(session, sim, "ACME01", fname())
    assert status == 200 and headers["Content-Type"] == content_type
    assert not zipfile.is_zipfile(io.BytesIO(body))
    if kind == "json":
        json.loads(body)


async def test_corrupt_zip(sim: Simulator, session: aiohttp.ClientSession) -> None:
    sim.faults.rate_corrupt = 1.0
    status, headers, body = await fetch(session, sim, "ACME01", fname())
    good = sim.expected_body("ACME01", fname())
    assert status == 200 and headers["Content-Type"] == "application/gzip"
    assert len(body) == len(good) and body != good
    assert sum(a != b for a, b in zip(body, good, strict=True)) == 16
    assert zipfile.ZipFile(io.BytesIO(body)).testzip() is not None  # CRC mismatch


async def test_latency(sim: Simulator, session: aiohttp.ClientSession) -> None:
    sim.faults.latency_s = 0.2
    t = time.monotonic()
    assert (await fetch(session, sim, "ACME01", fname()))[0] == 200
    assert time.monotonic() - t >= 0.19


async def test_stalled_headers(sim: Simulator, session: aiohttp.ClientSession) -> None:
    sim.faults.rate_stall_headers = 1.0
    sim.faults.stall_s = 0.3
    with pytest.raises(asyncio.TimeoutError):
        await fetch(session, sim, "ACME01", fname(), timeout=aiohttp.ClientTimeout(sock_read=0.1))
    t = time.monotonic()
    assert (await fetch(session, sim, "ACME01", fname(age=2)))[0] == 200
    assert time.monotonic() - t >= 0.29


async def test_stalled_body(sim: Simulator, fresh: aiohttp.ClientSession) -> None:
    sim.faults.rate_stall_body = 1.0
    sim.faults.stall_s = 0.3
    t = time.monotonic()
    status, _, body = await fetch(fresh, sim, "ACME01", fname())
    assert status == 200 and body == sim.expected_body("ACME01", fname())
    assert time.monotonic() - t >= 0.29
    url = yarl.URL(sim.url("ACME01", fname(age=2)), encoded=True)
    async with fresh.get(url, headers=sim.headers("ACME01", fname(age=2)),
                         timeout=aiohttp.ClientTimeout(sock_read=0.1)) as r:
        assert r.status == 200
        with pytest.raises(asyncio.TimeoutError):
            await r.read()


async def test_drip_one_byte_at_a_time(sim: Simulator, fresh: aiohttp.ClientSession) -> None:
    sim.faults.rate_drip = 1.0
    sim.faults.drip_interval_s = 0.05
    url = yarl.URL(sim.url("ACME01", fname()), encoded=True)
    async with fresh.get(url, headers=sim.headers("ACME01", fname())) as r:
        assert r.status == 200 and r.content_length == 10 * 1024
        t = time.monotonic()
        got = b""
        while len(got) < 4:
            got += await r.content.read(1)
        assert time.monotonic() - t >= 0.1
        assert got == sim.expected_body("ACME01", fname())[: len(got)]
    with anyio.fail_after(5):  # the client left: the dripping handler ends
        await sim.wait_until(lambda c: c.in_flight == 0)


async def test_close_without_answer(sim: Simulator, fresh: aiohttp.ClientSession) -> None:
    sim.faults.rate_close = 1.0
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await fetch(fresh, sim, "ACME01", fname())
    # aiohttp itself retries a GET once on ServerDisconnectedError: count, don't pin.
    closed = sim.counters.requests["ACME01", fname(), "close"]
    assert closed >= 1 and closed == sim.counters.attempts["ACME01", fname()]


async def test_too_large_and_per_file_sizes(sim: Simulator, session: aiohttp.ClientSession,
                                            ) -> None:
    sim.faults.sizes[fname(age=2)] = 50_000
    status, _, body = await fetch(session, sim, "ACME01", fname(age=2))
    assert status == 200 and len(body) == 50_000 and csv_rows(body)
    sim.faults.size = 2_000
    assert len((await fetch(session, sim, "ACME01", fname(age=3)))[2]) == 2_000
    sim.faults.rate_too_large = 1.0
    sim.faults.too_large_bytes = 300_000
    status, _, body = await fetch(session, sim, "ACME01", fname())
    assert status == 200 and len(body) == 300_000 and csv_rows(body)


async def test_redirect_to_another_origin(sim: Simulator, session: aiohttp.ClientSession) -> None:
    fn = fname(ODD)
    async with run_simulator(WORKSPACES, seed=7, today=TODAY) as other:
        sim.faults.redirect_to = other.base_url
        sim.faults.rate_redirect = 1.0
        status, headers, _ = await fetch(session, sim, "ACME01", fn)
        assert status == 302
        location = headers["Location"]
        assert location.startswith(other.base_url + "/campaign_reports/rest_api/ACME01/")
        # A careful client follows without credentials (a presigned-style target).
        async with session.get(yarl.URL(location, encoded=True)) as r:
            assert r.status == 200 and await r.read() == sim.expected_body("ACME01", fn)
        [seen] = other.counters.redirected_headers
        assert "Authorization" not in seen and "Signature" not in seen
        # A careless one is caught: its credentials are recorded on the other origin.
        async with session.get(yarl.URL(location, encoded=True),
                               headers=sim.headers("ACME01", fn)) as r:
            assert r.status == 200
        assert "Authorization" in other.counters.redirected_headers[1]
        other.faults.redirect_target_auth = True
        async with session.get(yarl.URL(location, encoded=True)) as r:
            assert r.status == 401


async def test_redirect_loop(sim: Simulator, session: aiohttp.ClientSession) -> None:
    sim.faults.rate_redirect_loop = 1.0
    url = yarl.URL(sim.url("ACME01", fname()), encoded=True)
    with pytest.raises(aiohttp.TooManyRedirects):
        async with session.get(url, headers=sim.headers("ACME01", fname()), max_redirects=5):
            pass
    assert sim.counters.requests["ACME01", fname(), 302] >= 5
    status, headers, _ = await fetch(session, sim, "ACME01", fname())
    assert status == 302 and headers["Location"] == sim.url("ACME01", fname()) + "?loop=1"


async def test_outage_closed(sim: Simulator, fresh: aiohttp.ClientSession) -> None:
    sim.start_outage(60, mode="closed")
    assert sim.in_outage
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await fetch(fresh, sim, "ACME01", fname())
    assert sim.counters.requests["ACME01", fname(), "outage"] >= 1
    await sim.end_outage()
    assert (await fetch(fresh, sim, "ACME01", fname()))[0] == 200


async def test_outage_refused_then_back_on_the_same_port(
        sim: Simulator, session: aiohttp.ClientSession) -> None:
    assert (await fetch(session, sim, "ACME01", fname()))[0] == 200  # a kept-alive connection
    sim.start_outage(60, mode="refused")
    with pytest.raises(aiohttp.ClientConnectorError):
        await fetch(session, sim, "ACME01", fname())
    await sim.end_outage()
    assert (await fetch(session, sim, "ACME01", fname()))[0] == 200
    sim.start_outage(0.2, mode="refused")
    with anyio.fail_after(5):
        await sim.wait_outage_over()
    assert (await fetch(session, sim, "ACME01", fname()))[0] == 200


async def test_workspace_rate_limit(sim: Simulator, session: aiohttp.ClientSession) -> None:
    sim.faults.rate_limit = 0.5
    sim.faults.rate_burst = 2
    codes = [(await fetch(session, sim, "ACME01", fname(age=a)))[0] for a in (1, 2, 3)]
    assert codes == [200, 200, 429]
    _, headers, _ = await fetch(session, sim, "ACME01", fname())
    assert headers["Retry-After"] == "2"
    assert (await fetch(session, sim, "GLOBEX7", fname()))[0] == 200  # its own bucket


async def test_fault_decisions_do_not_depend_on_request_order(
        session: aiohttp.ClientSession) -> None:
    files = [fname(r, a) for r in (DAILY, ODD) for a in range(7)]

    async def outcomes(seed: int, order: list[str]) -> dict[str, list[int]]:
        async with run_simulator(WORKSPACES, seed=seed, today=TODAY,
                                 faults=Faults(rate_503=0.3, rate_429=0.2)) as s:
            got: dict[str, list[int]] = {fn: [] for fn in files}
            for _ in range(2):
                for fn in order:
                    got[fn].append((await fetch(session, s, "ACME01", fn))[0])
            return got

    forward = await outcomes(1, files)
    assert forward == await outcomes(1, files[::-1])
    assert forward != await outcomes(2, files)
    assert {s for v in forward.values() for s in v} == {200, 429, 503}


async def test_in_flight_counters(sim: Simulator, session: aiohttp.ClientSession) -> None:
    sim.faults.latency_s = 0.2
    jobs = [("ACME01", fname(age=a)) for a in range(6)] + [("GLOBEX7", fname(age=a))
                                                           for a in range(3)]
    results = await asyncio.gather(*(fetch(session, sim, a, f) for a, f in jobs))
    assert [r[0] for r in results] == [200] * 9
    c = sim.counters
    assert (c.total, c.in_flight, c.max_in_flight) == (9, 0, 9)
    assert c.max_in_flight_by_app == {"ACME01": 6, "GLOBEX7": 3}
    assert c.statuses() == {200: 9}
    c.reset()
    assert (c.total, c.max_in_flight, len(c.requests)) == (0, 0, 0)


# ----------------------------------------------------------------------------- CLI

async def test_cli_prints_base_url_first_and_stops_on_sigterm(
        session: aiohttp.ClientSession) -> None:
    import signal

    cmd = [sys.executable, "-m", "backfill.simulator.cli", "--today", "2026-11-27",
           "--seed", "3"]
    async with await anyio.open_process(cmd) as proc:
        assert proc.stdout is not None
        with anyio.fail_after(20):
            line = b""
            while not line.endswith(b"\n"):
                line += await proc.stdout.receive(1)
        base = line.decode().strip()
        assert base.startswith("http://127.0.0.1:")
        fn = fname()
        url = f"{base}/campaign_reports/rest_api/ACME01/{fn}"
        headers = {"Authorization": basic_auth("ACME01", "demo-api-key"),
                   "Signature": signature("ACME01", fn, "demo-api-key")}
        async with session.get(url, headers=headers) as r:
            assert r.status == 200 and zipfile.is_zipfile(io.BytesIO(await r.read()))
        proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(20):
            assert await proc.wait() == 0
