"""``backfill extract``: its arguments and its output (the work is in :mod:`.batch`)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import Config, DateSpec, load_config
from ..errors import ConfigError
from ..planner import todays


def _date_arg(text: str) -> DateSpec:
    try:
        return DateSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(sub: Any) -> None:
    p = sub.add_parser("extract", help="convert completed downloads into typed Parquet tables")
    p.add_argument("config", help="path to the TOML config")
    p.add_argument("--workspace", action="append", default=[], metavar="NAME",
                   help="only this workspace (repeatable)")
    p.add_argument("--start", type=_date_arg,
                   help="first generation date to convert (default: every completed file)")
    p.add_argument("--end", type=_date_arg, help="last generation date to convert")
    p.add_argument("--json", action="store_true",
                   help="one JSON document on stdout: the files written with their rows")


def manifest_of(config: Config) -> Path:
    return config.run.manifest_path


def run(args: argparse.Namespace) -> int:
    from ..settings import check_workspaces
    from . import require

    config = load_config(args.config, secrets=False)  # converting sends nothing
    check_workspaces(config, args.workspace)
    require()
    from .batch import Selection, extract_all, ranges

    names = [ws.name for ws in config.workspaces]
    today = todays(config.workspaces, datetime.now(UTC))
    start = {n: args.start.resolve(today[n]) for n in names} if args.start else None
    end = {n: args.end.resolve(today[n]) for n in names} if args.end else None
    selection = Selection(frozenset(args.workspace), ranges(names, start, end))
    if not isinstance(config.run.output_dir, Path):
        raise ConfigError(f"{config.path}: extract works on a local output_dir, not "
                          f"{config.run.output_dir} (not supported yet)")
    outcome = extract_all(config.run.output_dir, manifest_of(config), selection)
    if args.json:
        json.dump(outcome.document(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print(outcome.document())
    return outcome.exit_code


def print_lane(lane: Any) -> None:
    """The tables line after a run's summary (``[extract] enabled``)."""
    doc = lane.document()
    failed = doc["failed"]
    line = (f"tables: {len(doc['written'])} files converted ({doc['rows']:,} rows), "
            f"{len(failed)} failed")
    if failed or doc["deferred"]:
        line += f", {doc['deferred']} left — run 'backfill extract' to convert the rest"
    print(line)
    if doc.get("problem"):
        print(f"  tables stopped: {doc['problem']}")
    for f in failed[:10]:
        print(f"  {f['source']}: {f['error']}")


def _print(doc: dict[str, Any]) -> None:
    written, failed = doc["written"], doc["failed"]
    for w in written:
        print(f"  {w['path']}: {w['rows']:,} rows")
    for f in failed:
        print(f"  {f['source']}: {f['error']} — the next extract retries it")
    print(f"{len(written)} table files written ({doc['rows']:,} rows), {len(failed)} failed, "
          f"{doc['unchanged']} unchanged")
