"""The pure parts of backfill.monitor, without any I/O: at-risk view, verdict, alert
bodies and rate limit, metrics text, plan capacity."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backfill.config import Config, parse_config
from backfill.journal import ManifestState, Record, Status
from backfill.monitor import alert, runs
from backfill.monitor.atrisk import by_report, unfetched
from backfill.monitor.capacity import shortfalls
from backfill.monitor.metrics import WorkspaceMetrics, render
from backfill.monitor.settings import parse_duration, resolve_webhook, show_duration
from backfill.monitor.verdict import Problem, after_run, check, rejected
from backfill.planner import windows
from backfill.summary import Summary, WorkspaceTally

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # today = 2026-12-01 in UTC
TODAY = date(2026, 12, 1)


def config(reports: list[str] | None = None, extra: str = "", rate: float | None = None,
           concurrency: int = 4) -> Config:
    names = reports or ["Daily"]
    raw = {
        "run": {"start": "-7d", "end": "today", "concurrency": 32},
        "notify": {"webhook": "${HOOK}"},
        "workspace": [{"name": "acme", "app_id": "ACME01", "api_key": "k",
                       "reports": names, "concurrency": concurrency,
                       **({"rate": rate} if rate else {})}],
    }
    return parse_config(raw, Path("/cfg/backfill.toml"), {"HOOK": "https://hooks.example/T/B/x"})


def rec(day: date, status: Status, *, report: str = "Daily", error: str | None = None,
        http: int | None = None, ws: str = "acme") -> Record:
    return Record(ws, "ACME01", report, day.isoformat(),
                  f"{report}_{day:%Y%m%d}.zip", status, error=error, http_status=http,
                  updated_at="2026-12-01T02:00:00Z")


def state(*records: Record) -> ManifestState:
    s = ManifestState()
    for r in records:
        s.add(r)
    return s


@pytest.mark.parametrize(("text", "seconds"), [
    ("48h", 172800), ("26h", 93600), ("1d12h", 129600), ("90m", 5400), ("30s", 30),
    ("45", 45), (" 2 d ", 172800), (600, 600), (1.5, 1.5),
])
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "48x", "-1h", "nan", "inf", "4 8", True, [1]])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)  # type: ignore[arg-type]


def test_show_duration() -> None:
    assert [show_duration(s) for s in (172800, 93600, 5400, 30, 3600)] == [
        "48 h", "26 h", "90 min", "30 s", "1 h"]


def test_view_covers_every_unfetched_kind() -> None:
    cfg = config()
    wins = windows(cfg, {"acme": TODAY})
    journal = state(
        rec(TODAY - timedelta(days=7), Status.FAILED, error="http 500"),  # expires tonight
        rec(TODAY - timedelta(days=6), Status.MISSING, error="no such file"),
        rec(TODAY - timedelta(days=5), Status.COMPLETED),
        rec(TODAY - timedelta(days=4), Status.EXPIRED),
        rec(TODAY, Status.PENDING),
        rec(TODAY - timedelta(days=9), Status.FAILED),  # expired already: gone
    )
    risks = unfetched(journal, wins, {"acme": "UTC"}, NOW)
    got = [(r.filename[6:14], r.status) for r in risks]
    assert got == [("20261124", "failed"), ("20261125", "missing"), ("20261128", "planned"),
                   ("20261129", "planned"), ("20261130", "planned"), ("20261201", "pending")]
    assert risks[0].expires_at == datetime(2026, 12, 2, tzinfo=UTC)
    assert all(r.report == "Daily" for r in risks)
    [group] = by_report(risks)
    assert group.by_status == {"planned": 3, "failed": 1, "missing": 1, "pending": 1}


def test_check_verdict_one_line_per_problem() -> None:
    cfg = config()
    wins = windows(cfg, {"acme": TODAY})
    journal = state(*(rec(TODAY - timedelta(days=a), Status.COMPLETED) for a in range(1, 8)),
                    rec(TODAY, Status.PENDING))
    risks = unfetched(journal, wins, {"acme": "UTC"}, NOW)
    ok = check(risks, [], ["acme"], {"acme": NOW - timedelta(hours=10)}, NOW,
               within_s=48 * 3600, stale_s=26 * 3600)
    assert ok == []  # today's pending file has 8 days left
    late = check(risks, [], ["acme"], {"acme": NOW - timedelta(hours=30)}, NOW,
                 within_s=9 * 86400, stale_s=26 * 3600)
    assert [p.kind for p in late] == ["stale", "expiring"]
    assert late[0].line == ("acme: last finished run 2026-11-30 06:00 UTC, 1 d 6 h ago "
                            "(more than 26 h)")
    assert late[1].line.startswith("acme / Daily: 1 file expire within 216 h unfetched "
                                   "(1 pending; the first, Daily_20261201.zip, in 7 d 12 h)")
    never = check([], [], ["acme"], {"acme": None}, NOW, within_s=1, stale_s=1)
    assert [str(p) for p in never] == [
        "acme: no finished run recorded: run backfill (is the cron job set up?)"]


def test_stale_groups_workspaces_stopped_together() -> None:
    at = NOW - timedelta(days=3)
    names = [f"ws{i}" for i in range(7)]
    [p] = check([], [], names, dict.fromkeys(names, at), NOW, within_s=1, stale_s=3600)
    assert p.line.startswith("ws0, ws1, ws2, ws3, ws4 and 2 more: last finished run")


def test_failed_files_name_their_reasons_and_auth_asks_for_keys() -> None:
    cfg = config()
    journal = state(*(rec(TODAY - timedelta(days=a), Status.FAILED, error="auth")
                      for a in range(1, 4)))
    risks = unfetched(journal, windows(cfg, {"acme": TODAY}), {}, NOW)
    problems = check(risks, [], ["acme"], {"acme": NOW}, NOW, within_s=3600, stale_s=3600)
    [p] = [p for p in problems if p.kind == "failed"]
    assert str(p) == ("acme: 3 files failed (auth ×3): check api_key and secret_key, then run "
                      "backfill again")


def test_rejected_reports_are_judged_from_the_whole_manifest() -> None:
    bad = [rec(TODAY - timedelta(days=a), Status.MISSING, report="Dialy", http=400,
               error="Invalid file name") for a in range(1, 4)]
    # A good report: missing days older than a completed one are re-checks, never flagged.
    good = [rec(TODAY - timedelta(days=a), Status.MISSING, http=400) for a in range(3, 7)]
    good.append(rec(TODAY - timedelta(days=1), Status.COMPLETED))
    [p] = rejected(state(*bad, *good))
    assert p.line == ("acme / Dialy: never produced a file; all 3 answers were 400; the "
                      "server said: Invalid file name")
    # renamed in the dashboard: files until the 25th, 400s since
    renamed = [rec(date(2026, 11, 25), Status.COMPLETED)] + [
        rec(TODAY - timedelta(days=a), Status.MISSING, http=400) for a in range(1, 4)]
    [p] = rejected(state(*renamed))
    assert "no file since 2026-11-25; the 3 answers after it were 400" in p.line
    assert rejected(state(*bad[:2])) == []  # two answers are not enough


def test_after_run_names_auth_stops() -> None:
    tally = WorkspaceTally("acme", "ACME01", stopped="stopped: 3 requests in a row rejected")
    problems = after_run(Summary({"acme": tally}), [], [], NOW, within_s=3600)
    assert [p.kind for p in problems] == ["auth"]


def sample_alert(n: int = 2) -> alert.Alert:
    problems = [Problem("failed", "a<b>", "", f"a<b>: {i} files failed (http 500)",
                        "run backfill again") for i in range(n)]
    return alert.compose(problems, config="/etc/b.toml", at=NOW, command="run")


def test_slack_body_escapes_and_groups() -> None:
    body = alert.slack_body(sample_alert())
    assert set(body) == {"text", "blocks"}
    assert body["text"].splitlines()[0] == "moe-backfill: 2 problems after run (/etc/b.toml)"
    assert body["blocks"][0]["type"] == "header"
    section = body["blocks"][1]["text"]["text"]
    assert section.startswith("*Failed files*\n• a&lt;b&gt;: 0 files failed")
    assert "_next:_ run backfill again" in section


def test_long_alerts_are_cut_and_counted() -> None:
    body = alert.slack_body(sample_alert(30))
    assert body["blocks"][-1]["type"] == "context"
    assert "… and 10 more" in body["blocks"][-1]["elements"][0]["text"]
    assert "… and 10 more" in body["text"]
    generic = alert.generic_body(sample_alert(30))
    assert len(generic["problems"]) == 30 and generic["at"] == "2026-12-01T12:00:00Z"


def test_rate_limit_holds_the_same_alert_back() -> None:
    a = sample_alert()
    assert alert.due(a, {}, NOW, 3600)
    sent = alert.remember({}, a, NOW, 3600)
    assert not alert.due(a, sent, NOW + timedelta(minutes=59), 3600)
    assert alert.due(a, sent, NOW + timedelta(minutes=60), 3600)
    other = alert.compose([Problem("stale", "x", "", "x", "y")], config="c", at=NOW,
                          command="run")
    assert alert.due(other, sent, NOW, 3600)  # a new problem is news
    assert alert.decode_state(alert.encode_state(sent)) == sent
    later = alert.remember(sent, other, NOW + timedelta(hours=2), 3600)
    assert set(later) == {"stale|x|"}  # old entries that hold nothing back are dropped


def test_run_record_update_and_codec() -> None:
    ok = WorkspaceTally("acme", "A", requests=5, retries=1)
    bad = WorkspaceTally("globex", "G")
    bad.counts["failed"] = 2
    record = runs.after_run({}, Summary({"acme": ok, "globex": bad}), NOW)
    assert record["acme"] == runs.WorkspaceRun(NOW, NOW, 5, 1)
    assert record["globex"] == runs.WorkspaceRun(NOW, None, 0, 0)
    assert runs.decode(runs.encode(record)) == record
    stopped = Summary({"acme": ok}, interrupted=True)
    assert runs.after_run(record, stopped, NOW + timedelta(hours=1)) == record
    with pytest.raises(ValueError):
        runs.decode('{"v": 2}')


def test_metrics_text_parses_with_prometheus_client() -> None:
    rows = [WorkspaceMetrics('ac"me\\', {"completed": 3, "failed": 1}, 3000, 4, 1,
                             NOW.timestamp(), 0.0, 2, 3600.5),
            WorkspaceMetrics("globex", {})]
    families = {f.name: f for f in text_string_to_metric_families(
        render(rows, generated_at=NOW.timestamp()))}
    assert not any(name.endswith("_created") for name in families)
    files = {(s.labels["workspace"], s.labels["status"]): s.value
             for s in families["backfill_files"].samples}
    assert files[('ac"me\\', "completed")] == 3 and files[("globex", "pending")] == 0
    soonest = {s.labels["workspace"]: s.value
               for s in families["backfill_soonest_expiry_seconds"].samples}
    assert soonest == {'ac"me\\': 3600.5, "globex": math.inf}
    assert families["backfill_last_run_timestamp_seconds"].samples[0].value == NOW.timestamp()
    assert all(f.type == "gauge" for f in families.values())


def test_capacity_counts_files_that_would_expire() -> None:
    cfg = config([f"Report {i}" for i in range(100)], rate=0.001)
    wins = windows(cfg, {"acme": TODAY})
    start_of_day = datetime(2026, 12, 1, tzinfo=UTC)
    [s] = shortfalls(wins, concurrency=32, now=start_of_day)
    # day of age 7 expires in 86,400 s: 87 of its 100 files in time, 13 late; age 6: 27 ...
    assert (s.late, s.total) == (13 + 27 + 40 + 54 + 68 + 81 + 95 + 100, 800)
    assert str(s) == ("acme: at 0.001 requests/s, 478 of 800 files would expire before "
                      "they are fetched: raise rate or split with --shard")
    assert shortfalls(windows(config(rate=2), {"acme": TODAY}), concurrency=32,
                      now=start_of_day) == []


def test_capacity_shares_the_global_limit() -> None:
    cfg = config([f"R{i}" for i in range(100)], concurrency=8)
    [s] = shortfalls(windows(cfg, {"acme": TODAY}), concurrency=1, now=NOW,
                     latency_s=1000.0)
    assert s.bound == "global" and "raise [run] concurrency" in str(s)


def test_webhook_is_resolved_late_when_secrets_were_not() -> None:
    cfg = parse_config({"notify": {"webhook": "${HOOK}"}, "workspace": [
        {"app_id": "A", "api_key": "${KEY}", "reports": ["R"]}]}, Path("/c.toml"),
        secrets=False)
    assert cfg.notify.webhook is None
    assert resolve_webhook(cfg.notify, {"HOOK": "http://127.0.0.1:9/x"}) == "http://127.0.0.1:9/x"
    with pytest.raises(ValueError, match="environment variable HOOK is not set"):
        resolve_webhook(cfg.notify, {})
    with pytest.raises(ValueError, match="value not shown") as err:
        resolve_webhook(cfg.notify, {"HOOK": "ftp://secret-token"})
    assert "secret-token" not in str(err.value)


def test_the_freshest_run_of_several_records_counts() -> None:
    from backfill.monitor.runs import WorkspaceRun, freshest

    t = [datetime(2026, 12, 1, h, tzinfo=UTC) for h in range(4)]
    main = {"acme": WorkspaceRun(t[0], t[0], 5, 1), "globex": WorkspaceRun(t[2], None, 3)}
    shard = {"acme": WorkspaceRun(t[3], None, 7, 2), "initech": WorkspaceRun(t[1], t[1])}
    got = freshest([main, shard])
    assert got["acme"] == WorkspaceRun(t[3], t[0], 7, 2)  # the last run; the last success
    assert got["globex"] == main["globex"] and got["initech"] == shard["initech"]
    assert freshest([shard, main]) == got
    assert freshest([]) == {}
