"""The per-file fetch loop: attempts until the file is recorded.

Each attempt: the host's breaker admits it (waiting while the host is paused), the
attempt takes its slots (:mod:`.slots`), sends the request (:mod:`.exchange`) and
commits a received body; the policy decides about the outcome, the guards
(:mod:`.guards`) judge it, and the loop records, retries after a backoff, or waits for
the host without using up an attempt. All slots are released before a backoff sleep,
so a waiting retry never holds one.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Protocol

from ..clock import Clock
from ..config import RetrySettings
from ..errors import FileStorageError, RemoteError
from ..events import Event, RetryScheduled
from ..limits import OutageTooLong
from ..model import Status, Task
from ..policy import Action, Decision, HttpReply, decide_error, decide_reply
from ..store import Received, Stored
from ..summary import Summary
from .exchange import Send
from .recorder import FileOutcome, Recorder
from .slots import Slots
from .workspace import WorkspaceRun

Outcome = Stored | HttpReply | RemoteError | FileStorageError


class Commit(Protocol):
    """:meth:`backfill.store.Store.commit`: ``replace`` when the manifest recorded a file
    at the key (other bytes at the final path may go), else they fail the file."""

    def __call__(self, received: Received, *, replace: bool) -> Awaitable[Stored]: ...


@dataclass(frozen=True, slots=True)
class FetchContext:
    """What every file's fetch loop of one run shares."""

    retry: RetrySettings
    max_outage_s: float
    clock: Clock
    rng: random.Random
    slots: Slots
    send: Send
    commit: Commit
    recorder: Recorder
    summary: Summary
    emit: Callable[[Event], None]


@dataclass(slots=True)
class FileFetch:
    """One file's attempts. ``attempt`` counts toward ``max_attempts`` (not while its host
    is paused); ``made`` counts the requests made, what the journal records.
    ``replace``: the manifest recorded a file at ``rel`` (:func:`~backfill.policy.wrote_file`)."""

    ctx: FetchContext
    rt: WorkspaceRun
    task: Task
    url: str
    headers: dict[str, str]
    rel: PurePosixPath
    replace: bool = False
    attempt: int = 0
    made: int = 0
    _done: bool = field(default=False, init=False)

    async def run(self) -> None:
        host = self.rt.guards.host
        while not self._done:
            if self.rt.stopped:
                await self._record(Status.FAILED, reason="auth")
                return
            try:
                probe = await host.admit()
            except OutageTooLong:
                await self._record(Status.FAILED, reason=f"outage: {host.host} failing for "
                                   f"more than {self.ctx.max_outage_s:g} s")
                return
            try:
                outcome = await self._try_once()
            except BaseException:
                host.abandon(probe)
                raise
            if outcome is None:  # the workspace was stopped while this waited for a slot
                host.abandon(probe)
                continue
            self.attempt += 1
            self.made += 1
            await self._settle(outcome, probe)

    async def _try_once(self) -> Outcome | None:
        """One attempt under its slots; None if the workspace stopped meanwhile."""
        ctx, rt = self.ctx, self.rt
        async with ctx.slots.request(rt) as held:
            if rt.stopped:
                return None
            rt.tally.requests += 1
            ctx.summary.requests += 1
            try:
                sent = await ctx.send(self.url, self.headers, self.rel, self.task.filename)
            except FileStorageError as exc:  # this file's path only: it fails, not the run
                return exc
            if isinstance(sent, HttpReply | RemoteError):
                return sent
            await held.keep_for_commit(sent)
        try:  # the request's slots are free now: the disk work does not hold them
            return await ctx.commit(sent, replace=self.replace)
        except (RemoteError, FileStorageError) as exc:  # not a zip; this file's path
            return exc
        finally:
            ctx.slots.release_commit()

    async def _settle(self, outcome: Outcome, probe: bool) -> None:
        """Act on one attempt's outcome: record, retry, or wait for the host."""
        rt, guards = self.rt, self.rt.guards
        if isinstance(outcome, Stored):
            rt.tally.answered += 1
            guards.succeeded(probe)
            await self._record(Status.COMPLETED, stored=outcome, http_status=200, fetched=True)
            return
        if isinstance(outcome, FileStorageError):  # the server answered; our disk refused
            rt.tally.answered += 1
            guards.succeeded(probe)
            await self._record(Status.FAILED, reason=str(outcome), http_status=200,
                               fetched=True)
            return
        decision = guards.judge(self._decide(outcome), probe)
        if decision.action is Action.RECORD:
            assert decision.status is not None
            reply = outcome if isinstance(outcome, HttpReply) else None
            await self._record(decision.status, reason=decision.reason,
                               http_status=reply.status if reply else None,
                               request_id=reply.request_id if reply else None, fetched=True)
            return
        await self._retry(decision)

    def _decide(self, outcome: HttpReply | RemoteError) -> Decision:
        ctx, tally = self.ctx, self.rt.tally
        if isinstance(outcome, HttpReply):
            tally.answered += 1
            tally.rejected += outcome.status == 400
            return decide_reply(outcome, self.task.age, self.attempt, ctx.retry,
                                ctx.clock.wall(), ctx.rng)
        return decide_error(outcome, self.attempt, ctx.retry, ctx.rng)

    async def _retry(self, decision: Decision) -> None:
        ctx = self.ctx
        if decision.action is Action.WAIT_FOR_HOST:
            self.attempt -= 1  # an outage does not use up the file's attempts
        self.rt.tally.retries += 1
        ctx.summary.retries += 1
        ctx.emit(RetryScheduled(self.rt.ws.name, self.task.filename, self.attempt,
                                decision.reason or "", decision.delay_s))
        await ctx.clock.sleep(decision.delay_s)

    async def _record(
        self, status: Status, *, stored: Stored | None = None, reason: str | None = None,
        http_status: int | None = None, request_id: str | None = None, fetched: bool = False,
    ) -> None:
        self._done = True
        await self.ctx.recorder.record(self.rt, FileOutcome(
            self.task, status, attempts=self.made, stored=stored, http_status=http_status,
            reason=reason, request_id=request_id, fetched=fetched,
        ))
