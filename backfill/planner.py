"""The planner: workspaces × reports × generation dates → tasks. Pure; no I/O, no clock.

``today`` is an argument (one per workspace, each computed in the workspace's own time
zone by the caller), so a plan is a function of (config, today) and replays exactly.

Tasks are produced lazily in dispatch order — oldest generation date first (closest to
expiry), and within a date round-robin across workspaces, then reports — so a million
tasks never sit in one list.

Each task's :class:`~backfill.model.Kind` follows its age (see :mod:`backfill.model`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Final

from .config import Config, DateSpec, Report, Workspace
from .errors import ConfigError

# Re-exported: the planner's words (they live in the neutral model).
from .model import EXPIRY_DAYS as EXPIRY_DAYS
from .model import Kind as Kind
from .model import Task as Task
from .model import Window as Window
from .model import classify as classify
from .naming import filename_stem, filename_suffix
from .zones import local

MAX_RANGE_DAYS = 90
# 'today' and a range's last date must lie here, so that stepping a few days (or the
# 90-day cap, or a '-99999d' start) never leaves datetime.date's years 1..9999.
# A start may be any date: it is only compared and counted in closed form.
FIRST_DAY, LAST_DAY = date(1000, 1, 1), date(9000, 12, 31)


def today_in(tz: str, now: datetime) -> date:
    """The calendar date at instant ``now`` in time zone ``tz``."""
    return local(now, tz).date()


def todays(workspaces: Iterable[Workspace], now: datetime) -> dict[str, date]:
    """Per-workspace 'today' at one instant (each in its own zone)."""
    return {ws.name: today_in(ws.timezone, now) for ws in workspaces}


def local_now(tz: str, now: datetime) -> datetime:
    """Wall time (naive) at instant ``now`` in time zone ``tz``."""
    wall = local(now, tz)
    return datetime(wall.year, wall.month, wall.day, wall.hour, wall.minute, wall.second)


def window(ws: Workspace, today: date, start: DateSpec, end: DateSpec,
           now: datetime | None = None) -> Window:
    """Resolve a workspace's range and cap it to the latest 90 days."""
    s, e = start.resolve(today), end.resolve(today)
    capped = max(s, e - timedelta(days=MAX_RANGE_DAYS - 1))
    return Window(ws, today, capped, e, s, local_now(ws.timezone, now) if now else None)


def windows(
    config: Config,
    today: Mapping[str, date],
    *,
    start: DateSpec | None = None,
    end: DateSpec | None = None,
    only: Sequence[str] = (),
    now: datetime | None = None,
) -> list[Window]:
    """One window per selected workspace (all when ``only`` is empty).

    ``now`` is the instant of planning, when known (not for a pinned ``--today``): a
    report with an ``at`` hour is then not requested before ``at`` + ready_buffer.
    """
    s, e = start or config.run.start, end or config.run.end
    chosen = [ws for ws in config.workspaces if not only or ws.name in only]
    for ws in chosen:
        day = today[ws.name]
        last = e.resolve(day) if day >= FIRST_DAY else day
        for what, value in (("today", day), ("end", last)):
            if not FIRST_DAY <= value <= LAST_DAY:
                raise ConfigError(f"{config.path}: {what} {value} is outside the dates "
                                  f"moe-backfill handles ({FIRST_DAY} to {LAST_DAY})")
    return [window(ws, today[ws.name], s, e, now) for ws in chosen]


def requestable(win: Window) -> Window:
    """The part of a window that may be requested (ages 0..7): at most 8 days, so
    iterating it is cheap whatever the range."""
    start = max(win.start, win.today - timedelta(days=EXPIRY_DAYS))
    end = min(win.end, win.today)
    return Window(win.workspace, win.today, start, end, win.requested_start, win.now_local)


def tasks(wins: Sequence[Window]) -> Iterator[Task]:
    """All tasks of the windows, lazily, in dispatch order (oldest date first).

    About 0.5 µs per task: per day the date digits and each window's age and kind are
    worked out once, each report's file-name stem once per run, and a Task is built
    as a :class:`_Filling` (the frozen dataclass's own __init__ goes through
    object.__setattr__ per field: 2.35 s of CPU for 999,000 tasks).
    """
    live = [w for w in wins if w.start <= w.end]
    if not live:
        return
    first = min(w.start for w in live)
    last = max(w.end for w in live)
    # Each report's index of the round: report 0 of every workspace, then report 1, ...
    rounds = max(len(w.workspace.reports) for w in live)
    reports = [[(rep, filename_stem(rep.name), rep.schedule.kind == "daily")
                for rep in w.workspace.reports] for w in live]
    filling, task_class = _Filling, Task
    day, one = first, timedelta(days=1)
    while day <= last:
        suffix = filename_suffix(day)
        active = []
        for w, reps in zip(live, reports, strict=True):
            if w.start <= day <= w.end:
                age = (w.today - day).days
                active.append((w.workspace, reps, len(reps), age, classify(age),
                               w.now_local))
        for r in range(rounds):
            for ws, reps, n, age, kind, now_local in active:
                if r < n:
                    report, stem, daily = reps[r]
                    if daily or report.schedule.includes(day):
                        # before its at hour + ready_buffer a file is FUTURE, like a date
                        # to come: never requested, never recorded
                        ready = now_local is None or report.timing.ready(day, now_local)
                        task = filling(ws, report, day, stem + suffix, age,
                                       kind if ready else Kind.FUTURE)
                        task.__class__ = task_class  # type: ignore[assignment]
                        yield task  # type: ignore[misc]
        day += one


class _Filling:
    """A :class:`Task` being made: the same slots in the same order and a plain
    ``__init__`` (six attribute stores), after which its ``__class__`` becomes Task,
    which CPython allows between classes of the same layout. 0.18 s per million tasks,
    where ``object.__new__`` and the six slot setters took 0.38 s."""

    __slots__ = Task.__slots__

    def __init__(self, workspace: Workspace, report: Report, day: date, filename: str,
                 age: int, kind: Kind) -> None:
        self.workspace = workspace
        self.report = report
        self.day = day
        self.filename = filename
        self.age = age
        self.kind = kind


assert _Filling.__slots__ == ("workspace", "report", "day", "filename", "age", "kind")


@dataclass(slots=True)
class ReportPlan:
    """Counts for one (workspace, report)."""

    report: Report
    dates: int = 0
    fetch: int = 0  # fetchable + boundary: files that will be requested
    boundary: int = 0
    expired: int = 0
    future: int = 0
    today: int = 0  # files generated today that may not exist yet
    dropped: int = 0  # scheduled dates removed by the 90-day cap
    first: date | None = None
    last: date | None = None


@dataclass(slots=True)
class WorkspacePlan:
    window: Window
    reports: list[ReportPlan] = field(default_factory=list)


def summarize(wins: Sequence[Window]) -> list[WorkspacePlan]:
    """Per workspace and report counts: the figures of streaming :func:`tasks`, computed
    by arithmetic on each window's age ranges (closed-form schedule counts; a binary
    search for the first file not ready yet), so a plan of a million files costs
    milliseconds, not a pass over a million tasks (tests check both agree)."""
    plans = {w.workspace.name: WorkspacePlan(w, [ReportPlan(r) for r in w.workspace.reports])
             for w in wins}
    index = {w.workspace.name: {r.name: i for i, r in enumerate(w.workspace.reports)}
             for w in wins}
    for w in wins:
        if w.start > w.end:
            continue
        reports = plans[w.workspace.name].reports
        for report in w.workspace.reports:
            _count(reports[index[w.workspace.name][report.name]], report, w)
    for w in wins:
        for rp in plans[w.workspace.name].reports:
            rp.dropped = rp.report.schedule.count(w.requested_start, w.start)
    return list(plans.values())


_ONE: Final = timedelta(days=1)


def _count(rp: ReportPlan, report: Report, w: Window) -> None:
    """Add one window's files of ``report`` to ``rp`` (see :func:`summarize`)."""
    schedule, today = report.schedule, w.today
    first = schedule.next_on_or_after(w.start)
    last = schedule.last_on_or_before(w.end)
    if first is None or last is None or first > w.end or last < w.start:
        return
    rp.first = first if rp.first is None else min(rp.first, first)
    rp.last = last if rp.last is None else max(rp.last, last)
    # Inclusive date ranges by age (classify), clipped to the window; in each, the files
    # before their at hour + ready_buffer (a suffix of the range: ready_at grows with
    # the date) count as FUTURE, as tasks() makes them.
    boundary = today - timedelta(days=EXPIRY_DAYS)
    for kind, lo, hi in (
        (Kind.EXPIRED, w.start, min(w.end, boundary - _ONE)),
        (Kind.BOUNDARY, max(w.start, boundary), min(w.end, boundary)),
        (Kind.FETCHABLE, max(w.start, boundary + _ONE), min(w.end, today)),
        (Kind.FUTURE, max(w.start, today + _ONE), w.end),
    ):
        if lo > hi:
            continue
        cut = lo if kind is Kind.FUTURE else _first_unready(report, lo, hi, w.now_local)
        ready, unready = schedule.count(lo, cut), schedule.count(cut, hi + _ONE)
        rp.dates += ready + unready
        rp.future += unready
        if kind is Kind.FUTURE:
            rp.future += ready
        elif kind is Kind.EXPIRED:
            rp.expired += ready
        else:
            rp.fetch += ready
            rp.boundary += ready if kind is Kind.BOUNDARY else 0
            rp.today += int(lo <= today < cut and schedule.includes(today))


def _first_unready(report: Report, lo: date, hi: date, now_local: datetime | None) -> date:
    """The first date in ``[lo, hi]`` whose file is not ready at ``now_local`` (``hi`` + 1
    day when all are): a binary search, as readiness only ever turns from yes to no."""
    if now_local is None or report.timing.at is None:
        return hi + _ONE
    ready, low, high = report.timing.ready, 0, (hi - lo).days + 1
    while low < high:
        mid = (low + high) // 2
        if ready(lo + timedelta(days=mid), now_local):
            low = mid + 1
        else:
            high = mid
    return lo + timedelta(days=low)


def next_ready(win: Window) -> tuple[datetime, Report] | None:
    """The workspace's next file to become fetchable: its local ready time and report.

    "Next" is after the moment of planning; with a pinned 'today' (no hour known) every
    file of that date counts as ready, so the answer lies on a later date. None when no
    report will generate another file (one-time reports that are over).
    """
    now = win.now_local or datetime.combine(win.today, time.max)
    best: tuple[datetime, Report] | None = None
    for report in win.workspace.reports:
        day = report.schedule.next_on_or_after(win.today - timedelta(days=1))
        while day is not None and report.timing.ready_at(day) <= now:
            day = report.schedule.next_on_or_after(day + timedelta(days=1))
        if day is not None and (best is None or report.timing.ready_at(day) < best[0]):
            best = (report.timing.ready_at(day), report)
    return best
