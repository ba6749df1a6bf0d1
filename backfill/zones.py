"""IANA time zones by name, from the standard library (``zoneinfo``).

The names are pendulum's (``pendulum.timezone``, whose zones *are* ``ZoneInfo``
objects): any IANA name tzdata knows, and ``UTC`` in any case. The planner's 'today'
and wall time come from here; pendulum, with dateutil behind it, is ~20 ms of imports
before the first request, so it is imported only where its rules for local times that
do not exist or exist twice are needed (:func:`backfill.summary.expires_at`).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import cache
from zoneinfo import ZoneInfo


@cache
def zone(name: str) -> tzinfo:
    """The zone called ``name``. ValueError if there is none (an unknown or malformed
    name); OSError if the name is a folder of tzdata ("Europe")."""
    if name.lower() == "utc":
        return UTC
    try:
        return ZoneInfo(name)
    except KeyError:  # ZoneInfoNotFoundError
        raise ValueError(f"unknown time zone {name!r}") from None


def local(now: datetime, name: str) -> datetime:
    """The instant ``now`` (naive: UTC) in the zone called ``name``."""
    if now.tzinfo is None or now.utcoffset() is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(zone(name))
