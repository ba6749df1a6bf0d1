"""Human-readable output at 80 columns: a fixed-width console, a pipe, an ASCII stream."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from rich.console import Console

from backfill.cli.commands import plan_document
from backfill.cli.render import console, print_grid, print_plan, print_status, print_summary
from backfill.config import parse_config
from backfill.journal import Record, Status
from backfill.planner import summarize, windows
from backfill.summary import AtRisk, Summary, WorkspaceTally

TODAY = date(2026, 11, 27)
NAMES = ["acme-europe-production-eu-west", "globex-north-america", "initech-india"]
REPORTS = ["Daily campaign summary", "Email - delivery (EU)",
           {"name": "Weekly push engagement by platform", "schedule": "weekly:mon"}]
BOX = set("┏┓┗┛┃━│─┡┩╇┳┻┼╋")


def terminal() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=80, force_terminal=True, color_system=None,
                   emoji=False), buf


def config():  # type: ignore[no-untyped-def]
    doc = {"defaults": {"api_key": "k", "reports": REPORTS}, "run": {"start": "-30d"},
           "workspace": [{"name": n, "app_id": f"APP{i}"} for i, n in enumerate(NAMES)]}
    return parse_config(doc, Path("/tmp/backfill.toml"))


def summary() -> Summary:
    tallies = {}
    for n in NAMES:
        t = WorkspaceTally(n, "A")
        t.counts.update(completed=11800, missing=3, expired=2, pending=1, failed=4)
        t.bytes, t.requests, t.retries = 734_003_200, 131, 17
        tallies[n] = t
    s = Summary(tallies, requests=393, retries=51, duration_s=187.4)
    s.failures.update({"http 503": 8, "auth": 4})
    s.at_risk = [AtRisk(NAMES[0], "Daily_campaign_summary_20261121.zip", "failed",
                        datetime.now(UTC) + timedelta(hours=5), "http 503")]
    return s


def records() -> list[Record]:
    cycle = [Status.COMPLETED] * 4 + [Status.MISSING, Status.FAILED, Status.PENDING,
                                      Status.EXPIRED]
    out = []
    for i, name in enumerate(NAMES):
        for j, report in enumerate(["Daily campaign summary", "Email - delivery (EU)"]):
            for d in range(31):
                out.append(Record(workspace=name, app_id=f"APP{i}", report=report,
                                  date=(TODAY - timedelta(days=d)).isoformat(),
                                  filename=f"{report}_{d}.zip",
                                  status=cycle[(i + j + d) % len(cycle)], attempts=1,
                                  updated_at="2026-11-27T00:00:00Z"))
    return out


def fits(text: str) -> None:
    lines = text.splitlines()
    assert lines
    for line in lines:
        assert len(line.rstrip()) <= 80, line
    assert not BOX & set(text)


def test_summary_fits_80_columns_with_long_names_unbroken() -> None:
    out, buf = terminal()
    print_summary(summary(), out)
    text = buf.getvalue()
    fits(text)
    header = next(line for line in text.splitlines() if line.startswith("workspace"))
    for col in ("completed", "missing", "expired", "pending", "failed", "size"):
        assert col in header  # whole words, not "compl…"
    # a long name is folded onto a second line, never cut
    joined = "".join(line.split(" ")[0] for line in text.splitlines()[2:4])
    assert joined == "acme-europe-production-eu-west"
    assert "globex-north-america" in text
    assert "Run finished in 187.4 s: 393 requests, 51 retries" in text


def test_plan_fits_80_columns() -> None:
    wins = windows(config(), {n: TODAY for n in NAMES})
    out, buf = terminal()
    print_plan(plan_document(summarize(wins)), out)
    fits(buf.getvalue())
    assert "10-28…11-27" in buf.getvalue()


def test_grid_folds_into_weeks_that_fit_80_columns() -> None:
    out, buf = terminal()
    print_grid(records(), config().workspaces, datetime.now(UTC), out)
    text = buf.getvalue()
    fits(text)
    day_rows = [line for line in text.splitlines() if line.startswith("workspace / report")]
    assert len(day_rows) >= 2  # folded
    shown = " ".join(day_rows).split()
    for d in range(31):  # every date appears in one block
        assert (TODAY - timedelta(days=d)).strftime("%d") in shown


def test_a_pipe_gets_plain_text_80_wide_without_escapes() -> None:
    buf = io.StringIO()
    out = console(buf)
    assert out.width == 80 and not out.is_terminal
    print_summary(summary(), out)
    print_status(summary(), "reports/manifest.jsonl", out)
    print_grid(records(), config().workspaces, datetime.now(UTC), out)
    text = buf.getvalue()
    assert "\x1b[" not in text
    fits(text)


def test_a_stream_that_cannot_encode_gets_ascii_symbols() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    out = console(stream)
    wins = windows(config(), {n: TODAY for n in NAMES})
    print_plan(plan_document(summarize(wins)), out)
    print_grid(records(), config().workspaces, datetime.now(UTC), out)
    print_summary(summary(), out)
    stream.flush()
    text = raw.getvalue().decode("ascii")  # nothing outside ASCII was written
    fits(text)
    assert "# completed  o missing  x expired  ~ pending  ! failed" in text
    assert "10-28...11-27" in text


def test_cli_plan_with_an_ascii_stdout_has_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text('[[workspace]]\nname = "Zürich-ü"\napp_id = "Z1"\napi_key = "k"\n'
                    'reports = ["Daily"]\n')
    result = subprocess.run([sys.executable, "-m", "backfill", "plan", str(path), "--today",
                             TODAY.isoformat()], capture_output=True, check=False,
                            env={"PYTHONIOENCODING": "ascii", "PATH": "/usr/bin:/bin",
                                 "PYTHONPATH": str(Path(__file__).parents[2])})
    assert result.returncode == 0, result.stderr.decode()
    assert b"Traceback" not in result.stderr
    assert b"Z?rich-?" in result.stdout
