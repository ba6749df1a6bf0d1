"""Tallies of a run or of a manifest, and their stable JSON document (design.md).

``status --json`` and ``run --json`` share :meth:`Summary.document`; ``run`` adds its run
figures (requests, retries, duration_s, ...).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from .config import Workspace
from .journal.record import Record
from .model import EXPIRY_DAYS, Status
from .rejection import RejectedReport

EXIT_REJECTED = 4  # a report rejected as a whole (rejection.py): a configuration problem
STATUSES: tuple[str, ...] = ("completed", "missing", "expired", "failed", "pending")


def expires_at(day: date, tz: str) -> datetime:
    """The instant a file generated on ``day`` can no longer be fetched: the end of its
    age-7 day in the workspace's zone (the planner never requests age ≥ 8)."""
    import pendulum  # here: pendulum's rules for a midnight that does not exist or exists
    # twice (DST); its import (~20 ms) is paid by the first file at risk, not by start-up

    last = day + timedelta(days=EXPIRY_DAYS + 1)
    return pendulum.datetime(last.year, last.month, last.day, tz=tz)


@dataclass(slots=True)
class WorkspaceTally:
    name: str
    app_id: str
    counts: Counter[str] = field(default_factory=Counter)
    bytes: int = 0
    requests: int = 0
    retries: int = 0
    answered: int = 0  # requests that got an HTTP answer
    rejected: int = 0  # ... of which 400
    stopped: str | None = None

    @property
    def flags(self) -> list[str]:
        out = []  # a report rejected as a whole is judged per report: Summary.rejected
        if self.stopped:
            out.append(self.stopped)
        return out

    def row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"name": self.name, "app_id": self.app_id}
        row.update({s: self.counts[s] for s in STATUSES})
        row["bytes"] = self.bytes
        return row


@dataclass(frozen=True, slots=True)
class AtRisk:
    """A file not yet fetched whose date is still inside the window. ``status`` is a
    manifest status, or ``planned`` for a planned date with no record yet."""

    workspace: str
    filename: str
    status: str
    expires_at: datetime
    reason: str | None
    report: str | None = None


@dataclass(slots=True)
class Summary:
    workspaces: dict[str, WorkspaceTally]
    failures: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    retries: int = 0
    duration_s: float = 0.0
    interrupted: bool = False
    outages: int = 0
    throttled: int = 0
    at_risk: list[AtRisk] = field(default_factory=list)
    error: str | None = None
    rejected: list[RejectedReport] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        return {s: sum(t.counts[s] for t in self.workspaces.values()) for s in STATUSES}

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.workspaces.values())

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        if self.error:
            return 1
        if self.rejected:
            return EXIT_REJECTED
        return 1 if self.totals["failed"] else 0

    def document(self, *, run: bool = False) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "totals": self.totals,
            "bytes": self.bytes,
            "workspaces": [t.row() for t in self.workspaces.values()],
        }
        if run:
            for row, t in zip(doc["workspaces"], self.workspaces.values(), strict=True):
                row.update(requests=t.requests, retries=t.retries, flags=t.flags)
            doc.update(
                requests=self.requests, retries=self.retries,
                duration_s=round(self.duration_s, 3), interrupted=self.interrupted,
                outages=self.outages, throttled=self.throttled,
                failures=dict(self.failures.most_common()),
                rejected_reports=[r.document() for r in self.rejected],
            )
        doc["at_risk"] = [
            {"workspace": r.workspace, "filename": r.filename, "status": r.status,
             "expires_at": r.expires_at.isoformat(), "reason": r.reason, "report": r.report}
            for r in self.at_risk
        ]
        return doc


def tally_records(
    records: Iterable[Record], workspaces: Sequence[Workspace], now: datetime
) -> Summary:
    """A summary of a manifest's latest records (``backfill status``)."""
    tallies: dict[str, WorkspaceTally] = {
        ws.name: WorkspaceTally(ws.name, ws.app_id) for ws in workspaces
    }
    zones = {ws.name: ws.timezone for ws in workspaces}
    summary = Summary(tallies)
    for rec in records:
        t = tallies.get(rec.workspace)
        if t is None:
            t = tallies[rec.workspace] = WorkspaceTally(rec.workspace, rec.app_id)
        t.counts[rec.status.value] += 1
        if rec.status is Status.COMPLETED:
            t.bytes += rec.bytes or 0
        elif rec.status is Status.FAILED:
            summary.failures[rec.error or "unknown"] += 1
        if rec.status in (Status.FAILED, Status.PENDING):
            exp = expires_at(date.fromisoformat(rec.date), zones.get(rec.workspace, "UTC"))
            if exp > now:
                summary.at_risk.append(AtRisk(rec.workspace, rec.filename, rec.status.value,
                                              exp, rec.error))
    summary.at_risk.sort(key=lambda r: r.expires_at)
    return summary
