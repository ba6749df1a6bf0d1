"""What to do with one attempt's outcome. Pure: no I/O, no clock reads, no global RNG.

    outcome                                 decision
    ─────────────────────────────────────   ───────────────────────────────────────────
    200 + valid zip (stored)                completed
    200 + invalid body (not a zip, HTML,    retry; when attempts run out: failed
      truncated, length mismatch)             "invalid body"
    200 + larger than max_file_bytes        failed "too large" (retrying cannot help)
    400                                     by the date's age in the workspace's zone:
                                              age ≥ 7 expired · age 0 pending · else missing
    401 / 403                               failed "auth", no retry
    404                                     missing
    408 / 425 / 429 / 5xx, timeouts,        retry: full-jitter exponential backoff,
      resets, refused connections             honouring Retry-After; then failed
    redirect refused                        failed "redirect refused"
    certificate not trusted, proxy refused  failed with the message (host, what to set)
    other statuses                          failed "http <status>"

Every decision also carries a :class:`Signal` for the engine's guards: 429 is
SLOW_DOWN; 401/403 UNAUTHORIZED; 408/425/5xx and transport errors DOWN; everything else
(a definite answer, a bad body) ANSWERED.

:func:`outstanding` applies the re-run rules (:func:`rerun`) to a plan: the plan minus
what the journal says is done. :func:`wrote_file` says whether the manifest put a file
at a key's path, the one case where a new download may replace what is there.

Backoff for attempt n (1-based): ``uniform(0, min(backoff_max_s, backoff_base_s * 2**(n-1)))``,
and never less than the server's Retry-After (capped at ``retry_after_max_s``).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

from .config import RetrySettings
from .errors import (
    BodyError,
    BodyTooLarge,
    CertificateError,
    ProxyError,
    RedirectError,
    RemoteError,
    TransportError,
)
from .journal.record import Record
from .model import Kind, Rerun, Status, Task

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class Action(enum.Enum):
    RECORD = "record"  # final for this run: write the record
    RETRY = "retry"  # after delay_s; the attempt counts toward max_attempts
    WAIT_FOR_HOST = "wait for host"  # the host is paused (engine guards): the attempt
    #                                  does not count; wait in the breaker's admission


class Signal(enum.Enum):
    """What one attempt says beyond this file (read by the engine's host and auth guards)."""

    ANSWERED = "answered"  # a definite answer (or a bad body): the host works
    DOWN = "down"  # no usable response, or 408/425/5xx: counts toward the host's breaker
    SLOW_DOWN = "slow down"  # 429: the workspace should slow down; never opens the breaker
    UNAUTHORIZED = "unauthorized"  # 401/403: counts toward stopping the workspace


@dataclass(frozen=True, slots=True)
class HttpReply:
    """The parts of a non-200 response the policy looks at."""

    status: int
    retry_after: str | None = None
    message: str | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    status: Status | None = None  # for RECORD
    reason: str | None = None  # short, stable, secret-free; grouped in summaries
    delay_s: float = 0.0  # for RETRY
    signal: Signal = Signal.ANSWERED


def backoff(attempt: int, settings: RetrySettings, rng: random.Random) -> float:
    """Full jitter: uniform(0, min(max, base * 2**(attempt-1)))."""
    ceiling = min(settings.backoff_max_s, settings.backoff_base_s * 2 ** max(0, attempt - 1))
    return rng.uniform(0, ceiling)


def parse_retry_after(value: str | None, now: datetime, cap: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(0.0, seconds), cap)


def _retry_or_fail(
    reason: str, attempt: int, settings: RetrySettings, rng: random.Random,
    *, min_delay: float | None = None, signal: Signal = Signal.DOWN,
) -> Decision:
    if attempt >= settings.max_attempts:
        return Decision(Action.RECORD, Status.FAILED, reason, signal=signal)
    delay = backoff(attempt, settings, rng)
    if min_delay is not None:
        delay = max(delay, min_delay)
    return Decision(Action.RETRY, None, reason, delay, signal=signal)


def decide_reply(
    reply: HttpReply, age: int, attempt: int, settings: RetrySettings, now: datetime,
    rng: random.Random,
) -> Decision:
    """Decision for an HTTP response that is not a 200 (see module table)."""
    s = reply.status
    if s == 400:
        status = Status.EXPIRED if age >= 7 else Status.PENDING if age <= 0 else Status.MISSING
        return Decision(Action.RECORD, status, reply.message or "bad request")
    if s in (401, 403):
        return Decision(Action.RECORD, Status.FAILED, "auth", signal=Signal.UNAUTHORIZED)
    if s == 404:
        return Decision(Action.RECORD, Status.MISSING, "not found")
    if s in RETRYABLE_STATUS:
        wait = parse_retry_after(reply.retry_after, now, settings.retry_after_max_s)
        # 429 is the server saying "slow down", not "I am down": it must not open the breaker.
        return _retry_or_fail(f"http {s}", attempt, settings, rng, min_delay=wait,
                              signal=Signal.SLOW_DOWN if s == 429 else Signal.DOWN)
    return Decision(Action.RECORD, Status.FAILED, f"http {s}")


def decide_error(
    error: RemoteError, attempt: int, settings: RetrySettings, rng: random.Random
) -> Decision:
    """Decision for a request that raised one of our errors."""
    if isinstance(error, BodyTooLarge):
        return Decision(Action.RECORD, Status.FAILED, error.kind)
    if isinstance(error, RedirectError):
        return Decision(Action.RECORD, Status.FAILED, error.kind)
    if isinstance(error, CertificateError | ProxyError):
        # Retrying cannot help; the message (host, what to set) is the reason to show.
        return Decision(Action.RECORD, Status.FAILED, str(error))
    if isinstance(error, BodyError):
        # A bad body says nothing about the host being down.
        return _retry_or_fail(error.kind, attempt, settings, rng, signal=Signal.ANSWERED)
    if isinstance(error, TransportError):
        return _retry_or_fail(error.kind, attempt, settings, rng)
    return Decision(Action.RECORD, Status.FAILED, error.kind)


def rerun(kind: Kind, record: Record | None) -> Rerun:
    """Re-run rules of design.md for one planned file: skip, expire or fetch.

    completed is kept, and so is expired when the server said so (a 400 on the boundary
    day). An expired record made from our clock alone (no request: a ``--today`` or clock
    mistake) is no fact: it is re-derived from today's plan, so a date back inside the
    window is fetched. An expired date with no record (or a stale derived one) is recorded
    expired without a request; failed and pending are retried; missing is re-checked while
    its date is inside the window (late generation), then kept.
    """
    status = record.status if record else None
    if status is Status.COMPLETED:
        return Rerun.SKIP
    if status is Status.EXPIRED and record is not None and record.http_status is not None:
        return Rerun.SKIP  # the server's word
    if kind is Kind.EXPIRED:
        return Rerun.SKIP if status in (Status.MISSING, Status.EXPIRED) else Rerun.EXPIRE
    return Rerun.FETCH


VERIFY_FAILED = "verify: "  # the error of a record that ``backfill verify`` failed


def wrote_file(record: Record | None) -> bool:
    """Whether the manifest recorded a file of its own at this key's path: a completed
    record naming it, or one ``verify`` failed (the file found missing or corrupt). Only
    then may a download replace what is at the final path; anything else there (no
    record, or only failures, a 404, a refusal of that very file) is not the manifest's,
    and is adopted if it holds the same bytes, never overwritten otherwise."""
    if record is None:
        return False
    if record.status is Status.COMPLETED:
        return record.path is not None
    return record.status is Status.FAILED and (record.error or "").startswith(VERIFY_FAILED)


class Recorded(Protocol):
    """What :func:`outstanding` needs of the journal's state."""

    def get(self, key: tuple[str, str]) -> Record | None: ...


@dataclass(frozen=True, slots=True)
class Outstanding:
    """One planned file and what this run does with it (:func:`outstanding`)."""

    task: Task
    action: Rerun
    record: Record | None  # what the journal says about it now


def outstanding(tasks: Iterable[Task], done: Recorded) -> Iterator[Outstanding]:
    """The plan minus what the journal says is done: every task that is not in the
    future, with its :func:`rerun` action and its current record, in plan order.

    The one place that applies the re-run rules to a plan: the workers, the RunStarted
    count and ``run --dry-run`` all filter this.
    """
    for task in tasks:
        if task.kind is Kind.FUTURE:
            continue
        record = done.get(task.key)
        yield Outstanding(task, rerun(task.kind, record), record)
