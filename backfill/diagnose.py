"""``backfill check``: which file to ask for, and what the answers say. Pure: no I/O.

One request per (workspace, report), for the report's most recent generation date that
should exist (age 1–6 in the workspace's zone, on its schedule). The API answers 400 for a
wrong app id, an unknown report name and a missing file alike (api.md), so the verdict
reads a workspace's answers together:

    answers of one workspace               verdict
    ─────────────────────────────────────  ──────────────────────────────────────────────
    certificate / proxy refusal            that message (fix [http] ca_bundle / proxy)
    no answer at all (connect errors)      unreachable: check data_center/base_url, network
    any 401/403                            api_key or secret_key wrong (or another DC)
    every report 400                       app_id or data_center wrong (the server's text)
    per report: 200                        ok
                400 (others answered)      report name unknown, or no file that day
                404                        no file that day
                429 / 5xx                  reachable but busy: try again later
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from .config import Report
from .naming import parse_filename

AUTH = frozenset({401, 403})
SETUP_KINDS = frozenset({"certificate", "proxy"})


def probe_day(report: Report, today: date) -> date:
    """The newest date of age 1–6 on the report's schedule (yesterday when none is)."""
    for age in range(1, 7):
        day = today - timedelta(days=age)
        if report.schedule.includes(day):
            return day
    return today - timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Probe:
    """One request's outcome: an HTTP status (with the server's message), or an error."""

    workspace: str
    report: str
    filename: str
    status: int | None = None
    message: str | None = None
    error: str | None = None  # our error's message (secret-free)
    error_kind: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    workspace: str
    report: str | None  # None: about the whole workspace
    ok: bool
    text: str


def judge(probes: Sequence[Probe]) -> list[Verdict]:
    """Verdicts for one workspace's probes (all of the same workspace)."""
    if not probes:
        return []
    ws = probes[0].workspace
    setup = [p for p in probes if p.error_kind in SETUP_KINDS]
    if setup:
        return [Verdict(ws, None, False, setup[0].error or "TLS or proxy problem")]
    answered = [p for p in probes if p.status is not None]
    if not answered:
        return [Verdict(ws, None, False, f"unreachable: {probes[0].error}; check data_center"
                        " (or base_url), the network and the proxy")]
    if any(p.status in AUTH for p in answered):
        status = next(p.status for p in answered if p.status in AUTH)
        return [Verdict(ws, None, False, f"rejected as unauthorized ({status}): api_key or "
                        "secret_key is wrong (or the workspace is in another data_center)")]
    if all(p.status == 400 for p in probes):
        why = f" (server: {answered[0].message})" if answered[0].message else ""
        return [Verdict(ws, None, False, f"every report rejected (400){why}: check app_id "
                        "and data_center")]
    out = [Verdict(ws, None, True, "reachable, key and app_id accepted")]
    out += [_report(p) for p in probes]
    return out


def _report(p: Probe) -> Verdict:
    parsed = parse_filename(p.filename)
    day = parsed[1].isoformat() if parsed else p.filename
    if p.status is None:
        return Verdict(p.workspace, p.report, False, p.error or "no answer")
    if p.status == 200:
        return Verdict(p.workspace, p.report, True, f"ok: the file of {day} is there")
    if p.status == 400:
        why = f" (server: {p.message})" if p.message else ""
        return Verdict(p.workspace, p.report, False, f"rejected (400){why}: check the report "
                       f"name, or the report had no file on {day}")
    if p.status == 404:
        return Verdict(p.workspace, p.report, False, f"no file for {day} (404)")
    if p.status == 429 or p.status >= 500:
        return Verdict(p.workspace, p.report, True, f"reachable but busy ({p.status}): the "
                       "API answers; try again later")
    return Verdict(p.workspace, p.report, False, f"unexpected answer (http {p.status})")
