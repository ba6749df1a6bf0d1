"""Events the engine emits while it runs. Subscribers (progress display, schedulers) get
plain frozen objects; the engine itself never prints."""

from __future__ import annotations

from dataclasses import dataclass

from .model import Status


@dataclass(frozen=True, slots=True)
class Event:
    pass


@dataclass(frozen=True, slots=True)
class RunStarted(Event):
    """Files this run will request, per workspace (the manifest already subtracted)."""

    to_fetch: dict[str, int]


@dataclass(frozen=True, slots=True)
class FileFinished(Event):
    workspace: str
    filename: str
    status: Status
    bytes: int
    attempts: int
    reason: str | None
    fetched: bool  # False when recorded without a request (expired) or skipped


@dataclass(frozen=True, slots=True)
class RetryScheduled(Event):
    workspace: str
    filename: str
    attempt: int
    reason: str
    delay_s: float


@dataclass(frozen=True, slots=True)
class HostPaused(Event):
    host: str
    failures: int


@dataclass(frozen=True, slots=True)
class HostResumed(Event):
    host: str
    paused_s: float


@dataclass(frozen=True, slots=True)
class Throttled(Event):
    workspace: str
    limit: int  # the workspace's effective concurrency now


@dataclass(frozen=True, slots=True)
class WorkspaceStopped(Event):
    workspace: str
    reason: str


@dataclass(frozen=True, slots=True)
class RunFinished(Event):
    interrupted: bool
