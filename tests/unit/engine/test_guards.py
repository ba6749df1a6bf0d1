"""The host, throttle and auth guards, fed decisions by hand: no server, no request."""

from __future__ import annotations

from backfill.clock import ScaledClock
from backfill.engine.guards import AUTH_STOP_AFTER, Guards, HostGuard
from backfill.events import Event, HostPaused, HostResumed, Throttled, WorkspaceStopped
from backfill.limits import AdaptiveLimiter, BreakerSettings, CircuitBreaker
from backfill.model import Status
from backfill.policy import Action, Decision, Signal

RETRY_DOWN = Decision(Action.RETRY, None, "http 503", 0.5, signal=Signal.DOWN)
FAILED_DOWN = Decision(Action.RECORD, Status.FAILED, "http 503", signal=Signal.DOWN)
SLOW_DOWN = Decision(Action.RETRY, None, "http 429", 0.5, signal=Signal.SLOW_DOWN)
AUTH = Decision(Action.RECORD, Status.FAILED, "auth", signal=Signal.UNAUTHORIZED)
MISSING = Decision(Action.RECORD, Status.MISSING, "not found")


def make(threshold: int = 3, ceiling: int = 8) -> tuple[Guards, list[Event], list[str]]:
    events: list[Event] = []
    stopped: list[str] = []
    clock = ScaledClock()
    breaker = CircuitBreaker("http://h:80", BreakerSettings(threshold=threshold), clock)
    guards = Guards("ws", HostGuard(breaker, clock, events.append), AdaptiveLimiter(ceiling),
                    events.append, on_stopped=stopped.append)
    return guards, events, stopped


def test_failures_below_the_threshold_keep_the_policys_retry() -> None:
    guards, events, _ = make(threshold=3)
    assert guards.judge(RETRY_DOWN, probe=False) == RETRY_DOWN
    assert guards.judge(RETRY_DOWN, probe=False) == RETRY_DOWN
    assert events == []


def test_the_failure_that_opens_the_breaker_waits_for_the_host_instead() -> None:
    guards, events, _ = make(threshold=2)
    guards.judge(RETRY_DOWN, probe=False)
    got = guards.judge(RETRY_DOWN, probe=False)
    assert got.action is Action.WAIT_FOR_HOST and got.reason == "http 503"
    assert events == [HostPaused("http://h:80", 2)]
    # even a last attempt does not fail the file while its host is paused
    assert guards.judge(FAILED_DOWN, probe=False).action is Action.WAIT_FOR_HOST


def test_an_answer_closes_the_breaker_again() -> None:
    guards, events, _ = make(threshold=1)
    guards.judge(RETRY_DOWN, probe=False)
    assert guards.host.breaker.is_open
    guards.judge(MISSING, probe=True)  # the probe got a definite answer
    assert not guards.host.breaker.is_open
    assert isinstance(events[-1], HostResumed)


def test_429_halves_the_workspace_limit_and_never_opens_the_breaker() -> None:
    throttles: list[None] = []
    guards, events, _ = make(threshold=1, ceiling=8)
    guards._on_throttled = lambda: throttles.append(None)
    assert guards.judge(SLOW_DOWN, probe=False) == SLOW_DOWN
    assert guards.limiter.limit == 4 and len(throttles) == 1
    assert events == [Throttled("ws", 4)]
    assert not guards.host.breaker.is_open


def test_three_auth_failures_in_a_row_stop_the_workspace() -> None:
    guards, events, stopped = make()
    for _ in range(AUTH_STOP_AFTER - 1):
        guards.judge(AUTH, probe=False)
    assert guards.stopped is None
    guards.judge(AUTH, probe=False)
    assert guards.stopped is not None and "401/403" in guards.stopped
    assert stopped == [guards.stopped]
    assert events == [WorkspaceStopped("ws", guards.stopped)]


def test_an_answer_between_auth_failures_resets_the_streak_a_retry_does_not() -> None:
    guards, _, _ = make(threshold=100)
    guards.judge(AUTH, probe=False)
    guards.judge(AUTH, probe=False)
    guards.judge(RETRY_DOWN, probe=False)  # a transient retry says nothing about auth
    assert guards.auth.streak == 2
    guards.judge(MISSING, probe=False)
    assert guards.auth.streak == 0
    guards.judge(AUTH, probe=False)
    guards.judge(FAILED_DOWN, probe=False)  # recorded: the streak ends
    assert guards.auth.streak == 0
