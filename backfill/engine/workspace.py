"""One workspace's run-time state: its limits, guards, tally and pool."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Workspace
from ..limits import AdaptiveLimiter, RateLimiter
from ..summary import WorkspaceTally
from .guards import Guards
from .pool import WorkspacePool


@dataclass(slots=True)
class WorkspaceRun:
    """Run-time state of one workspace (made per run, see :class:`~.run.Run`)."""

    ws: Workspace
    limiter: AdaptiveLimiter
    rate: RateLimiter | None
    tally: WorkspaceTally
    guards: Guards
    pool: WorkspacePool | None = None  # set once its feeder starts

    @property
    def stopped(self) -> str | None:
        return self.guards.stopped
