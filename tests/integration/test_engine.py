"""The engine against the real simulator over 127.0.0.1 with the real aiohttp client."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path, PurePosixPath

import pytest

from backfill.clock import ScaledClock
from backfill.engine import Backfill, Options
from backfill.events import Event, FileFinished, HostPaused, HostResumed, RetryScheduled, Throttled
from backfill.journal import Status
from backfill.naming import report_filename
from backfill.simulator import Faults, FirstN, run_simulator

from .conftest import TODAY, by_status, make_config, manifest_records, pointed_at

pytestmark = pytest.mark.anyio


def fast() -> ScaledClock:
    return ScaledClock(speed=200)


async def run(config, **opts) -> tuple:  # type: ignore[no-untyped-def]
    events: list[Event] = []
    engine = Backfill(config, Options(today=TODAY, **opts), clock=fast())
    engine.subscribe(events.append)
    summary = await engine.run()
    return summary, events


def on_disk(config) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    root = config.run.output_dir
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*.zip")}


async def test_happy_path_three_workspaces(tmp_path: Path) -> None:
    config = make_config(tmp_path, run={"start": "-12d"})
    async with run_simulator(config, today=TODAY, faults=Faults(missing_rate=0.25)) as sim:
        cfg = pointed_at(config, sim.base_url)
        summary, _ = await run(cfg)
        records = manifest_records(cfg)
        # 3 workspaces × 2 reports × 13 dates; ages 8..12 are expired without a request
        assert len(records) == 3 * 2 * 13
        counts = by_status(records)
        assert counts[Status.EXPIRED] >= 3 * 2 * 5
        assert counts.get(Status.MISSING, 0) > 0
        assert counts.get(Status.FAILED, 0) == 0
        assert summary.totals == {s: counts.get(Status(s), 0) for s in summary.totals}
        assert summary.exit_code == 0
        for (_, filename, _), _n in sim.counters.requests.items():
            day = filename.rsplit("_", 1)[1][:8]
            age = (TODAY - TODAY.replace(year=int(day[:4]), month=int(day[4:6]),
                                         day=int(day[6:]))).days
            assert age <= 7, f"requested {filename} at age {age}"
        # every completed file is on disk with the server's exact bytes
        files = on_disk(cfg)
        completed = [r for r in records if r.status is Status.COMPLETED]
        assert len(files) == len(completed) > 0
        for r in completed:
            assert r.path is not None
            data = files[r.path]
            assert data == sim.expected_body(r.app_id, r.filename)
            assert hashlib.sha256(data).hexdigest() == r.sha256 and len(data) == r.bytes
        assert not list(cfg.run.output_dir.rglob("*.part"))
        # a second run requests only the missing files (re-checked inside the window)
        before = sim.counters.total
        summary2, _ = await run(cfg)
        missing = counts.get(Status.MISSING, 0)
        assert sim.counters.total - before == missing
        assert summary2.totals == summary.totals


async def test_boundary_day_is_tried_and_400_there_is_expired(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"name": "a", "app_id": "A1"}], run={"start": "-7d"})
    async with run_simulator(config, today=TODAY) as sim:
        cfg = pointed_at(config, sim.base_url)
        await run(cfg)
        old = report_filename("Daily campaign summary", TODAY - timedelta(days=7))
        assert sim.counters.requests[("A1", old, 400)] == 1
        rec = {r.filename: r for r in manifest_records(cfg)}[old]
        assert rec.status is Status.EXPIRED and rec.http_status == 400


async def test_today_not_generated_is_pending_and_retried_next_run(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"name": "a", "app_id": "A1"}], run={"start": "today"})
    async with run_simulator(config, today=TODAY, faults=Faults(today_generated=False)) as sim:
        cfg = pointed_at(config, sim.base_url)
        summary, _ = await run(cfg)
        assert summary.totals["pending"] == 2 and summary.exit_code == 0
        sim.faults.today_generated = True
        summary, _ = await run(cfg)
        assert summary.totals["completed"] == 2 and summary.totals["pending"] == 0


async def test_transient_faults_are_retried_to_completion(tmp_path: Path) -> None:
    config = make_config(tmp_path, run={"start": "-6d"}, retry={"max_attempts": 12})
    # 40 % of attempts fail in ten different ways; 12 attempts make a final failure ~1e-5
    faults = Faults(rate_429=0.04, rate_500=0.04, rate_502=0.04, rate_503=0.04,
                    rate_reset=0.04, rate_truncate=0.04, rate_truncate_close=0.04,
                    rate_html=0.04, rate_json=0.04, rate_corrupt=0.04, retry_after_s=0.5)
    async with run_simulator(config, today=TODAY, seed=7, faults=faults) as sim:
        cfg = pointed_at(config, sim.base_url)
        summary, events = await run(cfg)
        records = manifest_records(cfg)
        assert by_status(records) == {Status.COMPLETED: 3 * 2 * 7}
        assert summary.retries > 0 and summary.retries == sum(
            isinstance(e, RetryScheduled) for e in events)
        for r in records:
            assert on_disk(cfg)[r.path or ""] == sim.expected_body(r.app_id, r.filename)
        assert not list(cfg.run.output_dir.rglob("*.part"))


async def test_invalid_body_exhausts_retries_then_fails(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"name": "a", "app_id": "A1"}],
                         run={"start": "-1d", "end": "-1d"}, retry={"max_attempts": 3})
    name = report_filename("Daily campaign summary", TODAY - timedelta(days=1))
    faults = Faults(first_n=[FirstN(name, 99, "html")])
    async with run_simulator(config, today=TODAY, faults=faults) as sim:
        cfg = pointed_at(config, sim.base_url)
        summary, _ = await run(cfg)
        rec = {r.filename: r for r in manifest_records(cfg)}[name]
        assert (rec.status, rec.error, rec.attempts) == (Status.FAILED, "invalid body", 3)
        assert summary.exit_code == 1 and summary.failures["invalid body"] == 1
        assert not list(cfg.run.output_dir.rglob("*.part"))


async def test_too_large_fails_without_retry(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"name": "a", "app_id": "A1"}],
                         run={"start": "-1d", "end": "-1d", "max_file_bytes": 50_000})
    name = report_filename("Daily campaign summary", TODAY - timedelta(days=1))
    faults = Faults(first_n=[FirstN(name, 99, "too_large")], too_large_bytes=200_000)
    async with run_simulator(config, today=TODAY, faults=faults) as sim:
        cfg = pointed_at(config, sim.base_url)
        await run(cfg)
        rec = {r.filename: r for r in manifest_records(cfg)}[name]
        assert (rec.status, rec.error, rec.attempts) == (Status.FAILED, "too large", 1)


async def test_wrong_key_stops_only_that_workspace(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"name": "good", "app_id": "G1"},
                                    {"name": "bad", "app_id": "B1"}], run={"start": "-6d"})
    async with run_simulator(config, today=TODAY) as sim:
        cfg = make_config(tmp_path, [{"name": "good", "app_id": "G1"},
                                     {"name": "bad", "app_id": "B1", "api_key": "wrong"}],
                          run={"start": "-6d"})
        cfg = pointed_at(cfg, sim.base_url)
        summary, _ = await run(cfg)
        bad = summary.workspaces["bad"]
        assert bad.counts["failed"] == 14 and bad.stopped and "401" in bad.stopped
        assert summary.workspaces["good"].counts["completed"] == 14
        # stopped after 3 rejections (plus those already in flight), not 14 requests
        rejected = sum(n for (app, _, st), n in sim.counters.requests.items()
                       if app == "B1" and st == 401)
        assert 3 <= rejected <= 3 + 4
        assert summary.failures["auth"] == 14


async def test_every_request_rejected_is_flagged(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"name": "a", "app_id": "A1"}], run={"start": "-3d"})
    typo = make_config(tmp_path, [{"name": "a", "app_id": "A1",
                                   "reports": ["Daily campaign sumary"]}], run={"start": "-3d"})
    async with run_simulator(config, today=TODAY) as sim:
        summary, _ = await run(pointed_at(typo, sim.base_url))
        [rejected] = summary.rejected
        assert (rejected.workspace, rejected.report) == ("a", "Daily campaign sumary")
        assert summary.exit_code == 4


async def test_retry_after_is_honoured(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"name": "a", "app_id": "A1"}],
                         run={"start": "-1d", "end": "-1d"})
    name = report_filename("Daily campaign summary", TODAY - timedelta(days=1))
    faults = Faults(first_n=[FirstN(name, 2, 429)], retry_after_s=3.0)
    async with run_simulator(config, today=TODAY, faults=faults) as sim:
        cfg = pointed_at(config, sim.base_url)
        summary, events = await run(cfg)
        retries = [e for e in events if isinstance(e, RetryScheduled) and e.filename == name]
        assert len(retries) == 2 and all(e.delay_s >= 3.0 for e in retries)
        assert any(isinstance(e, Throttled) for e in events)
        assert summary.totals["completed"] == 2


@pytest.mark.parametrize(("n_ws", "global_limit"), [(4, 8), (2, 8)])
async def test_limits_are_never_exceeded_and_are_reached(
    tmp_path: Path, n_ws: int, global_limit: int
) -> None:
    workspaces = [{"name": f"w{i}", "app_id": f"APP{i}", "concurrency": 3} for i in range(n_ws)]
    config = make_config(tmp_path, workspaces, run={"start": "-6d",
                                                    "concurrency": global_limit})
    async with run_simulator(config, today=TODAY, faults=Faults(latency_s=0.05)) as sim:
        cfg = pointed_at(config, sim.base_url)
        await run(cfg)
        # the binding limit is reached, and neither is ever exceeded
        assert sim.counters.max_in_flight == min(global_limit, 3 * n_ws)
        per_app = [sim.counters.max_in_flight_by_app[f"APP{i}"] for i in range(n_ws)]
        assert max(per_app) <= 3
        if 3 * n_ws <= global_limit:
            assert per_app == [3] * n_ws


async def test_worker_pool_grows_only_as_far_as_the_slots_let_it(tmp_path: Path) -> None:
    # Each workspace may have 16 requests in flight (a pool of up to 32 workers), but the
    # global limit of 4 binds, so a workspace grows its pool only as far as it can use it.
    workspaces = [{"name": f"w{i}", "app_id": f"APP{i}", "concurrency": 16} for i in range(6)]
    config = make_config(tmp_path, workspaces, run={"start": "-6d", "concurrency": 4})
    async with run_simulator(config, today=TODAY, faults=Faults(latency_s=0.01)) as sim:
        engine = Backfill(pointed_at(config, sim.base_url), Options(today=TODAY), clock=fast())
        summary = await engine.run()
        assert summary.totals["completed"] == 6 * 14
        assert sim.counters.max_in_flight == 4
    # A worker joins only when none is queued: at most the 4 requests in flight, the 4
    # bodies waiting for their commit (commit slots = concurrency), one queued and one
    # just spawned — far below the 32 a fixed pool would start.
    assert engine.last_run is not None
    pools = {name: rt.pool.workers for name, rt in engine.last_run.workspaces.items() if rt.pool}
    assert all(n <= 2 * 4 + 2 for n in pools.values()), pools


async def test_a_file_in_backoff_does_not_hold_up_its_workspace(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"name": "a", "app_id": "A1", "concurrency": 1}],
                         run={"start": "-6d", "end": "-1d"})
    oldest = report_filename("Daily campaign summary", TODAY - timedelta(days=6))
    # one 429 asking for 10 minutes (3 s at the test clock's speed) on the first file
    faults = Faults(first_n=[FirstN(oldest, 1, 429)], retry_after_s=600.0)
    async with run_simulator(config, today=TODAY, faults=faults) as sim:
        summary, events = await run(pointed_at(config, sim.base_url))
    done = [e.filename for e in events if isinstance(e, FileFinished)]
    assert summary.totals["completed"] == 12
    assert done[-1] == oldest  # the other eleven went on while it waited


async def test_per_workspace_rate_is_respected(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"name": "a", "app_id": "A1", "rate": 20.0}],
                         run={"start": "-6d"})
    async with run_simulator(config, today=TODAY) as sim:
        cfg = pointed_at(config, sim.base_url)
        clock = ScaledClock(speed=1.0)  # real time: the spacing is what is measured
        engine = Backfill(cfg, Options(today=TODAY), clock=clock)
        t0 = clock.monotonic()
        await engine.run()
        assert clock.monotonic() - t0 >= (14 - 1) / 20.0 - 0.01


async def test_outage_pauses_the_host_without_burning_attempts(tmp_path: Path) -> None:
    config = make_config(tmp_path, run={"start": "-6d"},
                         retry={"max_attempts": 2, "breaker_threshold": 3})
    async with run_simulator(config, today=TODAY) as sim:
        cfg = pointed_at(config, sim.base_url)
        events: list[Event] = []
        engine = Backfill(cfg, Options(today=TODAY), clock=ScaledClock(speed=20))
        engine.subscribe(events.append)
        sim.start_outage(1.0, mode="refused")
        summary = await engine.run()
        assert summary.totals["completed"] == 42 and summary.totals["failed"] == 0
        assert any(isinstance(e, HostPaused) for e in events)
        assert any(isinstance(e, HostResumed) for e in events)
        assert summary.outages >= 1


async def test_outage_longer_than_max_outage_gives_up(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"name": "a", "app_id": "A1"}], run={"start": "-6d"},
                         retry={"breaker_threshold": 2})
    async with run_simulator(config, today=TODAY) as sim:
        cfg = pointed_at(config, sim.base_url)
        sim.start_outage(30.0, mode="refused")
        engine = Backfill(cfg, Options(today=TODAY, max_outage_s=2.0), clock=fast())
        summary = await engine.run()
        assert summary.totals["failed"] == 14 and summary.exit_code == 1
        assert any("outage" in reason for reason in summary.failures)
        await sim.end_outage()


async def test_cross_origin_redirect_never_carries_credentials(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"name": "a", "app_id": "A1"}],
                         run={"start": "-2d", "end": "-1d"})
    async with run_simulator(config, today=TODAY) as other, \
            run_simulator(config, today=TODAY) as sim:
        sim.faults.rate_redirect = 1.0
        sim.faults.redirect_to = other.base_url
        cfg = pointed_at(config, sim.base_url)
        summary, _ = await run(cfg)
        assert other.counters.total == 0  # refused by default
        assert summary.failures["redirect refused"] == 4
        strip = pointed_at(make_config(tmp_path / "s", [{"name": "a", "app_id": "A1"}],
                                       run={"start": "-2d", "end": "-1d"},
                                       http={"cross_origin_redirects": "strip"}),
                           sim.base_url)
        summary, _ = await run(strip)
        assert summary.totals["completed"] == 4
        assert len(other.counters.redirected_headers) == 4
        for headers in other.counters.redirected_headers:
            lowered = {k.lower() for k in headers}
            assert "authorization" not in lowered and "signature" not in lowered


async def test_stop_interrupts_cleanly_and_a_rerun_resumes(tmp_path: Path) -> None:
    config = make_config(tmp_path, run={"start": "-6d", "concurrency": 2})
    async with run_simulator(config, today=TODAY, faults=Faults(latency_s=0.02)) as sim:
        cfg = pointed_at(config, sim.base_url)
        engine = Backfill(cfg, Options(today=TODAY), clock=fast())
        finished: list[FileFinished] = []

        def stop_after_five(event: Event) -> None:
            if isinstance(event, FileFinished):
                finished.append(event)
                if len(finished) == 5:
                    engine.stop()

        engine.subscribe(stop_after_five)
        summary = await engine.run()
        assert summary.interrupted and summary.exit_code == 130
        done = {r.key for r in manifest_records(cfg) if r.status is Status.COMPLETED}
        assert 5 <= len(done) < 42
        assert not list(cfg.run.output_dir.rglob("*.part"))
        before = dict(sim.counters.requests)
        summary, _ = await run(cfg)
        assert summary.totals["completed"] == 42
        for (app, name, status), n in sim.counters.requests.items():
            if status == 200 and (app, name) in done:
                assert n == before.get((app, name, 200)), f"{name} fetched again"


async def test_verify_catches_a_corrupt_file_and_run_refetches_it(tmp_path: Path) -> None:
    from backfill.verify import verify

    config = make_config(tmp_path, [{"name": "a", "app_id": "A1"}], run={"start": "-2d"})
    async with run_simulator(config, today=TODAY) as sim:
        cfg = pointed_at(config, sim.base_url)
        await run(cfg)
        recs = [r for r in manifest_records(cfg) if r.status is Status.COMPLETED]
        victim, gone = recs[0], recs[1]
        path = cfg.run.output_dir / PurePosixPath(victim.path or "")
        data = bytearray(path.read_bytes())
        data[100] ^= 0xFF
        path.write_bytes(bytes(data))
        (cfg.run.output_dir / PurePosixPath(gone.path or "")).unlink()
        result = await verify(cfg)
        assert {b["filename"] for b in result["bad"]} == {victim.filename, gone.filename}
        after = {r.filename: r for r in manifest_records(cfg)}
        assert after[victim.filename].status is Status.FAILED
        summary, _ = await run(cfg)
        assert summary.totals["failed"] == 0
        assert path.read_bytes() == sim.expected_body("A1", victim.filename)
        assert (await verify(cfg))["bad"] == []


async def test_compaction_only_when_superseded_lines_pile_up(tmp_path: Path) -> None:
    from backfill.journal import load_manifest

    config = make_config(tmp_path, [{"name": "a", "app_id": "A1"}], run={"start": "-6d"},
                         defaults={"reports": ["Daily campaign summary"]})
    async with run_simulator(config, today=TODAY, faults=Faults(missing_rate=0.3)) as sim:
        cfg = pointed_at(config, sim.base_url)
        await run(cfg)
        path = cfg.run.output_dir / "manifest.jsonl"
        first = load_manifest(path)
        missing = sum(r.status is Status.MISSING for r in first)
        assert first.lines == len(first) == 7 and 0 < missing < 7
        # A re-run re-checks the missing files: a few superseded lines are kept ...
        await run(cfg)
        second = load_manifest(path)
        assert len(second) == 7 and second.lines == 7 + missing
        # ... until they are a fifth of the journal; then it is rewritten, one line a file
        text = path.read_bytes()
        path.write_bytes(text * 20)
        await run(cfg)
        third = load_manifest(path)
        assert third.lines == len(third) == 7
        assert {r.key: r.status for r in third} == {r.key: r.status for r in second}
