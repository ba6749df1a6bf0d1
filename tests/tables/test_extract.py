"""One zip → one Parquet part: CSV oddities, encodings, members, widening, idempotence."""

from __future__ import annotations

import json
import os
from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from backfill.tables.ledger import EXTRACTED, FAILED

from .conftest import DATASET, Out

D1, D2, D3 = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)
CSV = ("\ufeffCampaign Name,All Platform Sent,Email Sent,Revenue,Date,Sent At\n"
       '"Black Friday, ""final"" call\nsecond line",100,,12,2026-11-20,2026-11-20T09:30:00+05:30\n'
       "Welcome,5,3,7,2026-11-20,2026-11-20T23:00:00Z\n")


@pytest.fixture(autouse=True, params=["kept", "streamed"])
def second_pass(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test twice: small members kept as text between the passes, and every member
    parsed again in the second pass (what a member of 16 MiB or more gets)."""
    from backfill.tables import source

    if request.param == "streamed":
        monkeypatch.setattr(source, "THREADED_BYTES", 0)


def table(out: Out) -> pa.Table:
    return ds.dataset(out.root / DATASET, partitioning="hive").to_table()


def part(out: Out, day: date, workspace: str = "acme") -> Path:
    return out.root / DATASET / f"date={day.isoformat()}" / f"{workspace}.parquet"


def test_bom_quotes_newlines_types_and_extra_columns(out: Out) -> None:
    entry = out.extract(D1, {"r.csv": CSV})
    assert entry.status == EXTRACTED and entry.rows == 2 and entry.encoding == "utf-8"
    t = pq.read_table(part(out, D1))
    assert t.schema.names == ["campaign_name", "all_platform_sent", "email_sent", "revenue",
                              "csv_date", "sent_at", "workspace", "app_id", "report",
                              "generation_date", "source_file"]
    assert t.schema.field("email_sent").type == pa.int64()  # nullable int
    assert t.schema.field("sent_at").type == pa.timestamp("us", tz="UTC")
    assert t.schema.field("csv_date").type == pa.date32()
    row = t.to_pylist()[0]
    assert row["campaign_name"] == 'Black Friday, "final" call\nsecond line'
    assert row["email_sent"] is None and row["sent_at"].hour == 4  # 09:30+05:30 = 04:00Z
    assert (row["workspace"], row["app_id"], row["generation_date"]) == ("acme", "ACME", D1)
    assert row["source_file"] == "acme/Daily_campaign_summary/Daily_campaign_summary_20261120.zip"
    assert entry.path == str(part(out, D1).relative_to(out.root))


def test_decimal_after_many_integral_rows_is_never_rounded(out: Out) -> None:
    out.reopen(row_group_rows=1000, block_size=4096)  # the decimal is many blocks in
    rows = [f"c{i},{i}" for i in range(5000)] + ["last,1906.19"]
    out.extract(D1, {"r.csv": "Campaign Name,Revenue\n" + "\n".join(rows) + "\n"})
    t = pq.read_table(part(out, D1))
    assert t.schema.field("revenue").type == pa.decimal128(6, 2)
    assert sum(t.column("revenue").to_pylist()) == Decimal(sum(range(5000))) + Decimal("1906.19")
    assert pq.ParquetFile(part(out, D1)).metadata.num_row_groups == 6


def test_several_members_non_csv_member_and_latin1(out: Out) -> None:
    entry = out.extract(D1, {"a.csv": "Name,Sent\nx,1\n", "notes.txt": "not a table",
                             "b.CSV": b"Name,Clicks\ncaf\xe9,2\n", "dir/": ""})
    assert entry.status == EXTRACTED and entry.rows == 2
    assert entry.members == ["a.csv", "b.CSV"] and entry.skipped == ["notes.txt", "dir/"]
    assert entry.encoding == "latin-1"
    rows = pq.read_table(part(out, D1)).select(["name", "sent", "clicks"]).to_pylist()
    assert rows == [{"name": "x", "sent": 1, "clicks": None},
                    {"name": "café", "sent": None, "clicks": 2}]


@pytest.mark.parametrize("body", ["", "Campaign Name,Sent\n"])
def test_empty_and_header_only_members_give_an_empty_part(out: Out, body: str) -> None:
    entry = out.extract(D1, {"r.csv": body})
    assert entry.status == EXTRACTED and entry.rows == 0
    assert pq.read_table(part(out, D1)).num_rows == 0


@pytest.mark.parametrize(("members", "reason"), [
    ({"readme.txt": "hello"}, "no CSV member"),
    ({"r.csv": "a,b\n1,2\n3\n"}, "Expected 2 columns"),
])
def test_failures_are_recorded_not_raised(out: Out, members: dict[str, str],
                                          reason: str) -> None:
    entry = out.extract(D1, members)
    assert entry.status == FAILED and reason in (entry.error or "")
    assert not part(out, D1).exists()
    assert out.extractor.needed(out.zip(D1, members))  # retried next time


def test_not_a_zip_fails_cleanly(out: Out) -> None:
    job = out.zip(D1, {"r.csv": "a\n1\n"})
    (out.root / job.source).write_bytes(b"<html>not a zip</html>")
    entry = out.extractor.extract(job)
    assert entry.status == FAILED and "BadZipFile" in (entry.error or "")


def test_widening_rewrites_earlier_parts_to_one_schema(out: Out) -> None:
    out.extract(D1, {"r.csv": "Campaign Name,Revenue\na,5\nb,7\n"})
    out.extract(D2, {"r.csv": "Campaign Name\n"})  # header only: nothing to widen
    before = json.loads((out.root / "m.tables.jsonl").read_text().splitlines()[0])
    out.extract(D3, {"r.csv": "Campaign Name,Revenue,Email Sent\nc,1906.19,4\n"})
    schemas = {p: pq.read_schema(p) for p in (part(out, D1), part(out, D2), part(out, D3))}
    assert len({s.to_string() for s in schemas.values()}) == 1
    t = table(out)
    assert t.schema.field("revenue").type == pa.decimal128(6, 2)
    assert sorted(map(str, t.column("revenue").drop_null().to_pylist())) == [
        "1906.19", "5.00", "7.00"]
    assert t.column("email_sent").to_pylist().count(None) == 2  # null in the older parts
    latest = out.extractor.ledger.get(("ACME", "Daily_campaign_summary_20261120.zip"))
    assert latest is not None and latest.sha256 != before["sha256"]
    assert latest.sha256 == _sha(part(out, D1))


def test_a_crash_between_parts_is_finished_by_the_next_run(out: Out) -> None:
    out.extract(D1, {"r.csv": "Name,Revenue\na,5\n"})
    out.extract(D2, {"r.csv": "Name,Revenue\nb,1.5\n"})
    # simulate a kill after D2's part but before D1 was rewritten: put D1's narrow part back
    narrow = pa.table({"name": ["a"], "revenue": pa.array([5], pa.int64())})
    wide = pq.read_table(part(out, D1))
    pq.write_table(pa.table({**{n: wide.column(n) for n in wide.schema.names},
                             "revenue": narrow.column("revenue")}).select(wide.schema.names),
                   part(out, D1))
    out.reopen()
    out.extract(D3, {"r.csv": "Name,Revenue\nc,2\n"})
    schemas = {pq.read_schema(part(out, d)).to_string() for d in (D1, D2, D3)}
    assert len(schemas) == 1  # the narrow part was found and rewritten
    # read back from an int64 footer, a column may hold 18 digits: decimal(18 + 1, 1)
    assert pq.read_schema(part(out, D1)).field("revenue").type == pa.decimal128(19, 1)
    assert sorted(map(str, table(out).column("revenue").to_pylist())) == ["1.5", "2.0", "5.0"]


def test_rerun_converts_only_what_changed(out: Out) -> None:
    job = out.zip(D1, {"r.csv": "Name\na\n"})
    out.extractor.extract(job)
    extractor = out.reopen()
    assert not extractor.needed(job)
    changed = out.zip(D1, {"r.csv": "Name\nb\n"})
    assert extractor.needed(changed)


def test_torn_ledger_line_is_ignored_and_ended(out: Out) -> None:
    out.extract(D1, {"r.csv": "Name\na\n"})
    with open(out.root / "m.tables.jsonl", "ab") as f:
        f.write(b'{"v":1,"workspace":"ac')
    extractor = out.reopen()
    assert extractor.ledger.ignored == 1 and len(extractor.ledger.entries) == 1
    out.extract(D2, {"r.csv": "Name\nb\n"})
    assert len(out.reopen().ledger.entries) == 2


def test_symlinked_folder_is_refused_not_followed(out: Out, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out.root / DATASET).mkdir(parents=True)
    os.symlink(elsewhere, out.root / DATASET / "date=2026-11-20")
    entry = out.extract(D1, {"r.csv": "Name\na\n"})
    assert entry.status == FAILED and "symbolic link" in (entry.error or "")
    assert list(elsewhere.iterdir()) == []


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_duckdb_reads_the_widened_dataset_exactly(out: Out) -> None:
    duckdb = pytest.importorskip("duckdb")  # optional: not a dependency
    out.extract(D1, {"r.csv": "Campaign Name,Revenue,Date\na,5,2026-11-20\nb,7,2026-11-20\n"})
    out.extract(D2, {"r.csv": "Campaign Name,Revenue,Date\nc,1906.19,2026-11-21\n"})
    glob = f"{out.root / DATASET}/**/*.parquet"
    rows = duckdb.sql(f"select date, sum(revenue), count(*), max(csv_date) from read_parquet("
                      f"'{glob}', hive_partitioning=1) group by all order by all").fetchall()
    assert rows == [(D1, Decimal("12.00"), 2, D1), (D2, Decimal("1906.19"), 1, D2)]


def test_batched_sync_records_files_only_once_durable(out: Out, tmp_path: Path) -> None:
    from backfill.tables.extract import Extractor
    from backfill.tables.files import TableFiles
    from backfill.tables.ledger import Ledger

    out.extractor.files.close()
    out.extractor = Extractor(TableFiles(out.root, batched=True),
                              Ledger(out.root / "m.tables.jsonl"), sync_every=3)
    ledger = out.root / "m.tables.jsonl"
    out.extract(D1, {"r.csv": "Name,Revenue\na,5\n"})
    out.extract(D2, {"r.csv": "Name,Revenue\nb,1.5\n"})  # widens D1 while D1 is pending
    assert part(out, D1).exists() and not ledger.exists()
    out.extract(D3, {"r.csv": "Name,Revenue\nc,2\n"})  # the third: sync, then the lines
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert sorted(e["date"] for e in lines) == ["2026-11-20", "2026-11-21", "2026-11-22"]
    for e in lines:
        assert e["sha256"] == _sha(out.root / e["path"])
