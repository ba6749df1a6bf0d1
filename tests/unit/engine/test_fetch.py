"""One file's fetch loop against a scripted sender: no server, no HTTP.

The journal is real (a file in tmp_path); the request is a script of outcomes.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path, PurePosixPath

import pytest

from backfill.clock import ScaledClock
from backfill.config import Report, RetrySettings, Secret, Workspace
from backfill.engine.exchange import Sent
from backfill.engine.fetch import FetchContext, FileFetch
from backfill.engine.guards import Guards, HostGuard
from backfill.engine.pool import WorkspacePool
from backfill.engine.recorder import Recorder
from backfill.engine.slots import Slots
from backfill.engine.workspace import WorkspaceRun
from backfill.errors import ConnectionLost, InvalidBody
from backfill.events import Event, HostPaused, HostResumed, RetryScheduled
from backfill.journal import Record, Status, load_manifest, open_journal
from backfill.limits import AdaptiveLimiter, BreakerSettings, CircuitBreaker
from backfill.model import Kind, Task
from backfill.policy import HttpReply
from backfill.store import Received, Stored
from backfill.summary import Summary, WorkspaceTally

pytestmark = pytest.mark.anyio
WS = Workspace(name="w", app_id="A", data_center="01", api_key=Secret("k"),
               secret_key=Secret("k"), timezone="UTC", reports=(Report("R"),))
TASK = Task(WS, WS.reports[0], date(2026, 11, 25), "R_20261125.zip", 2, Kind.FETCHABLE)
REL = PurePosixPath("w/R/R_20261125.zip")


@dataclass
class Body:
    rel: PurePosixPath
    total: int
    discarded: bool = False

    def discard(self) -> None:
        self.discarded = True


class Script:
    """A sender that answers each attempt with the next outcome."""

    def __init__(self, outcomes: Sequence[Sent]) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self, url: str, headers: dict[str, str], rel: PurePosixPath,
                       filename: str) -> Sent:
        self.calls += 1
        return self.outcomes.pop(0)


async def commit(received: Received, *, replace: bool) -> Stored:
    return Stored(received.rel, received.total, "ab" * 32)


@dataclass
class Fetched:
    record: Record
    events: list[Event]
    summary: Summary
    calls: int


@asynccontextmanager
async def loop_for(tmp_path: Path, script: Script, *, max_attempts: int = 3,
                   threshold: int = 100) -> AsyncIterator[tuple[FileFetch, list[Event]]]:
    events: list[Event] = []
    clock = ScaledClock(speed=1e6)
    retry = RetrySettings(max_attempts=max_attempts, backoff_base_s=0.1,
                          breaker_threshold=threshold, probe_interval_s=0.5)
    async with open_journal(tmp_path / "m.jsonl") as journal:
        summary = Summary({})
        tally = summary.workspaces["w"] = WorkspaceTally("w", "A")
        breaker = CircuitBreaker("http://h:80", BreakerSettings(threshold, 0.5, 1.0, 60.0), clock)
        limiter = AdaptiveLimiter(2)
        guards = Guards("w", HostGuard(breaker, clock, events.append), limiter, events.append)
        rt = WorkspaceRun(WS, limiter, None, tally, guards)

        async def nothing(step: object) -> None:
            raise AssertionError("the pool is not run here")

        rt.pool = WorkspacePool(iter(()), nothing, cap=1)
        rt.pool.exhausted = True  # one file, no workers to add
        ctx = FetchContext(retry, 60.0, clock, random.Random(0), Slots(2), script, commit,
                           Recorder(journal, summary, clock, events.append), summary,
                           events.append)
        yield FileFetch(ctx, rt, TASK, "http://h/x", {}, REL), events


async def fetch(tmp_path: Path, outcomes: Sequence[Sent], **kw: int) -> Fetched:
    script = Script(outcomes)
    async with loop_for(tmp_path, script, **kw) as (f, events):
        await f.run()
        summary = f.ctx.summary
    (record,) = list(load_manifest(tmp_path / "m.jsonl"))
    return Fetched(record, events, summary, script.calls)


async def test_a_body_is_committed_and_recorded_completed(tmp_path: Path) -> None:
    got = await fetch(tmp_path, [Body(REL, 10)])
    r = got.record
    assert (r.status, r.path, r.bytes, r.attempts, r.http_status) == (
        Status.COMPLETED, str(REL), 10, 1, 200)
    assert got.summary.requests == 1 and got.summary.retries == 0


async def test_transient_failures_are_retried_then_the_file_completes(tmp_path: Path) -> None:
    got = await fetch(tmp_path, [HttpReply(503), ConnectionLost("reset"), Body(REL, 10)])
    assert (got.record.status, got.record.attempts) == (Status.COMPLETED, 3)
    retries = [e for e in got.events if isinstance(e, RetryScheduled)]
    assert [(e.attempt, e.reason) for e in retries] == [(1, "http 503"), (2, "connection lost")]


async def test_attempts_run_out_and_the_file_fails_with_the_last_reason(tmp_path: Path) -> None:
    got = await fetch(tmp_path, [InvalidBody("x")] * 3, max_attempts=3)
    assert (got.record.status, got.record.error, got.record.attempts) == (
        Status.FAILED, "invalid body", 3)
    assert got.calls == 3


async def test_a_400_is_recorded_at_once_with_the_servers_message(tmp_path: Path) -> None:
    got = await fetch(tmp_path, [HttpReply(400, None, "no such file", "rid-1")])
    r = got.record
    assert (r.status, r.error, r.http_status, r.request_id, r.attempts) == (
        Status.MISSING, "no such file", 400, "rid-1", 1)
    assert got.summary.workspaces["w"].rejected == 1


async def test_attempts_while_the_host_is_paused_do_not_count(tmp_path: Path) -> None:
    # threshold 2, max_attempts 2: the second failure pauses the host instead of failing
    # the file; the probe then succeeds
    got = await fetch(tmp_path, [HttpReply(503), HttpReply(503), Body(REL, 10)],
                      max_attempts=2, threshold=2)
    assert (got.record.status, got.record.attempts) == (Status.COMPLETED, 3)
    assert any(isinstance(e, HostPaused) for e in got.events)
    assert any(isinstance(e, HostResumed) for e in got.events)
    assert [e.attempt for e in got.events if isinstance(e, RetryScheduled)] == [1, 1]


async def test_a_stopped_workspace_fails_its_file_without_a_request(tmp_path: Path) -> None:
    script = Script([])
    async with loop_for(tmp_path, script) as (f, _):
        for _ in range(3):
            f.rt.guards.auth.rejected()
        await f.run()
    (r,) = list(load_manifest(tmp_path / "m.jsonl"))
    assert (r.status, r.error, r.attempts, script.calls) == (Status.FAILED, "auth", 0, 0)
