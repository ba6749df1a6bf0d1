"""Is a report rejected as a whole? Judged per workspace and report, from the manifest.

A wrong report name (or the wrong case of one) gives every file a 400, which on its own
reads as "missing": the run would end with nothing fetched and exit 0, and a cron job
would lose the report without a word. A report is **rejected** when, over everything
known of it in the planned range — the manifest's earlier records as well as this run's:

* no file of it is completed, and none ever was (the manifest's whole history);
* every request made for it got a 400, and at least one of them was for a date of age
  1..6 (a 400 for today is only "not generated yet", and the boundary day may be gone).

A re-check of a missing file in a report that has completed files is never a rejection.
Pure: records in, verdicts out; :meth:`RejectionJudge.observe` is fed each planned file's
record once, and :meth:`RejectionJudge.verdicts` takes the rest of the history to rule out
a report that produced a file outside the range.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .journal.record import Record
from .model import Status


@dataclass(frozen=True, slots=True)
class RejectedReport:
    """A report every request of which got a 400, which never produced a file."""

    workspace: str
    app_id: str
    report: str
    requests: int  # files asked for, each answered 400
    message: str | None  # the server's message (scrubbed at the client)

    def sentence(self) -> str:
        said = f"; the server said: {self.message}" if self.message else ""
        return (f"report {self.report!r} of workspace {self.workspace!r}: all {self.requests} "
                f"requests got a 400 and it never produced a file — check the report name "
                f"(case matters) and app_id {self.app_id!r}{said}")

    def document(self) -> dict[str, object]:
        return {"workspace": self.workspace, "app_id": self.app_id, "report": self.report,
                "requests": self.requests, "message": self.message}


@dataclass(slots=True)
class _Evidence:
    app_id: str
    produced: bool = False
    other_answer: bool = False  # a request answered anything but 400
    rejected: int = 0
    inside: int = 0  # 400s for dates the server must have had (missing, age 1..6)
    message: str | None = None


class RejectionJudge:
    """Collects the records of one run's planned files; see the module docstring."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], _Evidence] = {}

    def observe(self, rec: Record) -> None:
        ev = self._seen.get((rec.workspace, rec.report))
        if ev is None:
            ev = self._seen[(rec.workspace, rec.report)] = _Evidence(rec.app_id)
        if rec.status is Status.COMPLETED:
            ev.produced = True
        elif rec.http_status == 400:
            ev.rejected += 1
            ev.inside += rec.status is Status.MISSING
            ev.message = ev.message or rec.error
        elif rec.http_status is not None or rec.status is Status.FAILED:
            ev.other_answer = True

    def candidates(self) -> set[tuple[str, str]]:
        """(workspace, report) pairs rejected on this run's evidence alone."""
        return {k for k, ev in self._seen.items()
                if not ev.produced and not ev.other_answer and ev.inside}

    def verdicts(self, history: Iterable[Record] = ()) -> list[RejectedReport]:
        """The rejected reports, ruling out any that completed a file in ``history``
        (iterated only when there is a candidate)."""
        suspects = self.candidates()
        if suspects:
            for rec in history:
                if rec.status is Status.COMPLETED:
                    suspects.discard((rec.workspace, rec.report))
                    if not suspects:
                        break
        return [RejectedReport(ws, self._seen[(ws, rep)].app_id, rep,
                               self._seen[(ws, rep)].rejected, self._seen[(ws, rep)].message)
                for ws, rep in sorted(suspects)]
