"""One run's state, made by :meth:`Backfill.run` and dropped when it returns.

Structure (anyio, asyncio backend)::

    Run.execute()
    └── work scope (cancelled by Backfill.stop())
        └── one feeder per workspace      its WorkspacePool over its outstanding files
            └── its workers               each file: a FileFetch (or a skip / an expiry)

Feeders are per workspace so a throttled or paused workspace never blocks the others;
the global limiter is FIFO and each workspace keeps about one worker in line at it, so
dispatch goes round the workspaces in turn, each oldest file first.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath

import anyio

from ..client import Client
from ..clock import Clock
from ..errors import StorageError
from ..events import Event, RunFinished, RunStarted
from ..journal import Journal
from ..limits import AdaptiveLimiter, BreakerSettings, CircuitBreaker, RateLimiter
from ..model import Rerun, Status, Task, Window
from ..naming import base_url, origin, render_path, report_url
from ..planner import requestable
from ..planner import tasks as plan_tasks
from ..policy import Outstanding, outstanding, wrote_file
from ..settings import ResolvedRun
from ..signing import request_headers
from ..store import Store
from ..summary import Summary, WorkspaceTally
from .exchange import Exchange
from .fetch import FetchContext, FileFetch
from .guards import Guards, HostGuard
from .pool import WorkspacePool
from .recorder import FileOutcome, Recorder
from .slots import Slots
from .workspace import WorkspaceRun


class Run:
    """Everything one run creates: limits, guards, tallies, the recorder."""

    def __init__(
        self, settings: ResolvedRun, journal: Journal, store: Store, *, clock: Clock,
        rng: random.Random, emit: Callable[[Event], None], listening: Callable[[], bool],
    ) -> None:
        self.settings = settings
        self.config = settings.config
        self.journal = journal
        self.store = store
        self.concurrency = settings.concurrency
        self.max_outage_s = settings.max_outage_s
        self.clock = clock
        self.rng = rng
        self.emit = emit
        self.summary = Summary({})
        self.slots = Slots(settings.concurrency)
        self.recorder = Recorder(journal, self.summary, clock, emit, listening)
        self.hosts: dict[str, HostGuard] = {}
        self.workspaces: dict[str, WorkspaceRun] = {}
        self.work = anyio.CancelScope()  # Backfill.stop() cancels it

    async def execute(self, client: Client, *, interrupted: Callable[[], bool]) -> Summary:
        """Run every window's files through ``client`` (entered here, closed at the end)."""
        cfg, wins = self.config, self.settings.windows
        start = self.clock.monotonic()
        for w in wins:
            self._add_workspace(w)
        self.emit(RunStarted({w.workspace.name: self._count_fetch(w) for w in wins}))
        async with client:
            ctx = FetchContext(
                cfg.retry, self.max_outage_s, self.clock, self.rng, self.slots,
                Exchange(client, self.store, cfg.http.file_timeout_s, secrets=
                         tuple(s.reveal() for ws in cfg.workspaces
                               for s in (ws.api_key, ws.secret_key))),
                self.store.commit, self.recorder, self.summary, self.emit,
            )
            try:
                with self.work:
                    async with anyio.create_task_group() as feeders:
                        for w in wins:
                            feeders.start_soon(self._feed, ctx, w)
            except StorageError as exc:
                self.summary.error = str(exc)
                raise
        s = self.summary
        s.interrupted = interrupted()
        s.duration_s = self.clock.monotonic() - start
        s.outages = sum(h.breaker.outages for h in self.hosts.values())
        s.at_risk.sort(key=lambda r: r.expires_at)
        if not s.interrupted:  # the journal's history rules out a report that had a file
            s.rejected = self.recorder.judge.verdicts(self.journal.state)
        self.emit(RunFinished(s.interrupted))
        return s

    def _add_workspace(self, w: Window) -> None:
        ws, retry = w.workspace, self.config.retry
        tally = WorkspaceTally(ws.name, ws.app_id)
        self.summary.workspaces[ws.name] = tally
        scheme, hostname, port = origin(base_url(ws.data_center, ws.base_url))
        host = f"{scheme}://{hostname}:{port}"
        if host not in self.hosts:
            settings = BreakerSettings(retry.breaker_threshold, retry.probe_interval_s,
                                       retry.probe_interval_max_s, self.max_outage_s)
            self.hosts[host] = HostGuard(CircuitBreaker(host, settings, self.clock),
                                         self.clock, self.emit)
        limiter = AdaptiveLimiter(min(ws.concurrency, self.concurrency))

        def throttled() -> None:
            self.summary.throttled += 1

        def stopped(reason: str) -> None:
            tally.stopped = reason

        guards = Guards(ws.name, self.hosts[host], limiter, self.emit,
                        on_throttled=throttled, on_stopped=stopped)
        rate = RateLimiter(ws.rate, self.clock) if ws.rate else None
        self.workspaces[ws.name] = WorkspaceRun(ws, limiter, rate, tally, guards)

    def _count_fetch(self, win: Window) -> int:
        return sum(1 for step in outstanding(plan_tasks([requestable(win)]), self.journal.state)
                   if step.action is Rerun.FETCH)

    async def _feed(self, ctx: FetchContext, win: Window) -> None:
        rt = self.workspaces[win.workspace.name]

        async def handle(step: Outstanding) -> None:
            await self._handle(ctx, rt, step)

        steps = outstanding(plan_tasks([win]), self.journal.state)
        rt.pool = WorkspacePool(steps, handle, cap=max(2, 2 * rt.limiter.ceiling))
        await rt.pool.run()

    async def _handle(self, ctx: FetchContext, rt: WorkspaceRun, step: Outstanding) -> None:
        task, old = step.task, step.record
        if step.action is Rerun.SKIP:
            assert old is not None
            self.recorder.count(rt, old, fetched=False)
        elif step.action is Rerun.EXPIRE:
            reason = f"expired before it was fetched ({old.error})" if (
                old and old.error) else None
            await self.recorder.record(rt, FileOutcome(
                task, Status.EXPIRED, attempts=old.attempts if old else 0, reason=reason))
        else:
            ws = rt.ws
            headers = request_headers(ws.app_id, task.filename, ws.api_key.reveal(),
                                      ws.secret_key.reveal())
            # other bytes at the final path are replaced only if the manifest put its own
            # file there; else adopted when the same, never overwritten (store.base)
            await FileFetch(ctx, rt, task, url_of(task), headers,
                            rel_of(self.config.run.layout, task), wrote_file(old)).run()


def make_client(settings: ResolvedRun, env: Mapping[str, str] | None = None) -> Client:
    """The run's HTTP client, made before anything is written: a proxy or CA problem
    (ConfigError, exit 2) stops the run before the first file or request. ``env``: the
    proxy variables (default ``os.environ``)."""
    config, concurrency = settings.config, settings.concurrency
    return Client(config.http, limit=concurrency,
                  limit_per_host=config.run.per_host or concurrency,
                  origins=[base_url(w.workspace.data_center, w.workspace.base_url)
                           for w in settings.windows], env=env)


def url_of(task: Task) -> str:
    """The report URL of ``task``."""
    ws = task.workspace
    return report_url(base_url(ws.data_center, ws.base_url), ws.app_id, task.filename)


def rel_of(layout: str, task: Task) -> PurePosixPath:
    """``task``'s key in the store, by the run's layout."""
    ws = task.workspace
    return render_path(layout, workspace=ws.name, app_id=ws.app_id, report=task.report.name,
                       day=task.day, filename=task.filename)
