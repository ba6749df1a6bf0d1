"""One pass over a manifest's records, keeping what monitoring needs. Pure.

A manifest of a million files is read once per check: iterating its records is the cost
(each is unpacked on demand), so the at-risk view, the misnamed-report judgement, the
fallback run time and the metrics' counts all come from this one digest. What it keeps
grows with the files *not* fetched, not with the manifest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..journal import Record

OPEN = frozenset({"failed", "pending", "missing"})


@dataclass(slots=True)
class Digest:
    open: list[Record] = field(default_factory=list)  # failed, pending, missing
    answers_400: list[Record] = field(default_factory=list)  # missing/expired after a 400
    last_ok: dict[tuple[str, str], str] = field(default_factory=dict)  # newest completed date
    newest: dict[str, str] = field(default_factory=dict)  # workspace -> newest updated_at
    counts: dict[str, Counter[str]] = field(default_factory=dict)  # workspace -> by status
    bytes: Counter[str] = field(default_factory=Counter)  # workspace -> completed bytes


def digest(records: Iterable[Record]) -> Digest:
    d = Digest()
    for rec in records:
        ws, status = rec.workspace, rec.status.value
        d.counts.setdefault(ws, Counter())[status] += 1
        # updated_at is "YYYY-MM-DDTHH:MM:SSZ": as text it sorts as time does
        if rec.updated_at > d.newest.get(ws, ""):
            d.newest[ws] = rec.updated_at
        if status == "completed":
            d.bytes[ws] += rec.bytes or 0
            key = (ws, rec.report)
            if rec.date > d.last_ok.get(key, ""):
                d.last_ok[key] = rec.date
            continue
        if status in OPEN:
            d.open.append(rec)
        if rec.http_status == 400 and status in ("missing", "expired"):
            d.answers_400.append(rec)
    return d
