"""Which files exist: workspaces, their credentials and reports, and the server's clock.

:func:`check_file` is pure: given a workspace, a file name, the workspace's 'today' and the
knobs, it returns the 400 message the real API would give, or None when the file exists.
Age = today (in the workspace's time zone) − the file's generation date, as in api.md.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from ..config import Config, Report, Workspace
from ..model import EXPIRY_DAYS
from ..naming import parse_filename, report_filename
from ..signing import basic_auth, signature

# Bodies the server keeps built in memory (``--cache-bytes``).
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024

# Pure and called on every request with the same few thousand names: memoized.
_parse = functools.lru_cache(maxsize=1 << 16)(parse_filename)
_signature = functools.lru_cache(maxsize=1 << 16)(signature)

MSG_APP = "Invalid APP_ID: no such workspace"
MSG_NAME = "Invalid file name: expected <report name>_<YYYYMMDD>.zip"
MSG_REPORT = "File not found: no report with this name"
MSG_SCHEDULE = "File not found: the report is not generated on this date"
MSG_FUTURE = "File not found: the date is in the future"
MSG_EXPIRED = f"File not found: the report is older than {EXPIRY_DAYS} days"
MSG_NOT_YET = "File not found: the report has not been generated yet"
MSG_MISSING = "File not found: the campaign did not run"


@dataclass(frozen=True, slots=True)
class Entry:
    """One workspace with what the hot path needs precomputed."""

    workspace: Workspace
    authorization: str
    reports: dict[str, Report]  # by file-name stem (spaces → '_')
    zone: ZoneInfo

    def authorized(self, authorization: str | None) -> bool:
        return authorization is not None and hmac.compare_digest(
            authorization.encode(), self.authorization.encode())

    def signed(self, filename: str, sig: str | None) -> bool:
        ws = self.workspace
        expected = _signature(ws.app_id, filename, ws.secret_key.reveal())
        return sig is not None and hmac.compare_digest(sig.encode(), expected.encode())


class Catalog:
    """Workspaces by app id. Accepts a :class:`Config` or any sequence of workspaces."""

    def __init__(self, workspaces: Config | Sequence[Workspace]) -> None:
        items = workspaces.workspaces if isinstance(workspaces, Config) else workspaces
        self.entries: dict[str, Entry] = {}
        for ws in items:
            reports: dict[str, Report] = {}
            for r in ws.reports:
                reports.setdefault(r.name.replace(" ", "_"), r)
            self.entries[ws.app_id] = Entry(
                ws, basic_auth(ws.app_id, ws.api_key.reveal()), reports, ZoneInfo(ws.timezone))

    def get(self, app_id: str) -> Entry | None:
        return self.entries.get(app_id)

    @property
    def workspaces(self) -> list[Workspace]:
        return [e.workspace for e in self.entries.values()]


def check_file(
    entry: Entry, filename: str, today: date, *, boundary_available: bool = False,
    today_generated: bool = True, now_local: datetime | None = None,
) -> str | None:
    """The 400 message for ``filename`` in this workspace on ``today``, or None if it exists.

    ``now_local`` (the workspace's wall time, when the clock knows one) holds back a
    report with an ``at`` hour until that hour: the server has no ready_buffer.

    The missing-file fraction is decided apart (it needs the seed): see ``faults.missing``.
    """
    parsed = _parse(filename)
    if parsed is None:
        return MSG_NAME
    stem, day = parsed
    report = entry.reports.get(stem)
    if report is None or report_filename(report.name, day) != filename:
        return MSG_REPORT
    if not report.schedule.includes(day):
        return MSG_SCHEDULE
    age = (today - day).days
    if age < 0:
        return MSG_FUTURE
    if age > EXPIRY_DAYS or (age == EXPIRY_DAYS and not boundary_available):
        return MSG_EXPIRED
    if age == 0 and not today_generated:
        return MSG_NOT_YET
    at = report.timing.at
    if at is not None and now_local is not None and now_local < datetime.combine(day, at):
        return MSG_NOT_YET
    return None


class Clock:
    """The server's 'today': real time, a pinned instant, or a pinned date for every zone."""

    def __init__(self, today: date | datetime | None = None) -> None:
        self._date: date | None = None
        self._now: datetime | None = None
        if isinstance(today, datetime):
            self.set_now(today)
        elif today is not None:
            self.set_today(today)

    def set_today(self, day: date | None) -> None:
        """Pin the same calendar date in every workspace's zone (None: real time)."""
        self._date, self._now = day, None

    def set_now(self, now: datetime | None) -> None:
        """Pin an instant (naive means UTC); each workspace sees its own local date."""
        if now is not None and now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        self._date, self._now = None, now

    def now_local(self, zone: ZoneInfo) -> datetime | None:
        """Wall time (naive) in ``zone``; None when only a date is pinned."""
        if self._date is not None:
            return None
        return (self._now or datetime.now(UTC)).astimezone(zone).replace(tzinfo=None)

    def today(self, zone: ZoneInfo) -> date:
        if self._date is not None:
            return self._date
        return (self._now or datetime.now(UTC)).astimezone(zone).date()
