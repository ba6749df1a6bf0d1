"""``Backfill``: the engine's face — set a run up, run it, stop it.

    summary = await Backfill(config, Options(today=...)).run()

:meth:`Backfill.run` resolves the windows, prepares the directories, opens the store
and the journal (lock, load, writer; compaction when due), sweeps the store's partial
files, and hands the rest to a fresh :class:`~.run.Run`: one engine object can run
again, each run with its own state.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import anyio
import anyio.to_thread

from ..client import Client
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
from ..shards.view import load_state, shard_loader
from ..summary import Summary
from .destination import Opened, open_destination, remote_state, run_settings
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
        only = None if settings.shard is None else settings.shard.owns
        if settings.remote_manifest:  # they live with the data: pulled, read, removed
            state = remote_state(run_settings(settings), self.config.storage, only)
        else:
            state = load_state(settings.main_manifest, settings.manifest, shard=settings.shard)
        for step in outstanding(plan_tasks(settings.windows), state):
            if step.action is Rerun.FETCH:
                yield step.task, url_of(step.task)

    async def run(self) -> Summary:
        settings = self.resolve()
        client = make_client(settings, self.options.proxy_env)
        shard_locks = None if settings.shard is None else ShardLocks(settings.main_manifest)
        try:
            async with open_destination(settings) as opened:
                # The state a run starts from: the main manifest and every shard's, merged
                # (a shard keeps only its own workspaces' records of the others).
                view = shard_loader(opened.main_for_view(settings.main_manifest),
                                    settings.shard)
                try:
                    if shard_locks is not None:  # beside other shard runs, never a plain run
                        await anyio.to_thread.run_sync(shard_locks.acquire)
                    async with open_journal(opened.manifest, compact=True, load=view) as journal:
                        if shard_locks is None or shard_locks.alone:
                            await opened.store.sweep()  # no other run's partial downloads
                        if shard_locks is not None:
                            shard_locks.swept()
                        self._run = self.last_run = Run(
                            settings, journal, opened.store, clock=self.clock, rng=self.rng,
                            emit=self._emit, listening=lambda: bool(self._subscribers),
                        )
                        if self._interrupted:
                            self._run.work.cancel()
                        summary = await self._execute(client, opened)
                        journal.compact = not summary.interrupted
                finally:
                    if shard_locks is not None:
                        shard_locks.release()
        except BaseExceptionGroup as group:  # library users get our error, not a group
            raise first_error(group) from None
        finally:
            self._run = None
        return summary

    async def _execute(self, client: Client, opened: Opened) -> Summary:
        """Run; for a remote manifest, publish the journal at checkpoints meanwhile (the
        last publish is on the way out of the destination)."""
        assert self._run is not None
        if opened.remote is None:
            return await self._run.execute(client, interrupted=lambda: self._interrupted)
        async with anyio.create_task_group() as tg:
            tg.start_soon(opened.remote.publish_periodically)
            summary = await self._run.execute(client, interrupted=lambda: self._interrupted)
            tg.cancel_scope.cancel()
        return summary

    def _emit(self, event: Event) -> None:
        for callback in self._subscribers:
            callback(event)
