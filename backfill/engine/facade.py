"""``Backfill``: the engine's face — set a run up, run it, stop it.

    summary = await Backfill(config, Options(today=...)).run()

:meth:`Backfill.run` resolves the windows, prepares the directories, opens the store
and the journal (lock, load, writer; compaction when due), sweeps the store's partial
files, and hands the rest to a fresh :class:`~.run.Run`: one engine object can run
again, each run with its own state.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterator

import anyio
import anyio.to_thread

from ..clock import Clock
from ..config import Config
from ..errors import first_error
from ..events import Event
from ..journal import open_journal
from ..model import Rerun, Task, Window
from ..planner import tasks as plan_tasks
from ..policy import outstanding
from ..settings import Options, ResolvedRun, resolve_run
from ..shards.lock import ShardLocks
from ..shards.view import load_state
from ..store import open_store
from ..store.local import prepare_dirs
from ..summary import Summary
from .run import Run, make_client, url_of

__all__ = ["Backfill", "Options"]


class Backfill:
    """A backfill engine. ``await Backfill(config).run()`` returns the :class:`Summary`.

    Subscribe to engine events with :meth:`subscribe` (progress bars, schedulers).
    ``clock`` and ``rng`` are injectable for tests.
    """

    def __init__(
        self, config: Config, options: Options | None = None, *, clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.options = options or Options()
        self.clock = clock or Clock()
        self.rng = rng or random.Random()
        self._subscribers = list(self.options.events)
        self._run: Run | None = None  # the run in progress
        self.last_run: Run | None = None  # the latest run's state, for inspection
        self._interrupted = False
        first = self.resolve()  # bad options fail here, before anything runs
        self.output_dir, self.manifest_path = first.output_dir, first.manifest

    def subscribe(self, callback: Callable[[Event], None]) -> None:
        self._subscribers.append(callback)

    @property
    def stopping(self) -> bool:
        return self._interrupted

    def stop(self) -> None:
        """Stop dispatching and cancel in-flight downloads; run() then returns (interrupted)."""
        self._interrupted = True
        if self._run is not None:
            self._run.work.cancel()

    def resolve(self) -> ResolvedRun:
        """This engine's run as it would be set up now (today, windows, paths, limits)."""
        return resolve_run(self.config, self.options, self.clock.wall())

    def windows(self) -> list[Window]:
        return list(self.resolve().windows)

    def dry_run(self) -> Iterator[tuple[Task, str]]:
        """(task, url) of every request a run would make now; reads the manifest only."""
        settings = self.resolve()
        state = load_state(settings.main_manifest, settings.manifest)
        for step in outstanding(plan_tasks(settings.windows), state):
            if step.action is Rerun.FETCH:
                yield step.task, url_of(step.task)

    async def run(self) -> Summary:
        settings = self.resolve()
        client = make_client(settings)
        prepare_dirs([settings.output_dir, settings.manifest.parent])
        store = open_store(settings.output_dir, max_file_bytes=self.config.run.max_file_bytes)
        shard_locks = None if settings.shard is None else ShardLocks(settings.main_manifest)
        try:
            if shard_locks is not None:  # beside other shard runs, never beside a plain run
                await anyio.to_thread.run_sync(shard_locks.acquire)
            # The state a run starts from: the main manifest and every shard's, merged.
            view = functools.partial(load_state, settings.main_manifest)
            async with open_journal(settings.manifest, compact=True, load=view) as journal:
                if shard_locks is None or shard_locks.alone:
                    await store.sweep()  # no other run's partial downloads are in flight
                if shard_locks is not None:
                    shard_locks.swept()
                self._run = self.last_run = Run(
                    settings, journal, store, clock=self.clock, rng=self.rng,
                    emit=self._emit, listening=lambda: bool(self._subscribers),
                )
                if self._interrupted:
                    self._run.work.cancel()
                summary = await self._run.execute(client, interrupted=lambda: self._interrupted)
                journal.compact = not summary.interrupted
        except BaseExceptionGroup as group:  # library users get our error, not a group
            raise first_error(group) from None
        finally:
            self._run = None
            if shard_locks is not None:
                shard_locks.release()
            await store.close()
        return summary

    def _emit(self, event: Event) -> None:
        for callback in self._subscribers:
            callback(event)
