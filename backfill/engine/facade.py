"""``Backfill``: the engine's face — set a run up, run it, stop it.

    summary = await Backfill(config, Options(today=...)).run()

:meth:`Backfill.run` resolves the windows, prepares the directories, opens the store
and the journal (lock, load, writer; compaction when due), sweeps the store's partial
files, and hands the rest to a fresh :class:`~.run.Run`: one engine object can run
again, each run with its own state.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from ..clock import Clock
from ..config import Config, DateSpec
from ..errors import ConfigError, first_error
from ..events import Event
from ..journal import load_manifest, open_journal
from ..model import Rerun, Task, Window
from ..naming import TEMP_SUFFIX
from ..planner import tasks as plan_tasks
from ..planner import todays, windows
from ..policy import outstanding
from ..store import open_store
from ..store.local import prepare_dirs
from ..summary import Summary
from .run import Run, make_client, url_of


@dataclass(slots=True)
class Options:
    """Per-run overrides of the config (CLI flags)."""

    today: date | None = None  # pins 'today' in every workspace
    start: DateSpec | None = None
    end: DateSpec | None = None
    workspaces: Sequence[str] = ()
    output_dir: Path | None = None
    manifest: Path | None = None
    concurrency: int | None = None
    max_outage_s: float | None = None
    events: list[Callable[[Event], None]] = field(default_factory=list)


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
        run = config.run
        self.output_dir = self.options.output_dir or run.output_dir
        self.manifest_path = (
            self.options.manifest or run.manifest or self.output_dir / "manifest.jsonl"
        )
        if self.manifest_path.name.endswith(TEMP_SUFFIX):
            raise ConfigError(f"--manifest {self.manifest_path}: must not end in "
                              f"'{TEMP_SUFFIX}' (the stale-download sweep would delete it)")
        self.concurrency = self.options.concurrency or run.concurrency
        self.max_outage_s = (self.options.max_outage_s if self.options.max_outage_s is not None
                             else run.max_outage_s)

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

    def windows(self) -> list[Window]:
        o = self.options
        today = ({ws.name: o.today for ws in self.config.workspaces} if o.today
                 else todays(self.config.workspaces, self.clock.wall()))
        return windows(self.config, today, start=o.start, end=o.end, only=o.workspaces)

    def dry_run(self) -> Iterator[tuple[Task, str]]:
        """(task, url) of every request a run would make now; reads the manifest only."""
        state = load_manifest(self.manifest_path)
        for step in outstanding(plan_tasks(self.windows()), state):
            if step.action is Rerun.FETCH:
                yield step.task, url_of(step.task)

    async def run(self) -> Summary:
        wins = self.windows()
        client = make_client(self.config, wins, self.concurrency)
        prepare_dirs([self.output_dir, self.manifest_path.parent])
        store = open_store(self.output_dir, max_file_bytes=self.config.run.max_file_bytes)
        try:
            async with open_journal(self.manifest_path, compact=True) as journal:
                await store.sweep()
                self._run = self.last_run = Run(
                    self.config, journal, store, concurrency=self.concurrency,
                    max_outage_s=self.max_outage_s, clock=self.clock, rng=self.rng,
                    emit=self._emit, listening=lambda: bool(self._subscribers),
                )
                if self._interrupted:
                    self._run.work.cancel()
                summary = await self._run.execute(
                    wins, client, interrupted=lambda: self._interrupted)
                journal.compact = not summary.interrupted
        except BaseExceptionGroup as group:  # library users get our error, not a group
            raise first_error(group) from None
        finally:
            self._run = None
            await store.close()
        return summary

    def _emit(self, event: Event) -> None:
        for callback in self._subscribers:
            callback(event)
