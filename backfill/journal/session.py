"""``open_journal()``: the one way a run (or ``verify``) holds the journal.

    async with open_journal(path, compact=True) as journal:
        old = journal.state.get(key)          # what the manifest said at the start
        await journal.put(record)             # queued; written in batches, fsynced

Entering takes the lock (LockedError if another run holds it), loads the state and
starts the writer; leaving closes the writer under a shield (everything put is written
and fsynced, even when cancelled), then, if ``compact`` is still set and
:func:`~backfill.journal.compaction.should_compact` says so, rewrites the file, and
finally releases the lock. A failed compaction is only logged: the journal is complete
as it is.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread

from ..clock import Clock
from ..errors import StorageError
from .compaction import compact as compact_file
from .compaction import should_compact
from .lock import ManifestLock
from .record import Record
from .state import ManifestState, load_manifest
from .writer import ManifestWriter


@dataclass(slots=True)
class Journal:
    """The open journal: the state loaded at the start and the running writer.

    ``compact``: rewrite the file on a clean exit when it pays (set it to False, e.g.
    when a run was interrupted, to leave the file as it is).
    """

    path: Path
    state: ManifestState
    writer: ManifestWriter
    compact: bool = False
    new_keys: int = 0  # keys put that the loaded state did not have

    async def put(self, record: Record) -> None:
        """Queue ``record`` for the journal (waits while the writer's queue is full)."""
        await self.writer.put(record)
        self._count_key(record)

    def put_nowait(self, record: Record) -> bool:
        """Queue ``record`` if the writer's queue has room now (True), else nothing (False);
        never yields to the event loop."""
        if not self.writer.put_nowait(record):
            return False
        self._count_key(record)
        return True

    def _count_key(self, record: Record) -> None:
        if record.key not in self.state:
            self.new_keys += 1

    def worth_compacting(self) -> bool:
        lines = self.state.lines + self.writer.statistics().records
        return should_compact(lines=lines, keys=len(self.state) + self.new_keys,
                              torn=self.state.torn_line is not None)


@asynccontextmanager
async def open_journal(
    path: Path, *, compact: bool = False, clock: Clock | None = None,
    load: Callable[[Path], ManifestState] = load_manifest,
) -> AsyncIterator[Journal]:
    """Lock, load, start the writer; on exit close it (shielded) and compact if due.
    ``clock`` times the writer's batching (default: real time); ``load`` reads the
    state the run starts from (the shards' merged view reads other manifests too)."""
    with ManifestLock(path):
        state = await anyio.to_thread.run_sync(load, path)
        writer = ManifestWriter(path, clock=clock)
        journal = Journal(path, state, writer, compact)
        async with anyio.create_task_group() as tg:
            await tg.start(writer.run)
            try:
                yield journal
            finally:
                with anyio.CancelScope(shield=True):
                    await writer.close()
        if journal.compact and journal.worth_compacting():
            await _compact(path)


async def _compact(path: Path) -> None:
    try:
        await anyio.to_thread.run_sync(lambda: compact_file(path, load_manifest(path)))
    except (OSError, StorageError) as exc:
        # Housekeeping only: the journal is complete as it is.
        logging.getLogger("backfill").warning(
            "manifest not compacted (%s); the next run tries again",
            exc.strerror if isinstance(exc, OSError) else exc)
