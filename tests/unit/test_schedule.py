"""Schedules as the dashboard defines them: one-time dates, monthly 29-31, the hour of
generation plus a ready buffer (backfill/schedule.py, and the planner's use of it)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backfill.config import (
    Config,
    Report,
    Secret,
    Workspace,
)
from backfill.model import Kind
from backfill.planner import local_now, next_ready, tasks, today_in, windows
from backfill.schedule import Schedule, Timing, parse_clock, parse_duration

from .test_planner import config  # a Config of these workspaces, dates as in [run]


def ws(*reports: Report, name: str = "acme", tz: str = "UTC") -> Workspace:
    return Workspace(name=name, app_id=name.upper(), data_center="01", api_key=Secret("k"),
                     secret_key=Secret("k"), timezone=tz, reports=reports)


def last_day_of_month(day: date) -> bool:
    return (day + timedelta(days=1)).day == 1


# ------------------------------------------------------------------------- parsing

@pytest.mark.parametrize(("text", "expected"), [
    ("daily", "daily"), ("Weekly:Mon", "weekly:mon"), ("monthly:31", "monthly:31"),
    ("monthly:last", "monthly:31"), ("once:2026-11-20", "once:2026-11-20"),
    ("once:2026-11-27, 2026-11-20,2026-11-27", "once:2026-11-20,2026-11-27"),
])
def test_schedules_parse_and_print_canonically(text: str, expected: str) -> None:
    assert str(Schedule.parse(text)) == expected
    assert Schedule.parse(str(Schedule.parse(text))) == Schedule.parse(text)


@pytest.mark.parametrize("text", [
    "monthly:0", "monthly:32", "monthly:", "weekly:monday", "once:", "once:2026-02-30",
    "once:20261120", "once:2026-11-20,", "hourly", "",
])
def test_bad_schedules_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match=r"schedule|invalid date") as info:
        Schedule.parse(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(("value", "year", "month", "expected"), [
    (31, 2026, 2, 28), (31, 2028, 2, 29), (30, 2026, 2, 28), (29, 2026, 2, 28),
    (31, 2026, 4, 30), (30, 2026, 4, 30), (31, 2026, 1, 31), (15, 2026, 2, 15),
])
def test_monthly_late_days_fall_on_the_last_day_of_a_short_month(
        value: int, year: int, month: int, expected: int) -> None:
    hits = [d for d in range(1, 32)
            if _valid(year, month, d) and Schedule("monthly", value).includes(date(year, month, d))]
    assert hits == [expected]


def _valid(y: int, m: int, d: int) -> bool:
    try:
        date(y, m, d)
    except ValueError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(day=st.dates(date(1999, 1, 1), date(2031, 12, 31)), value=st.integers(1, 31))
def test_monthly_includes_agrees_with_a_last_day_model(day: date, value: int) -> None:
    expected = day.day == value or (last_day_of_month(day) and day.day < value)
    assert Schedule("monthly", value).includes(day) is expected


@settings(max_examples=300, deadline=None)
@given(day=st.dates(date(2000, 1, 1), date(2030, 12, 31)),
       text=st.one_of(st.just("daily"), st.sampled_from(["weekly:mon", "weekly:sun"]),
                      st.integers(1, 31).map(lambda n: f"monthly:{n}"),
                      st.lists(st.dates(date(2000, 1, 1), date(2031, 1, 1)), min_size=1,
                               max_size=5).map(lambda ds: "once:" + ",".join(map(str, ds)))))
def test_next_on_or_after_is_the_first_scheduled_date(day: date, text: str) -> None:
    s = Schedule.parse(text)
    got = s.next_on_or_after(day)
    later = (day + timedelta(n) for n in range(0, 400))
    expected = next((d for d in later if s.includes(d)), None)
    if s.kind == "once" and expected is None:
        assert got is None or got > day + timedelta(399)
    else:
        assert got == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("30m", timedelta(minutes=30)), ("2h", timedelta(hours=2)), ("1h30m", timedelta(minutes=90)),
    ("90s", timedelta(seconds=90)), ("600", timedelta(minutes=10)), ("0", timedelta(0)),
])
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30 minutes", "h", "-5m", "1d", "1" + "0" * 30,
                                  "9999999999h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["9", "24:00", "09:60", "9am", "09:00:00"])
def test_bad_clock_times(text: str) -> None:
    with pytest.raises(ValueError, match="time of day"):
        parse_clock(text)


# ------------------------------------------------------------------- the planner

DAY = date(2026, 11, 27)
AT_9 = Report("Morning", Schedule(), Timing(at=time(9, 0), buffer=timedelta(minutes=30)))


def kinds_at(wall: datetime | None, *reports: Report) -> dict[tuple[str, date], Kind]:
    """Kinds of a UTC workspace's tasks planned at wall time ``wall`` (None: pinned)."""
    w = ws(*reports)
    now = None if wall is None else wall.replace(tzinfo=UTC)
    wins = windows(config(w, start="-1d"), {w.name: DAY}, now=now)
    return {(t.report.name, t.day): t.kind for t in tasks(wins)}


def test_todays_file_is_future_before_at_plus_buffer_and_fetchable_after() -> None:
    before = kinds_at(datetime(2026, 11, 27, 9, 29), AT_9)
    after = kinds_at(datetime(2026, 11, 27, 9, 30), AT_9)
    assert before[("Morning", DAY)] is Kind.FUTURE
    assert after[("Morning", DAY)] is Kind.FETCHABLE
    assert before[("Morning", DAY - timedelta(1))] is Kind.FETCHABLE  # yesterday's is ready


def test_a_report_without_an_hour_is_requested_from_midnight() -> None:
    plain = Report("Plain")
    assert kinds_at(datetime(2026, 11, 27, 0, 1), plain)[("Plain", DAY)] is Kind.FETCHABLE


def test_a_pinned_today_names_no_hour_so_todays_file_counts_as_ready() -> None:
    assert kinds_at(None, AT_9)[("Morning", DAY)] is Kind.FETCHABLE


def test_a_buffer_past_midnight_holds_back_yesterdays_file_too() -> None:
    late = Report("Late", Schedule(), Timing(at=time(23, 50), buffer=timedelta(minutes=30)))
    k = kinds_at(datetime(2026, 11, 27, 0, 10), late)
    assert k[("Late", DAY - timedelta(1))] is Kind.FUTURE
    assert k[("Late", DAY)] is Kind.FUTURE
    assert kinds_at(datetime(2026, 11, 27, 0, 20), late)[("Late", DAY - timedelta(1))] \
        is Kind.FETCHABLE


@settings(max_examples=200, deadline=None)
@given(at=st.times(), buffer_min=st.integers(0, 24 * 60),
       minute=st.integers(0, 2 * 24 * 60 - 1), tz=st.sampled_from(
           ["UTC", "Europe/Berlin", "Asia/Kolkata", "America/New_York"]))
def test_no_request_before_at_plus_buffer(at: time, buffer_min: int, minute: int,
                                          tz: str) -> None:
    timing = Timing(at=at.replace(second=0, microsecond=0),
                    buffer=timedelta(minutes=buffer_min))
    report = Report("R", Schedule(), timing)
    w = ws(report, tz=tz)
    now = datetime(2026, 11, 26, tzinfo=UTC) + timedelta(minutes=minute)
    today = today_in(tz, now)
    wall = local_now(tz, now)
    for t in tasks(windows(config(w, start="-3d"), {w.name: today}, now=now)):
        ready = datetime.combine(t.day, timing.at or time(0)) + timing.buffer
        assert t.kind.requested is (wall >= ready and 0 <= t.age <= 7), (t.day, wall)


def test_a_one_time_report_is_planned_on_its_dates_only_and_expires_like_the_others() -> None:
    once = Report("Once", Schedule.parse("once:2026-11-10,2026-11-25,2026-12-03"))
    w = ws(once)
    got = {t.day: t.kind for t in tasks(windows(config(w, start="2026-11-01", end="2026-12-31"),
                                                {w.name: DAY}))}
    assert got == {date(2026, 11, 10): Kind.EXPIRED, date(2026, 11, 25): Kind.FETCHABLE,
                   date(2026, 12, 3): Kind.FUTURE}


def test_next_ready_names_the_next_file_and_its_local_time() -> None:
    weekly = Report("Weekly", Schedule.parse("weekly:mon"))  # 2026-11-30 is a Monday
    w = ws(AT_9, weekly, tz="Europe/Berlin")
    at_8 = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
    (win,) = windows(config(w), {w.name: DAY}, now=at_8)
    assert next_ready(win) == (datetime(2026, 11, 27, 9, 30), AT_9)
    at_10 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    (win,) = windows(config(w), {w.name: DAY}, now=at_10)
    assert next_ready(win) == (datetime(2026, 11, 28, 9, 30), AT_9)
    over = ws(Report("Once", Schedule.parse("once:2026-11-20")))
    (win,) = windows(config(over), {over.name: DAY}, now=at_10)
    assert next_ready(win) is None


# ------------------------------------------------------------------------ config

def load(toml_text: str) -> Config:
    import tomllib

    from backfill.config import parse_config

    return parse_config(tomllib.loads(toml_text), Path("s.toml"), env={})


BASE = """
[defaults]
api_key = "k"
{defaults}
[[workspace]]
app_id = "ACME01"
reports = [{reports}]
"""


def test_at_and_ready_buffer_from_the_config() -> None:
    cfg = load(BASE.format(defaults='ready_buffer = "1h"', reports=(
        '{ name = "A", at = "09:15" }, { name = "B", at = 06:00:00, ready_buffer = "10m" },'
        '"C", { name = "D", schedule = "once:2026-11-20" }')))
    a, b, c, d = cfg.workspaces[0].reports
    assert a.timing == Timing(time(9, 15), timedelta(hours=1))
    assert b.timing == Timing(time(6, 0), timedelta(minutes=10))
    assert c.timing.at is None and d.timing.at is None
    assert d.schedule.dates == (date(2026, 11, 20),)
    default = load(BASE.format(defaults="", reports='{ name = "A", at = "09:15" }'))
    assert default.workspaces[0].reports[0].timing.buffer == timedelta(minutes=30)


@pytest.mark.parametrize(("defaults", "reports", "needle"), [
    ("", '{ name = "A", at = "9am" }', "reports[0].at"),
    ("", '{ name = "A", at = 9 }', "reports[0].at"),
    ("", '{ name = "A", at = "09:00", ready_buffer = "soon" }', "reports[0].ready_buffer"),
    ('ready_buffer = "3d"', '"A"', "ready_buffer"),
    ('ready_buffer = true', '"A"', "ready_buffer"),
    ("", '{ name = "A", schedule = "once:2026-13-01" }', "reports[0].schedule"),
    ("", '{ name = "A", when = "09:00" }', "when"),
])
def test_bad_timing_is_one_clear_line(defaults: str, reports: str, needle: str) -> None:
    from backfill.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load(BASE.format(defaults=defaults, reports=reports))
    lines = str(info.value).splitlines()
    assert len([ln for ln in lines if needle in ln]) == 1, lines


# --------------------------------------------------------------------- simulator

def test_the_simulator_holds_back_a_report_until_its_hour() -> None:
    from backfill.simulator.catalog import MSG_NOT_YET, Catalog, check_file

    w = ws(AT_9, Report("Plain"), tz="Europe/Berlin")
    entry = Catalog([w]).get("ACME")
    assert entry is not None
    name = "Morning_20261127.zip"
    before = datetime(2026, 11, 27, 8, 59)
    assert check_file(entry, name, DAY, now_local=before) == MSG_NOT_YET
    assert check_file(entry, name, DAY, now_local=datetime(2026, 11, 27, 9, 0)) is None
    assert check_file(entry, "Plain_20261127.zip", DAY, now_local=before) is None
    assert check_file(entry, name, DAY) is None  # a pinned date: generated
