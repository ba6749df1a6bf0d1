"""The monitoring part of the command line: the flags of ``run``, ``status --check`` and
``plan``, and what each prints. Presentation only; the work is in ``monitor.hooks``.

``status --check`` exit codes: 0 nothing needs a human · 3 at least one problem (one line
each on stdout) · 2 bad config or usage, as everywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..errors import ConfigError
from ..monitor.settings import HOUR, parse_duration, show_duration
from ..planner import Window

if TYPE_CHECKING:
    from ..monitor.atrisk import Journal
    from ..summary import AtRisk, Summary

EXIT_CHECK = 3
DEFAULT_WITHIN_S = 48 * HOUR
DEFAULT_STALE_S = 26 * HOUR  # a daily cron job, with two hours of slack
TYPICAL_LATENCY_S = 1.0  # capacity.TYPICAL_LATENCY_S (not imported: plan stays light)


def duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_metrics_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics-file", type=Path, metavar="PATH.prom",
                   help="write Prometheus gauges here at the end (node_exporter textfile "
                        "collector); default [run] metrics_file")


def add_check_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--check", action="store_true",
                   help=f"for monitors: exit {EXIT_CHECK} with one line per problem (files "
                        "failed or expiring unfetched, no recent run, misnamed report)")
    p.add_argument("--within", type=duration, default=DEFAULT_WITHIN_S, metavar="48h",
                   help="with --check: files expiring this soon unfetched are a problem")
    p.add_argument("--stale", type=duration, default=DEFAULT_STALE_S, metavar="26h",
                   help="with --check: a last finished run older than this is a problem")
    add_metrics_arg(p)


def add_plan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--latency", type=duration, default=TYPICAL_LATENCY_S, metavar="SECONDS",
                   help=f"typical seconds per file, for the can-it-finish-in-time warning "
                        f"(default {TYPICAL_LATENCY_S:g})")


def at_risk(config: Config | None, journal: Journal, now: datetime) -> list[AtRisk]:
    """The at-risk view for ``status``: with a config, planned dates without a record
    too; without one, the records only (zones in UTC)."""
    from ..monitor.atrisk import unfetched
    from ..planner import todays, windows

    if config is None:
        return unfetched(journal, [], {}, now)
    wins = windows(config, todays(config.workspaces, now))
    return unfetched(journal, wins, {ws.name: ws.timezone for ws in config.workspaces}, now)


def metrics_file(args: argparse.Namespace, config: Config | None) -> Path | None:
    chosen: Path | None = args.metrics_file or (config.run.metrics_file if config else None)
    return chosen


def plan_warnings(config: Config, wins: Sequence[Window], pinned: date | None,
                  latency_s: float) -> list[dict[str, Any]]:
    """Print one warning line per workspace that would lose files; the JSON rows."""
    from ..monitor.capacity import shortfalls

    now = (datetime(pinned.year, pinned.month, pinned.day, tzinfo=UTC) if pinned
           else datetime.now(UTC))
    if latency_s <= 0:
        raise ConfigError("--latency: must be more than 0")
    found = shortfalls(wins, concurrency=config.run.concurrency, now=now, latency_s=latency_s)
    for s in found:
        print(f"backfill: warning: {s}", file=sys.stderr)
    return [{"workspace": s.workspace, "late": s.late, "files": s.total,
             "requests_per_s": round(s.throughput, 6), "bound": s.bound} for s in found]


def after_run(args: argparse.Namespace, config: Config, summary: Summary, manifest: Path,
              wins: Sequence[Window]) -> None:
    from ..monitor.hooks import after_run as hook

    hook(config, summary, manifest, wins, metrics_file=metrics_file(args, config),
         now=datetime.now(UTC))


def check(args: argparse.Namespace, config: Config | None, journal: Journal,
          manifest: Path) -> int:
    """``status --check``: print the verdict; EXIT_CHECK when there is a problem."""
    from ..monitor.hooks import status_check

    try:
        problems = status_check(config, journal, manifest, within_s=args.within,
                                stale_s=args.stale, metrics_file=metrics_file(args, config),
                                now=datetime.now(UTC))
    except ValueError as exc:  # the webhook's variable: a config problem
        raise ConfigError(f"{config.path if config else manifest}: {exc}") from None
    if args.json:
        doc = {"ok": not problems, "within_s": args.within, "stale_s": args.stale,
               "manifest": str(manifest),
               "problems": [{"kind": p.kind, "workspace": p.workspace, "subject": p.subject,
                             "line": p.line, "next_step": p.step} for p in problems]}
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif problems:
        for p in problems:
            print(p)
    else:
        print(f"OK: no file expires within {show_duration(args.within)} unfetched, nothing "
              f"failed, every workspace finished a run within {show_duration(args.stale)}")
    return EXIT_CHECK if problems else 0
