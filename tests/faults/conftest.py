"""Helpers of the fault suite: one check that states the promise, run after every scenario.

:func:`check_promise` is the heart of the suite. After any run it asserts, from the
manifest and the disk alone, that

* every planned file has exactly one record, and its status is the one its age allows;
* a ``completed`` record names a file that holds exactly the server's bytes, with the
  recorded size and sha256;
* a ``failed`` record carries a reason from the allowed set;
* nothing else exists under the output directory — no ``.part``, no stray file, no
  symlink — only the manifest, its lock and the completed files (and their directories);
* nothing was written beside the output directory.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Collection, Iterable
from datetime import date, timedelta
from pathlib import Path, PurePosixPath

from backfill.clock import ScaledClock
from backfill.config import Config
from backfill.engine import Backfill, Options
from backfill.events import Event
from backfill.journal import Record, Status, load_manifest
from backfill.naming import render_path
from backfill.planner import Kind, Task, tasks, windows
from backfill.simulator import Simulator
from backfill.summary import Summary

from ..integration.conftest import TODAY, make_config, manifest_records, pointed_at

__all__ = [
    "BIG",
    "SMALL",
    "TODAY",
    "Outcome",
    "check_promise",
    "cli_command",
    "make_config",
    "manifest_records",
    "planned",
    "pointed_at",
    "run_engine",
    "tree",
]

SMALL = "Daily campaign summary"  # served at the simulator's default 10 KiB: one-hop store
BIG = "Email - delivery (EU)"  # served at 600 kB: the chunked storage path (> 256 KiB)
BIG_BYTES = 600_000


class Outcome:
    """What a run produced: the summary, the events, the records by file name."""

    def __init__(self, summary: Summary, events: list[Event], records: list[Record]) -> None:
        self.summary = summary
        self.events = events
        self.records = {r.filename: r for r in records}

    def by_status(self, status: Status) -> list[Record]:
        return [r for r in self.records.values() if r.status is status]


def planned(config: Config, today: date | dict[str, date] = TODAY) -> list[Task]:
    """Every task a run plans (future dates excluded), in dispatch order."""
    per_ws = today if isinstance(today, dict) else {w.name: today for w in config.workspaces}
    return [t for t in tasks(windows(config, per_ws)) if t.kind is not Kind.FUTURE]


def big_sizes(config: Config, today: date = TODAY, days: int = 12) -> dict[str, int]:
    """Per-file sizes for the simulator: every file of report ``BIG`` is 600 kB."""
    from backfill.naming import report_filename

    return {report_filename(BIG, today - timedelta(days=d)): BIG_BYTES for d in range(days)}


async def run_engine(config: Config, *, today: date | None = TODAY, speed: float = 200.0,
                     clock: ScaledClock | None = None, **options: object) -> Outcome:
    events: list[Event] = []
    engine = Backfill(config, Options(today=today, **options),  # type: ignore[arg-type]
                      clock=clock or ScaledClock(speed=speed))
    engine.subscribe(events.append)
    summary = await engine.run()
    return Outcome(summary, events, manifest_records(config))


def cli_command(*args: str) -> list[str]:
    """The real entry point, as a user runs it."""
    return [sys.executable, "-m", "backfill", *args]


def tree(root: Path) -> dict[str, str]:
    """Relative path → kind ('file', 'dir', 'link', 'other') of everything under ``root``."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath, name)
            kind = ("link" if p.is_symlink() else "dir" if p.is_dir()
                    else "file" if p.is_file() else "other")
            out[str(p.relative_to(root))] = kind
    return out


def check_promise(
    config: Config,
    sim: Simulator,
    *,
    failures: Collection[str] = (),
    today: date | dict[str, date] = TODAY,
    boundary_served: bool = False,
    allow_missing: bool = False,
    siblings: Iterable[str] = (),
) -> dict[Status, list[Record]]:
    """Assert the promise after a run (see the module docstring); records by status.

    ``failures``: reasons a ``failed`` record may carry ("outage: " matches any outage
    reason). ``siblings``: names allowed beside the output directory (the test's own).
    """
    out = config.run.output_dir
    manifest = config.run.manifest or out / "manifest.jsonl"
    state = load_manifest(manifest)
    assert state.torn_line is None
    records = {r.key: r for r in state}
    tasks_ = planned(config, today)
    assert set(records) == {t.key for t in tasks_}, "a planned file has no record (or extra)"

    by_status: dict[Status, list[Record]] = {s: [] for s in Status}
    expected_files: dict[str, bytes] = {}
    for task in tasks_:
        rec = records[task.key]
        by_status[rec.status].append(rec)
        where = f"{task.filename} (age {task.age}): {rec.status.value} {rec.error!r}"
        if task.kind is Kind.EXPIRED:
            assert rec.status is Status.EXPIRED and rec.attempts == 0, where
            assert all((a, f) != task.key for (a, f, _) in sim.counters.requests), (
                f"requested at age {task.age}: {task.filename}")
            continue
        if rec.status is Status.COMPLETED:
            assert rec.path is not None and rec.sha256 is not None, where
            rel = PurePosixPath(rec.path)
            ws = task.workspace
            assert rel == render_path(config.run.layout, workspace=ws.name, app_id=ws.app_id,
                                      report=task.report.name, day=task.day,
                                      filename=task.filename), where
            data = (out / rel).read_bytes()
            body = sim.expected_body(task.workspace.app_id, task.filename)
            assert data == body, f"{where}: bytes on disk differ from the server's"
            assert len(data) == rec.bytes, where
            assert hashlib.sha256(data).hexdigest() == rec.sha256, where
            expected_files[rec.path] = data
        elif rec.status is Status.FAILED:
            reason = rec.error or ""
            ok = reason in failures or (reason.startswith("outage: ") and "outage" in failures)
            assert ok, f"{where}: unexpected failure reason"
        elif rec.status is Status.EXPIRED:
            assert task.kind is Kind.BOUNDARY and not boundary_served, where
        elif rec.status in (Status.MISSING, Status.PENDING):  # a 400 inside the window
            assert allow_missing and (rec.status is Status.MISSING) == (task.age > 0), where
        else:
            raise AssertionError(f"{where}: unexpected status")

    # Nothing but the manifest, its lock, its run record and the completed files under the
    # output directory.
    allowed = ({manifest.name, manifest.name + ".lock", manifest.name + ".runs.json"}
               if manifest.parent == out else set())
    allowed |= set(expected_files)
    dirs = {str(p) for f in expected_files for p in PurePosixPath(f).parents if str(p) != "."}
    # Directories made for a download that then failed may stay (empty), but only where
    # the layout puts files.
    layout_dirs = {str(p) for t in tasks_ for p in PurePosixPath(render_path(
        config.run.layout, workspace=t.workspace.name, app_id=t.workspace.app_id,
        report=t.report.name, day=t.day, filename=t.filename)).parents if str(p) != "."}
    for rel, kind in tree(out).items():
        if kind == "dir":
            assert rel in dirs or rel in layout_dirs, f"stray directory {rel}"
        else:
            assert kind == "file" and rel in allowed, f"stray {kind} {rel} under output_dir"
    parent = out.parent
    beside = {p.name for p in parent.iterdir()} - {out.name} - set(siblings)
    assert not beside, f"written beside the output directory: {sorted(beside)}"
    return by_status
