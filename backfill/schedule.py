"""When a report is generated, as the dashboard defines it. Pure; no I/O, no clock.

The dashboard offers one-time reports ("as soon as possible" or "at a specific date and
time") and periodic ones (daily, weekly, monthly), each generated at an hour of the
workspace's day. The vendor asks for "some buffer time from the scheduled time" before
fetching. So a report's file for date D is:

    scheduled    D is one of the schedule's dates                 (Schedule.includes)
    ready        from D + at + ready_buffer, workspace local time (Timing.ready_at)

Schedules, as written in the config:

    daily              every day
    weekly:<mon..sun>  one weekday
    monthly:<1..31>    one day of the month; in a shorter month, its last day
                       (monthly:31 is the last day of every month, monthly:30 is
                       February 28/29), the rule calendar tools and cron-style
                       schedulers use for "monthly on the 31st"
    monthly:last       the last day of every month (same as monthly:31)
    once:<D>[,<D>...]  a one-time report, generated on exactly these dates
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ScheduleKind = Literal["daily", "weekly", "monthly", "once"]
DEFAULT_READY_BUFFER = timedelta(minutes=30)  # "some buffer time", as the vendor asks
USAGE = "use 'daily', 'weekly:<mon..sun>', 'monthly:<1..31|last>' or 'once:YYYY-MM-DD[,...]'"


def month_day(value: int, year: int, month: int) -> int:
    """The day a ``monthly:<value>`` report is generated in that month (clamped)."""
    return min(value, calendar.monthrange(year, month)[1])


@dataclass(frozen=True, slots=True)
class Schedule:
    """The dates a report is generated on (see the module docstring)."""

    kind: ScheduleKind = "daily"
    value: int = 0  # weekday 0=Monday for weekly; day of month (1..31) for monthly
    dates: tuple[date, ...] = ()  # once: sorted, unique

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """A schedule from its config text; ValueError naming the text otherwise."""
        t = text.strip().lower()
        if t == "daily":
            return cls()
        kind, _, arg = t.partition(":")
        arg = arg.strip()
        if kind == "weekly" and arg in WEEKDAYS:
            return cls("weekly", WEEKDAYS.index(arg))
        if kind == "monthly" and arg == "last":
            return cls("monthly", 31)
        if kind == "monthly" and arg.isdigit() and 1 <= int(arg) <= 31:
            return cls("monthly", int(arg))
        if kind == "once":
            return cls("once", dates=_once_dates(text, arg))
        raise ValueError(f"{text!r} is not a schedule ({USAGE})")

    def includes(self, day: date) -> bool:
        if self.kind == "weekly":
            return day.weekday() == self.value
        if self.kind == "monthly":
            return day.day == month_day(self.value, day.year, day.month)
        if self.kind == "once":
            return day in self.dates
        return True

    def count(self, first: date, stop: date) -> int:
        """Dates in ``[first, stop)`` on which a file is generated, without a day loop.

        A start typed as 1026 instead of 2026 must not turn ``plan`` into a long count:
        weekly and daily are closed forms, monthly steps months (12 a year).
        """
        n = (stop - first).days
        if n <= 0:
            return 0
        if self.kind == "weekly":
            offset = (self.value - first.weekday()) % 7  # days to the first matching date
            return 0 if offset >= n else (n - 1 - offset) // 7 + 1
        if self.kind == "monthly":
            return _count_monthly(self.value, first, stop)
        if self.kind == "once":
            return sum(first <= d < stop for d in self.dates)
        return n

    def next_on_or_after(self, day: date) -> date | None:
        """The first generation date on or after ``day`` (None: a one-time report is over)."""
        if self.kind == "once":
            return next((d for d in self.dates if d >= day), None)
        if self.kind == "weekly":
            return day + timedelta(days=(self.value - day.weekday()) % 7)
        if self.kind == "monthly":
            y, m = day.year, day.month
            while True:
                hit = date(y, m, month_day(self.value, y, m))
                if hit >= day:
                    return hit
                y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return day

    def last_on_or_before(self, day: date) -> date | None:
        """The last generation date on or before ``day`` (None: a one-time report's
        dates all come later)."""
        if self.kind == "once":
            return next((d for d in reversed(self.dates) if d <= day), None)
        if self.kind == "weekly":
            return day - timedelta(days=(day.weekday() - self.value) % 7)
        if self.kind == "monthly":
            y, m = day.year, day.month
            while True:
                hit = date(y, m, month_day(self.value, y, m))
                if hit <= day:
                    return hit
                y, m = (y - 1, 12) if m == 1 else (y, m - 1)
        return day

    def __str__(self) -> str:
        if self.kind == "weekly":
            return f"weekly:{WEEKDAYS[self.value]}"
        if self.kind == "monthly":
            return f"monthly:{self.value}"
        if self.kind == "once":
            return "once:" + ",".join(d.isoformat() for d in self.dates)
        return "daily"


def _once_dates(text: str, arg: str) -> tuple[date, ...]:
    parts = [a.strip() for a in arg.split(",")]
    if not arg or any(not re.fullmatch(r"\d{4}-\d{2}-\d{2}", a) for a in parts):
        raise ValueError(f"{text!r} is not a schedule (a one-time report is "
                         "'once:YYYY-MM-DD', or several dates separated by commas)")
    try:
        return tuple(sorted({date.fromisoformat(a) for a in parts}))
    except ValueError as exc:
        raise ValueError(f"{text!r} holds an invalid date ({exc})") from None


def _count_monthly(value: int, first: date, stop: date) -> int:
    """Every month strictly between the first and the last has exactly one generation
    date; only the two end months need a look (closed form: no month loop)."""
    last = stop - timedelta(days=1)

    def hit(y: int, m: int) -> int:
        return int(first <= date(y, m, month_day(value, y, m)) <= last)

    months = (last.year * 12 + last.month) - (first.year * 12 + first.month)
    if months == 0:
        return hit(first.year, first.month)
    return hit(first.year, first.month) + hit(last.year, last.month) + months - 1


def parse_clock(text: str) -> time:
    """``HH:MM`` (24-hour) → time; ValueError naming the text otherwise."""
    m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a time of day (use HH:MM, 24-hour, e.g. '09:00')")
    return time(int(m.group(1)), int(m.group(2)))


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1h30m`` or a number of seconds → timedelta."""
    t = text.strip().lower()
    if re.fullmatch(r"\d{1,9}(\.\d+)?", t):  # at most ~30 years: no OverflowError
        return timedelta(seconds=float(t))
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", t)
    if not t or not m:
        raise ValueError(f"{text!r} is not a duration (use e.g. '90s', '30m', '2h' or '1h30m')")
    if any(g and len(g) > 6 for g in m.groups()):
        raise ValueError(f"{text!r} is too long a duration")
    h, mi, s = (int(g) if g else 0 for g in m.groups())
    return timedelta(hours=h, minutes=mi, seconds=s)


@dataclass(frozen=True, slots=True)
class Timing:
    """The hour a report is generated and the margin before it is fetched.

    ``at=None``: the hour is unknown, so a file counts as ready from the start of its
    day (today's file may then answer "not generated yet" and be recorded pending).
    """

    at: time | None = None
    buffer: timedelta = DEFAULT_READY_BUFFER

    def ready_at(self, day: date) -> datetime:
        """Local wall time from which the file of ``day`` is requested."""
        start = datetime.combine(day, self.at or time(0))
        return start + self.buffer if self.at is not None else start

    def ready(self, day: date, now_local: datetime | None) -> bool:
        """Is the file of ``day`` ready at local time ``now_local``? (None: assume so,
        as for a pinned ``--today``, which names a date and no hour.)"""
        if self.at is None or now_local is None:
            return True
        return now_local >= self.ready_at(day)
