"""The verdicts of `backfill check`, from answers alone."""

from __future__ import annotations

from datetime import date

from backfill.config import Report, Schedule
from backfill.diagnose import Probe, judge, probe_day


def p(report: str, status: int | None = None, **kw: str) -> Probe:
    return Probe("acme", report, f"{report}_20261126.zip", status, **kw)


def test_probe_day_is_the_newest_scheduled_date_of_age_one_to_six() -> None:
    today = date(2026, 11, 27)  # a Friday
    assert probe_day(Report("d"), today) == date(2026, 11, 26)
    assert probe_day(Report("w", Schedule.parse("weekly:mon")), today) == date(2026, 11, 23)
    assert probe_day(Report("m", Schedule.parse("monthly:1")), today) == date(2026, 11, 26)


def test_certificate_trouble_is_said_first() -> None:
    (v,) = judge([p("a", error="certificate verify failed for h", error_kind="certificate"),
                  p("b", 401)])
    assert not v.ok and v.text.startswith("certificate verify failed")


def test_auth_wins_over_400s() -> None:
    (v,) = judge([p("a", 400, message="x"), p("b", 401)])
    assert v.report is None and "api_key or secret_key" in v.text


def test_every_report_400_points_at_app_id_with_the_server_message() -> None:
    (v,) = judge([p("a", 400, message="Invalid APP_ID"), p("b", 400)])
    assert "(server: Invalid APP_ID)" in v.text and "app_id and data_center" in v.text


def test_no_answer_at_all_is_unreachable() -> None:
    (v,) = judge([p("a", error="cannot connect (ClientConnectorError) for /x")])
    assert v.text.startswith("unreachable: cannot connect") and not v.ok


def test_per_report_verdicts_when_the_workspace_answers() -> None:
    ws, ok, bad, busy, gone = judge([p("a", 200), p("b", 400, message="no report"),
                                     p("c", 503), p("d", 404)])
    assert ws.ok and ws.report is None
    assert ok.ok and ok.text == "ok: the file of 2026-11-26 is there"
    assert not bad.ok and "check the report name" in bad.text and "no report" in bad.text
    assert busy.ok and "busy (503)" in busy.text
    assert not gone.ok and "404" in gone.text
