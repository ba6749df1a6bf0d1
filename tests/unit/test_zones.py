"""backfill.zones gives what pendulum gave the planner and the config (it replaced it there)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import available_timezones

import pendulum
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from backfill.zones import local, zone

NAMES = sorted(available_timezones())
ODD = ["UTC", "utc", "Utc", "Europe", "Europe/", "Nowhere/City", "", "local", "../etc",
       "/etc/localtime", "Europe/Berlin ", "EUROPE/BERLIN", "Etc/GMT+5"]


def _accepted(check: object, name: str) -> bool:
    try:
        check(name)  # type: ignore[operator]
    except (ValueError, OSError):
        return False
    return True


@pytest.mark.parametrize("name", ODD)
def test_the_same_names_are_zones_as_for_pendulum(name: str) -> None:
    assert _accepted(zone, name) is _accepted(pendulum.timezone, name)


def test_every_tzdata_name_is_a_zone() -> None:
    assert all(_accepted(zone, name) for name in NAMES)


@settings(max_examples=300, deadline=None)
@example("America/Nuuk", datetime(1983, 9, 25, 0, 0), None)  # in the repeated hour
@given(st.sampled_from([*NAMES, "UTC", "utc"]),
       st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1)),
       st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30))]))
def test_local_time_is_pendulums(name: str, when: datetime, tz: timezone | None) -> None:
    now = when if tz is None else when.replace(tzinfo=tz)
    theirs = pendulum.instance(now).in_timezone(name)
    ours = local(now, name)
    # the same instant (compared in UTC: PEP 495 makes == between zones False for a
    # wall time that occurs twice, such as the hour a zone's clocks go back)
    assert ours.astimezone(UTC) == theirs.astimezone(UTC)
    assert ours.timetuple()[:6] == theirs.timetuple()[:6]  # and the same wall time
    assert ours.utcoffset() == theirs.utcoffset()
