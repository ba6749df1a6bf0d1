"""Can a plan finish before its files expire? Pure; used by ``plan``.

Model: each workspace is fetched oldest file first at a steady throughput

    per workspace   min(rate, min(concurrency, [run] concurrency) / latency)
    all together    at most [run] concurrency / latency: when the workspaces' sum is more,
                    each gets its share of that

and the k-th file (0-based) is requested ``k / throughput`` seconds after ``now``. A file
whose request would come after it expires (``summary.expires_at``) is counted late.
Retries and files already in the manifest are not modelled: the count is what a first
run with typical latency would lose.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from ..planner import Window, requestable, tasks
from ..summary import expires_at

TYPICAL_LATENCY_S = 1.0  # one report file, request to last byte


@dataclass(frozen=True, slots=True)
class Shortfall:
    workspace: str
    late: int
    total: int
    throughput: float  # requests per second
    bound: str  # "rate", "concurrency" or "global"

    def __str__(self) -> str:
        fix = {"rate": "raise rate or split with --shard",
               "concurrency": "raise concurrency or split with --shard",
               "global": "raise [run] concurrency or split the workspaces with --shard"}
        return (f"{self.workspace}: at {self.throughput:,.3g} requests/s, {self.late:,} of "
                f"{self.total:,} files would expire before they are fetched: "
                f"{fix[self.bound]}")


def _throughputs(wins: Sequence[Window], concurrency: int, latency_s: float,
                 ) -> dict[str, tuple[float, str]]:
    out: dict[str, tuple[float, str]] = {}
    for w in wins:
        ws = w.workspace
        bound = "concurrency" if ws.concurrency <= concurrency else "global"
        thr = min(ws.concurrency, concurrency) / latency_s
        if ws.rate is not None and ws.rate < thr:
            thr, bound = ws.rate, "rate"
        out[ws.name] = (thr, bound)
    total = sum(t for t, _ in out.values())
    cap = concurrency / latency_s
    if total > cap:
        out = {name: (t * cap / total, "global") for name, (t, _) in out.items()}
    return out


def shortfalls(wins: Sequence[Window], *, concurrency: int, now: datetime,
               latency_s: float = TYPICAL_LATENCY_S) -> list[Shortfall]:
    """The workspaces that would lose files, with how many."""
    thr = _throughputs(wins, concurrency, latency_s)
    out = []
    for w in wins:
        per_day: Counter[date] = Counter(
            t.day for t in tasks([requestable(w)]) if t.kind.requested)
        rate, bound = thr[w.workspace.name]
        done = late = 0
        for day in sorted(per_day):
            n = per_day[day]
            left_s = (expires_at(day, w.workspace.timezone) - now).total_seconds()
            in_time = max(0, min(n, math.ceil(left_s * rate) - done)) if left_s > 0 else 0
            late += n - in_time
            done += n
        if late:
            out.append(Shortfall(w.workspace.name, late, sum(per_day.values()), rate, bound))
    return out
