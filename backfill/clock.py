"""Time, injectable: the engine never calls time.* or anyio.sleep directly.

:class:`ScaledClock` runs ``speed`` times faster than real time, so retry, backoff,
Retry-After and outage tests take milliseconds while the engine's logic stays unchanged.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import anyio


class Clock:
    """Real time."""

    speed: float = 1.0

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._w0 = datetime.now(UTC)

    def monotonic(self) -> float:
        return (time.monotonic() - self._t0) * self.speed

    def wall(self) -> datetime:
        """Current UTC instant (scaled clocks move it along with monotonic())."""
        return self._w0 + timedelta(seconds=self.monotonic())

    def real(self, seconds: float) -> float:
        """Real seconds that ``seconds`` of this clock's time take."""
        return max(0.0, seconds) / self.speed

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(self.real(seconds))


class ScaledClock(Clock):
    """A clock running ``speed`` times faster than real time (tests)."""

    def __init__(self, speed: float = 1000.0, start: datetime | None = None) -> None:
        super().__init__()
        self.speed = speed
        if start is not None:
            self._w0 = start
