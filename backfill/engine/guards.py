"""Host, throttle and auth guards: what one attempt's outcome means beyond its file.

The policy (:mod:`backfill.policy`) decides about one file and says, in
:class:`~backfill.policy.Signal`, what the attempt tells about the host and the
workspace. :meth:`Guards.judge` feeds that to the guards and returns the decision the
fetch loop acts on — the policy's own, or ``WAIT_FOR_HOST`` when the host has just been
paused:

    signal         host breaker             throttle           auth streak
    ────────────   ──────────────────────   ────────────────   ─────────────────────────
    DOWN           failure (may pause the   —                  kept while retrying,
                   host: WAIT_FOR_HOST)                          reset once recorded
    SLOW_DOWN      success                  halve the limit    reset
    UNAUTHORIZED   success                  —                  +1; 3 in a row stop the
                                                                 workspace
    ANSWERED       success                  —                  reset

Each guard emits its own events (HostPaused / HostResumed, Throttled, WorkspaceStopped).
"""

from __future__ import annotations

from collections.abc import Callable

from ..clock import Clock
from ..events import Event, HostPaused, HostResumed, Throttled, WorkspaceStopped
from ..limits import AdaptiveLimiter, CircuitBreaker
from ..policy import Action, Decision, Signal

AUTH_STOP_AFTER = 3  # consecutive 401/403 that stop a workspace

Emit = Callable[[Event], None]


class HostGuard:
    """One host's circuit breaker and its events; shared by the workspaces on that host."""

    def __init__(self, breaker: CircuitBreaker, clock: Clock, emit: Emit) -> None:
        self.breaker = breaker
        self._clock = clock
        self._emit = emit

    @property
    def host(self) -> str:
        return self.breaker.host

    async def admit(self) -> bool:
        """Wait while the host is paused; True if this attempt is the probe.
        OutageTooLong once the host has been failing for longer than allowed."""
        return await self.breaker.admit()

    def abandon(self, probe: bool) -> None:
        """An admitted attempt was not made (cancelled, or its workspace stopped)."""
        if probe:
            self.breaker.abandon_probe()

    def up(self, probe: bool) -> None:
        opened_at = self.breaker.opened_at
        if self.breaker.success(probe):
            self._emit(HostResumed(self.breaker.host, self._clock.monotonic() - opened_at))

    def down(self, probe: bool) -> bool:
        """Count a failure; True if the host is paused now."""
        if self.breaker.failure(probe):
            self._emit(HostPaused(self.breaker.host, self.breaker.failures))
        return self.breaker.is_open


class AuthGuard:
    """Stops a workspace after AUTH_STOP_AFTER consecutive 401/403."""

    def __init__(self, workspace: str, emit: Emit,
                 on_stopped: Callable[[str], None] = lambda reason: None) -> None:
        self.workspace = workspace
        self.streak = 0
        self.stopped: str | None = None  # why the workspace was stopped
        self._emit = emit
        self._on_stopped = on_stopped

    def rejected(self) -> None:
        self.streak += 1
        if self.streak >= AUTH_STOP_AFTER and not self.stopped:
            self.stopped = (f"stopped: {AUTH_STOP_AFTER} requests in a row rejected as "
                            "unauthorized (401/403): check api_key and secret_key")
            self._on_stopped(self.stopped)
            self._emit(WorkspaceStopped(self.workspace, self.stopped))

    def reset(self) -> None:
        self.streak = 0


class Guards:
    """The guards of one workspace: its host's breaker, its adaptive limit, its auth.

    ``on_throttled`` is called each time the limit is halved (the run counts it),
    ``on_stopped`` with the reason when the workspace is stopped.
    """

    def __init__(
        self, workspace: str, host: HostGuard, limiter: AdaptiveLimiter, emit: Emit, *,
        on_throttled: Callable[[], None] = lambda: None,
        on_stopped: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.workspace = workspace
        self.host = host
        self.limiter = limiter
        self.auth = AuthGuard(workspace, emit, on_stopped)
        self._emit = emit
        self._on_throttled = on_throttled

    @property
    def stopped(self) -> str | None:
        return self.auth.stopped

    def succeeded(self, probe: bool) -> None:
        """A file was stored."""
        self.host.up(probe)
        self.auth.reset()
        self.limiter.succeeded()

    def judge(self, decision: Decision, probe: bool) -> Decision:
        """Feed an attempt's decision to the guards (see the module table); the decision
        to act on."""
        signal = decision.signal
        if signal is Signal.DOWN:
            if self.host.down(probe):
                # Paused host: wait in admit() instead of burning an attempt.
                return Decision(Action.WAIT_FOR_HOST, None, decision.reason, signal=signal)
        else:
            self.host.up(probe)
        if signal is Signal.SLOW_DOWN and self.limiter.throttled():
            self._on_throttled()
            self._emit(Throttled(self.workspace, self.limiter.limit))
        if signal is Signal.UNAUTHORIZED:
            self.auth.rejected()
        elif decision.action is Action.RECORD or signal is not Signal.DOWN:
            self.auth.reset()
        return decision
