"""`plan`'s can-it-finish warning and the [notify] / metrics_file config keys, through
the command line (in-process: nothing here sends a request)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backfill.cli import main

PLAN = """
[run]
start = "-7d"
end = "today"
concurrency = 32

[[workspace]]
name = "acme"
app_id = "ACME01"
api_key = "${{NOT_NEEDED_FOR_PLAN}}"
rate = {rate}
reports = [{reports}]
"""


def write_plan(tmp: Path, rate: float, n_reports: int) -> Path:
    path = tmp / "plan.toml"
    path.write_text(PLAN.format(rate=rate, reports=", ".join(
        f'"Report {i}"' for i in range(n_reports))))
    return path


def test_plan_warns_when_files_would_expire(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_plan(tmp_path, 0.001, 100)
    assert main(["plan", str(cfg), "--today", "2026-12-01"]) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "backfill: warning: acme: at 0.001 requests/s, 478 of 800 files would expire before "
        "they are fetched: raise rate or split with --shard"]
    assert main(["plan", str(cfg), "--today", "2026-12-01", "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["capacity"] == [{"workspace": "acme", "late": 478, "files": 800,
                                            "requests_per_s": 0.001, "bound": "rate"}]


def test_plan_is_silent_when_it_fits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_plan(tmp_path, 2, 100)
    assert main(["plan", str(cfg), "--today", "2026-12-01", "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and json.loads(out)["capacity"] == []
    # ... unless each file is very slow: 4 in flight at an hour each
    assert main(["plan", str(cfg), "--today", "2026-12-01", "--latency", "1h"]) == 0
    assert "raise concurrency or split with --shard" in capsys.readouterr().err


@pytest.mark.parametrize(("section", "message"), [
    ('webhook = 5', "[notify] webhook: must be a non-empty string"),
    ('webhook = "ftp://hooks.example/T/s3cr3t"', "[notify] webhook: must be an http(s) URL "
     "(value not shown: it is a secret)"),
    ('webhook = "${https://hooks.example/s3cr3t}"', "[notify] webhook: '${…}' is not a valid "
     "environment variable reference"),
    ('format = "xml"', "[notify] format: must be 'slack' or 'json', got 'xml'"),
    ('min_interval = "often"', "[notify] min_interval: 'often' is not a duration"),
    ('webhok = "x"', "[notify] webhok: unknown key (did you mean 'webhook'?)"),
])
def test_notify_config_errors_name_the_key_and_hide_the_url(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, message: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[notify]\n{section}\n\n[[workspace]]\napp_id = "A"\napi_key = "k"\n'
                   'reports = ["R"]\n')
    assert main(["run", str(cfg), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and "s3cr3t" not in err and "Traceback" not in err
