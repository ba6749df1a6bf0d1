"""What ``run`` and ``status --check`` do for monitoring: the run record, the metrics
file and the alert. I/O; every decision is made by the pure modules of this package.

Nothing here fails a run: a metrics file or a state file that cannot be written, or a
webhook that does not answer, gives one warning line on stderr and the run's own exit
code stands.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import anyio

from ..config import Config
from ..planner import Window, todays, windows
from ..summary import AtRisk, Summary
from . import alert, runs, verdict
from .atrisk import Journal, unfetched, within
from .digest import Digest, digest
from .files import alerts_path, read_small, runs_path, write_atomic
from .metrics import EXPIRING_WITHIN, WorkspaceMetrics, render
from .settings import resolve_webhook
from .verdict import Problem, rejected_in
from .webhook import WebhookError, post


def warn(message: str) -> None:
    print(f"backfill: warning: {message}", file=sys.stderr)


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)


def load_runs(manifest: Path) -> dict[str, runs.WorkspaceRun]:
    path = runs_path(manifest)
    try:
        raw = read_small(path)
        return runs.decode(raw) if raw is not None else {}
    except (OSError, ValueError) as exc:
        warn(f"{path}: ignored ({_reason(exc)}); the next run rewrites it")
        return {}


def load_all_runs(manifest: Path) -> dict[str, runs.WorkspaceRun]:
    """The run record of ``manifest`` and of every shard manifest beside it, the
    freshest run per workspace (a workspace a shard ran is as fresh as that shard run)."""
    return runs.freshest(load_runs(p) for p in [manifest, *shard_run_records(manifest)])


def shard_run_records(manifest: Path) -> list[Path]:
    """The shard manifests beside ``manifest`` that have a run record, by name (found by
    the record, whether or not the manifest file is there)."""
    from ..shards.naming import is_shard_manifest

    suffix = runs_path(Path("m")).name[1:]
    try:
        names = sorted(e.name for e in os.scandir(manifest.parent)
                       if e.name.endswith(suffix) and e.is_file(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [manifest.with_name(n[: -len(suffix)]) for n in names
            if is_shard_manifest(manifest.name, n[: -len(suffix)]) is not None]


def record_run(manifest: Path, summary: Summary, now: datetime) -> dict[str, runs.WorkspaceRun]:
    """Update the run record after a run; the record as it now stands."""
    record = runs.after_run(load_runs(manifest), summary, now)
    try:
        write_atomic(runs_path(manifest), runs.encode(record))
    except OSError as exc:
        warn(f"{runs_path(manifest)}: run record not written ({_reason(exc)})")
    return record


@dataclass(frozen=True, slots=True)
class View:
    """What the manifest says at ``now``: its digest, files at risk, the run record."""

    digest: Digest
    risks: list[AtRisk]
    record: dict[str, runs.WorkspaceRun]
    names: list[str]
    now: datetime


def view(config: Config | None, journal: Journal, manifest: Path, now: datetime,
         wins: Sequence[Window] | None = None) -> View:
    workspaces = config.workspaces if config else ()
    if wins is None:
        wins = windows(config, todays(workspaces, now)) if config else []
    zones = {ws.name: ws.timezone for ws in workspaces}
    d = digest(journal)  # the one pass over the records
    names = [ws.name for ws in workspaces] or sorted(d.counts)
    risks = unfetched(journal, wins, zones, now, records=d.open)
    return View(d, risks, load_all_runs(manifest), names, now)


def last_finished(v: View) -> dict[str, datetime | None]:
    fallback = runs.newest_updates(v.digest.newest)
    return {n: runs.last_finished(v.record, fallback, n) for n in v.names}


def write_metrics(path: Path, v: View) -> None:
    rows = []
    for name in sorted(set(v.names) | set(v.digest.counts)):
        mine = [r for r in v.risks if r.workspace == name]
        run = v.record.get(name)
        soonest = min((r.expires_at for r in mine), default=None)
        rows.append(WorkspaceMetrics(
            name, dict(v.digest.counts.get(name, {})), v.digest.bytes[name],
            run.requests if run else 0, run.retries if run else 0,
            run.finished_at.timestamp() if run else 0.0,
            run.succeeded_at.timestamp() if run and run.succeeded_at else 0.0,
            len(mine),
            (soonest - v.now).total_seconds() if soonest else float("inf"),
            {label: len(within(mine, v.now, seconds))
             for label, seconds in EXPIRING_WITHIN.items()}))
    try:
        write_atomic(path, render(rows, generated_at=v.now.timestamp()))
    except OSError as exc:
        warn(f"{path}: metrics not written ({_reason(exc)})")


def notify(config: Config, manifest: Path, problems: Sequence[Problem], now: datetime, *,
           command: str, env: Mapping[str, str] | None = None) -> bool:
    """Post one grouped alert when there are problems and the rate limit allows; True
    when one was sent. Never raises for a delivery problem (one warning line)."""
    settings = config.notify
    if not settings.enabled or not problems:
        return False
    url = resolve_webhook(settings, os.environ if env is None else env)  # ValueError: caller
    if url is None:
        return False
    message = alert.compose(problems, config=str(config.path), at=now, command=command)
    state_file = alerts_path(manifest)
    try:
        raw = read_small(state_file)
        sent = alert.decode_state(raw) if raw else {}
    except (OSError, ValueError) as exc:
        warn(f"{state_file}: ignored ({_reason(exc)})")
        sent = {}
    if not alert.due(message, sent, now, settings.min_interval_s):
        return False
    from ..client import ssl_context
    from ..errors import ConfigError
    from ..naming import origin
    from ..proxy import ProxyTable

    try:  # the run's own proxy and trust decisions
        route = ProxyTable(config.http.proxy, os.environ if env is None else env
                           ).route(*origin(url))
        context = ssl_context(config.http)
        anyio.run(lambda: post(url, alert.body(message, settings.format),
                               timeout_s=settings.timeout_s, proxy=route,
                               ssl_context=context))
    except (WebhookError, ConfigError) as exc:
        warn(f"alert not sent: {exc}")
        return False
    try:
        write_atomic(state_file, alert.encode_state(
            alert.remember(sent, message, now, settings.min_interval_s)))
    except OSError as exc:
        warn(f"{state_file}: alert state not written ({_reason(exc)}); "
             "the alert may repeat")
    return True


def after_run(config: Config, summary: Summary, manifest: Path, wins: Sequence[Window], *,
              metrics_file: Path | None, now: datetime) -> None:
    """At the end of ``run``: the run record always; the metrics file and the alert when
    configured. An interrupted run sends no alert (someone stopped it on purpose)."""
    record_run(manifest, summary, now)
    wanted_alert = config.notify.enabled and not summary.interrupted
    if metrics_file is None and not wanted_alert:
        return
    from ..errors import BackfillError
    from ..journal import load_manifest

    try:
        journal = load_manifest(manifest)
    except BackfillError as exc:
        warn(f"monitoring skipped: {exc}")
        return
    v = view(config, journal, manifest, now, wins)
    if metrics_file is not None:
        write_metrics(metrics_file, v)
    if wanted_alert:
        problems = verdict.after_run(summary, v.risks, rejected_in(v.digest), now,
                                     within_s=config.notify.within_s)
        notify(config, manifest, problems, now, command="run")


def status_check(config: Config | None, journal: Journal, manifest: Path, *,
                 within_s: float, stale_s: float, metrics_file: Path | None,
                 now: datetime) -> list[Problem]:
    """``status --check``: the problems (none: exit 0), after writing the metrics file
    and posting the alert when configured. ValueError when the webhook's variable is
    not set (a config problem: exit 2)."""
    v = view(config, journal, manifest, now)
    problems = verdict.check(v.risks, rejected_in(v.digest), v.names, last_finished(v), now,
                             within_s=within_s, stale_s=stale_s)
    if metrics_file is not None:
        write_metrics(metrics_file, v)
    if config is not None:
        notify(config, manifest, problems, now, command="status --check")
    return problems
