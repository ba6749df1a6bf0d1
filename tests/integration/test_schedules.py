"""Schedules end to end: a report with an ``at`` hour is not requested before it (plus the
ready buffer), then is; a one-time report is fetched on its date only. Real simulator."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from backfill.clock import ScaledClock
from backfill.engine import Backfill, Options
from backfill.journal import Status
from backfill.simulator import run_simulator

from .conftest import make_config, manifest_records, pointed_at

pytestmark = pytest.mark.anyio

# 2026-11-27 08:00 in Berlin; the "Morning" report is generated at 09:00 there.
BEFORE = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
AFTER = datetime(2026, 11, 27, 8, 45, tzinfo=UTC)  # 09:45 Berlin: past 09:00 + 30 min


async def run_at(instant: datetime, tmp_path: Path) -> tuple[dict[str, Status], set[str]]:
    """One run at ``instant`` (server and engine agree on the time): the manifest's
    statuses by file name, and the files this run requested."""
    cfg = make_config(tmp_path, [{"name": "acme", "app_id": "ACME01",
                                  "timezone": "Europe/Berlin"}],
                      run={"start": "2026-11-20", "end": "today"},
                      defaults={"reports": [
                          {"name": "Morning", "at": "09:00"},
                          {"name": "Once", "schedule": "once:2026-11-24,2026-12-01"}]})
    async with run_simulator(cfg, today=instant) as sim:
        engine = Backfill(pointed_at(cfg, sim.base_url), Options(),
                          clock=ScaledClock(speed=1.0, start=instant))
        await engine.run()
        asked = {filename for (_, filename, _) in sim.counters.requests}
    return {r.filename: r.status for r in manifest_records(cfg)}, asked


async def test_todays_file_waits_for_its_hour_then_is_fetched(tmp_path: Path) -> None:
    records, asked = await run_at(BEFORE, tmp_path)
    assert "Morning_20261127.zip" not in asked  # not requested before 09:30 ...
    assert "Morning_20261127.zip" not in records  # ... and not recorded pending
    assert records["Morning_20261126.zip"] is Status.COMPLETED
    assert {f for f in records if f.startswith("Once")} == {"Once_20261124.zip"}
    assert records["Once_20261124.zip"] is Status.COMPLETED
    records, asked = await run_at(AFTER, tmp_path)
    assert asked == {"Morning_20261127.zip"}  # the resumed run asks for that one only
    assert records["Morning_20261127.zip"] is Status.COMPLETED
