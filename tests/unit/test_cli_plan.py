"""`backfill plan` on configs/example.toml: numbers worked out here from the dates alone."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backfill.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "example.toml"
SECRETS = ("MOE_ACME_API_KEY", "MOE_ACME_SECRET", "MOE_GLOBEX_API_KEY")

# example.toml: acme-eu has "Daily campaign summary" (daily) and "Weekly email" (weekly:mon);
# globex-us has "Daily campaign summary" (daily) and "Monthly push" (monthly:1).
REPORTS = {
    "acme-eu": [("Daily campaign summary", "daily"), ("Weekly email", "weekly:mon")],
    # "Weekly email" is generated at 09:00 (Berlin); the others have no hour set
    "globex-us": [("Daily campaign summary", "daily"), ("Monthly push", "monthly:1")],
}
AT = {"Weekly email": "09:00"}
APP_IDS = {"acme-eu": "ACME01", "globex-us": "GLOBEX7"}
ZONES = {"acme-eu": "Europe/Berlin", "globex-us": "America/New_York"}


@pytest.fixture(autouse=True)
def _no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """plan must work without the credentials the example config refers to."""
    for var in SECRETS:
        monkeypatch.delenv(var, raising=False)


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    rc = main(["plan", str(EXAMPLE), *args, "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert err == ""
    doc = json.loads(out)
    assert isinstance(doc, dict)
    return doc


def on_schedule(schedule: str, day: date) -> bool:
    if schedule == "daily":
        return True
    if schedule == "weekly:mon":
        return day.weekday() == 0
    assert schedule == "monthly:1"
    return day.day == 1


def expected_report(schedule: str, start: date, end: date, today: date) -> dict[str, Any]:
    """Counts for one report, from first principles (spec: design.md, 'plans')."""
    requested = [start + timedelta(n) for n in range((end - start).days + 1)]
    kept, dropped = requested[-90:], requested[:-90]
    dates = [d for d in kept if on_schedule(schedule, d)]
    ages = [(today - d).days for d in dates]
    return {
        "schedule": schedule,
        "dates": len(dates),
        "fetch": sum(0 <= a <= 7 for a in ages),
        "boundary": ages.count(7),
        "expired": sum(a >= 8 for a in ages),
        "future": sum(a < 0 for a in ages),
        "today": ages.count(0),
        "dropped": sum(on_schedule(schedule, d) for d in dropped),
        "first_date": dates[0].isoformat() if dates else None,
        "last_date": dates[-1].isoformat() if dates else None,
    }


def expected_next(name: str, today: date) -> dict[str, str]:
    """With 'today' pinned every file of today counts as ready: the next is on a later
    date, at its report's hour plus the default 30-minute buffer (midnight without one)."""
    def ready(report: str, schedule: str) -> datetime:
        later = (today + timedelta(n) for n in range(1, 40))
        day = next(d for d in later if on_schedule(schedule, d))
        if report not in AT:
            return datetime.combine(day, datetime.min.time())
        return datetime.fromisoformat(f"{day}T{AT[report]}") + timedelta(minutes=30)
    when, report = min((ready(r, s), r) for r, s in REPORTS[name])
    return {"report": report, "at": when.isoformat(timespec="minutes")}


def expected_doc(start: date, end: date, today: date,
                 names: tuple[str, ...] = ("acme-eu", "globex-us")) -> dict[str, Any]:
    workspaces = []
    for name in names:
        span = (end - start).days + 1
        workspaces.append({
            "name": name, "app_id": APP_IDS[name], "timezone": ZONES[name],
            "today": today.isoformat(),
            "start": max(start, end - timedelta(89)).isoformat(), "end": end.isoformat(),
            "dropped_days": max(0, span - 90),
            "reports": [{"name": r, **expected_report(s, start, end, today),
                         "at": AT.get(r), "ready_buffer_s": 1800 if r in AT else 0}
                        for r, s in REPORTS[name]],
            "next_ready": expected_next(name, today),
        })
    keys = ("dates", "fetch", "boundary", "expired", "future", "today", "dropped")
    totals = {k: sum(r[k] for w in workspaces for r in w["reports"]) for k in keys}
    return {"version": 1, "totals": totals, "workspaces": workspaces, "capacity": []}


def test_example_plan_json(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "--today", "2026-11-27")
    today = date(2026, 11, 27)
    assert doc == expected_doc(date(2026, 11, 20), today, today)
    # The same numbers by hand: 2026-11-20..27 is 8 days; 2026-11-23 is the only Monday;
    # no 1st of a month; 2026-11-20 is 7 days old (boundary), 2026-11-27 is today.
    assert doc["totals"] == {"dates": 17, "fetch": 17, "boundary": 2, "expired": 0,
                             "future": 0, "today": 2, "dropped": 0}
    weekly = doc["workspaces"][0]["reports"][1]
    assert (weekly["dates"], weekly["first_date"]) == (1, "2026-11-23")
    assert doc["workspaces"][1]["reports"][1]["dates"] == 0


def test_example_plan_json_is_stable(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "--today", "2026-11-27")
    assert list(doc) == ["version", "totals", "workspaces", "capacity"]
    assert list(doc["totals"]) == ["dates", "fetch", "boundary", "expired", "future", "today",
                                   "dropped"]
    ws = doc["workspaces"][0]
    assert list(ws) == ["name", "app_id", "timezone", "today", "start", "end", "dropped_days",
                        "reports", "next_ready"]
    assert list(ws["reports"][0]) == ["name", "schedule", "dates", "fetch", "boundary",
                                      "expired", "future", "today", "dropped", "first_date",
                                      "last_date", "at", "ready_buffer_s"]
    assert run_json(capsys, "--today", "2026-11-27") == doc  # deterministic


def test_example_plan_human(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(EXAMPLE), "--today", "2026-11-27"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    for text in ("acme-eu", "globex-us", "Daily campaign summary", "Weekly email",
                 "Monthly push", "weekly:mon", "monthly:1", "2026-11-27"):
        assert text in out, text
    summary = " ".join(out.split())  # the closing sentence may wrap
    assert "17 files planned" in summary
    assert "17 to fetch" in summary
    assert "2 on their last day" in summary
    assert "0 expired" in summary


def test_workspace_filter(capsys: pytest.CaptureFixture[str]) -> None:
    today = date(2026, 11, 27)
    doc = run_json(capsys, "--today", "2026-11-27", "--workspace", "globex-us")
    assert doc == expected_doc(date(2026, 11, 20), today, today, names=("globex-us",))
    assert doc["totals"]["dates"] == 8
    both = run_json(capsys, "--today", "2026-11-27", "--workspace", "globex-us",
                    "--workspace", "acme-eu")
    assert [w["name"] for w in both["workspaces"]] == ["acme-eu", "globex-us"]  # config order


def test_start_end_override_with_cap(capsys: pytest.CaptureFixture[str]) -> None:
    today = date(2026, 11, 27)
    doc = run_json(capsys, "--today", "2026-11-27", "--start", "2026-08-01",
                   "--end", "2026-11-30")
    assert doc == expected_doc(date(2026, 8, 1), date(2026, 11, 30), today)
    # By hand: 2026-08-01..11-30 is 31+30+31+30 = 122 days; the latest 90 start on
    # 2026-09-02 (32 dropped). 28-30 Nov are future, 20-27 Nov fetched, the rest expired.
    acme, globex = doc["workspaces"]
    assert (acme["start"], acme["dropped_days"]) == ("2026-09-02", 32)
    daily = acme["reports"][0]
    assert (daily["dates"], daily["future"], daily["fetch"], daily["expired"]) == (90, 3, 8, 79)
    monthly = globex["reports"][1]  # 1 Oct, 1 Nov kept; 1 Aug, 1 Sep dropped
    assert (monthly["dates"], monthly["dropped"], monthly["expired"]) == (2, 2, 2)


@pytest.mark.parametrize("start", [["--start", "-2d"], ["--start=-2d"], ["--start", "-2D"]])
def test_relative_override(capsys: pytest.CaptureFixture[str], start: list[str]) -> None:
    # "-2d" looks like an option to argparse; the help promises it works after --start.
    doc = run_json(capsys, "--today", "2026-11-27", *start, "--end", "yesterday")
    for ws in doc["workspaces"]:
        assert (ws["start"], ws["end"]) == ("2026-11-25", "2026-11-26")
        assert ws["reports"][0]["dates"] == 2
        assert ws["reports"][0]["today"] == 0


def test_future_only_plan(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "--today", "2026-11-01", "--start", "2026-11-20",
                   "--end", "2026-11-27")
    assert doc["totals"]["future"] == doc["totals"]["dates"] == 17
    assert doc["totals"]["fetch"] == 0


def test_start_after_end_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["plan", str(EXAMPLE), "--start", "2026-11-27", "--end", "2026-11-20"])
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "--start 2026-11-27 is after --end 2026-11-20" in err


def test_end_override_before_config_start(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["plan", str(EXAMPLE), "--end", "2026-11-01"])  # [run] start = 2026-11-20
    _, err = capsys.readouterr()
    assert rc == 2
    assert "[run] start 2026-11-20 is after --end 2026-11-01" in err


def test_unknown_workspace(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["plan", str(EXAMPLE), "--workspace", "initech"])
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""
    assert "'initech'" in err
    assert "acme-eu, globex-us" in err
    assert str(EXAMPLE) in err


def test_plan_without_today_uses_each_workspace_zone(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys)
    todays = {w["name"]: date.fromisoformat(w["today"]) for w in doc["workspaces"]}
    # Berlin is 6 hours ahead of New York: their dates differ by at most one day.
    assert 0 <= (todays["acme-eu"] - todays["globex-us"]).days <= 1
    for ws in doc["workspaces"]:
        assert ws["end"] == ws["today"]  # end = "today" in its own zone


def test_plan_output_never_shows_secrets(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in SECRETS:
        monkeypatch.setenv(var, f"hunter2-{var.lower()}")
    assert main(["plan", str(EXAMPLE), "--today", "2026-11-27", "--json"]) == 0
    assert main(["plan", str(EXAMPLE), "--today", "2026-11-27"]) == 0
    out, err = capsys.readouterr()
    assert "hunter2" not in out + err
