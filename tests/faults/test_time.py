"""Time: the 7-day window when our clock and the server's disagree, and across zones.

The server's clock is pinned with ``sim.set_now`` (each workspace sees its own local
date); ours with ``ScaledClock(start=...)`` and no ``--today``, so the engine works out
each workspace's 'today' itself. Around a local midnight, with our clock off by ±10 minutes
or ±1 day, and in zones 25 hours apart (UTC+14 and UTC−11):

* no request is ever made for a file of age ≥ 8 or < 0 by *our* clock, and every file of
  age 0..7 is requested;
* a file the server still serves is completed with its exact bytes;
* a 400 is classified by our age of the file: 7 → expired, 0 → pending, else missing.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from backfill.clock import ScaledClock
from backfill.engine import Backfill, Options
from backfill.journal import Status
from backfill.naming import report_filename
from backfill.simulator import Faults, Simulator, run_simulator

from .conftest import SMALL, make_config, manifest_records, pointed_at

pytestmark = pytest.mark.anyio

UTC = ZoneInfo("UTC")
MIDNIGHTS = {  # a local midnight in each zone
    "Pacific/Kiritimati": date(2026, 11, 28),  # UTC+14
    "Pacific/Pago_Pago": date(2026, 11, 27),  # UTC−11
    "Europe/Berlin": date(2026, 10, 26),  # the night after the end of summer time
}
SKEWS = {"-1d": timedelta(days=-1), "-10min": timedelta(minutes=-10), "0": timedelta(0),
         "+10min": timedelta(minutes=10), "+1d": timedelta(days=1)}


def local_day(instant: datetime, zone: str) -> date:
    return instant.astimezone(ZoneInfo(zone)).date()


def day_of(filename: str) -> date:
    stamp = filename.rsplit("_", 1)[1][:8]
    return date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:]))


def expected_status(server_age: int, our_age: int, boundary_served: bool) -> Status:
    """The outcome of a request for a file (our age 0..7) on a healthy server."""
    served = 0 <= server_age <= 6 or (server_age == 7 and boundary_served)
    if served:
        return Status.COMPLETED
    return Status.EXPIRED if our_age == 7 else Status.PENDING if our_age == 0 else Status.MISSING


async def run_at(config: object, sim: Simulator, our_now: datetime) -> None:
    cfg = pointed_at(config, sim.base_url)  # type: ignore[arg-type]
    engine = Backfill(cfg, Options(), clock=ScaledClock(speed=1.0, start=our_now))
    summary = await engine.run()
    assert summary.exit_code == 0


def check_window(config: object, sim: Simulator, *, name: str, app_id: str, zone: str,
                 server_now: datetime, our_now: datetime, boundary_served: bool,
                 days: int) -> None:
    """Every file of one workspace against the model in the module docstring."""
    cfg = pointed_at(config, sim.base_url)  # type: ignore[arg-type]
    ours, theirs = local_day(our_now, zone), local_day(server_now, zone)
    records = {r.filename: r for r in manifest_records(cfg) if r.app_id == app_id}
    requested = {f for (a, f, _) in sim.counters.requests if a == app_id}
    for n in range(-2, days + 1):
        day = ours - timedelta(days=n)
        filename = report_filename(SMALL, day)
        our_age, server_age = n, (theirs - day).days
        where = f"{name} {day} (our age {our_age}, server's {server_age})"
        rec = records.get(filename)
        if our_age < 0:
            assert rec is None and filename not in requested, where
            continue
        assert rec is not None, where
        if our_age >= 8:
            assert filename not in requested, f"{where}: requested"
            assert rec.status is Status.EXPIRED and rec.attempts == 0, where
            continue
        assert filename in requested, f"{where}: not requested"
        want = expected_status(server_age, our_age, boundary_served)
        assert rec.status is want, f"{where}: {rec.status.value} {rec.error!r}, want {want}"
        if want is Status.COMPLETED:
            data = (cfg.run.output_dir / (rec.path or "")).read_bytes()
            assert data == sim.expected_body(app_id, filename), where
            assert hashlib.sha256(data).hexdigest() == rec.sha256, where
    assert requested <= {report_filename(SMALL, ours - timedelta(days=n)) for n in range(8)}
    assert not list(cfg.run.output_dir.rglob("*.part"))


@pytest.mark.parametrize("boundary_served", [False, True], ids=["boundary-400", "boundary-200"])
@pytest.mark.parametrize("skew", list(SKEWS.values()), ids=list(SKEWS))
@pytest.mark.parametrize("offset", [timedelta(minutes=-5), timedelta(minutes=5)],
                         ids=["5min-before-midnight", "5min-after"])
@pytest.mark.parametrize("zone", list(MIDNIGHTS))
async def test_seven_day_window_with_our_clock_off(
    tmp_path: Path, zone: str, offset: timedelta, skew: timedelta, boundary_served: bool
) -> None:
    midnight = datetime.combine(MIDNIGHTS[zone], datetime.min.time(), ZoneInfo(zone))
    server_now = (midnight + offset).astimezone(UTC)
    our_now = server_now + skew
    config = make_config(tmp_path, [{"name": "w", "app_id": "W1", "timezone": zone,
                                     "reports": [SMALL]}], run={"start": "-10d"})
    faults = Faults(boundary_available=boundary_served)
    async with run_simulator(config, today=server_now, faults=faults) as sim:
        await run_at(config, sim, our_now)
        check_window(config, sim, name="w", app_id="W1", zone=zone, server_now=server_now,
                     our_now=our_now, boundary_served=boundary_served, days=10)
        # the boundary day by our clock is always tried, at most once on a healthy server
        boundary = report_filename(SMALL, local_day(our_now, zone) - timedelta(days=7))
        assert sum(n for (_, f, _), n in sim.counters.requests.items() if f == boundary) == 1


async def test_zones_25_hours_apart_each_count_their_own_days(tmp_path: Path) -> None:
    """At 10:30 UTC it is already the 28th on Kiritimati and still the 26th in Pago Pago:
    two days apart, in one run; each workspace's window is its own."""
    now = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)
    zones = {"kiri": ("KIRI1", "Pacific/Kiritimati"), "pago": ("PAGO1", "Pacific/Pago_Pago"),
             "utc": ("UTC1", "UTC")}
    config = make_config(tmp_path, [{"name": n, "app_id": a, "timezone": z, "reports": [SMALL]}
                                    for n, (a, z) in zones.items()], run={"start": "-12d"})
    assert local_day(now, "Pacific/Kiritimati") - local_day(now, "Pacific/Pago_Pago") == \
        timedelta(days=2)
    async with run_simulator(config, today=now) as sim:
        await run_at(config, sim, now)
        for name, (app_id, zone) in zones.items():
            check_window(config, sim, name=name, app_id=app_id, zone=zone, server_now=now,
                         our_now=now, boundary_served=False, days=12)
        # one clock, three todays: the newest file differs by zone
        newest = {a: max(day_of(f) for (x, f, _) in sim.counters.requests if x == a)
                  for a, _ in zones.values()}
        assert newest == {"KIRI1": date(2026, 11, 28), "PAGO1": date(2026, 11, 26),
                          "UTC1": date(2026, 11, 27)}


async def test_a_rerun_a_day_later_turns_the_boundary_day_into_expired(tmp_path: Path) -> None:
    """Our clock a day behind labels the server's age-7 file 'missing' (a 400 on our
    age 6); the next day's run re-checks it on its boundary day and records it expired —
    and never asks for anything older."""
    zone = "Pacific/Pago_Pago"
    server_now = datetime(2026, 11, 27, 23, 0, tzinfo=ZoneInfo(zone)).astimezone(UTC)
    config = make_config(tmp_path, [{"name": "w", "app_id": "W1", "timezone": zone,
                                     "reports": [SMALL]}], run={"start": "-9d"})
    async with run_simulator(config, today=server_now) as sim:
        await run_at(config, sim, server_now - timedelta(days=1))
        late = report_filename(SMALL, local_day(server_now, zone) - timedelta(days=7))
        cfg = pointed_at(config, sim.base_url)
        first = {r.filename: r for r in manifest_records(cfg)}
        assert first[late].status is Status.MISSING
        sim.counters.reset()
        await run_at(config, sim, server_now)  # our clock is right again
        second = {r.filename: r for r in manifest_records(cfg)}
        assert second[late].status is Status.EXPIRED
        requested = {f for (_, f, _) in sim.counters.requests}
        today = report_filename(SMALL, local_day(server_now, zone))
        assert requested == {late, today}  # completed files are not fetched again
        for filename, rec in second.items():
            age = (local_day(server_now, zone) - day_of(filename)).days
            assert rec.status is (Status.COMPLETED if age < 7 else Status.EXPIRED), filename


@pytest.mark.parametrize("ahead", [timedelta(days=365), timedelta(days=9)],
                         ids=["today-a-year-ahead", "clock-9-days-fast"])
async def test_a_clock_mistake_loses_no_file(tmp_path: Path, ahead: timedelta) -> None:
    """Our clock ahead records every file expired without a request; the corrected run
    re-derives that (only the server's answer is final) and fetches them all."""
    zone = "Europe/Berlin"
    server_now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    config = make_config(tmp_path, [{"name": "w", "app_id": "W1", "timezone": zone,
                                     "reports": [SMALL]}],
                         run={"start": "2026-11-21", "end": "2026-11-27"})
    async with run_simulator(config, today=server_now) as sim:
        await run_at(config, sim, server_now + ahead)
        cfg = pointed_at(config, sim.base_url)
        first = manifest_records(cfg)
        assert len(first) == 7 and {r.status for r in first} == {Status.EXPIRED}
        assert sim.counters.total == 0
        await run_at(config, sim, server_now)  # the clock is right again
        second = manifest_records(cfg)
        assert len(second) == 7 and {r.status for r in second} == {Status.COMPLETED}
