"""The command line of shards: ``run --shard``/``--dask``, ``plan --shard`` and
``backfill manifest merge``. Argument parsing and presentation only.

``backfill manifest merge OUT IN...`` exit codes: 0 merged · 1 merged, but completed
records of some files disagree on sha256 (each one is listed; the newer was kept) ·
2 an input is unreadable or corrupt (nothing written) · 75 a run holds OUT's lock.
Any IN or OUT may be an object-store URL (s3://bucket/prefix/manifest.jsonl).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..shards.assign import Shard, ShardError, parse_shard

if TYPE_CHECKING:
    from ..config import Config
    from ..engine import Options
    from ..journal import ManifestState
    from ..settings import ResolvedRun
    from ..shards.dask import ShardResult
    from ..shards.view import MergeReport, View


def shard_arg(text: str) -> Shard:
    """argparse type of ``--shard``: ``I/N``; ``$VAR/N`` reads the index from the
    environment (``$JOB_COMPLETION_INDEX/8`` where no shell expands it)."""
    try:
        return parse_shard(text, os.environ)
    except ShardError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_shard_plan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shard", type=shard_arg, metavar="I/N",
                   help="only the workspaces of shard I of N")


def add_run_args(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--shard", type=shard_arg, metavar="I/N",
                       help="only the workspaces of shard I of N (0-based), journalled in "
                            "manifest.shard-I-of-N.jsonl beside the manifest")
    group.add_argument("--dask", metavar="ADDRESS|local[:N]",
                       help="run the shards as tasks on a Dask cluster (tcp://host:8786), "
                            "or on N local worker processes (default: one per CPU)")
    p.add_argument("--shards", type=_count, metavar="N",
                   help="with --dask: how many shards (default: one per worker)")


def _count(text: str) -> int:
    if not text.isdecimal() or not 1 <= int(text) <= 100_000:
        raise argparse.ArgumentTypeError(f"expected a whole number 1..100000, got {text!r}")
    return int(text)


def add_manifest_parser(sub: Any) -> None:
    manifest = sub.add_parser("manifest", help="manifest tools: merge shard manifests")
    tools = manifest.add_subparsers(dest="manifest_command", required=True,
                                    parser_class=type(manifest))
    merge = tools.add_parser(
        "merge", help="merge manifests by file, atomically (a completed file beats "
                      "any other status, otherwise the newest record)",
        description=__doc__.split("\n\n")[1] if __doc__ else None)
    merge.add_argument("out", metavar="OUT",
                       help="the manifest to write (may be one of the inputs); a file or "
                            "an object-store URL (s3://bucket/prefix/manifest.jsonl)")
    merge.add_argument("inputs", nargs="+", metavar="IN", help="files or URLs")
    merge.add_argument("--json", action="store_true", help="one JSON document on stdout")


def cmd_manifest(args: argparse.Namespace) -> int:
    from ..destination import is_object_url
    from ..errors import ConfigError
    from ..shards.view import merge_files

    names: dict[str, str] = {}
    if any(is_object_url(t) for t in [args.out, *args.inputs]):
        from .. import eventloop
        from ..shards.remote import merge_urls

        report, names = eventloop.run(merge_urls, args.out, args.inputs)
    else:
        for path in map(Path, args.inputs):
            if not path.is_file():
                raise ConfigError(f"{path}: no such manifest")
        report = merge_files(Path(args.out), [Path(p) for p in args.inputs])
    if args.json:
        _print_json(merge_document(report, names))
    else:
        _print_merge(report, names)
    return 1 if report.conflicts else 0


def merge_document(report: MergeReport, names: dict[str, str] | None = None,
                   ) -> dict[str, Any]:
    """``names``: what to show for a private copy of a manifest in an object store."""
    def n(label: object) -> str:
        return (names or {}).get(str(label), str(label))

    return {
        "out": n(report.out), "inputs": [n(p) for p in report.inputs],
        "records": report.records,
        "torn_lines": [{"manifest": n(p), "line": line} for p, line in report.torn],
        "conflicts": [{
            "app_id": c.key[0], "filename": c.key[1],
            "kept": {"manifest": n(c.kept[0]), "sha256": c.kept[1].sha256,
                     "updated_at": c.kept[1].updated_at},
            "others": [{"manifest": n(lab), "sha256": r.sha256, "updated_at": r.updated_at}
                       for lab, r in c.others],
        } for c in report.conflicts],
    }


def _print_merge(report: MergeReport, names: dict[str, str]) -> None:
    def n(label: object) -> str:
        return names.get(str(label), str(label))

    for path, line in report.torn:
        print(f"backfill: note: {n(path)}:{line}: torn last line ignored", file=sys.stderr)
    print(f"{n(report.out)}: {report.records} files from {len(report.inputs)} manifests")
    for c in report.conflicts:
        text = c.describe()
        for copy, url in names.items():
            text = text.replace(copy, url)
        print(f"conflict: {text}", file=sys.stderr)
    if report.conflicts:
        print(f"backfill: {len(report.conflicts)} files have completed records with "
              "different sha256 (the newer was kept); `backfill verify` re-hashes the "
              "files on disk", file=sys.stderr)


# ------------------------------------------------------------------ run --dask


def cmd_run_dask(args: argparse.Namespace, config: Config, options: Options) -> int:
    """Plan, run every shard as a Dask task, merge the shard manifests into the main one,
    print the merged status; exit with the worst exit code of the shards."""
    from ..engine import Backfill
    from ..shards.dask import connect, parse_target, plan_jobs, submit_shards, worker_count, worst
    from ..shards.network import capture
    from ..summary import tally_records
    from .render import print_status

    target = parse_target(args.dask)
    settings = Backfill(config, options).resolve()
    names = [ws.name for ws in config.workspaces
             if not options.workspaces or ws.name in options.workspaces]
    show = not (args.no_progress or args.quiet)
    with connect(target) as client:
        count = args.shards or worker_count(client)
        jobs = plan_jobs(Path(args.config), options, count, names,
                         capture(config.http, os.environ))  # --cacert, proxies: the same
        if show:
            print(f"backfill: {len(jobs)} shards of {count} own a workspace; "
                  f"running them on {worker_count(client)} Dask workers", file=sys.stderr)
        results = submit_shards(client, jobs, _Progress(count) if show else None)
    state, merged, main = _merged(settings)
    summary = tally_records(state, config.workspaces, datetime.now(UTC))
    code = worst([r.exit_code for r in results])
    if args.json:
        doc = summary.document()
        doc.update(exit_code=code, manifest=str(main), shards=[_shard_row(r) for r in results],
                   merge=None if merged is None else merge_document(merged))
        _print_json(doc)
    elif not args.quiet:
        for r in results:
            print(_shard_line(r), file=sys.stderr)
        print_status(summary, main)
    return code


def _merged(settings: ResolvedRun) -> tuple[ManifestState, MergeReport | None, str]:
    """After the shards: the merged state, the merge into the main manifest (None: not
    merged) and the main manifest's name. Manifests in an object store stay as the
    shards published them (every reader merges them); local ones are consolidated."""
    from ..engine.destination import remote_state, run_settings
    from ..shards.view import load_state

    main = settings.main_manifest
    if settings.remote_manifest:
        state = remote_state(run_settings(settings), settings.config.storage)
        return state, None, f"{settings.output_dir}/{main.name}"
    merged = _consolidate(main)
    return load_state(main), merged, str(main)


def _consolidate(main: Path) -> MergeReport | None:
    from ..errors import BackfillError
    from ..shards.view import consolidate

    try:
        report = consolidate(main)
    except BackfillError as exc:
        print(f"backfill: note: shard manifests not merged into {main} ({exc}); every "
              "reader still sees them merged", file=sys.stderr)
        return None
    for c in report.conflicts:
        print(f"conflict: {c.describe()}", file=sys.stderr)
    return report


def _shard_row(r: ShardResult) -> dict[str, Any]:
    return {"shard": str(r.shard), "exit_code": r.exit_code, "error": r.error,
            "host": r.host, "pid": r.pid, "wall_s": r.wall_s, "cpu_s": r.cpu_s,
            "peak_rss_mib": r.peak_rss_mib,
            "totals": None if r.document is None else r.document["totals"]}


def _shard_line(r: ShardResult) -> str:
    where = f" on {r.host} (pid {r.pid})" if r.pid else ""
    detail = f": {r.error}" if r.error else ""
    return f"shard {r.shard}{where}: exit {r.exit_code}{detail}"


class _Progress:
    """One line per shard on stderr when its figures change, at most every 2 s each; a
    shard seen on a new process is announced (its worker died; Dask re-ran it)."""

    def __init__(self, count: int, every_s: float = 2.0,
                 out: Callable[[str], None] | None = None) -> None:
        self.count, self.every_s = count, every_s
        self.out = out or (lambda line: print(line, file=sys.stderr, flush=True))
        self.pids: dict[int, int] = {}
        self.shown: dict[int, float] = {}

    def __call__(self, msg: dict[str, Any]) -> None:
        import time

        index, pid = int(msg["shard"]), int(msg["pid"])
        shard = f"shard {index}/{msg['count']}"
        if self.pids.get(index, pid) != pid:
            self.out(f"{shard}: running again on {msg['host']} (pid {pid}): its worker "
                     "died; what is recorded completed is kept")
        self.pids[index] = pid
        now = time.monotonic()
        if not msg["final"] and now - self.shown.get(index, -1e9) < self.every_s:
            return
        self.shown[index] = now
        counts = ", ".join(f"{k} {v}" for k, v in sorted(msg["statuses"].items()))
        self.out(f"{shard}: {msg['done']}/{msg['total']} files"
                 + (f" ({counts})" if counts else "") + (" — done" if msg["final"] else ""))


def _print_json(doc: dict[str, Any]) -> None:
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")


# ------------------------------------------------------------------ status


def view_document(view: View) -> dict[str, Any]:
    """What ``status --json`` adds about the files it read."""
    return {"manifests": [view.label(p) for p in view.paths],
            "torn_lines": [{"manifest": view.label(p), "line": n} for p, n in view.torn],
            "conflicts": [{"app_id": a, "filename": f} for a, f in sorted(view.conflict_keys)]}


def print_view_notes(view: View) -> None:
    if len(view.paths) > 1:
        print(f"backfill: note: {len(view.paths)} manifests read together: "
              + ", ".join(p.name for p in view.paths), file=sys.stderr)
    if view.conflict_keys:
        print(f"backfill: note: {len(view.conflict_keys)} files have completed records with "
              "different sha256 in different manifests (the newer counts); "
              "`backfill manifest merge` lists them", file=sys.stderr)
