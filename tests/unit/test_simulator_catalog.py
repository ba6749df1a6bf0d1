"""Which files exist: the pure check, by age in the workspace's zone, and the clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from backfill.config import Report, Schedule, Secret, Workspace
from backfill.naming import report_filename
from backfill.signing import basic_auth, signature
from backfill.simulator.catalog import (
    MSG_EXPIRED,
    MSG_FUTURE,
    MSG_NAME,
    MSG_NOT_YET,
    MSG_REPORT,
    MSG_SCHEDULE,
    Catalog,
    Clock,
    check_file,
)

TODAY = date(2026, 11, 27)
WS = Workspace(name="w", app_id="APP", data_center="01", api_key=Secret("k"),
               secret_key=Secret("s"), timezone="Asia/Kolkata",
               reports=(Report("Daily summary"), Report("Monthly", Schedule.parse("monthly:3"))))
ENTRY = Catalog([WS]).entries["APP"]


@pytest.mark.parametrize(("age", "expected"), [
    (-1, MSG_FUTURE), (0, None), (6, None), (7, MSG_EXPIRED), (8, MSG_EXPIRED),
])
def test_age_rules(age: int, expected: str | None) -> None:
    fn = report_filename("Daily summary", TODAY - timedelta(days=age))
    assert check_file(ENTRY, fn, TODAY) == expected


def test_knobs() -> None:
    assert check_file(ENTRY, report_filename("Daily summary", TODAY - timedelta(7)), TODAY,
                      boundary_available=True) is None
    assert check_file(ENTRY, report_filename("Daily summary", TODAY), TODAY,
                      today_generated=False) == MSG_NOT_YET


def test_names_and_schedules() -> None:
    assert check_file(ENTRY, "nonsense", TODAY) == MSG_NAME
    assert check_file(ENTRY, "Daily_summary_20261127.zip", TODAY) is None
    assert check_file(ENTRY, "Daily summary_20261127.zip", TODAY) == MSG_REPORT
    assert check_file(ENTRY, "Monthly_20261126.zip", TODAY) == MSG_SCHEDULE
    assert check_file(ENTRY, "Monthly_20261203.zip", date(2026, 12, 5)) is None


def test_credentials() -> None:
    assert ENTRY.authorized(basic_auth("APP", "k")) and not ENTRY.authorized(None)
    assert not ENTRY.authorized(basic_auth("APP", "s"))
    assert ENTRY.signed("x.zip", signature("APP", "x.zip", "s"))
    assert not ENTRY.signed("x.zip", signature("APP", "x.zip", "k"))
    assert not ENTRY.signed("x.zip", None)


def test_clock() -> None:
    zone, ny = ZoneInfo("Asia/Kolkata"), ZoneInfo("America/New_York")
    clock = Clock(TODAY)
    assert clock.today(zone) == clock.today(ny) == TODAY
    clock.set_now(datetime(2026, 11, 27, 20, 0))  # naive = UTC
    assert (clock.today(zone), clock.today(ny)) == (date(2026, 11, 28), TODAY)
    clock.set_today(None)
    assert clock.today(ZoneInfo("UTC")) == datetime.now(UTC).date()
    assert Clock(datetime(2026, 1, 1, 3, tzinfo=UTC)).today(ny) == date(2025, 12, 31)
