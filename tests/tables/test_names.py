"""Column names, slugs and the layout: pure functions."""

from __future__ import annotations

from datetime import date
from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backfill.tables.names import column_names, report_slug, snake_case, table_path


@pytest.mark.parametrize(("header", "name"), [
    ("Campaign Name", "campaign_name"), ("All Platform Sent", "all_platform_sent"),
    ("Email Sent", "email_sent"), ("CTR (%)", "ctr_pct"), ("campaignId", "campaign_id"),
    ("HTTPStatus", "http_status"), ("  Ümlaut  Größe ", "umlaut_grosse"),
    ("# of clicks", "num_of_clicks"), ("Click-through rate", "click_through_rate"),
])
def test_snake_case(header: str, name: str) -> None:
    assert snake_case(header) == name


def test_unique_reserved_and_odd_names() -> None:
    header = ["Sent", "sent", "SENT", "", "7 Day Revenue", "Date", "Workspace", "日本"]
    assert column_names(header) == ["sent", "sent_2", "sent_3", "column_4", "_7_day_revenue",
                                    "csv_date", "csv_workspace", "column_8"]


@given(st.lists(st.text(max_size=12), max_size=12))
def test_names_are_unique_stable_and_identifiers(header: list[str]) -> None:
    names = column_names(header)
    assert len(names) == len(header) and len(set(names)) == len(names)
    assert names == column_names(list(header))
    assert all(n.replace("_", "a").isalnum() and n.isascii() and not n[0].isdigit()
               for n in names)


def test_layout() -> None:
    assert table_path("Daily campaign summary", date(2026, 11, 21), "acme-eu") == PurePosixPath(
        "tables/daily_campaign_summary/date=2026-11-21/acme-eu.parquet")
    assert report_slug("Email - delivery (EU)") == "email_delivery_eu"
    assert ".." not in table_path("../x", date(2026, 1, 1), "../../evil").parts
