"""What needs a human, one line each, with the next step in words. Pure.

    kind       raised by             when
    ─────────  ────────────────────  ─────────────────────────────────────────────────
    expiring   status --check, run   files of a (workspace, report) expire within the
                                     threshold and are not fetched
    failed     status --check, run   failed files still inside the window
    stale      status --check        the last finished run is older than ``--stale``
    auth       run                   a workspace stopped on repeated 401/403
    rejected   status --check, run   a report's last answers were all 400 and no file
                                     came after them (misnamed or renamed report)

A problem's ``fingerprint`` (kind, workspace, subject) names it across runs, for the
alert rate limit: counts and times change, the fingerprint does not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ..summary import AtRisk, Summary
from .atrisk import by_report, within
from .digest import Digest, digest
from .settings import show_duration

if TYPE_CHECKING:
    from ..journal import Record


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str
    workspace: str
    subject: str  # the report, or "" when the problem is the workspace's
    line: str
    step: str

    @property
    def fingerprint(self) -> str:
        return f"{self.kind}|{self.workspace}|{self.subject}"

    def __str__(self) -> str:
        return f"{self.line}: {self.step}"


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def left(when: datetime, now: datetime) -> str:
    """Time from ``now`` to ``when``, in words: ``5 h``, ``2 d 3 h``, ``40 min``."""
    s = max(0, int((when - now).total_seconds()))
    if s >= 86400:
        return f"{s // 86400} d {s % 86400 // 3600} h"
    if s >= 3600:
        return f"{s // 3600} h"
    return f"{s // 60} min"


def expiring(risks: Sequence[AtRisk], now: datetime, within_s: float) -> list[Problem]:
    """One problem per (workspace, report) with files expiring within ``within_s``."""
    out = []
    for group in by_report(within(risks, now, within_s)):
        first = group.soonest
        kinds = ", ".join(f"{n} {status}" for status, n in sorted(group.by_status.items()))
        out.append(Problem(
            "expiring", group.workspace, group.report,
            f"{group.workspace} / {group.report}: {_n(len(group.files), 'file')} expire "
            f"within {show_duration(within_s)} unfetched ({kinds}; the first, "
            f"{first.filename}, in {left(first.expires_at, now)})",
            "run backfill now" + ("; the failed ones say why in 'backfill status'"
                                  if group.by_status["failed"] else "")))
    return out


def failed(risks: Iterable[AtRisk]) -> list[Problem]:
    """One problem per workspace with failed files still inside the window."""
    reasons: dict[str, Counter[str]] = {}
    for r in risks:
        if r.status == "failed":
            reasons.setdefault(r.workspace, Counter())[r.reason or "unknown"] += 1
    out = []
    for ws, why in reasons.items():
        shown = ", ".join(reason if n == 1 else f"{reason} ×{n}"
                          for reason, n in why.most_common(3))
        more = "" if len(why) <= 3 else f", {len(why) - 3} other reasons"
        auth = any("auth" in reason for reason in why)
        out.append(Problem(
            "failed", ws, "", f"{ws}: {_n(why.total(), 'file')} failed ({shown}{more})",
            "check api_key and secret_key, then run backfill again" if auth
            else "run backfill again to retry them"))
    return out


def stale(names: Sequence[str], last: Mapping[str, datetime | None], now: datetime,
          stale_s: float) -> list[Problem]:
    """Workspaces whose last finished run is older than ``stale_s`` (or never), grouped
    by that instant: a stopped cron job gives one line, not one per workspace."""
    groups: dict[datetime | None, list[str]] = {}
    for name in names:
        at = last.get(name)
        if at is None or (now - at).total_seconds() > stale_s:
            groups.setdefault(at, []).append(name)
    out = []
    for at, members in groups.items():
        who = ", ".join(members[:5]) + (f" and {len(members) - 5} more" if len(members) > 5
                                        else "")
        if at is None:
            line = f"{who}: no finished run recorded"
            step = "run backfill (is the cron job set up?)"
        else:
            line = (f"{who}: last finished run {at:%Y-%m-%d %H:%M} UTC, "
                    f"{left(now, at)} ago (more than {show_duration(stale_s)})")
            step = "is the cron job still running? check its log and the manifest lock"
        out.append(Problem("stale", members[0] if len(members) == 1 else "*", "", line, step))
    return out


def check(risks: Sequence[AtRisk], rejected_reports: Sequence[Problem], names: Sequence[str],
          last: Mapping[str, datetime | None], now: datetime, *, within_s: float,
          stale_s: float) -> list[Problem]:
    """The verdict of ``status --check``: no problem means exit 0."""
    return [*stale(names, last, now, stale_s), *rejected_reports, *failed(risks),
            *expiring(risks, now, within_s)]


REJECTED_AT_LEAST = 3  # 400 answers after the last file before a report looks misnamed


def rejected(records: Iterable[Record]) -> list[Problem]:
    """Reports that look misnamed (or renamed in the dashboard), judged from the whole
    manifest: at least three dates answered 400 (missing or expired, not today's pending
    file) after the report's last completed file, or with no completed file at all.
    Re-checks of missing days older than a completed file never flag a report."""
    return rejected_in(digest(records))


def rejected_in(d: Digest) -> list[Problem]:
    """:func:`rejected` from a manifest's :class:`Digest`."""
    answers: dict[tuple[str, str], list[Record]] = {}
    for rec in d.answers_400:
        answers.setdefault((rec.workspace, rec.report), []).append(rec)
    out = []
    for (ws, report), recs in answers.items():
        since = d.last_ok.get((ws, report))
        after = [r for r in recs if since is None or r.date > since]
        if len(after) < REJECTED_AT_LEAST:
            continue
        message = next((r.error for r in sorted(after, key=lambda r: r.date, reverse=True)
                        if r.error), None)
        said = f"; the server said: {message}" if message else ""
        what = (f"never produced a file; all {len(after)} answers were 400" if since is None
                else f"no file since {since}; the {len(after)} answers after it were 400")
        out.append(Problem(
            "rejected", ws, report, f"{ws} / {report}: {what}{said}",
            "check the report name (exact case, as in the dashboard), app_id and data_center"))
    return out


def after_run(summary: Summary, risks: Sequence[AtRisk], rejected_reports: Sequence[Problem],
              now: datetime, *, within_s: float) -> list[Problem]:
    """What a finished run tells a human: workspaces stopped on auth, reports that look
    misnamed (:func:`rejected`), failed files, files about to expire."""
    out = []
    for t in summary.workspaces.values():
        if t.stopped:
            out.append(Problem("auth", t.name, "", f"{t.name}: {t.stopped}",
                               "fix api_key/secret_key, then run backfill again"))
    return [*out, *rejected_reports, *failed(risks), *expiring(risks, now, within_s)]
