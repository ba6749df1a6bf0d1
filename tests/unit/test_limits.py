"""Flow-control state machines with a fast clock: no real waiting."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from backfill.clock import ScaledClock
from backfill.limits import (
    AdaptiveLimiter,
    BreakerSettings,
    CircuitBreaker,
    OutageTooLong,
    RateLimiter,
)

pytestmark = pytest.mark.anyio


def test_adaptive_limiter_halves_and_creeps_back() -> None:
    lim = AdaptiveLimiter(8)
    assert lim.throttled() and lim.limit == 4
    assert lim.throttled() and lim.limit == 2
    lim.throttled()
    assert lim.limit == 1
    assert not lim.throttled() and lim.limit == 1  # never below 1
    grown = [lim.succeeded() for _ in range(sum(range(1, 8)))]  # +1 after `limit` successes
    assert lim.limit == 8  # back to the ceiling ...
    assert sum(grown) == 7
    assert not lim.succeeded() and lim.limit == 8  # ... and never above it


async def test_adaptive_limiter_bounds_concurrency() -> None:
    lim = AdaptiveLimiter(3)
    lim.throttled()  # → 1
    active = peak = 0

    async def worker() -> None:
        nonlocal active, peak
        token = object()
        await lim.acquire(token)
        try:
            active += 1
            peak = max(peak, active)
            await anyio.lowlevel.checkpoint()
            await anyio.lowlevel.checkpoint()
        finally:
            active -= 1
            lim.release(token)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(worker)
    assert peak == 1


async def test_rate_limiter_spaces_requests() -> None:
    clock = ScaledClock(speed=1000)
    rate = RateLimiter(5.0, clock)  # 5/s → 0.2 s apart
    t0 = clock.monotonic()
    for _ in range(6):
        await rate.acquire()
    assert clock.monotonic() - t0 >= 1.0 - 1e-3


async def test_breaker_opens_probes_and_closes() -> None:
    clock = ScaledClock(speed=1000)
    b = CircuitBreaker("h", BreakerSettings(threshold=3, probe_interval_s=1.0,
                                            probe_interval_max_s=4.0, max_outage_s=60), clock)
    assert not await b.admit()
    assert not b.failure() and not b.failure()
    assert b.failure() and b.is_open
    t0 = clock.monotonic()
    assert await b.admit()  # the probe, after one interval
    assert clock.monotonic() - t0 >= 1.0 - 1e-3
    b.failure(probe=True)  # probe failed → interval doubles
    t1 = clock.monotonic()
    assert await b.admit()
    assert clock.monotonic() - t1 >= 2.0 - 1e-3
    released: list[bool] = []

    async def waiter() -> None:
        released.append(await b.admit())

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        assert released == []  # paused while the probe is out
        assert b.success(probe=True)
    assert released == [False, False] and not b.is_open


async def test_breaker_gives_up_after_max_outage() -> None:
    clock = ScaledClock(speed=1000)
    b = CircuitBreaker("h", BreakerSettings(threshold=1, probe_interval_s=1.0,
                                            probe_interval_max_s=2.0, max_outage_s=10), clock)
    b.failure()
    with pytest.raises(OutageTooLong):
        while True:
            if await b.admit():
                b.failure(probe=True)
    assert clock.monotonic() >= 10
