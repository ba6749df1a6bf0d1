"""The download engine: planner → bounded async pool → storage + manifest.

Structure (anyio, asyncio backend)::

    run()
    └── task group
        ├── ManifestWriter.run          the one writer of the journal
        └── work scope (cancelled by stop())
            └── one feeder per workspace    streams its tasks oldest first
                └── its workers             each takes the workspace's next file; the
                                            pool grows on demand to 2 × concurrency

A file's attempt holds, in this order: the host's breaker admission, the workspace's
rate slot, the workspace's adaptive limiter, the global limiter. All are released before
a backoff sleep, so a waiting retry never holds a slot. Feeders are per workspace so a
throttled or paused workspace never blocks the others; the global limiter is FIFO and
each workspace keeps about one worker in line at it, so dispatch goes round the
workspaces in turn, each oldest file first.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePosixPath

import anyio

from .client import Client
from .clock import Clock
from .config import Config, DateSpec, Workspace
from .errors import (
    ConfigError,
    RemoteError,
    RequestTimeout,
    StorageError,
    first_error,
)
from .events import (
    Event,
    FileFinished,
    HostPaused,
    HostResumed,
    RetryScheduled,
    RunFinished,
    RunStarted,
    Throttled,
    WorkspaceStopped,
)
from .journal import Journal, Record, load_manifest, open_journal
from .limits import AdaptiveLimiter, BreakerSettings, CircuitBreaker, OutageTooLong, RateLimiter
from .model import Rerun, Status, Task, Window
from .naming import TEMP_SUFFIX, base_url, origin, render_path, report_url
from .planner import requestable, todays, windows
from .planner import tasks as plan_tasks
from .policy import Action, Decision, HttpReply, decide_error, decide_reply, outstanding
from .signing import request_headers
from .store import Received, Store, Stored, open_store
from .store.local import prepare_dirs
from .summary import AtRisk, Summary, WorkspaceTally, expires_at

AUTH_STOP_AFTER = 3  # consecutive 401/403 that stop a workspace


@dataclass(slots=True)
class _Workspace:
    """Run-time state of one workspace."""

    ws: Workspace
    limiter: AdaptiveLimiter
    rate: RateLimiter | None
    tally: WorkspaceTally
    breaker: CircuitBreaker
    auth_streak: int = 0
    stopped: str | None = None
    # the worker pool (see Backfill._feed)
    plan: Iterator[Task] | None = None
    spawn: Callable[..., object] | None = None
    cap: int = 2
    workers: int = 0
    waiting: int = 0  # workers between taking a file and holding their slots
    exhausted: bool = False


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
    """One backfill run. ``await Backfill(config).run()`` returns the :class:`Summary`.

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
        self._work: anyio.CancelScope | None = None
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

    # ------------------------------------------------------------------ public API

    def subscribe(self, callback: Callable[[Event], None]) -> None:
        self._subscribers.append(callback)

    @property
    def stopping(self) -> bool:
        return self._interrupted

    def stop(self) -> None:
        """Stop dispatching and cancel in-flight downloads; run() then returns (interrupted)."""
        self._interrupted = True
        if self._work is not None:
            self._work.cancel()

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
                yield step.task, self._url(step.task)

    async def run(self) -> Summary:
        wins = self.windows()
        client = self._make_client(wins)
        prepare_dirs([self.output_dir, self.manifest_path.parent])
        store = open_store(self.output_dir, max_file_bytes=self.config.run.max_file_bytes)
        try:
            async with open_journal(self.manifest_path, compact=True) as journal:
                await store.sweep()
                summary = await self._run(wins, journal, store, client)
                journal.compact = not summary.interrupted
        except BaseExceptionGroup as group:  # library users get our error, not a group
            raise first_error(group) from None
        finally:
            await store.close()
        return summary

    # ------------------------------------------------------------------ internals

    def _emit(self, event: Event) -> None:
        for callback in self._subscribers:
            callback(event)

    def _url(self, task: Task) -> str:
        ws = task.workspace
        return report_url(base_url(ws.data_center, ws.base_url), ws.app_id, task.filename)

    def _rel(self, task: Task) -> PurePosixPath:
        ws = task.workspace
        return render_path(self.config.run.layout, workspace=ws.name, app_id=ws.app_id,
                           report=task.report.name, day=task.day, filename=task.filename)

    def _make_client(self, wins: list[Window]) -> Client:
        """The run's HTTP client, made before anything is written: a proxy or CA problem
        (ConfigError, exit 2) stops the run before the first file or request."""
        per_host = self.config.run.per_host or self.concurrency
        return Client(self.config.http, limit=self.concurrency, limit_per_host=per_host,
                      origins=[base_url(w.workspace.data_center, w.workspace.base_url)
                               for w in wins])

    async def _run(self, wins: list[Window], journal: Journal, store: Store,
                   client: Client) -> Summary:
        cfg = self.config
        start = self.clock.monotonic()
        self._journal = journal
        self._state = journal.state
        self._storage = store
        self._global = anyio.CapacityLimiter(self.concurrency)
        self._commit_slots = anyio.Semaphore(self.concurrency)
        self._summary = Summary({})
        self._breakers: dict[str, CircuitBreaker] = {}
        settings = BreakerSettings(cfg.retry.breaker_threshold, cfg.retry.probe_interval_s,
                                   cfg.retry.probe_interval_max_s, self.max_outage_s)
        self._runtime: dict[str, _Workspace] = {}
        for w in wins:
            ws = w.workspace
            tally = WorkspaceTally(ws.name, ws.app_id)
            self._summary.workspaces[ws.name] = tally
            scheme, hostname, port = origin(base_url(ws.data_center, ws.base_url))
            host = f"{scheme}://{hostname}:{port}"
            breaker = self._breakers.setdefault(
                host, CircuitBreaker(host, settings, self.clock))
            self._runtime[ws.name] = _Workspace(
                ws, AdaptiveLimiter(min(ws.concurrency, self.concurrency)),
                RateLimiter(ws.rate, self.clock) if ws.rate else None, tally, breaker,
            )
        self._emit(RunStarted({w.workspace.name: self._count_fetch(w) for w in wins}))
        async with client:
            self._client = client
            try:
                with anyio.CancelScope() as self._work:
                    if self._interrupted:
                        self._work.cancel()
                    async with anyio.create_task_group() as feeders:
                        for w in wins:
                            feeders.start_soon(self._feed, w)
            except StorageError as exc:
                self._summary.error = str(exc)
                raise
        self._summary.interrupted = self._interrupted
        self._summary.duration_s = self.clock.monotonic() - start
        self._summary.outages = sum(b.outages for b in self._breakers.values())
        self._summary.at_risk.sort(key=lambda r: r.expires_at)
        self._emit(RunFinished(self._interrupted))
        return self._summary

    def _count_fetch(self, win: Window) -> int:
        return sum(1 for step in outstanding(plan_tasks([requestable(win)]), self._state)
                   if step.action is Rerun.FETCH)

    async def _feed(self, win: Window) -> None:
        """Work through one workspace's tasks with a pool of workers that grows on demand.

        The workers share one plan iterator (``next()`` never awaits, so each task goes to
        exactly one worker, oldest first). The pool starts with one worker; whenever a
        worker takes its slots and none of the others is waiting for one, another worker
        joins (:meth:`_grow`), up to ``2 × concurrency`` — so a file waiting in a backoff
        or a commit never idles the workspace, yet a workspace keeps only about one worker
        queued at the global limiter instead of spawning its whole pool up front.
        """
        rt = self._runtime[win.workspace.name]
        rt.plan = iter(plan_tasks([win]))
        rt.cap = max(2, 2 * rt.limiter.ceiling)
        async with anyio.create_task_group() as tg:
            rt.spawn = tg.start_soon
            self._add_worker(rt)

    def _add_worker(self, rt: _Workspace) -> None:
        assert rt.spawn is not None
        rt.workers += 1
        rt.spawn(self._work_through, rt)

    def _grow(self, rt: _Workspace) -> None:
        """A worker of ``rt`` has just taken its slots: keep one more in line if none is."""
        if not rt.waiting and rt.workers < rt.cap and not rt.exhausted:
            self._add_worker(rt)

    async def _work_through(self, rt: _Workspace) -> None:
        assert rt.plan is not None
        for n, step in enumerate(outstanding(rt.plan, self._state), 1):
            if not n % 256:  # skips do not yield: let the other workspaces run
                await anyio.lowlevel.checkpoint()
            task, old = step.task, step.record
            if step.action is Rerun.SKIP:
                assert old is not None
                self._count(rt, old, fetched=False)
            elif step.action is Rerun.EXPIRE:
                reason = f"expired before it was fetched ({old.error})" if (
                    old and old.error) else None
                await self._record(rt, task, Status.EXPIRED, reason=reason,
                                   attempts=old.attempts if old else 0)
            else:
                await self._fetch(rt, task)
        rt.exhausted = True

    def _count(self, rt: _Workspace, rec: Record, *, fetched: bool) -> None:
        rt.tally.counts[rec.status.value] += 1
        if rec.status is Status.COMPLETED:
            rt.tally.bytes += rec.bytes or 0
        elif rec.status is Status.FAILED:
            self._summary.failures[rec.error or "unknown"] += 1
        if rec.status in (Status.FAILED, Status.PENDING):
            exp = expires_at(date.fromisoformat(rec.date), rt.ws.timezone)
            self._summary.at_risk.append(
                AtRisk(rec.workspace, rec.filename, rec.status.value, exp, rec.error))
        if self._subscribers:
            self._emit(FileFinished(rec.workspace, rec.filename, rec.status, rec.bytes or 0,
                                    rec.attempts, rec.error, fetched))

    async def _record(
        self, rt: _Workspace, task: Task, status: Status, *, stored: Stored | None = None,
        rel: PurePosixPath | None = None, attempts: int = 0, http_status: int | None = None,
        reason: str | None = None, request_id: str | None = None, fetched: bool = False,
    ) -> None:
        rec = Record(
            workspace=rt.ws.name, app_id=rt.ws.app_id, report=task.report.name,
            date=task.day.isoformat(), filename=task.filename, status=status,
            path=str(rel) if stored and rel else None,
            bytes=stored.bytes if stored else None, sha256=stored.sha256 if stored else None,
            attempts=attempts, http_status=http_status,
            error=None if status is Status.COMPLETED else reason, request_id=request_id,
            updated_at=self.clock.wall().strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        # Shielded: once a file is durable its record must reach the journal, even when the
        # run is being cancelled (otherwise the next run would fetch it again).
        with anyio.CancelScope(shield=True):
            await self._journal.put(rec)
        self._count(rt, rec, fetched=fetched)

    async def _fetch(self, rt: _Workspace, task: Task) -> None:
        ws = rt.ws
        url = self._url(task)
        headers = request_headers(ws.app_id, task.filename, ws.api_key.reveal(),
                                  ws.secret_key.reveal())
        rel = self._rel(task)
        breaker = rt.breaker
        attempt = 0  # attempts counted against max_attempts (not while the host is paused)
        made = 0  # requests actually made: what the manifest records as attempts
        while True:
            if rt.stopped:
                await self._record(rt, task, Status.FAILED, attempts=made, reason="auth")
                return
            try:
                probe = await breaker.admit()
            except OutageTooLong:
                await self._record(rt, task, Status.FAILED, attempts=made,
                                   reason=f"outage: {breaker.host} failing for more than "
                                          f"{self.max_outage_s:g} s")
                return
            outcome: Stored | HttpReply | RemoteError | None
            try:
                sent = await self._send(rt, url, headers, rel, task)
                outcome = (sent if sent is None or isinstance(sent, HttpReply | RemoteError)
                           else await self._commit(sent))
            except BaseException:
                if probe:
                    breaker.abandon_probe()
                raise
            if outcome is None:  # the workspace was stopped while this waited for a slot
                if probe:
                    breaker.abandon_probe()
                continue
            attempt += 1
            made += 1

            if isinstance(outcome, Stored):
                rt.tally.answered += 1
                self._host_up(breaker, probe)
                rt.auth_streak = 0
                rt.limiter.succeeded()
                await self._record(rt, task, Status.COMPLETED, stored=outcome, rel=rel,
                                   attempts=made, http_status=200, fetched=True)
                return
            now = self.clock.wall()
            if isinstance(outcome, HttpReply):
                rt.tally.answered += 1
                rt.tally.rejected += outcome.status == 400
                decision = decide_reply(outcome, task.age, attempt, self.config.retry, now,
                                        self.rng)
            else:
                decision = decide_error(outcome, attempt, self.config.retry, self.rng)
            decision = self._account(rt, breaker, probe, decision)
            if decision.action is Action.RETRY:
                if decision.paused:
                    attempt -= 1  # an outage does not use up the file's attempts
                rt.tally.retries += 1
                self._summary.retries += 1
                self._emit(RetryScheduled(ws.name, task.filename, attempt,
                                          decision.reason or "", decision.delay_s))
                await self.clock.sleep(decision.delay_s)
                continue
            assert decision.status is not None
            await self._record(
                rt, task, decision.status, attempts=made,
                http_status=outcome.status if isinstance(outcome, HttpReply) else None,
                reason=decision.reason,
                request_id=outcome.request_id if isinstance(outcome, HttpReply) else None,
                fetched=True,
            )
            return

    async def _send(
        self, rt: _Workspace, url: str, headers: dict[str, str], rel: PurePosixPath, task: Task
    ) -> Received | HttpReply | RemoteError | None:
        """One request under the workspace's rate and limiter and the global limiter.

        A body comes back received but not yet durable, holding a commit slot: the disk
        work (:meth:`_commit`) runs after the request's slots are free, so a slow fsync
        never idles a connection, while the commit slots bound the bodies waiting in
        memory (``concurrency`` × ``chunk_size`` at most).
        """
        token = object()
        rt.waiting += 1
        try:
            if rt.rate is not None:
                await rt.rate.acquire()
            await rt.limiter.acquire(token)
            try:  # a free slot is taken without a trip through the event loop
                self._global.acquire_on_behalf_of_nowait(token)
            except anyio.WouldBlock:
                try:
                    await self._global.acquire_on_behalf_of(token)
                except BaseException:
                    rt.limiter.release(token)
                    raise
        finally:
            rt.waiting -= 1
        self._grow(rt)
        try:
            if rt.stopped:
                return None
            rt.tally.requests += 1
            self._summary.requests += 1
            outcome = await self._attempt(url, headers, rel, task)
            if not isinstance(outcome, HttpReply | RemoteError):  # a body, received
                try:
                    try:
                        self._commit_slots.acquire_nowait()
                    except anyio.WouldBlock:
                        await self._commit_slots.acquire()
                except BaseException:
                    outcome.discard()
                    raise
            return outcome
        finally:
            self._global.release_on_behalf_of(token)
            rt.limiter.release(token)

    async def _commit(self, received: Received) -> Stored | RemoteError:
        """Make a received body durable (zip check, fsync, rename, directory fsync)."""
        try:
            return await self._storage.commit(received)
        except RemoteError as exc:  # not a zip
            return exc
        finally:
            self._commit_slots.release()

    def _host_up(self, breaker: CircuitBreaker, probe: bool) -> None:
        opened_at = breaker.opened_at
        if breaker.success(probe):
            self._emit(HostResumed(breaker.host, self.clock.monotonic() - opened_at))

    def _account(
        self, rt: _Workspace, breaker: CircuitBreaker, probe: bool, decision: Decision
    ) -> Decision:
        """Feed an outcome to the breaker, the throttle and the auth guard."""
        if decision.transient:
            if breaker.failure(probe):
                self._emit(HostPaused(breaker.host, breaker.failures))
            if breaker.is_open:
                # Paused host: wait in admit() instead of burning an attempt.
                return Decision(Action.RETRY, None, decision.reason, 0.0, transient=True,
                                paused=True)
        else:
            self._host_up(breaker, probe)
        if decision.throttled and rt.limiter.throttled():
            self._summary.throttled += 1
            self._emit(Throttled(rt.ws.name, rt.limiter.limit))
        if decision.auth:
            rt.auth_streak += 1
            if rt.auth_streak >= AUTH_STOP_AFTER and not rt.stopped:
                rt.stopped = (f"stopped: {AUTH_STOP_AFTER} requests in a row rejected as "
                              "unauthorized (401/403): check api_key and secret_key")
                rt.tally.stopped = rt.stopped
                self._emit(WorkspaceStopped(rt.ws.name, rt.stopped))
        elif decision.action is Action.RECORD or not decision.transient:
            rt.auth_streak = 0
        return decision

    async def _attempt(
        self, url: str, headers: dict[str, str], rel: PurePosixPath, task: Task
    ) -> Received | HttpReply | RemoteError:
        deadline = self.config.http.file_timeout_s
        try:
            with anyio.fail_after(deadline):
                async with self._client.get(url, headers) as reply:
                    if reply.status == 200:
                        return await self._storage.receive(rel, reply.chunks(),
                                                           expected_length=reply.content_length)
                    message = request_id = None
                    if 400 <= reply.status < 500:
                        message, request_id = await reply.error_detail()
                    return HttpReply(reply.status, reply.headers.get("Retry-After"), message,
                                     request_id)
        except TimeoutError:
            return RequestTimeout(f"no complete response within {deadline:g} s for "
                                  f"{task.filename}")
        except RemoteError as exc:
            return exc
