"""The recorder: one outcome value in, one journal record and one tally entry out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import anyio

from ..clock import Clock
from ..events import Event, FileFinished
from ..journal import Journal, Record
from ..model import Status, Task
from ..rejection import RejectionJudge
from ..store import Stored
from ..summary import AtRisk, Summary, expires_at
from .workspace import WorkspaceRun


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What became of one file in this run: everything its record says."""

    task: Task
    status: Status
    attempts: int = 0  # requests made for it (this run)
    stored: Stored | None = None  # for COMPLETED
    http_status: int | None = None
    reason: str | None = None  # the record's error (not kept for COMPLETED)
    request_id: str | None = None
    fetched: bool = False  # False: recorded without a request


class Recorder:
    """Writes outcomes to the journal and counts every file into the run's summary."""

    def __init__(
        self, journal: Journal, summary: Summary, clock: Clock,
        emit: Callable[[Event], None], listening: Callable[[], bool] = lambda: True,
    ) -> None:
        self._journal = journal
        self._summary = summary
        self._clock = clock
        self._emit = emit
        self._listening = listening  # False: nobody subscribed, skip building events
        self.judge = RejectionJudge()  # every planned file's record: reports rejected whole

    async def record(self, rt: WorkspaceRun, outcome: FileOutcome) -> None:
        task, stored = outcome.task, outcome.stored
        rec = Record(
            workspace=rt.ws.name, app_id=rt.ws.app_id, report=task.report.name,
            date=task.day.isoformat(), filename=task.filename, status=outcome.status,
            path=str(stored.rel) if stored else None,
            bytes=stored.bytes if stored else None, sha256=stored.sha256 if stored else None,
            attempts=outcome.attempts, http_status=outcome.http_status,
            error=None if outcome.status is Status.COMPLETED else outcome.reason,
            request_id=outcome.request_id,
            updated_at=self._clock.wall().strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        # Once a file is durable its record must reach the journal, even when the run is
        # being cancelled (otherwise the next run would fetch it again): queued at once
        # when the writer has room (nothing there can be cancelled; no cancel scope to
        # make per file), else waited for under a shield.
        if not self._journal.put_nowait(rec):
            with anyio.CancelScope(shield=True):
                await self._journal.put(rec)
        self.count(rt, rec, fetched=outcome.fetched)

    def count(self, rt: WorkspaceRun, rec: Record, *, fetched: bool) -> None:
        """Count a file (recorded now, or skipped as the journal had it)."""
        rt.tally.counts[rec.status.value] += 1
        self.judge.observe(rec)
        if rec.status is Status.COMPLETED:
            rt.tally.bytes += rec.bytes or 0
        elif rec.status is Status.FAILED:
            self._summary.failures[rec.error or "unknown"] += 1
        if rec.status in (Status.FAILED, Status.PENDING):
            exp = expires_at(date.fromisoformat(rec.date), rt.ws.timezone)
            self._summary.at_risk.append(
                AtRisk(rec.workspace, rec.filename, rec.status.value, exp, rec.error))
        if self._listening():
            self._emit(FileFinished(rec.workspace, rec.filename, rec.status, rec.bytes or 0,
                                    rec.attempts, rec.error, fetched))
