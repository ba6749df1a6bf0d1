"""The neutral model: what a file is and what became of it. No I/O, no clock.

Everything else speaks these words: the planner makes :class:`Task` objects inside a
:class:`Window`, the policy and the engine decide a :class:`Status` for each, the journal
stores it. Importing this module loads only the standard library.

Age of a file = today − generation date, in days:

    age < 0   FUTURE     not generated yet; never requested
    age 0..6  FETCHABLE  inside the 7-day window (age 0: may not be generated yet)
    age 7     BOUNDARY   last day; tried, and a 400 there counts as expired
    age ≥ 8   EXPIRED    recorded without a request
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Report, Workspace

EXPIRY_DAYS = 7


class Status(enum.StrEnum):
    """A file's outcome as the journal records it (design.md "The manifest")."""

    COMPLETED = "completed"
    MISSING = "missing"
    EXPIRED = "expired"
    FAILED = "failed"
    PENDING = "pending"


class Kind(enum.Enum):
    """A planned file's age class (see the module docstring)."""

    FUTURE = "future"
    FETCHABLE = "fetchable"
    BOUNDARY = "boundary"
    EXPIRED = "expired"

    @property
    def requested(self) -> bool:
        return self in (Kind.FETCHABLE, Kind.BOUNDARY)


def classify(age: int) -> Kind:
    """Kind of a file of the given age in days (see module docstring)."""
    if age < 0:
        return Kind.FUTURE
    if age < EXPIRY_DAYS:
        return Kind.FETCHABLE
    if age == EXPIRY_DAYS:
        return Kind.BOUNDARY
    return Kind.EXPIRED


class Rerun(enum.StrEnum):
    """What a run does with one planned file, given what the journal says (policy.rerun)."""

    SKIP = "skip"  # kept as recorded (completed, expired, a missing file past its window)
    EXPIRE = "expire"  # recorded expired without a request
    FETCH = "fetch"  # requested


@dataclass(frozen=True, slots=True)
class Task:
    """One file: a report of a workspace generated on one date."""

    workspace: Workspace
    report: Report
    day: date
    filename: str
    age: int
    kind: Kind

    @property
    def key(self) -> tuple[str, str]:
        """Manifest key: (app_id, filename)."""
        return (self.workspace.app_id, self.filename)

    @property
    def maybe_not_generated(self) -> bool:
        """Today's file: the vendor may not have generated it yet."""
        return self.age == 0


@dataclass(frozen=True, slots=True)
class Window:
    """The date range planned for one workspace, after the 90-day cap."""

    workspace: Workspace
    today: date
    start: date
    end: date
    requested_start: date  # before the cap
    # Wall time in the workspace's zone when planned; None when 'today' is pinned (a date
    # names no hour, so every file of that date counts as generated).
    now_local: datetime | None = None

    @property
    def dropped_days(self) -> int:
        return (self.start - self.requested_start).days if self.start > self.requested_start else 0
