"""First-run experience: the demo end to end, status shapes, progress, summary wording."""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backfill.cli import main
from backfill.cli.demo import DemoSettings, run_demo
from backfill.cli.progress import Progress
from backfill.cli.render import next_step
from backfill.events import FileFinished, HostPaused, RetryScheduled, RunStarted
from backfill.journal import Status, load_manifest
from backfill.summary import AtRisk, Summary, WorkspaceTally

pytestmark = pytest.mark.anyio


async def test_demo_runs_resumes_and_leaves_a_usable_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    summary = await run_demo(DemoSettings(workspaces=2, reports=2, days=9, output_dir=out,
                                          progress=False))
    err = capsys.readouterr().err
    state = load_manifest(out / "manifest.jsonl")
    assert len(state) == 2 * 2 * 9
    statuses = Counter(r.status for r in state)
    assert statuses[Status.COMPLETED] > 0 and statuses[Status.EXPIRED] >= 2 * 2 * 1
    assert summary.totals["completed"] == statuses[Status.COMPLETED]
    assert summary.exit_code == 0
    # the second run downloaded nothing
    assert "0 downloads" in err
    assert "Files by generation date" in err and "● completed" in err
    assert (out / "demo.toml").exists()
    # the written config is valid and points at files that exist
    assert main(["status", str(out / "demo.toml"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["totals"]["completed"] == statuses[Status.COMPLETED]
    for rec in state:
        if rec.status is Status.COMPLETED:
            assert (out / (rec.path or "")).stat().st_size == rec.bytes


@pytest.mark.slow
async def test_demo_with_faults_recovers(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    summary = await run_demo(DemoSettings(workspaces=2, reports=2, days=8, faults=True,
                                          output_dir=tmp_path, progress=False))
    err = capsys.readouterr().err
    assert summary.totals["failed"] == 0 and summary.retries > 0 and summary.outages >= 1
    assert "paused" in err and "is back" in err


def test_status_grid_and_json_shapes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "manifest.jsonl"
    today = datetime.now(UTC).date()
    lines = []
    for i, status in enumerate(["completed", "missing", "expired", "pending", "failed"]):
        day = (today - timedelta(days=i)).isoformat()
        name = f"R_{day.replace('-', '')}.zip"
        lines.append(json.dumps({
            "v": 1, "workspace": "w", "app_id": "A", "report": "R", "date": day,
            "filename": name, "status": status,
            "path": f"w/R/{name}" if status == "completed" else None,
            "bytes": 10 if status == "completed" else None,
            "sha256": "0" * 64 if status == "completed" else None,
            "attempts": 1, "http_status": None,
            "error": "http 503" if status == "failed" else None, "request_id": None,
            "updated_at": "2026-11-27T00:00:00Z"}))
    manifest.write_text("\n".join(lines) + "\n")
    assert main(["status", str(manifest), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["totals"] == {"completed": 1, "missing": 1, "expired": 1, "pending": 1,
                             "failed": 1}
    assert doc["bytes"] == 10
    assert doc["workspaces"] == [{"name": "w", "app_id": "A", "completed": 1, "missing": 1,
                                  "expired": 1, "failed": 1, "pending": 1, "bytes": 10}]
    risky = doc["at_risk"]
    assert {r["status"] for r in risky} == {"pending", "failed", "missing"}
    assert risky == sorted(risky, key=lambda r: r["expires_at"])
    assert main(["status", str(manifest), "--grid"]) == 0
    out = capsys.readouterr().out
    for glyph in ("●", "○", "×", "◌", "✗"):
        assert glyph in out
    assert "w / R" in out and "At risk" in out
    assert out.index("At risk") > out.index("Files by generation date")


def test_progress_without_a_terminal_prints_plain_lines() -> None:
    stream = io.StringIO()
    progress = Progress(stream=stream, interval_s=0.0)
    assert not progress.live_mode
    with progress:
        progress(RunStarted({"w": 3}))
        progress(FileFinished("w", "a.zip", Status.COMPLETED, 2048, 1, None, True))
        progress(RetryScheduled("w", "b.zip", 1, "http 503", 0.5))
        progress(HostPaused("http://h:80", 5))
        progress(FileFinished("w", "b.zip", Status.FAILED, 0, 6, "http 503", True))
    text = stream.getvalue()
    assert "\x1b[" not in text  # no terminal control codes
    assert "2/3 files" in text and "completed 1" in text and "failed 1" in text
    assert "retries 1" in text and "paused: http://h:80" in text


def test_quiet_progress_prints_nothing() -> None:
    stream = io.StringIO()
    with Progress(stream=stream, quiet=True, interval_s=0.0) as progress:
        progress(FileFinished("w", "a.zip", Status.COMPLETED, 1, 1, None, True))
    assert stream.getvalue() == ""


def _summary(**counts: int) -> Summary:
    t = WorkspaceTally("w", "A")
    t.counts.update(counts)
    return Summary({"w": t})


def test_next_step_names_failures_pending_and_expiry() -> None:
    now = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)
    s = _summary(completed=10, failed=3, pending=1)
    s.failures.update({"http 503": 2, "invalid body": 1})
    s.at_risk = [AtRisk("w", f"f{i}.zip", "failed", now + timedelta(hours=19), "http 503")
                 for i in range(2)] + [AtRisk("w", "g.zip", "pending", now + timedelta(days=6),
                                              None)]
    text = next_step(s, now)
    assert "3 files failed: run the same command again to retry them" in text
    assert "1 not generated yet" in text
    assert "2 expire in 19 h" in text
    assert next_step(_summary(completed=4), now) == "All done: nothing failed."
    interrupted = _summary(completed=1)
    interrupted.interrupted = True
    assert "resume" in next_step(interrupted, now)


def test_next_step_after_auth_or_tls_failures_says_what_to_fix_first() -> None:
    now = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)
    s = _summary(completed=1, failed=6)
    s.failures.update({"auth": 4, "certificate verify failed for h (x): set ca_bundle": 1,
                       "http 503": 1})
    text = next_step(s, now)
    assert "4 files rejected as unauthorized (401/403): fix api_key/secret_key, then re-run" \
        in text
    assert "1 file failed on TLS or the proxy: fix [http] ca_bundle/proxy" in text
    assert "1 file failed: run the same command again to retry them" in text


def test_summary_output_groups_failures_by_reason(capsys: pytest.CaptureFixture[str]) -> None:
    from backfill.cli.render import print_summary

    s = _summary(completed=5, failed=3)
    s.failures.update({"http 503": 2, "invalid body": 1})
    print_summary(s)
    err = capsys.readouterr().err
    assert "Failures by reason" in err
    assert err.index("http 503") < err.index("invalid body")  # most common first
    assert "3 files failed" in err


async def test_a_second_demo_starts_afresh_and_resume_keeps_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    settings = DemoSettings(workspaces=1, reports=1, days=3, output_dir=out, progress=False)
    await run_demo(settings)
    capsys.readouterr()
    keep = out / "notes.txt"  # not the demo's: left alone
    keep.write_text("mine")
    second = await run_demo(settings)
    err = capsys.readouterr().err
    assert "Starting afresh: removed the previous demo's" in err
    assert second.totals["completed"] > 0  # it downloaded again
    assert keep.read_text() == "mine"
    done = next(out.rglob("*.zip"))
    before = done.stat().st_mtime_ns
    await run_demo(dataclasses.replace(settings, resume=True))
    err = capsys.readouterr().err
    assert "Resuming the previous demo" in err
    assert done.stat().st_mtime_ns == before  # kept, not downloaded again
    text = (out / "demo.toml").read_text()
    assert "export MOE_DEMO_API_KEY=" in text and "simulate --config" in text
    assert "--port " in text


def test_clearing_a_previous_demo_never_follows_a_symlink(tmp_path: Path) -> None:
    from backfill.cli.demo import DEMO_MARK, clear_previous

    out = tmp_path / "demo"
    elsewhere = tmp_path / "elsewhere"
    (out / "w").mkdir(parents=True)
    elsewhere.mkdir()
    victim = elsewhere / "R_20261126.zip"
    victim.write_bytes(b"not the demo's")
    (out / "w" / "link").symlink_to(elsewhere)
    (out / "demo.toml").write_text(DEMO_MARK + "\n")
    (out / "manifest.jsonl").write_text(json.dumps({
        "v": 1, "workspace": "w", "app_id": "A", "report": "R", "date": "2026-11-26",
        "filename": "R_20261126.zip", "status": "completed", "path": "w/link/R_20261126.zip",
        "bytes": 14, "sha256": "0" * 64, "attempts": 1, "http_status": 200, "error": None,
        "request_id": None, "updated_at": "2026-11-27T00:00:00Z"}) + "\n")
    assert clear_previous(out) == 0
    assert victim.read_bytes() == b"not the demo's"
    other = tmp_path / "not-a-demo"
    other.mkdir()
    (other / "demo.toml").write_text("[run]\n")
    (other / "manifest.jsonl").write_text("")
    assert clear_previous(other) == 0 and (other / "manifest.jsonl").exists()


def test_clearing_a_demo_removes_nothing_through_a_folder_swapped_for_a_link(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder of a recorded file becomes a link just before the file is removed: the
    removal acts in the folder that was walked (moved away), never through the link."""
    from backfill.cli.demo import DEMO_MARK, clear_previous

    out, elsewhere, moved = tmp_path / "demo", tmp_path / "elsewhere", tmp_path / "moved"
    (out / "w").mkdir(parents=True)
    elsewhere.mkdir()
    (out / "w" / "R_20261126.zip").write_bytes(b"the demo's")
    victim = elsewhere / "R_20261126.zip"
    victim.write_bytes(b"not the demo's")
    (out / "demo.toml").write_text(DEMO_MARK + "\n")
    (out / "manifest.jsonl").write_text(json.dumps({
        "v": 1, "workspace": "w", "app_id": "A", "report": "R", "date": "2026-11-26",
        "filename": "R_20261126.zip", "status": "completed", "path": "w/R_20261126.zip",
        "bytes": 10, "sha256": "0" * 64, "attempts": 1, "http_status": 200, "error": None,
        "request_id": None, "updated_at": "2026-11-27T00:00:00Z"}) + "\n")
    real_unlink = os.unlink

    def swap_then_unlink(path: Any, *args: Any, **kwargs: Any) -> None:
        if str(path).endswith("R_20261126.zip") and not moved.exists():
            (out / "w").rename(moved)
            (out / "w").symlink_to(elsewhere)
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", swap_then_unlink)
    clear_previous(out)
    assert victim.read_bytes() == b"not the demo's"
    assert list(moved.iterdir()) == []  # removed where the walk had opened its folder
    assert (out / "w").is_symlink()  # the link itself left as it is
