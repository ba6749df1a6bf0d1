"""`backfill extract` as a user runs it, after a real `backfill run` against the simulator:
the dataset is readable with hive partitioning and one schema, a re-run converts nothing,
`verify` checks the tables too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from backfill.simulator import run_simulator

from ..integration.conftest import SIMULATED_TOML, TODAY, make_config

pytestmark = pytest.mark.anyio

CONFIG = """
[run]
start = "-3d"
end = "today"
output_dir = "out"
concurrency = 4
{extra}
""" + SIMULATED_TOML


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "backfill", *args], capture_output=True,
                          text=True, check=False)


async def backfilled(tmp: Path, extra: str = "") -> Path:
    """A config whose run against the simulator completed; the config's path."""
    async with run_simulator(make_config(tmp / "sim").workspaces, today=TODAY) as sim:
        cfg = tmp / "backfill.toml"
        cfg.write_text(CONFIG.format(base_url=sim.base_url, extra=extra))
        done = await anyio.to_thread.run_sync(
            cli, "run", str(cfg), "--today", TODAY.isoformat(), "--no-progress", "--json")
        assert done.returncode == 0, done.stderr
    return cfg


async def test_extract_then_read_the_dataset(tmp_path: Path) -> None:
    cfg = await backfilled(tmp_path)
    first = cli("extract", str(cfg), "--json")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert len(doc["written"]) == 3 * 2 * 4 and not doc["failed"]  # 3 workspaces, 2 reports
    assert all(w["rows"] > 0 and w["path"].endswith(".parquet") for w in doc["written"])

    summary = ds.dataset(tmp_path / "out/tables/daily_campaign_summary", partitioning="hive")
    table = summary.to_table()
    assert table.num_rows == sum(w["rows"] for w in doc["written"]
                                 if w["report"] == "Daily campaign summary")
    for name, dtype in [("campaign_name", pa.string()), ("all_platform_sent", pa.int64()),
                        ("conversions", pa.int64()), ("csv_date", pa.date32()),
                        ("sent_at", pa.timestamp("us", tz="UTC")),
                        ("generation_date", pa.date32()), ("workspace", pa.string())]:
        assert table.schema.field(name).type == dtype, name
    assert pa.types.is_decimal(table.schema.field("revenue").type)
    assert table.column("conversions").null_count > 0  # the simulator's empty cells
    assert {str(d) for d in table.column("date").unique().to_pylist()} == {
        "2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27"}
    email = ds.dataset(tmp_path / "out/tables/email_delivery_eu", partitioning="hive")
    assert "email_sent" in email.schema.names and "ctr_pct" in email.schema.names

    again = cli("extract", str(cfg), "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["written"] == []
    assert json.loads(again.stdout)["unchanged"] == 24

    narrowed = cli("extract", str(cfg), "--workspace", "acme", "--start", "2026-11-27",
                   "--end", "2026-11-27", "--json")
    assert json.loads(narrowed.stdout)["unchanged"] == 2

    part = tmp_path / "out" / doc["written"][0]["path"]
    part.write_bytes(part.read_bytes()[:-10])
    verified = cli("verify", str(cfg), "--json")
    tables = json.loads(verified.stdout)["tables"]
    assert verified.returncode == 1
    assert tables["checked"] == 24 and tables["bad"][0]["path"] == doc["written"][0]["path"]
    redo = json.loads(cli("extract", str(cfg), "--json").stdout)
    assert [w["path"] for w in redo["written"]] == [doc["written"][0]["path"]]


def test_extract_usage_errors_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.format(base_url="http://127.0.0.1:9", extra=""))
    bad = cli("extract", str(path), "--workspace", "nope")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "nope" in bad.stderr


async def test_run_with_extract_enabled_converts_as_it_goes(tmp_path: Path) -> None:
    # a planted symlink makes one day's conversions fail: the downloads must not
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out/tables/daily_campaign_summary").mkdir(parents=True)
    (tmp_path / "out/tables/daily_campaign_summary/date=2026-11-25").symlink_to(elsewhere)
    async with run_simulator(make_config(tmp_path / "sim").workspaces, today=TODAY) as sim:
        cfg = tmp_path / "backfill.toml"
        cfg.write_text(CONFIG.format(base_url=sim.base_url, extra="\n[extract]\nenabled = true\n"))
        done = await anyio.to_thread.run_sync(
            cli, "run", str(cfg), "--today", TODAY.isoformat(), "--no-progress", "--json")
    assert done.returncode == 0, done.stderr  # conversions failing never fail the run
    doc = json.loads(done.stdout)
    assert doc["totals"]["completed"] == 24 and doc["totals"]["failed"] == 0
    tables = doc["tables"]
    assert len(tables["written"]) == 21 and len(tables["failed"]) == 3
    assert all("symbolic link" in f["error"] for f in tables["failed"])
    assert list(elsewhere.iterdir()) == []
    (tmp_path / "out/tables/daily_campaign_summary/date=2026-11-25").unlink()
    redo = cli("extract", str(cfg), "--json")
    assert redo.returncode == 0
    assert len(json.loads(redo.stdout)["written"]) == 3  # only the failed ones
    assert ds.dataset(tmp_path / "out/tables/daily_campaign_summary",
                      partitioning="hive").count_rows() > 0


def test_extract_enabled_must_be_a_boolean(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.format(base_url="http://127.0.0.1:9",
                                  extra='\n[extract]\nenabled = "yes"\n'))
    bad = cli("run", str(path), "--today", TODAY.isoformat())
    assert bad.returncode == 2 and "[extract]" in bad.stderr and "enabled" in bad.stderr


async def test_a_held_tables_lock_never_fails_the_run(tmp_path: Path) -> None:
    from backfill.journal import ManifestLock
    from backfill.tables.ledger import ledger_path

    (tmp_path / "out").mkdir()
    with ManifestLock(ledger_path(tmp_path / "out/manifest.jsonl")):  # an extract running
        async with run_simulator(make_config(tmp_path / "sim").workspaces, today=TODAY) as sim:
            cfg = tmp_path / "backfill.toml"
            cfg.write_text(CONFIG.format(base_url=sim.base_url,
                                         extra="\n[extract]\nenabled = true\n"))
            done = await anyio.to_thread.run_sync(
                cli, "run", str(cfg), "--today", TODAY.isoformat(), "--no-progress", "--json")
    assert done.returncode == 0, done.stderr
    tables = json.loads(done.stdout)["tables"]
    assert tables["written"] == [] and tables["deferred"] == 24
    assert "in use" in tables["problem"]
    assert len(json.loads(cli("extract", str(cfg), "--json").stdout)["written"]) == 24


def test_a_ledger_planted_as_a_link_is_refused_never_read_through(tmp_path: Path) -> None:
    """The ledger beside the manifest is opened O_NOFOLLOW for reading as for appending:
    a link there is one line naming it, and what it points to is left alone."""
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.format(base_url="http://127.0.0.1:9", extra=""))
    (tmp_path / "out").mkdir()
    (tmp_path / "out/manifest.jsonl").write_bytes(b"")
    target = tmp_path / "elsewhere.jsonl"
    target.write_bytes(b"somebody else's\n")
    ledger = tmp_path / "out/manifest.tables.jsonl"
    ledger.symlink_to(target)
    bad = cli("extract", str(path))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert bad.stderr == f"backfill: error: {ledger}: is a symbolic link, not a regular file\n"
    assert target.read_bytes() == b"somebody else's\n" and ledger.is_symlink()
