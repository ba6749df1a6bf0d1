"""Planner properties, checked against a model written here from the spec (design.md)."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backfill import planner
from backfill.config import (
    Config,
    DateSpec,
    HttpSettings,
    Report,
    RetrySettings,
    RunSettings,
    Schedule,
    Secret,
    Timing,
    Workspace,
)
from backfill.planner import Kind, classify, summarize, tasks, today_in, todays, window, windows

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def ws(name: str, reports: list[tuple[str, str]] | list[str], tz: str = "UTC") -> Workspace:
    parsed = tuple(Report(r, Schedule.parse("daily")) if isinstance(r, str)
                   else Report(r[0], Schedule.parse(r[1])) for r in reports)
    return Workspace(name=name, app_id=name.upper(), data_center="01", api_key=Secret("k"),
                     secret_key=Secret("k"), timezone=tz, reports=parsed)


def config(*workspaces: Workspace, start: str = "-7d", end: str = "today") -> Config:
    return Config(path=Path("plan.toml"),
                  run=RunSettings(start=DateSpec.parse(start), end=DateSpec.parse(end)),
                  http=HttpSettings(), retry=RetrySettings(), workspaces=workspaces)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(n) for n in range((last - first).days + 1)]


def scheduled(schedule: str, day: date) -> bool:
    """The spec's schedules, written independently of Schedule.includes."""
    if schedule == "daily":
        return True
    kind, arg = schedule.split(":")
    if kind == "weekly":
        return WEEKDAYS[day.weekday()] == arg
    if kind == "once":
        return day.isoformat() in arg.split(",")
    last_of_month = (day + timedelta(1)).month != day.month
    wanted = 31 if arg == "last" else int(arg)
    return day.day == wanted or (last_of_month and day.day < wanted)


def expected_kind(age: int) -> Kind:
    if age < 0:
        return Kind.FUTURE
    if age <= 6:
        return Kind.FETCHABLE
    if age == 7:
        return Kind.BOUNDARY
    return Kind.EXPIRED


# ----------------------------------------------------------------------- classification

@pytest.mark.parametrize(("age", "kind"), [
    (-400, Kind.FUTURE), (-1, Kind.FUTURE), (0, Kind.FETCHABLE), (3, Kind.FETCHABLE),
    (6, Kind.FETCHABLE), (7, Kind.BOUNDARY), (8, Kind.EXPIRED), (90, Kind.EXPIRED),
])
def test_classify_by_age(age: int, kind: Kind) -> None:
    assert classify(age) is kind
    assert kind.requested == (0 <= age <= 7)


def test_task_fields() -> None:
    w = ws("acme", [("Report - test", "daily")])
    (task,) = tasks(windows(config(w, start="2021-02-17", end="2021-02-17"),
                            {"acme": date(2021, 2, 24)}))
    assert task.filename == "Report_-_test_20210217.zip"
    assert task.day == date(2021, 2, 17)
    assert (task.age, task.kind) == (7, Kind.BOUNDARY)
    assert task.key == ("ACME", "Report_-_test_20210217.zip")
    assert not task.maybe_not_generated
    # a genuine, frozen Task, equal to one made by its own constructor
    assert type(task) is planner.Task and isinstance(task, planner.Task)
    assert task == planner.Task(w, w.reports[0], date(2021, 2, 17),
                                "Report_-_test_20210217.zip", 7, Kind.BOUNDARY)
    assert hash(task) == hash(dataclasses.replace(task))
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.age = 1  # type: ignore[misc]


# ----------------------------------------------------------------------- the model

@dataclass
class Spec:
    reports: list[tuple[str, str]]
    today: date


schedules = st.one_of(
    st.just("daily"),
    st.sampled_from(WEEKDAYS).map(lambda d: f"weekly:{d}"),
    st.integers(1, 31).map(lambda n: f"monthly:{n}"),
    st.just("monthly:last"),
    st.lists(st.dates(date(2025, 6, 1), date(2027, 1, 31)), min_size=1, max_size=4).map(
        lambda ds: "once:" + ",".join(d.isoformat() for d in ds)),
)
date_specs = st.one_of(
    st.dates(date(2025, 6, 1), date(2026, 12, 31)).map(lambda d: d.isoformat()),
    st.integers(0, 200).map(lambda n: f"-{n}d"),
    st.just("today"),
)


@st.composite
def plans(draw: st.DrawFn) -> tuple[list[Spec], str, str]:
    base = draw(st.dates(date(2025, 9, 1), date(2026, 12, 31)))
    specs = []
    for _ in range(draw(st.integers(1, 4))):
        n = draw(st.integers(1, 4))
        reports = [(f"R{i}", draw(schedules)) for i in range(n)]
        specs.append(Spec(reports, base + timedelta(draw(st.integers(-1, 1)))))
    return specs, draw(date_specs), draw(date_specs)


def build(specs: list[Spec], start: str, end: str) -> tuple[Config, dict[str, date]]:
    workspaces = [ws(f"w{i}", s.reports) for i, s in enumerate(specs)]
    return (config(*workspaces, start=start, end=end),
            {f"w{i}": s.today for i, s in enumerate(specs)})


def resolve(spec: str, today: date) -> date:
    if spec == "today":
        return today
    if spec.startswith("-"):
        return today - timedelta(int(spec[1:-1]))
    return date.fromisoformat(spec)


def model(specs: list[Spec], start: str, end: str) -> tuple[
        list[tuple[date, int, int]], dict[tuple[int, int], dict[str, int]]]:
    """Expected (day, report index, workspace index) tasks and per-report counts."""
    expected: list[tuple[date, int, int]] = []
    counts: dict[tuple[int, int], dict[str, int]] = {}
    for w, spec in enumerate(specs):
        requested = days(resolve(start, spec.today), resolve(end, spec.today))
        kept, dropped = requested[-90:], requested[:-90]  # the latest 90 days
        for r, (_, schedule) in enumerate(spec.reports):
            c = counts[w, r] = dict.fromkeys(
                ["dates", "fetch", "boundary", "expired", "future", "today", "dropped"], 0)
            c["dropped"] = sum(scheduled(schedule, d) for d in dropped)
            for d in kept:
                if not scheduled(schedule, d):
                    continue
                expected.append((d, r, w))
                age = (spec.today - d).days
                c["dates"] += 1
                c["future"] += age < 0
                c["fetch"] += 0 <= age <= 7
                c["boundary"] += age == 7
                c["expired"] += age >= 8
                c["today"] += age == 0
    return expected, counts


@settings(max_examples=150, deadline=None)
@given(plans())
def test_tasks_match_the_model_in_dispatch_order(plan: tuple[list[Spec], str, str]) -> None:
    specs, start, end = plan
    cfg, today = build(specs, start, end)
    got = list(tasks(windows(cfg, today)))
    expected, _ = model(specs, start, end)

    index = {w.name: i for i, w in enumerate(cfg.workspaces)}
    keys = [(t.day, int(t.report.name[1:]), index[t.workspace.name]) for t in got]
    # Same tasks; dispatch order = oldest date first, then report round, then workspace.
    assert keys == sorted(expected)
    assert len(got) == len(expected)
    for t in got:
        spec = specs[index[t.workspace.name]]
        assert t.age == (spec.today - t.day).days
        assert t.kind is expected_kind(t.age)
        assert t.filename == f"{t.report.name}_{t.day:%Y%m%d}.zip"
        # Never beyond the 90-day cap.
        assert (resolve(end, spec.today) - t.day).days < 90


@settings(max_examples=150, deadline=None)
@given(plans())
def test_summary_matches_the_model(plan: tuple[list[Spec], str, str]) -> None:
    specs, start, end = plan
    cfg, today = build(specs, start, end)
    wins = windows(cfg, today)
    _, counts = model(specs, start, end)
    summary = summarize(wins)
    assert [p.window.workspace.name for p in summary] == [w.name for w in cfg.workspaces]
    for w, wp in enumerate(summary):
        first, last = resolve(start, specs[w].today), resolve(end, specs[w].today)
        span = (last - first).days + 1
        assert wp.window.dropped_days == max(0, span - 90)
        assert wp.window.requested_start == first
        if span > 90:
            assert wp.window.start == last - timedelta(89)
        for r, rp in enumerate(wp.reports):
            got = {k: getattr(rp, k) for k in counts[w, r]}
            assert got == counts[w, r], (w, r)
            listed = [t.day for t in tasks([wp.window]) if t.report is rp.report]
            assert rp.first == (listed[0] if listed else None)
            assert rp.last == (listed[-1] if listed else None)


def streamed_summary(wins: list[planner.Window]) -> list[planner.WorkspacePlan]:
    """The reference: counts made by streaming every task (how summarize used to work)."""
    plans = {w.workspace.name: planner.WorkspacePlan(
        w, [planner.ReportPlan(r) for r in w.workspace.reports]) for w in wins}
    index = {w.workspace.name: {r.name: i for i, r in enumerate(w.workspace.reports)}
             for w in wins}
    for t in tasks(wins):
        rp = plans[t.workspace.name].reports[index[t.workspace.name][t.report.name]]
        rp.dates += 1
        rp.first = rp.first or t.day
        rp.last = t.day
        if t.kind is Kind.FUTURE:
            rp.future += 1
        elif t.kind is Kind.EXPIRED:
            rp.expired += 1
        else:
            rp.fetch += 1
            rp.boundary += t.kind is Kind.BOUNDARY
            rp.today += t.maybe_not_generated
    for w in wins:
        for rp in plans[w.workspace.name].reports:
            rp.dropped = rp.report.schedule.count(w.requested_start, w.start)
    return list(plans.values())


timings = st.one_of(
    st.just(Timing()),
    st.builds(Timing, st.times().map(lambda t: t.replace(second=0, microsecond=0)),
              st.integers(0, 40 * 24 * 60).map(lambda m: timedelta(minutes=m))),
)


@st.composite
def timed_windows(draw: st.DrawFn) -> list[planner.Window]:
    """Windows with at hours, ready buffers (up to 40 days) and a moment of planning."""
    today = draw(st.dates(date(2025, 9, 1), date(2026, 12, 31)))
    wins = []
    for i in range(draw(st.integers(1, 3))):
        reports = [(f"R{j}", draw(schedules)) for j in range(draw(st.integers(1, 3)))]
        w = ws(f"w{i}", reports)
        w = dataclasses.replace(w, reports=tuple(
            dataclasses.replace(r, timing=draw(timings)) for r in w.reports))
        now = draw(st.none() | st.datetimes(datetime.combine(today, dtime.min),
                                            datetime.combine(today, dtime.max)))
        start, end = (DateSpec.parse(draw(date_specs)) for _ in range(2))
        wins.append(window(w, today, start, end, now.replace(tzinfo=UTC) if now else None))
    return wins


@settings(max_examples=300, deadline=None)
@given(timed_windows())
def test_summary_by_arithmetic_equals_streaming_every_task(wins: list[planner.Window]) -> None:
    assert summarize(wins) == streamed_summary(wins)


def test_cap_keeps_the_latest_90_days() -> None:
    w = ws("acme", ["Daily", ("Weekly", "weekly:mon"), ("Monthly", "monthly:1")])
    today = date(2026, 11, 27)
    wins = windows(config(w, start="2026-01-01", end="today"), {"acme": today})
    (win,) = wins
    # 2026-01-01 .. 2026-11-27 is 331 days; the latest 90 start on 2026-08-30.
    assert (win.start, win.end, win.requested_start) == (
        date(2026, 8, 30), today, date(2026, 1, 1))
    assert win.dropped_days == 241
    (plan,) = summarize(wins)
    daily, weekly, monthly = plan.reports
    assert (daily.dates, daily.dropped) == (90, 241)
    assert (daily.first, daily.last) == (date(2026, 8, 30), today)
    # Mondays 2026-08-31 .. 2026-11-23: 13; Jan 5 .. Aug 24: 34 dropped.
    assert (weekly.dates, weekly.dropped) == (13, 34)
    # 1 Sep, 1 Oct, 1 Nov kept; 1 Jan .. 1 Aug dropped.
    assert (monthly.dates, monthly.dropped) == (3, 8)
    assert (daily.fetch, daily.boundary, daily.expired, daily.today) == (8, 1, 82, 1)


@settings(max_examples=200, deadline=None)
@given(first=st.dates(date(1999, 1, 1), date(2031, 1, 1)), n=st.integers(-3, 800),
       schedule=schedules)
def test_count_scheduled_matches_counting_day_by_day(first: date, n: int, schedule: str) -> None:
    stop = first + timedelta(n)
    expected = sum(scheduled(schedule, d) for d in days(first, stop - timedelta(1))) if n > 0 else 0
    assert Schedule.parse(schedule).count(first, stop) == expected


@settings(max_examples=200, deadline=None)
@given(day=st.dates(date(1999, 1, 1), date(2031, 1, 1)), schedule=schedules)
def test_last_on_or_before_is_the_latest_scheduled_date(day: date, schedule: str) -> None:
    earlier = [d for d in days(day - timedelta(62), day) if scheduled(schedule, d)]
    got = Schedule.parse(schedule).last_on_or_before(day)
    if earlier:
        assert got == earlier[-1]
    else:  # only a one-time report has no date in two months
        assert schedule.startswith("once:") and (got is None or got < day - timedelta(62))


def test_a_start_centuries_back_is_counted_without_walking_every_day() -> None:
    reports = ["Daily", ("Weekly", "weekly:mon"), ("Monthly", "monthly:3")]
    workspaces = [ws(f"w{i}", reports) for i in range(200)]
    today = {w.name: date(2026, 11, 27) for w in workspaces}
    t0 = time.perf_counter()
    plans = summarize(windows(config(*workspaces, start="0001-01-01", end="today"), today))
    assert time.perf_counter() - t0 < 5.0  # day by day: 600 × 740,000 steps, many minutes
    daily, weekly, monthly = plans[-1].reports
    dropped_days = date(2026, 8, 30).toordinal() - date(1, 1, 1).toordinal()
    assert daily.dropped == dropped_days == plans[-1].window.dropped_days
    assert daily.dates == 90
    # 0001-01-01 was a Monday (proleptic Gregorian), and so is 2026-08-31.
    assert date(1, 1, 1).weekday() == 0
    assert weekly.dropped == (dropped_days + 6) // 7
    # The 3rd of every month from January of year 1 to August 2026.
    assert monthly.dropped == 2025 * 12 + 8


def test_start_after_end_plans_nothing() -> None:
    w = ws("acme", ["Daily"])
    wins = windows(config(w, start="2026-11-27", end="2026-11-20"), {"acme": date(2026, 11, 27)})
    assert list(tasks(wins)) == []
    assert wins[0].dropped_days == 0
    assert list(tasks([])) == []


def test_schedules_only_emit_matching_dates() -> None:
    w = ws("acme", [("W", "weekly:sun"), ("M", "monthly:28"), ("D", "daily")])
    today = date(2026, 3, 31)
    got = list(tasks(windows(config(w, start="2026-01-01", end="today"), {"acme": today})))
    by_report: dict[str, list[date]] = {}
    for t in got:
        by_report.setdefault(t.report.name, []).append(t.day)
    assert by_report["M"] == [date(2026, 1, 28), date(2026, 2, 28), date(2026, 3, 28)]
    assert by_report["W"][:2] == [date(2026, 1, 4), date(2026, 1, 11)]  # 4 Jan 2026: Sunday
    assert all(d.weekday() == 6 for d in by_report["W"])
    assert len(by_report["W"]) == 13
    assert len(by_report["D"]) == 90


def test_round_robin_across_workspaces_within_a_date() -> None:
    a, b, c = ws("a", ["R1", "R2"]), ws("b", ["R1"]), ws("c", ["R1", "R2", "R3"])
    day = date(2026, 11, 27)
    got = list(tasks(windows(config(a, b, c, start="today", end="today"),
                             {"a": day, "b": day, "c": day})))
    assert [(t.workspace.name, t.report.name) for t in got] == [
        ("a", "R1"), ("b", "R1"), ("c", "R1"), ("a", "R2"), ("c", "R2"), ("c", "R3")]


def test_windows_filter_and_overrides() -> None:
    a, b = ws("a", ["R"]), ws("b", ["R"])
    today = {"a": date(2026, 11, 27), "b": date(2026, 11, 26)}
    cfg = config(a, b, start="-2d", end="today")
    assert [(w.workspace.name, w.start, w.end) for w in windows(cfg, today)] == [
        ("a", date(2026, 11, 25), date(2026, 11, 27)),
        ("b", date(2026, 11, 24), date(2026, 11, 26))]
    (only_b,) = windows(cfg, today, only=["b"])
    assert only_b.workspace.name == "b"
    (w,) = windows(cfg, today, start=DateSpec.parse("2026-11-01"),
                   end=DateSpec.parse("yesterday"), only=["a"])
    assert (w.start, w.end, w.today) == (date(2026, 11, 1), date(2026, 11, 26), today["a"])


# ----------------------------------------------------------------------- laziness

def huge_windows(n_ws: int = 2000, n_reports: int = 50) -> list[planner.Window]:
    reports = [f"Report {i}" for i in range(n_reports)]
    workspaces = [ws(f"w{i}", reports) for i in range(n_ws)]
    today = date(2026, 11, 27)
    return [window(w, today, DateSpec.parse("-89d"), DateSpec.parse("today"))
            for w in workspaces]  # 2000 × 50 × 90 = 9,000,000 tasks


def test_tasks_is_lazy(monkeypatch: pytest.MonkeyPatch) -> None:
    wins = huge_windows()
    made = 0

    class Counting(planner._Filling):  # every Task is built as one
        __slots__ = ()

        def __init__(self, *fields: Any) -> None:
            nonlocal made
            made += 1
            super().__init__(*fields)

    monkeypatch.setattr(planner, "_Filling", Counting)
    stream = tasks(wins)
    assert inspect.isgenerator(stream)
    assert made == 0
    t0 = time.perf_counter()
    first = list(itertools.islice(stream, 5))
    elapsed = time.perf_counter() - t0
    assert made == 5  # nothing built ahead of what was asked for
    assert elapsed < 2.0  # all 9M would take a minute
    assert [t.workspace.name for t in first] == ["w0", "w1", "w2", "w3", "w4"]
    assert all(t.day == date(2026, 8, 30) for t in first)


# ----------------------------------------------------------------------- time zones

def test_same_instant_different_today_at_the_date_line() -> None:
    kiri = ws("kiri", ["Daily"], tz="Pacific/Kiritimati")  # UTC+14, no DST
    pago = ws("pago", ["Daily"], tz="Pacific/Pago_Pago")   # UTC-11, no DST
    now = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)
    assert (now + timedelta(hours=14)).date() == date(2026, 11, 28)
    assert (now - timedelta(hours=11)).date() == date(2026, 11, 26)
    assert today_in("Pacific/Kiritimati", now) == date(2026, 11, 28)
    assert today_in("Pacific/Pago_Pago", now) == date(2026, 11, 26)
    today = todays([kiri, pago], now)
    assert today == {"kiri": date(2026, 11, 28), "pago": date(2026, 11, 26)}

    # One generation date, two ages: expired in one workspace, fetchable in the other.
    wins = windows(config(kiri, pago, start="2026-11-20", end="2026-11-20"), today)
    kinds = {t.workspace.name: (t.age, t.kind) for t in tasks(wins)}
    assert kinds == {"kiri": (8, Kind.EXPIRED), "pago": (6, Kind.FETCHABLE)}


@pytest.mark.parametrize(("tz", "instant", "expected"), [
    # Europe/Berlin springs forward 2026-03-29 01:00 UTC, falls back 2026-10-25 01:00 UTC.
    ("Europe/Berlin", "2026-03-28T22:59:00+00:00", date(2026, 3, 28)),  # 23:59 CET
    ("Europe/Berlin", "2026-03-28T23:00:00+00:00", date(2026, 3, 29)),  # 00:00 CET
    ("Europe/Berlin", "2026-03-29T21:59:00+00:00", date(2026, 3, 29)),  # 23:59 CEST
    ("Europe/Berlin", "2026-03-29T22:00:00+00:00", date(2026, 3, 30)),  # 00:00 CEST
    ("Europe/Berlin", "2026-10-25T22:59:00+00:00", date(2026, 10, 25)),  # 23:59 CET
    ("Europe/Berlin", "2026-10-25T23:00:00+00:00", date(2026, 10, 26)),
    # America/New_York: 2026-03-08 07:00 UTC forward, 2026-11-01 06:00 UTC back.
    ("America/New_York", "2026-03-09T03:59:00+00:00", date(2026, 3, 8)),  # 23:59 EDT
    ("America/New_York", "2026-03-09T04:00:00+00:00", date(2026, 3, 9)),
    ("America/New_York", "2026-11-02T04:59:00+00:00", date(2026, 11, 1)),  # 23:59 EST
    ("America/New_York", "2026-11-02T05:00:00+00:00", date(2026, 11, 2)),
])
def test_today_across_dst(tz: str, instant: str, expected: date) -> None:
    assert today_in(tz, datetime.fromisoformat(instant)) == expected


@settings(max_examples=150, deadline=None)
@given(
    instant=st.datetimes(datetime(2024, 1, 1), datetime(2028, 12, 31)),
    tz=st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
                        "Pacific/Chatham", "Asia/Kathmandu", "Pacific/Kiritimati",
                        "Pacific/Pago_Pago", "UTC"]),
)
def test_today_in_agrees_with_zoneinfo(instant: datetime, tz: str) -> None:
    now = instant.replace(tzinfo=UTC)
    assert today_in(tz, now) == now.astimezone(ZoneInfo(tz)).date()


@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
@pytest.mark.parametrize("day", [date(2026, 3, 8), date(2026, 3, 29), date(2026, 4, 5),
                                 date(2026, 10, 4), date(2026, 10, 25), date(2026, 11, 1)])
def test_dst_does_not_break_day_counting(tz: str, day: date) -> None:
    # Hour by hour across a transition, 'today' moves by one calendar day at a time ...
    start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=2)
    seen = [today_in(tz, start + timedelta(hours=h)) for h in range(24 * 5)]
    assert all((b - a).days in (0, 1) for a, b in itertools.pairwise(seen))
    assert len(set(seen)) in (5, 6)
    # ... and a window spanning it has one file per calendar day, ages consecutive.
    today = day + timedelta(days=3)
    w = ws("w", ["Daily"], tz=tz)
    got = list(tasks(windows(config(w, start="-10d", end="today"), {"w": today})))
    assert [t.age for t in got] == list(range(10, -1, -1))
    assert [t.day for t in got] == days(today - timedelta(10), today)
