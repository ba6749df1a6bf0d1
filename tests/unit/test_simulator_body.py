"""Bodies: exact sizes, valid zips in both framings, determinism, the LRU bound."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backfill.simulator.body import (
    HEADER,
    STREAM_THRESHOLD,
    BodyCache,
    BodySpec,
    body_length,
    build_body,
    digest,
    iter_body,
)

NAME = "Daily_campaign_summary_20261126.zip"
# Below this a body may be longer than asked: it always holds at least one CSV row.
MIN_EXACT_SIZE = 600


def rows(body: bytes) -> list[list[str]]:
    zf = zipfile.ZipFile(io.BytesIO(body))
    assert zf.testzip() is None
    [member] = zf.infolist()
    assert member.compress_type == zipfile.ZIP_STORED
    return list(csv.reader(io.StringIO(zf.read(member).decode())))


@settings(max_examples=60, deadline=None)
@given(size=st.integers(min_value=MIN_EXACT_SIZE, max_value=300_000), seed=st.integers(0, 2**32))
def test_exact_size_valid_zip_and_csv(size: int, seed: int) -> None:
    body = build_body(BodySpec(seed, "ACME01", NAME, size))
    assert len(body) == size == body_length(BodySpec(seed, "ACME01", NAME, size))
    table = rows(body)
    assert ",".join(table[0]).encode() + b"\n" == HEADER
    assert all(len(r) == len(table[0]) for r in table)
    ids = [r[0] for r in table[1:]]
    assert len(set(ids)) == len(ids)  # campaign ids stay unique across repeated blocks


def test_tiny_sizes_grow_to_one_row() -> None:
    body = build_body(BodySpec(0, "A", NAME, 0))
    assert len(rows(body)) == 2 and len(body) == body_length(BodySpec(0, "A", NAME, 0))


def test_deterministic_per_seed_app_and_name() -> None:
    base = BodySpec(1, "A", NAME, 5000)
    assert build_body(base) == build_body(BodySpec(1, "A", NAME, 5000))
    others = [BodySpec(2, "A", NAME, 5000), BodySpec(1, "B", NAME, 5000),
              BodySpec(1, "A", "Daily_campaign_summary_20261125.zip", 5000)]
    assert all(build_body(o) != build_body(base) for o in others)


@pytest.mark.parametrize("filename", ["Odd_&_(x)_100%/y_Ümlaut_20261126.zip", "a\\b_20261126.zip"])
def test_member_name_is_flat_and_utf8(filename: str) -> None:
    zf = zipfile.ZipFile(io.BytesIO(build_body(BodySpec(0, "A", filename, 2000))))
    [name] = zf.namelist()
    assert "/" not in name and "\\" not in name and name.endswith("_20261126.csv")


def test_streamed_form_uses_a_data_descriptor_and_is_valid() -> None:
    spec = BodySpec(0, "A", NAME, STREAM_THRESHOLD + 12345)
    chunks = list(iter_body(spec, chunk=256 * 1024))
    body = b"".join(chunks)
    assert len(chunks) > 10 and max(len(c) for c in chunks) <= 512 * 1024
    assert len(body) == spec.size == body_length(spec)
    assert body[6] & 0x08  # general-purpose flag bit 3 in the local header
    assert rows(body)[0][0] == "Campaign ID"
    import hashlib
    assert digest(spec) == (len(body), hashlib.sha256(body).hexdigest())
    assert build_body(spec) == body


def test_too_big_for_a_zip_without_zip64() -> None:
    with pytest.raises(ValueError, match="zip64"):
        body_length(BodySpec(0, "A", NAME, 5 * 1024**3))


def test_cache_is_bounded_by_bytes() -> None:
    cache = BodyCache(max_bytes=25_000)
    specs = [BodySpec(0, "A", f"R_2026112{i}.zip", 10_000) for i in range(4)]
    for s in specs:
        cache.get(s)
    assert cache.bytes <= 25_000 and len(cache) == 2
    cache.get(specs[3])
    assert cache.hits == 1
    cache.get(specs[0])  # evicted earlier: built again, same bytes
    assert cache.misses == 5


@pytest.mark.parametrize(("filename", "columns"), [
    (NAME, {"Campaign Name", "All Platform Sent", "Revenue", "Sent At", "Date"}),
    ("Weekly_email_report_20261126.zip", {"Email Sent", "Email Bounces", "CTR (%)"}),
    ("Push_stats_20261126.zip", {"Android Sent", "iOS Sent", "Conversion Goal"}),
])
def test_each_report_kind_has_its_title_case_columns(filename: str, columns: set[str]) -> None:
    table = rows(build_body(BodySpec(3, "A", filename, 50_000)))
    assert columns <= set(table[0]) and table[0][0] == "Campaign ID"


def test_realistic_cells_quoted_names_empties_dates_and_revenue_turning_decimal() -> None:
    body = build_body(BodySpec(5, "A", NAME, 400_000))
    table = rows(body)
    head, data = table[0], table[1:]
    col = {name: [r[i] for r in data] for i, name in enumerate(head)}
    names = col["Campaign Name"]
    assert any("," in n for n in names) and any('"' in n for n in names)
    assert b'""' in body  # embedded quotes are escaped by doubling
    assert "" in col["Conversions"]  # empty cells
    assert set(col["Date"]) == {"2026-11-26"}
    assert all(t.startswith("2026-11-26T") and (t.endswith("Z") or t[-6] in "+-")
               for t in col["Sent At"])
    revenue = col["Revenue"]
    first_decimal = next(i for i, v in enumerate(revenue) if "." in v)
    assert first_decimal == len(revenue) // 2 > 1000  # integral for the first half
    assert all("." not in v for v in revenue[:first_decimal])
    assert all("." in v for v in revenue[first_decimal:])


def test_revenue_turns_decimal_after_16_blocks_in_large_bodies() -> None:
    spec = BodySpec(0, "A", NAME, STREAM_THRESHOLD + 1)
    with zipfile.ZipFile(io.BytesIO(build_body(spec))) as zf, zf.open(zf.namelist()[0]) as f:
        revenue = [r[-1] for r in csv.reader(io.TextIOWrapper(f, "utf-8"))][1:]
    first_decimal = next(i for i, v in enumerate(revenue) if "." in v)
    assert first_decimal == 16 * 1024 and len(revenue) > 2 * first_decimal
