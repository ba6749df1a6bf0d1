"""Flow control: adaptive per-workspace concurrency, request rate, per-host circuit breaker.

Each is a small state machine over an injected :class:`~backfill.clock.Clock`, so tests
drive them without real waiting.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import anyio

from .clock import Clock


class AdaptiveLimiter:
    """A capacity limiter that halves on throttling and creeps back on success (AIMD).

    The limit never drops below 1 nor rises above ``ceiling``; it grows by one after
    ``limit`` consecutive successes, so recovery takes about as many requests as the
    current window.
    """

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self._limiter = anyio.CapacityLimiter(ceiling)
        self._streak = 0

    @property
    def limit(self) -> int:
        return int(self._limiter.total_tokens)

    @property
    def in_use(self) -> int:
        return self._limiter.borrowed_tokens

    async def acquire(self, owner: object) -> None:
        """Take a slot for ``owner``, waiting (FIFO) if none is free.

        A free slot is taken without yielding to the event loop (a per-file saving): this
        is a checkpoint only when it has to wait.
        """
        try:
            self._limiter.acquire_on_behalf_of_nowait(owner)
        except anyio.WouldBlock:
            await self._limiter.acquire_on_behalf_of(owner)

    def release(self, owner: object) -> None:
        self._limiter.release_on_behalf_of(owner)

    def throttled(self) -> bool:
        """Halve the limit; True if it changed."""
        self._streak = 0
        new = max(1, self.limit // 2)
        changed = new != self.limit
        self._limiter.total_tokens = new
        return changed

    def succeeded(self) -> bool:
        """Count a success; True if the limit grew."""
        if self.limit >= self.ceiling:
            return False
        self._streak += 1
        if self._streak >= self.limit:
            self._streak = 0
            self._limiter.total_tokens = self.limit + 1
            return True
        return False


class RateLimiter:
    """At most ``rate`` request starts per second, spaced evenly (reservation style)."""

    def __init__(self, rate: float, clock: Clock) -> None:
        self._interval = 1.0 / rate
        self._clock = clock
        self._next = 0.0

    async def acquire(self) -> None:
        now = self._clock.monotonic()
        start = max(now, self._next)
        self._next = start + self._interval
        if start > now:
            await self._clock.sleep(start - now)


class BreakerState(enum.Enum):
    CLOSED = "closed"  # normal
    OPEN = "open"  # paused: requests wait; one probe at growing intervals


class OutageTooLong(Exception):
    """A host stayed unreachable longer than max_outage_s."""


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    threshold: int = 5
    probe_interval_s: float = 1.0
    probe_interval_max_s: float = 60.0
    max_outage_s: float = 1800.0


class CircuitBreaker:
    """Per-host breaker.

    After ``threshold`` consecutive transient failures the host is *open*: callers wait in
    :meth:`admit` (their tasks' attempts are not used up), and one probe request is let
    through every interval, the interval doubling up to its maximum. The first success
    closes the breaker and wakes everyone. Waiting longer than ``max_outage_s`` raises
    :class:`OutageTooLong` in every waiter.
    """

    def __init__(self, host: str, settings: BreakerSettings, clock: Clock) -> None:
        self.host = host
        self._s = settings
        self._clock = clock
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self._interval = settings.probe_interval_s
        self._next_probe = 0.0
        self._probing = False
        self._changed = anyio.Event()
        self.outages = 0

    @property
    def is_open(self) -> bool:
        return self.state is BreakerState.OPEN

    async def admit(self) -> bool:
        """Wait until a request may go out. True if this request is the probe."""
        while self.state is BreakerState.OPEN:
            now = self._clock.monotonic()
            if now - self.opened_at > self._s.max_outage_s:
                raise OutageTooLong(self.host)
            if not self._probing and now >= self._next_probe:
                self._probing = True
                return True
            wait = (self._next_probe - now) if not self._probing else self._s.probe_interval_max_s
            wait = min(wait, self.opened_at + self._s.max_outage_s - now + 1e-3)
            event = self._changed
            with anyio.move_on_after(self._clock.real(max(wait, 0.0))):
                await event.wait()
        return False

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def success(self, probe: bool = False) -> bool:
        """The host answered. True if this closed an open breaker."""
        self.failures = 0
        if probe:
            self._probing = False
        if self.state is BreakerState.OPEN:
            self.state = BreakerState.CLOSED
            self._interval = self._s.probe_interval_s
            self._notify()
            return True
        return False

    def failure(self, probe: bool = False) -> bool:
        """A transient failure. True if this opened the breaker."""
        self.failures += 1
        now = self._clock.monotonic()
        if probe:
            self._probing = False
            self._interval = min(self._interval * 2, self._s.probe_interval_max_s)
            self._next_probe = now + self._interval
            self._notify()
            return False
        if self.state is BreakerState.CLOSED and self.failures >= self._s.threshold:
            self.state = BreakerState.OPEN
            self.opened_at = now
            self._interval = self._s.probe_interval_s
            self._next_probe = now + self._interval
            self.outages += 1
            self._notify()
            return True
        return False

    def abandon_probe(self) -> None:
        """The probe ended without an answer either way (cancelled): let another go."""
        if self._probing:
            self._probing = False
            self._notify()
