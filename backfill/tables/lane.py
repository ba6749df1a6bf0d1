"""``[extract] enabled = true``: ``run`` converts each file to Parquet once it is durable.

:class:`Lane` subscribes to the engine's events; each ``completed`` download it hears of
becomes a job in a bounded queue, converted one at a time in a worker thread while the
downloads go on (:meth:`Lane.run`, started beside the engine). The run's outcome never
depends on it: a failed conversion is a ``failed`` ledger line, retried by the next
``extract``; a job that does not fit the queue, or that a stop leaves queued, is simply
not converted yet, and the next ``extract`` does it. The lane holds the tables lock
(``<ledger>.lock``) so an ``extract`` started meanwhile does not convert the same files;
if an ``extract`` holds it first, the lane converts nothing and says so.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from ..config import Config, Report
from ..errors import BackfillError, LockedError, StorageError
from ..events import Event, FileFinished
from ..journal import ManifestLock, Status
from ..naming import parse_filename, render_path
from .batch import Outcome, close_extractor, open_extractor
from .extract import Extractor, Job
from .ledger import EXTRACTED, ledger_path

try:
    from pyarrow import ArrowException as ArrowError
except ImportError:  # require() refused the run already
    ArrowError = OSError

QUEUE = 100_000  # jobs waiting: a few hundred bytes each
log = logging.getLogger("backfill")


@dataclass(frozen=True, slots=True)
class _Pending:
    workspace: str
    app_id: str
    report: Report
    day: date
    filename: str


class Lane:
    """Converts the run's completed downloads as they come (see the module docstring)."""

    def __init__(self, config: Config, output_dir: Path, manifest: Path) -> None:
        self.config = config
        self.output_dir = output_dir
        self.manifest = manifest
        self.outcome = Outcome()
        self.deferred = 0  # left for the next extract
        self.locked_out = False
        self.problem: str | None = None
        self._stopping = False
        self._send, self._receive = anyio.create_memory_object_stream[_Pending](QUEUE)
        self._reports = {(ws.name, r.name.replace(" ", "_")): (ws, r)
                         for ws in config.workspaces for r in ws.reports}

    def on_event(self, event: Event) -> None:
        """Engine subscriber: queue every completed download."""
        if not (isinstance(event, FileFinished) and event.status is Status.COMPLETED
                and event.fetched):
            return
        parsed = parse_filename(event.filename)
        found = self._reports.get((event.workspace, parsed[0])) if parsed else None
        if parsed is None or found is None:
            return
        ws, report = found
        try:
            self._send.send_nowait(_Pending(ws.name, ws.app_id, report, parsed[1],
                                            event.filename))
        except (anyio.WouldBlock, anyio.ClosedResourceError):
            self.deferred += 1

    def finish(self, *, drain: bool = True) -> None:
        """No more jobs: :meth:`run` returns once the queued ones are converted (or, with
        ``drain=False`` — the run was interrupted — after the one being converted)."""
        self._stopping = not drain
        self._send.close()

    async def run(self) -> None:
        """Convert queued jobs until :meth:`finish`. Never raises for the run's sake: a
        tables problem (lock held, output unwritable) is logged, and the files are left
        for the next ``extract``."""
        try:
            await self._convert_all()
        except (BackfillError, OSError, ArrowError) as exc:
            self.problem = str(exc)
            log.warning("tables: conversion stopped (%s); run 'backfill extract' to convert "
                        "the rest", exc)
        async with self._receive:  # whatever is still queued is left for the next extract
            async for _ in self._receive:
                self.deferred += 1

    async def _convert_all(self) -> None:
        lock = ManifestLock(ledger_path(self.manifest))
        try:
            lock.acquire()
        except LockedError:
            self.locked_out = True
            raise
        try:
            extractor = await anyio.to_thread.run_sync(open_extractor, self.output_dir,
                                                       self.manifest)
            try:
                async for pending in self._receive:
                    if self._stopping:
                        self.deferred += 1
                        continue
                    with anyio.CancelScope(shield=True):  # a thread cannot be stopped
                        await anyio.to_thread.run_sync(self._extract, extractor, pending)
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(close_extractor, extractor)
        finally:
            lock.release()

    def _extract(self, extractor: Extractor, p: _Pending) -> None:
        rel = render_path(self.config.run.layout, workspace=p.workspace, app_id=p.app_id,
                          report=p.report.name, day=p.day, filename=p.filename)
        try:
            with extractor.open_source(rel) as f:
                h = hashlib.sha256()
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            sha = h.hexdigest()
        except (OSError, StorageError):  # gone already: the next extract sees the manifest
            self.deferred += 1
            return
        job = Job(p.workspace, p.app_id, p.report.name, p.day, p.filename, rel, sha)
        if not extractor.needed(job):
            self.outcome.unchanged += 1
            return
        entry = extractor.extract(job)
        (self.outcome.written if entry.status == EXTRACTED else self.outcome.failed).append(
            entry)

    def document(self) -> dict[str, Any]:
        return {**self.outcome.document(), "deferred": self.deferred, "problem": self.problem}
