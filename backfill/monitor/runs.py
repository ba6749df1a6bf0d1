"""The run record: when each workspace last finished a run. Pure codec and update rule.

``run`` writes ``<manifest>.runs.json`` at its end (see ``files``)::

    {"v": 1, "workspaces": {"acme-eu": {"finished_at": "2026-12-01T02:00:03Z",
        "succeeded_at": "2026-12-01T02:00:03Z", "requests": 12, "retries": 1}}}

- ``finished_at``: the last run that covered the workspace and ended on its own (not
  interrupted, no run-wide error). A stopped cron job shows here: ``status --check
  --stale 26h`` flags a workspace whose last finished run is older than that.
- ``succeeded_at``: the last such run in which none of its files failed.
- ``requests``/``retries``: figures of the last finished run, for the metrics.

With shards, each shard run writes the record beside its own manifest; a reader takes,
per workspace, the freshest of them all (:func:`freshest`): whichever run, plain or
shard, finished it last.

A manifest written before run records existed has no such file: the last finished run is
then taken as the newest ``updated_at`` among the workspace's records (a run that wrote
nothing cannot be seen that way, so the record file is the better witness).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..summary import Summary

_FMT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True, slots=True)
class WorkspaceRun:
    finished_at: datetime
    succeeded_at: datetime | None = None
    requests: int = 0
    retries: int = 0


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_FMT)


def parse_stamp(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text, _FMT).replace(tzinfo=UTC)
    except ValueError:
        return None


def after_run(old: Mapping[str, WorkspaceRun], summary: Summary, now: datetime,
              ) -> dict[str, WorkspaceRun]:
    """The record after a run that returned ``summary`` at ``now``: unchanged when the
    run was interrupted or stopped by a run-wide error."""
    new = dict(old)
    if summary.interrupted or summary.error:
        return new
    for name, t in summary.workspaces.items():
        prev = old.get(name)
        ok = not t.counts["failed"] and not t.stopped
        new[name] = WorkspaceRun(now, now if ok else (prev.succeeded_at if prev else None),
                                 t.requests, t.retries)
    return new


def encode(record: Mapping[str, WorkspaceRun]) -> str:
    doc = {"v": 1, "workspaces": {
        name: {"finished_at": stamp(r.finished_at),
               "succeeded_at": stamp(r.succeeded_at) if r.succeeded_at else None,
               "requests": r.requests, "retries": r.retries}
        for name, r in sorted(record.items())}}
    return json.dumps(doc, indent=1) + "\n"


def decode(text: str) -> dict[str, WorkspaceRun]:
    """The record in ``text``; ValueError when it is not one (the caller warns and starts
    from an empty record: losing it only makes a check fall back to the manifest)."""
    doc = json.loads(text)
    if not isinstance(doc, dict) or doc.get("v") != 1 or not isinstance(
            doc.get("workspaces"), dict):
        raise ValueError("not a run record (expected {\"v\": 1, \"workspaces\": {...}})")
    out: dict[str, WorkspaceRun] = {}
    for name, row in doc["workspaces"].items():
        finished = parse_stamp(row.get("finished_at")) if isinstance(row, dict) else None
        if finished is None:
            continue
        out[name] = WorkspaceRun(
            finished, parse_stamp(row.get("succeeded_at")),
            *(v if isinstance(v := row.get(k), int) and not isinstance(v, bool) else 0
              for k in ("requests", "retries")))
    return out


def newest_updates(newest: Mapping[str, str]) -> dict[str, datetime]:
    """Per workspace, its records' newest ``updated_at`` (``Digest.newest``) as an
    instant: the fallback witness of the last run."""
    return {ws: at for ws, text in newest.items() if (at := parse_stamp(text)) is not None}


def last_finished(record: Mapping[str, WorkspaceRun], fallback: Mapping[str, datetime],
                  name: str) -> datetime | None:
    run = record.get(name)
    return run.finished_at if run else fallback.get(name)


def freshest(records: Iterable[Mapping[str, WorkspaceRun]]) -> dict[str, WorkspaceRun]:
    """Per workspace, the run that finished last among ``records`` (the main manifest's
    and every shard manifest's), with the latest success of any of them."""
    out: dict[str, WorkspaceRun] = {}
    for record in records:
        for name, run in record.items():
            prev = out.get(name)
            if prev is None:
                out[name] = run
                continue
            newer, older = (run, prev) if run.finished_at > prev.finished_at else (prev, run)
            ok = [t for t in (newer.succeeded_at, older.succeeded_at) if t is not None]
            out[name] = WorkspaceRun(newer.finished_at, max(ok, default=None),
                                     newer.requests, newer.retries)
    return out
