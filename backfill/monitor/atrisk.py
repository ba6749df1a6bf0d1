"""The at-risk view: every file not fetched yet whose date is still inside the window,
with the instant it expires. Pure: the manifest's records, the planned windows and
``now`` are arguments.

    source                                  status in the view
    ──────────────────────────────────────  ──────────────────────────────────────────
    record failed                           failed   (retries ran out, auth, bad body)
    record pending                          pending  (today's file, not generated yet)
    record missing                          missing  (a 400 inside the window; re-checked)
    planned date, no record at all          planned  (no run has covered it)

A file drops out of the view once it expires (``summary.expires_at``: the end of its
age-7 day in the workspace's zone) or once a record says completed or expired.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol

from ..planner import Window, requestable, tasks
from ..summary import AtRisk, expires_at

if TYPE_CHECKING:
    from ..journal import Record

UNFETCHED = frozenset({"failed", "pending", "missing"})
PLANNED = "planned"


class Journal(Protocol):
    """What the view reads of a manifest state: its latest records, by key."""

    def __iter__(self) -> Iterator[Record]: ...

    def get(self, key: tuple[str, str]) -> Record | None: ...


def unfetched(journal: Journal, wins: Sequence[Window], zones: Mapping[str, str],
              now: datetime, *, records: Iterable[Record] | None = None) -> list[AtRisk]:
    """Every file at risk at ``now``, soonest expiry first.

    ``wins`` are the planned windows (their ``today`` taken at ``now``); ``zones`` maps a
    workspace name to its time zone (UTC for a workspace the config does not know).
    ``records``: the journal's records that are not completed or expired, when already
    known (``Digest.open``), so the journal is not read again.
    """
    out: list[AtRisk] = []
    for rec in journal if records is None else records:
        if rec.status.value not in UNFETCHED:
            continue
        exp = expires_at(date.fromisoformat(rec.date), zones.get(rec.workspace, "UTC"))
        if exp > now:
            out.append(AtRisk(rec.workspace, rec.filename, rec.status.value, exp, rec.error,
                              rec.report))
    for task in tasks([requestable(w) for w in wins]):
        if not task.kind.requested or journal.get(task.key) is not None:
            continue
        exp = expires_at(task.day, task.workspace.timezone)
        if exp > now:
            out.append(AtRisk(task.workspace.name, task.filename, PLANNED, exp, None,
                              task.report.name))
    out.sort(key=lambda r: (r.expires_at, r.workspace, r.filename))
    return out


@dataclass(frozen=True, slots=True)
class ReportRisk:
    """The at-risk files of one (workspace, report), soonest first."""

    workspace: str
    report: str
    files: tuple[AtRisk, ...]

    @property
    def soonest(self) -> AtRisk:
        return self.files[0]

    @property
    def by_status(self) -> Counter[str]:
        return Counter(r.status for r in self.files)


def by_report(risks: Iterable[AtRisk]) -> list[ReportRisk]:
    """Group the view by (workspace, report); groups ordered by their soonest expiry."""
    groups: dict[tuple[str, str], list[AtRisk]] = {}
    for r in sorted(risks, key=lambda r: r.expires_at):
        groups.setdefault((r.workspace, r.report or ""), []).append(r)
    return [ReportRisk(ws, report, tuple(files)) for (ws, report), files in groups.items()]


def within(risks: Iterable[AtRisk], now: datetime, seconds: float) -> list[AtRisk]:
    """The files that expire within ``seconds`` of ``now``."""
    return [r for r in risks if (r.expires_at - now).total_seconds() <= seconds]
