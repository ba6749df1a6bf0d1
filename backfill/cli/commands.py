"""Command line: argument parsing and presentation only.

Exit codes (design.md): 0 nothing failed · 1 some files failed · 2 bad config or usage ·
3 ``status --check`` found a problem · 75 manifest locked by another run · 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import anyio

from .. import __version__, eventloop
from ..config import Config, DateSpec, load_config
from ..errors import BackfillError, ConfigError, first_error
from ..model import Window
from ..planner import WorkspacePlan, next_ready, summarize
from ..settings import Options, check_range, check_workspaces, resolve_run
from . import monitor
from .argtypes import day, positive_int, seconds
from .monitor import add_check_args, add_metrics_arg, add_plan_args, plan_warnings
from .shards import (
    add_manifest_parser,
    add_run_args,
    add_shard_plan_args,
    cmd_manifest,
    cmd_run_dask,
    print_view_notes,
    view_document,
)

if TYPE_CHECKING:  # the engine stack is imported lazily: `plan` stays fast and light
    from ..engine import Backfill
    from ..summary import Summary
    from ..tables.lane import Lane

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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="backfill", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"moe-backfill {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    plan = sub.add_parser("plan", help="show what a run would fetch, without any request")
    plan.add_argument("config", help="path to the TOML config")
    _add_range_args(plan)
    add_shard_plan_args(plan)
    plan.add_argument("--json", action="store_true", help="one JSON document on stdout")
    add_plan_args(plan)

    run = sub.add_parser("run", help="download every planned file not yet done")
    run.add_argument("config", help="path to the TOML config")
    _add_range_args(run)
    run.add_argument("--output-dir", type=Path, help="override [run] output_dir")
    run.add_argument("--manifest", type=Path, help="override [run] manifest")
    run.add_argument("--concurrency", type=positive_int, help="override [run] concurrency")
    run.add_argument("--max-outage", type=seconds, metavar="SECONDS",
                     help="give up on a host unreachable this long (default 1800)")
    _add_cacert(run)
    add_run_args(run)
    run.add_argument("--no-progress", action="store_true", help="no live progress display")
    run.add_argument("--quiet", "-q", action="store_true", help="only errors on stderr")
    run.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    run.add_argument("--dry-run", action="store_true",
                     help="list the requests a run would make, make none")
    add_metrics_arg(run)
    _add_log_args(run)

    status = sub.add_parser("status", help="what the manifest says: per workspace and status")
    status.add_argument("target", metavar="CONFIG|MANIFEST")
    status.add_argument("--json", action="store_true", help="one JSON document on stdout")
    status.add_argument("--grid", action="store_true",
                        help="(workspace, report) × date matrix, files at risk first")
    add_check_args(status)

    verify = sub.add_parser("verify", help="re-hash completed files; queue bad ones again")
    verify.add_argument("config", help="path to the TOML config")
    verify.add_argument("--json", action="store_true", help="one JSON document on stdout")

    add_manifest_parser(sub)
    _add_simulate(sub)
    from ..tables.cli import add_parser as add_extract  # imports no pyarrow

    add_extract(sub)

    demo = sub.add_parser("demo", help="a real backfill against the embedded simulator")
    demo.add_argument("--workspaces", type=positive_int, default=3)
    demo.add_argument("--reports", type=positive_int, default=2, help="1-5")
    demo.add_argument("--days", type=positive_int, default=10)
    demo.add_argument("--faults", action="store_true",
                      help="inject throttling, 5xx, dropped connections and an outage")
    demo.add_argument("--output-dir", type=Path, default=Path("demo-output"))
    demo.add_argument("--no-progress", action="store_true")
    return parser


def _add_simulate(sub: Any) -> None:
    try:
        from ..simulator.cli import add_parser
    except ImportError:  # simulator not built yet
        return
    add_parser(sub)


def _add_cacert(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cacert", type=Path, metavar="PEM",
                   help="trust the CA certificates in this file (overrides [http] ca_bundle)")


def with_cacert(config: Config, cacert: Path | None) -> Config:
    """``--cacert`` in place of ``[http] ca_bundle``; a missing file is a usage error."""
    if cacert is None:
        return config
    if not cacert.is_file():
        raise ConfigError(f"--cacert {cacert}: no such file (a PEM file of CA certificates)")
    http = dataclasses.replace(config.http, ca_bundle=cacert.resolve())
    return dataclasses.replace(config, http=http)


def _add_log_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="more log lines on stderr (-v: info, -vv: every file and retry)")
    p.add_argument("--log-file", type=Path, metavar="P",
                   help="also write logs here (info; every file and retry with -v)")
    p.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="text (default) or one JSON object per line")


def _add_range_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", type=_date_arg, help="first generation date (YYYY-MM-DD, -Nd)")
    p.add_argument("--end", type=_date_arg, help="last generation date (YYYY-MM-DD, today)")
    p.add_argument("--today", type=day,
                   help="pin 'today' in every workspace (replays, tests)")
    p.add_argument("--workspace", action="append", default=[], metavar="NAME",
                   help="only this workspace (repeatable)")


def _next_ready(win: Window) -> dict[str, str] | None:
    """When the workspace's next file becomes fetchable (local wall time), for plan."""
    found = next_ready(win)
    if found is None:
        return None
    when, report = found
    return {"report": report.name, "at": when.isoformat(timespec="minutes")}


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
            timing = rp.report.timing
            row["at"] = timing.at.strftime("%H:%M") if timing.at else None
            row["ready_buffer_s"] = int(timing.buffer.total_seconds()) if timing.at else 0
            reports.append(row)
        out.append({
            "name": w.workspace.name, "app_id": w.workspace.app_id,
            "timezone": w.workspace.timezone, "today": w.today.isoformat(),
            "start": w.start.isoformat(), "end": w.end.isoformat(),
            "dropped_days": w.dropped_days, "reports": reports,
            "next_ready": _next_ready(w),
        })
    return {"version": 1, "totals": totals, "workspaces": out}


def _cmd_plan(args: argparse.Namespace) -> int:
    config = load_config(args.config, secrets=False)  # planning sends nothing
    check_workspaces(config, args.workspace)
    check_range(config, args.start, args.end)
    settings = resolve_run(config, Options(today=args.today, start=args.start, end=args.end,
                                           workspaces=args.workspace, shard=args.shard),
                           datetime.now(UTC))
    wins = list(settings.windows)
    doc = plan_document(summarize(wins))
    doc["capacity"] = plan_warnings(config, wins, args.today, args.latency)
    if args.json:
        _print_json(doc)
        return EXIT_OK
    from .render import print_plan

    print_plan(doc)
    return EXIT_OK


def _options(args: argparse.Namespace) -> Options:
    return Options(
        today=args.today, start=args.start, end=args.end, workspaces=args.workspace,
        output_dir=args.output_dir, manifest=args.manifest, concurrency=args.concurrency,
        max_outage_s=args.max_outage, shard=args.shard,
    )


def _cmd_run(args: argparse.Namespace) -> int:
    if args.dask is not None and not args.dry_run:
        # Secrets are resolved by each worker from its own environment, not here.
        config = load_config(args.config, secrets=False)
        check_workspaces(config, args.workspace)
        return cmd_run_dask(args, config, _options(args))
    if args.shards is not None:
        raise ConfigError("usage: --shards goes with --dask (see 'backfill run --help')")
    config = with_cacert(load_config(args.config), args.cacert)
    check_workspaces(config, args.workspace)
    from ..engine import Backfill

    engine = Backfill(config, _options(args))
    if args.dry_run:
        return _dry_run(engine, args.json)
    from .logs import EventLog, secrets_of, setup
    from .progress import Progress

    progress = Progress(enabled=not (args.no_progress or args.quiet), quiet=args.quiet)
    # A live panel shows pauses and throttling itself; log lines would tear it.
    setup(verbose=args.verbose, quiet=args.quiet or (progress.live_mode and not args.verbose),
          log_file=args.log_file, fmt=args.log_format, secrets=secrets_of(config))
    engine.subscribe(EventLog())
    engine.subscribe(progress)
    lane = _tables_lane(config, engine)
    with progress:
        summary = eventloop.run(_run_until_signal, engine, lane)
    monitor.after_run(args, config, summary, engine.manifest_path, engine.windows())
    if args.json:
        doc = summary.document(run=True)
        if lane is not None:
            doc["tables"] = lane.document()
        _print_json(doc)
    elif not args.quiet:
        from .render import print_summary

        print_summary(summary)
        if lane is not None:
            from ..tables.cli import print_lane

            print_lane(lane)
    return summary.exit_code  # a failed conversion never fails the run


def _tables_lane(config: Config, engine: Backfill) -> Lane | None:
    """``[extract] enabled``: the lane converting files as they complete (pyarrow checked
    before anything is downloaded: a missing extra is exit 2)."""
    if not config.extract.enabled:
        return None
    from ..tables import require
    from ..tables.lane import Lane

    require()
    lane = Lane(config, engine.output_dir, engine.manifest_path)
    engine.subscribe(lane.on_event)
    return lane


async def _run_until_signal(engine: Backfill, lane: Lane | None = None) -> Summary:
    """Run; the first SIGINT/SIGTERM stops cleanly (exit 130), a second one at once."""
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, engine)
            async with anyio.create_task_group() as tables:
                if lane is not None:
                    tables.start_soon(lane.run)
                try:
                    summary = await engine.run()
                finally:
                    if lane is not None:
                        lane.finish(drain=not engine.stopping)
            tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return summary


async def _watch_signals(engine: Backfill) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            if engine.stopping:
                # The journal is append-only with whole-line writes: stopping now is safe.
                os._exit(EXIT_INTERRUPTED)
            print("backfill: stopping — finishing the manifest (press Ctrl-C again to quit "
                  "at once)", file=sys.stderr)
            engine.stop()


def _dry_run(engine: Backfill, as_json: bool) -> int:
    rows = [{"workspace": t.workspace.name, "app_id": t.workspace.app_id,
             "report": t.report.name, "date": t.day.isoformat(), "filename": t.filename,
             "url": url} for t, url in engine.dry_run()]
    if as_json:
        _print_json({"requests": rows, "count": len(rows)})
    else:
        for r in rows:
            print(f"GET {r['url']}  ({r['workspace']}, {r['date']})")
        print(f"{len(rows)} requests would be made", file=sys.stderr)
    return EXIT_OK


def _print_json(doc: dict[str, Any]) -> None:
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _status_source(target: str) -> tuple[Config | None, Path]:
    path = Path(target)
    if path.suffix == ".toml":
        config = load_config(path, secrets=False)
        run = config.run
        return config, run.manifest_path
    if not path.exists():
        raise ConfigError(f"{path}: no such manifest or config file")
    return None, path


def _cmd_status(args: argparse.Namespace) -> int:
    from ..shards.view import load_view
    from ..summary import tally_records

    config, manifest_path = _status_source(args.target)
    view = load_view(manifest_path)  # the main manifest and every shard manifest beside it
    state = view.state
    if args.check:
        return monitor.check(args, config, state, manifest_path)
    workspaces = config.workspaces if config else ()
    summary = tally_records(state, workspaces, datetime.now(UTC))
    summary.at_risk = monitor.at_risk(config, state, datetime.now(UTC))
    if args.json:
        doc = summary.document()
        doc["manifest"] = str(manifest_path)
        doc["torn_line"] = state.torn_line
        doc.update(view_document(view))
        _print_json(doc)
        return EXIT_OK
    from .render import print_grid, print_status

    for path, line in view.torn:
        print(f"backfill: note: {path}:{line}: torn last line ignored "
              "(an interrupted write; the next run rewrites it)", file=sys.stderr)
    print_view_notes(view)
    if args.grid:
        print_grid(list(state), workspaces, datetime.now(UTC))
    print_status(summary, manifest_path)
    return EXIT_OK


def _cmd_verify(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    from ..verify import verify

    result = anyio.run(verify, config)
    if args.json:
        _print_json(result)
    else:
        print(f"{result['checked']} completed files checked: {result['ok']} ok, "
              f"{len(result['bad'])} bad")
        for bad in result["bad"]:
            print(f"  {bad['path']}: {bad['reason']} — marked failed, the next run fetches it")
        tables = result.get("tables")
        if tables:
            print(f"{tables['checked']} table files checked: {tables['ok']} ok, "
                  f"{len(tables['bad'])} bad")
            for bad in tables["bad"]:
                print(f"  {bad['path']}: {bad['reason']} — the next extract converts it again")
    tables_bad = (result.get("tables") or {}).get("bad")
    return EXIT_FAILED if result["bad"] or tables_bad else EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DemoSettings, run_demo

    if args.reports > 5:
        raise ConfigError("--reports: at most 5")
    settings = DemoSettings(workspaces=args.workspaces, reports=args.reports, days=args.days,
                            faults=args.faults, output_dir=args.output_dir,
                            progress=not args.no_progress)
    summary = eventloop.run(run_demo, settings)
    return summary.exit_code


def _cmd_extract(args: argparse.Namespace) -> int:
    from ..tables.cli import run as run_extract

    return run_extract(args)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from ..simulator.cli import run as run_simulator

    return run_simulator(args)


_COMMANDS = {
    "plan": _cmd_plan, "run": _cmd_run, "status": _cmd_status, "verify": _cmd_verify,
    "simulate": _cmd_simulate, "demo": _cmd_demo, "extract": _cmd_extract,
    "manifest": cmd_manifest,
}


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
