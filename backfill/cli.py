"""Command line: argument parsing and presentation only.

Exit codes (design.md): 0 nothing failed · 1 some files failed · 2 bad config or usage ·
75 manifest locked by another run · 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, NoReturn

from . import __version__
from .config import Config, DateSpec, load_config
from .errors import BackfillError, ConfigError
from .planner import WorkspacePlan, summarize, todays, windows

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED, EXIT_INTERRUPTED = 0, 1, 2, 75, 130


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so usage errors share one path (exit 2)."""

    def error(self, message: str) -> NoReturn:
        command = "" if self.prog == "backfill" else f" {self.prog.split()[-1]}"
        raise ConfigError(f"usage: {message} (see 'backfill{command} --help')")


def _date_arg(text: str) -> DateSpec:
    try:
        return DateSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _day_arg(text: str) -> date:
    try:  # fromisoformat alone would also take '20261127' and '2026-W48-5'
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="backfill", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"moe-backfill {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    plan = sub.add_parser("plan", help="show what a run would fetch, without any request")
    plan.add_argument("config", help="path to the TOML config")
    _add_range_args(plan)
    plan.add_argument("--json", action="store_true", help="one JSON document on stdout")
    return parser


def _add_range_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", type=_date_arg, help="first generation date (YYYY-MM-DD, -Nd)")
    p.add_argument("--end", type=_date_arg, help="last generation date (YYYY-MM-DD, today)")
    p.add_argument("--today", type=_day_arg,
                   help="pin 'today' in every workspace (replays, tests)")
    p.add_argument("--workspace", action="append", default=[], metavar="NAME",
                   help="only this workspace (repeatable)")


def resolve_today(config: Config, pinned: date | None) -> dict[str, date]:
    """Per-workspace today: pinned for all, or the current date in each workspace's zone."""
    if pinned is not None:
        return {ws.name: pinned for ws in config.workspaces}
    return todays(config.workspaces, datetime.now(UTC))


def check_range(config: Config, start: DateSpec | None, end: DateSpec | None) -> None:
    """A --start/--end override must not put start after end (when that is known now)."""
    s, e = start or config.run.start, end or config.run.end
    if (s.absolute is not None and e.absolute is not None and s.absolute > e.absolute) or (
        s.absolute is None and e.absolute is None and s.offset_days > e.offset_days
    ):
        raise ConfigError(f"usage: {'--start' if start else '[run] start'} {s} is after "
                          f"{'--end' if end else '[run] end'} {e}")


def check_workspaces(config: Config, names: Sequence[str]) -> None:
    known = {ws.name for ws in config.workspaces}
    for name in names:
        if name not in known:
            raise ConfigError(f"--workspace: no workspace named {name!r} in {config.path} "
                              f"(known: {', '.join(sorted(known))})")


def plan_document(plans: Sequence[WorkspacePlan]) -> dict[str, Any]:
    """The stable JSON document of ``backfill plan --json`` (README: 'Plan JSON')."""
    keys = ("dates", "fetch", "boundary", "expired", "future", "today", "dropped")
    totals = dict.fromkeys(keys, 0)
    out: list[dict[str, Any]] = []
    for wp in plans:
        w = wp.window
        reports = []
        for rp in wp.reports:
            row: dict[str, Any] = {"name": rp.report.name, "schedule": str(rp.report.schedule)}
            for k in keys:
                row[k] = getattr(rp, k)
                totals[k] += getattr(rp, k)
            row["first_date"] = rp.first.isoformat() if rp.first else None
            row["last_date"] = rp.last.isoformat() if rp.last else None
            reports.append(row)
        out.append({
            "name": w.workspace.name, "app_id": w.workspace.app_id,
            "timezone": w.workspace.timezone, "today": w.today.isoformat(),
            "start": w.start.isoformat(), "end": w.end.isoformat(),
            "dropped_days": w.dropped_days, "reports": reports,
        })
    return {"version": 1, "totals": totals, "workspaces": out}


def _cmd_plan(args: argparse.Namespace) -> int:
    config = load_config(args.config, secrets=False)  # planning sends nothing
    check_workspaces(config, args.workspace)
    check_range(config, args.start, args.end)
    wins = windows(config, resolve_today(config, args.today), start=args.start, end=args.end,
                   only=args.workspace)
    doc = plan_document(summarize(wins))
    if args.json:
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    from .render import print_plan

    print_plan(doc)
    return EXIT_OK


_COMMANDS = {"plan": _cmd_plan}


def _glue_offsets(argv: Sequence[str]) -> list[str]:
    """``--start -6d`` → ``--start=-6d``: argparse would take ``-6d`` for an option."""
    out: list[str] = []
    glue = False
    for arg in argv:
        if glue and re.fullmatch(r"\s*-\d+d\s*", arg, flags=re.IGNORECASE):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
        glue = arg in ("--start", "--end")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(_glue_offsets(sys.argv[1:] if argv is None else argv))
        return _COMMANDS[args.command](args)
    except BackfillError as exc:
        print(f"backfill: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("backfill: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `backfill plan ... | head`: the reader left; not our error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
