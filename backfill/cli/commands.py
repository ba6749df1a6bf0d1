"""The ``backfill`` command: argument parsing and dispatch; the help text is in
:mod:`backfill.helptext`, tables in :mod:`backfill.render`.

Exit codes (design.md): 0 nothing failed · 1 some files failed · 2 bad config or usage ·
3 ``status --check`` found a problem · 4 a report rejected as a whole (every request a
400, never a file: its name or the app_id is wrong) · 75 manifest locked by another run ·
130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import signal
import sys
import textwrap
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import anyio

from .. import __version__, eventloop
from ..config import Config, DateSpec, load_config
from ..destination import ObjectURL, OutputDir
from ..errors import BackfillError, ConfigError, first_error
from ..model import Window
from ..planner import WorkspacePlan, next_ready, summarize
from ..settings import Options, check_workspaces, resolve_run, resolve_today
from . import monitor, streams
from .argtypes import day, duration, output_dir, positive_int
from .helptext import COMMANDS, DESCRIPTION, EPILOG
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
        from .hints import prog

        command = "" if self.prog == "backfill" else f" {self.prog.split()[-1]}"
        raise ConfigError(f"usage: {message} (see '{prog()}{command} --help')")


def _date_arg(text: str) -> DateSpec:
    try:
        return DateSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help as written in helptext.py, at most 80 columns wide."""

    def __init__(self, prog: str) -> None:
        width = min(80, shutil.get_terminal_size((80, 24)).columns)
        super().__init__(prog, width=width, max_help_position=26)


# Completion hints for shtab (read only by `backfill completion`): these take file paths.
_FILE = {"bash": "_shtab_compgen_files", "zsh": "_files", "tcsh": "f",
         "fish": "(__fish_complete_path (commandline -ct))"}


def _command(sub: Any, name: str) -> argparse.ArgumentParser:
    line, epilog = COMMANDS[name]
    p: argparse.ArgumentParser = sub.add_parser(
        name, prog=f"backfill {name}", help=line,
        description=line[0].upper() + line[1:] + ".", epilog=epilog,
        formatter_class=_Formatter)
    return p


def _command_list() -> str:
    lines = ["commands:"]
    lines += [f"  {name:<11} {line}" for name, (line, _) in COMMANDS.items()]
    return "\n".join(lines)


def _config_arg(p: argparse.ArgumentParser, metavar: str = "CONFIG",
                dest: str = "config") -> None:
    arg = p.add_argument(dest, metavar=metavar, help="path to the TOML config")
    arg.complete = _FILE  # type: ignore[attr-defined]


def build_parser(*, completion: bool = False) -> argparse.ArgumentParser:
    """The parser; ``completion=True`` lists the commands in the usual argparse way, for
    shtab (the help shows them in its own layout instead)."""
    parser = _Parser(prog="backfill", usage="backfill COMMAND [OPTIONS] ...",
                     description=DESCRIPTION + "\n\n" + _command_list(), epilog=EPILOG,
                     formatter_class=_Formatter, add_help=False)
    general = parser.add_argument_group("general options")
    general.add_argument("-h", "--help", action="help", help="show this help and exit")
    general.add_argument("--version", action="version", version=f"moe-backfill {__version__}",
                         help="show the version and exit")
    # The command list is part of the description (laid out there); argparse's own
    # listing would repeat it in a less readable form.
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, prog="backfill",
                                help=None if completion else argparse.SUPPRESS)

    _add_plan_and_run(sub)
    _add_status_verify_check(sub)
    _add_simulate(sub)
    _add_demo(sub)
    shells = _command(sub, "completion")
    shells.add_argument("shell", choices=("bash", "zsh", "fish"))
    return parser


def _add_plan_and_run(sub: Any) -> None:
    plan = _command(sub, "plan")
    _config_arg(plan)
    _add_range_args(plan)
    add_shard_plan_args(plan)
    plan.add_argument("--json", action="store_true", help="one JSON document on stdout")
    add_plan_args(plan)

    run = _command(sub, "run")
    _config_arg(run)
    _add_range_args(run)
    _add_path_args(run)
    run.add_argument("--concurrency", type=positive_int, metavar="N",
                     help="override [run] concurrency")
    run.add_argument("--max-outage", type=duration, metavar="TIME",
                     help="give up on a host unreachable this long: 90s, 30m, 2h "
                     "(default [run] max_outage_s, 30m)")
    _add_cacert(run)
    add_run_args(run)
    run.add_argument("--no-progress", action="store_true", help="no live progress display")
    run.add_argument("--quiet", "-q", action="store_true", help="only errors on stderr")
    run.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    run.add_argument("--dry-run", action="store_true",
                     help="list the requests a run would make, make none")
    add_metrics_arg(run)
    _add_log_args(run)


def _add_status_verify_check(sub: Any) -> None:
    status = _command(sub, "status")
    _config_arg(status, "CONFIG|MANIFEST", "target")
    _add_path_args(status)
    status.add_argument("--json", action="store_true", help="one JSON document on stdout")
    status.add_argument("--grid", action="store_true",
                        help="(workspace, report) × date matrix, files at risk first")
    add_check_args(status)

    verify = _command(sub, "verify")
    _config_arg(verify)
    _add_path_args(verify)
    verify.add_argument("--json", action="store_true", help="one JSON document on stdout")

    check = _command(sub, "check")
    _config_arg(check)
    check.add_argument("--workspace", action="append", default=[], metavar="NAME",
                       help="only this workspace (repeatable)")
    check.add_argument("--today", type=day, metavar="D", help="pin 'today' in every workspace")
    _add_cacert(check)
    check.add_argument("--json", action="store_true", help="one JSON document on stdout")

    add_manifest_parser(sub)
    from ..tables.cli import add_parser as add_extract  # imports no pyarrow

    add_extract(sub)


def _add_demo(sub: Any) -> None:
    demo = _command(sub, "demo")
    demo.add_argument("--workspaces", type=positive_int, default=3,
                      help="number of workspaces (%(default)s)")
    demo.add_argument("--reports", type=positive_int, default=2,
                      help="reports per workspace, 1-5 (%(default)s)")
    demo.add_argument("--days", type=positive_int, default=10,
                      help="days back from today (%(default)s)")
    demo.add_argument("--faults", action="store_true",
                      help="inject throttling, 5xx, dropped connections and an outage")
    demo.add_argument("--output-dir", type=Path, default=Path("demo-output"), metavar="DIR",
                      help="where the config and files go (%(default)s)")
    demo.add_argument("--resume", action="store_true",
                      help="keep the previous demo's manifest and files (default: start over)")
    demo.add_argument("--no-progress", action="store_true", help="no live progress display")


def _add_simulate(sub: Any) -> None:
    from ..simulator.cli import add_arguments

    add_arguments(_command(sub, "simulate"))


def _add_path_args(p: argparse.ArgumentParser) -> None:
    """The same overrides as ``run``, so a split-by-machine manifest can be read back."""
    p.add_argument("--output-dir", type=output_dir, metavar="DIR",
                   help="override [run] output_dir (a folder, or s3:// gs:// az://)")
    p.add_argument("--manifest", type=Path, metavar="PATH", help="override [run] manifest")


def with_paths(config: Config, output_dir: OutputDir | None, manifest: Path | None,
               ) -> Config:
    """``--output-dir``/``--manifest`` in place of the config's (as ``run`` applies them)."""
    run = config.run
    if output_dir is not None:
        run = dataclasses.replace(run, output_dir=output_dir)
    if manifest is not None:
        run = dataclasses.replace(run, manifest=manifest)
    return dataclasses.replace(config, run=run)


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
    p.add_argument("--start", type=_date_arg, metavar="D",
                   help="first generation date (YYYY-MM-DD, -Nd)")
    p.add_argument("--end", type=_date_arg, metavar="D",
                   help="last generation date (YYYY-MM-DD, today)")
    p.add_argument("--today", type=day, metavar="D",
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
        # --cacert and the proxy variables travel to the workers (shards/network.py).
        config = with_cacert(load_config(args.config, secrets=False), args.cacert)
        check_workspaces(config, args.workspace)
        return cmd_run_dask(args, config, _options(args))
    if args.shards is not None:
        raise ConfigError("usage: --shards goes with --dask (see 'backfill run --help')")
    config = with_cacert(load_config(args.config), args.cacert)
    for warning in config.warnings:
        streams.write(sys.stderr, f"backfill: warning: {warning}\n")
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
        summary = eventloop.run(_run_until_signal, engine, progress.restore_terminal, lane)
    monitor.after_run(args, config, summary, engine.manifest_path, engine.windows())
    if args.json:
        doc = summary.document(run=True)
        if lane is not None:
            doc["tables"] = lane.document()
        _print_json(doc)
    if not args.quiet and not args.json:
        from .render import print_summary

        print_summary(summary)
        if lane is not None:
            from ..tables.cli import print_lane

            print_lane(lane)
    elif summary.rejected:  # a configuration problem is said even with -q or --json
        from .render import print_rejected

        print_rejected(summary)
    return summary.exit_code  # a failed conversion never fails the run


def _tables_lane(config: Config, engine: Backfill) -> Lane | None:
    """``[extract] enabled``: the lane converting files as they complete (pyarrow checked
    before anything is downloaded: a missing extra is exit 2)."""
    if not config.extract.enabled:
        return None
    from ..tables import require
    from ..tables.lane import Lane

    if isinstance(engine.output_dir, ObjectURL):
        raise ConfigError(f"[extract] enabled: tables are extracted into a local output_dir, "
                          f"not {engine.output_dir} (not supported yet)")
    require()
    lane = Lane(config, engine.output_dir, engine.manifest_path)
    engine.subscribe(lane.on_event)
    return lane


async def _run_until_signal(engine: Backfill, before_exit: Callable[[], None],
                            lane: Lane | None = None) -> Summary:
    """Run; the first SIGINT/SIGTERM stops cleanly (exit 130), a second one at once
    (after ``before_exit``, which gives the terminal its cursor back)."""
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, engine, before_exit)
            async with anyio.create_task_group() as tables:
                if lane is not None:
                    tables.start_soon(lane.run)
                try:
                    summary = await engine.run()
                finally:
                    if lane is not None:
                        lane.finish(drain=not engine.stopping)
            tg.cancel_scope.cancel()
        if engine.stopping:  # a signal after the last download (compacting, say): still 130
            summary.interrupted = True
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return summary


async def _watch_signals(engine: Backfill, before_exit: Callable[[], None]) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            if engine.stopping:
                before_exit()
                # The journal is append-only with whole-line writes: stopping now is safe.
                os._exit(EXIT_INTERRUPTED)
            streams.write(sys.stderr, "backfill: stopping, finishing the manifest (press "
                          "Ctrl-C again to quit at once)\n")
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
    """The document on stdout; a reader gone (``| head -c1``) does not change the exit code."""
    streams.write(sys.stdout, json.dumps(doc, indent=2) + "\n")


def _status_source(args: argparse.Namespace) -> tuple[Config | None, Path]:
    path = Path(args.target)
    if path.suffix == ".toml":
        config = with_paths(load_config(path, secrets=False), args.output_dir, args.manifest)
        return config, config.run.manifest_path
    if args.output_dir or args.manifest:
        raise ConfigError("usage: --output-dir/--manifest go with a CONFIG; "
                          f"{path} is read as a manifest")
    if not path.exists():
        raise ConfigError(f"{path}: no such manifest or config file")
    return None, path


def _cmd_status(args: argparse.Namespace) -> int:
    from ..shards.view import load_view
    from ..summary import tally_records

    config, manifest_path = _status_source(args)
    if config is not None and config.run.remote_manifest:  # they live with the data
        from ..engine.destination import remote_view

        view = remote_view(config.run, config.storage)  # main and shard manifests, merged
    else:
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
        print(f"backfill: note: {view.label(path)}:{line}: torn last line ignored "
              "(an interrupted write; the next run rewrites it)", file=sys.stderr)
    print_view_notes(view)
    if args.grid:
        print_grid(list(state), workspaces, datetime.now(UTC))
    print_status(summary, manifest_path)
    return EXIT_OK


def _cmd_verify(args: argparse.Namespace) -> int:
    # verify sends no request: it needs no API keys in the environment
    config = with_paths(load_config(args.config, secrets=False), args.output_dir,
                        args.manifest)
    from ..verify import verify

    result = eventloop.run(verify, config)
    if args.json:
        _print_json(result)
    else:
        print(f"{result['checked']} completed files checked: {result['ok']} ok, "
              f"{len(result['bad'])} bad")
        for bad in result["bad"]:
            print(f"  {bad['path']}: {bad['reason']}")
        if result["bad"]:
            print("These are marked failed: the next run fetches them again (while the API "
                  "has them).")
        tables = result.get("tables")
        if tables:
            print(f"{tables['checked']} table files checked: {tables['ok']} ok, "
                  f"{len(tables['bad'])} bad")
            for bad in tables["bad"]:
                print(f"  {bad['path']}: {bad['reason']}")
            if tables["bad"]:
                print("The next extract converts these again.")
    tables_bad = (result.get("tables") or {}).get("bad")
    return EXIT_FAILED if result["bad"] or tables_bad else EXIT_OK


def _cmd_check(args: argparse.Namespace) -> int:
    from ..check import check
    from ..naming import base_url

    config = with_cacert(load_config(args.config), args.cacert)
    check_workspaces(config, args.workspace)
    verdicts = eventloop.run(check, config, args.workspace,
                             resolve_today(config, args.today, datetime.now(UTC)))
    ok = all(v.ok for v in verdicts)
    if args.json:
        _print_json({"ok": ok, "checks": [
            {"workspace": v.workspace, "report": v.report, "ok": v.ok, "text": v.text}
            for v in verdicts]})
        return EXIT_OK if ok else EXIT_FAILED
    shown = None
    for v in verdicts:
        if v.workspace != shown:
            shown = v.workspace
            ws = config.workspace(v.workspace)
            print(f"{ws.name} (app_id {ws.app_id}, {base_url(ws.data_center, ws.base_url)})")
        text = f"{v.report}: {v.text}" if v.report else v.text
        print(textwrap.fill(text, 80, initial_indent=f"  {'ok' if v.ok else 'FAIL':<5} ",
                            subsequent_indent=" " * 8))
    print("All checks passed." if ok else "Some checks failed: fix the config as said above, "
          "then run check again.")
    return EXIT_OK if ok else EXIT_FAILED


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DemoSettings, run_demo

    if args.reports > 5:
        raise ConfigError("--reports: at most 5")
    settings = DemoSettings(workspaces=args.workspaces, reports=args.reports, days=args.days,
                            faults=args.faults, output_dir=args.output_dir,
                            progress=not args.no_progress, resume=args.resume)
    summary = eventloop.run(run_demo, settings)
    return summary.exit_code


def _cmd_extract(args: argparse.Namespace) -> int:
    from ..tables.cli import run as run_extract

    return run_extract(args)


def _cmd_completion(args: argparse.Namespace) -> int:
    try:
        import shtab
    except ImportError:
        raise ConfigError("completion needs shtab: pip install 'moe-backfill[completion]'"
                          ) from None
    print(shtab.complete(build_parser(completion=True), shell=args.shell))
    return EXIT_OK


def _cmd_simulate(args: argparse.Namespace) -> int:
    from ..simulator.cli import run as run_simulator

    return run_simulator(args)


_COMMANDS = {
    "plan": _cmd_plan, "run": _cmd_run, "status": _cmd_status, "verify": _cmd_verify,
    "check": _cmd_check, "completion": _cmd_completion,
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
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser = build_parser()
        args = parser.parse_args(_glue_offsets(argv))
        if args.command is None:  # bare `backfill`: the help, as pip and rclone do
            parser.print_help()
            return EXIT_OK
        return _COMMANDS[args.command](args)
    except BackfillError as exc:
        streams.write(sys.stderr, f"backfill: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        streams.write(sys.stderr, "backfill: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # a print not yet through streams.write: the reader left
        streams.forget(sys.stdout)
        streams.forget(sys.stderr)
        return EXIT_OK
