"""The policy table of backfill/policy.py, row by row, without any I/O."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backfill.config import RetrySettings
from backfill.errors import (
    BodyTooLarge,
    ConnectError,
    ConnectionLost,
    InvalidBody,
    RedirectError,
    RequestTimeout,
)
from backfill.journal import Record, Status
from backfill.planner import Kind
from backfill.policy import (
    Action,
    HttpReply,
    Signal,
    backoff,
    decide_error,
    decide_reply,
    parse_retry_after,
    rerun,
    wrote_file,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
S = RetrySettings(max_attempts=4, backoff_base_s=1.0, backoff_max_s=8.0, retry_after_max_s=30)


def reply(status: int, **kw: str) -> HttpReply:
    return HttpReply(status, **kw)


@pytest.mark.parametrize(("age", "status"), [
    (0, Status.PENDING), (1, Status.MISSING), (6, Status.MISSING), (7, Status.EXPIRED),
])
def test_400_is_classified_by_age(age: int, status: Status) -> None:
    d = decide_reply(reply(400, message="no such file", request_id="r-1"), age, 1, S, NOW,
                     random.Random(0))
    assert d.action is Action.RECORD and d.status is status
    assert d.reason == "no such file"


@pytest.mark.parametrize("code", [401, 403])
def test_auth_fails_without_retry(code: int) -> None:
    d = decide_reply(reply(code), 2, 1, S, NOW, random.Random(0))
    assert (d.action, d.status, d.reason, d.signal) == (Action.RECORD, Status.FAILED, "auth",
                                                        Signal.UNAUTHORIZED)


def test_404_is_missing() -> None:
    d = decide_reply(reply(404), 2, 1, S, NOW, random.Random(0))
    assert d.status is Status.MISSING


@pytest.mark.parametrize("code", [408, 425, 429, 500, 502, 503, 504])
def test_transient_statuses_retry_then_fail(code: int) -> None:
    rng = random.Random(0)
    for attempt in range(1, S.max_attempts):
        d = decide_reply(reply(code), 2, attempt, S, NOW, rng)
        assert d.action is Action.RETRY
        assert 0 <= d.delay_s <= min(S.backoff_max_s, S.backoff_base_s * 2 ** (attempt - 1))
    last = decide_reply(reply(code), 2, S.max_attempts, S, NOW, rng)
    assert (last.action, last.status, last.reason) == (Action.RECORD, Status.FAILED,
                                                       f"http {code}")
    # throttling never opens the breaker
    assert last.signal is (Signal.SLOW_DOWN if code == 429 else Signal.DOWN)


@pytest.mark.parametrize("code", [402, 405, 410, 418, 451])
def test_other_4xx_fail(code: int) -> None:
    d = decide_reply(reply(code), 2, 1, S, NOW, random.Random(0))
    assert (d.action, d.status, d.reason) == (Action.RECORD, Status.FAILED, f"http {code}")


def test_retry_after_seconds_is_a_floor_and_capped() -> None:
    d = decide_reply(reply(429, retry_after="7"), 2, 1, S, NOW, random.Random(0))
    assert d.delay_s == 7.0
    capped = decide_reply(reply(503, retry_after="3600"), 2, 1, S, NOW, random.Random(0))
    assert capped.delay_s == S.retry_after_max_s


def test_retry_after_http_date() -> None:
    header = format_datetime(NOW + timedelta(seconds=12), usegmt=True)
    assert parse_retry_after(header, NOW, 300) == pytest.approx(12)
    assert parse_retry_after(format_datetime(NOW - timedelta(seconds=5), usegmt=True),
                             NOW, 300) == 0.0
    assert parse_retry_after("soon", NOW, 300) is None
    assert parse_retry_after(None, NOW, 300) is None


@pytest.mark.parametrize("error", [ConnectError("x"), ConnectionLost("x"), RequestTimeout("x")])
def test_transport_errors_retry_and_count_for_the_breaker(error: Exception) -> None:
    d = decide_error(error, 1, S, random.Random(0))  # type: ignore[arg-type]
    assert d.action is Action.RETRY and d.signal is Signal.DOWN
    last = decide_error(error, S.max_attempts, S, random.Random(0))  # type: ignore[arg-type]
    assert last.status is Status.FAILED and last.reason == error.kind  # type: ignore[attr-defined]


def test_invalid_body_retries_then_fails_as_invalid_body() -> None:
    d = decide_error(InvalidBody("not a zip"), 1, S, random.Random(0))
    assert d.action is Action.RETRY and d.signal is Signal.ANSWERED
    last = decide_error(InvalidBody("not a zip"), S.max_attempts, S, random.Random(0))
    assert (last.status, last.reason) == (Status.FAILED, "invalid body")


@pytest.mark.parametrize("error", [BodyTooLarge("big"), RedirectError("elsewhere")])
def test_hopeless_errors_fail_at_once(error: Exception) -> None:
    d = decide_error(error, 1, S, random.Random(0))  # type: ignore[arg-type]
    assert d.action is Action.RECORD and d.status is Status.FAILED


@given(st.integers(1, 40), st.floats(0.001, 10), st.floats(0.001, 100), st.integers(0, 2**32))
def test_backoff_is_full_jitter_bounded(attempt: int, base: float, cap: float, seed: int) -> None:
    s = RetrySettings(backoff_base_s=base, backoff_max_s=cap)
    delay = backoff(attempt, s, random.Random(seed))
    assert 0 <= delay <= min(cap, base * 2 ** (attempt - 1))


def _rec(status: Status, http_status: int | None = None) -> Record:
    return Record(workspace="w", app_id="A", report="r", date="2026-11-20",
                  filename="r_20261120.zip", status=status, http_status=http_status)


@pytest.mark.parametrize(("kind", "status", "action"), [
    (Kind.FETCHABLE, None, "fetch"),
    (Kind.FETCHABLE, Status.COMPLETED, "skip"),
    (Kind.FETCHABLE, Status.EXPIRED, "fetch"),    # our clock's word only: re-derived
    (Kind.FETCHABLE, Status.FAILED, "fetch"),
    (Kind.FETCHABLE, Status.PENDING, "fetch"),
    (Kind.FETCHABLE, Status.MISSING, "fetch"),   # re-checked while inside the window
    (Kind.BOUNDARY, Status.MISSING, "fetch"),
    (Kind.EXPIRED, None, "expire"),               # recorded without a request
    (Kind.EXPIRED, Status.FAILED, "expire"),
    (Kind.EXPIRED, Status.PENDING, "expire"),
    (Kind.EXPIRED, Status.MISSING, "skip"),       # then kept
    (Kind.EXPIRED, Status.COMPLETED, "skip"),
    (Kind.EXPIRED, Status.EXPIRED, "skip"),       # already recorded
])
def test_rerun_rules(kind: Kind, status: Status | None, action: str) -> None:
    assert rerun(kind, _rec(status) if status else None) == action


@pytest.mark.parametrize(("status", "path", "error", "wrote"), [
    (None, None, None, False),                          # never seen: not the manifest's
    (Status.COMPLETED, "w/r_20261120.zip", None, True),
    (Status.FAILED, None, "verify: sha256 mismatch", True),  # its own file, found corrupt
    (Status.FAILED, None, "verify: missing", True),
    (Status.FAILED, None, "connection lost", False),    # it never had a file there
    (Status.FAILED, None, "a file not written by this manifest is already at /o/x.zip "
     "(different bytes); move it away", False),         # still not its own next time
    (Status.MISSING, None, None, False),
    (Status.PENDING, None, None, False),
])
def test_only_a_file_the_manifest_recorded_may_be_replaced(
        status: Status | None, path: str | None, error: str | None, wrote: bool) -> None:
    record = None if status is None else Record(
        workspace="w", app_id="A", report="r", date="2026-11-20", filename="r_20261120.zip",
        status=status, path=path, error=error)
    assert wrote_file(record) is wrote


@pytest.mark.parametrize("kind", [Kind.FETCHABLE, Kind.BOUNDARY, Kind.EXPIRED])
def test_an_expired_the_server_answered_is_final(kind: Kind) -> None:
    """A 400 on the boundary day is the server's word; expired with no request is not."""
    assert rerun(kind, _rec(Status.EXPIRED, http_status=400)) == "skip"
