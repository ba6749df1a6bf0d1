"""File names, URLs and local paths, against answers worked out by hand."""

from __future__ import annotations

import hashlib
import os
import unicodedata
from datetime import date
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backfill import naming
from backfill.naming import (
    DEFAULT_LAYOUT,
    LAYOUT_FIELDS,
    base_url,
    check_layout,
    origin,
    parse_filename,
    render_path,
    report_filename,
    report_url,
    safe_component,
)

DAY = date(2026, 11, 27)

# (report name, file name, file name percent-encoded as one URL path segment), by hand.
KNOWN = [
    ("Report - test", "Report_-_test_20261127.zip", "Report_-_test_20261127.zip"),
    ("A&B (x) 100%", "A&B_(x)_100%_20261127.zip", "A%26B_%28x%29_100%25_20261127.zip"),
    ("Sales/EU", "Sales/EU_20261127.zip", "Sales%2FEU_20261127.zip"),
    ("Résumé été", "Résumé_été_20261127.zip", "R%C3%A9sum%C3%A9_%C3%A9t%C3%A9_20261127.zip"),
    ("日報", "日報_20261127.zip", "%E6%97%A5%E5%A0%B1_20261127.zip"),
    ("a?b#c", "a?b#c_20261127.zip", "a%3Fb%23c_20261127.zip"),
    ("x+y=z", "x+y=z_20261127.zip", "x%2By%3Dz_20261127.zip"),
    ("  two  spaces", "__two__spaces_20261127.zip", "__two__spaces_20261127.zip"),
]


def test_vendor_example() -> None:
    assert report_filename("Report - test", date(2021, 2, 17)) == "Report_-_test_20210217.zip"


@pytest.mark.parametrize(("report", "filename", "encoded"), KNOWN)
def test_filename_keeps_everything_but_spaces(report: str, filename: str, encoded: str) -> None:
    assert report_filename(report, DAY) == filename


@pytest.mark.parametrize(("report", "filename", "encoded"), KNOWN)
def test_url_encodes_the_filename_as_one_segment(report: str, filename: str, encoded: str) -> None:
    url = report_url("https://api-02.moengage.com", "ACME01", filename)
    assert url == f"https://api-02.moengage.com/campaign_reports/rest_api/ACME01/{encoded}"
    segments = urlsplit(url).path.split("/")
    assert segments[:4] == ["", "campaign_reports", "rest_api", "ACME01"]
    assert len(segments) == 5
    assert unquote(segments[4]) == filename


def test_app_id_is_one_segment_too() -> None:
    url = report_url("http://127.0.0.1:8080", "A/B C", "r_20261127.zip")
    assert url == "http://127.0.0.1:8080/campaign_reports/rest_api/A%2FB%20C/r_20261127.zip"


def test_dates_are_zero_padded() -> None:
    assert report_filename("R", date(2026, 1, 5)) == "R_20260105.zip"
    assert report_filename("R", date(999, 12, 31)) == "R_09991231.zip"
    assert render_path("{yyyy}/{mm}/{dd}/{filename}", workspace="w", app_id="a", report="R",
                       day=date(999, 2, 3), filename="R_09990203.zip") == PurePosixPath(
        "0999/02/03/R_09990203.zip")


@pytest.mark.parametrize(("dc", "expected"), [
    ("01", "https://api-01.moengage.com"),
    ("02", "https://api-02.moengage.com"),
    ("101", "https://api-101.moengage.com"),
])
def test_data_center_url(dc: str, expected: str) -> None:
    assert base_url(dc) == expected
    assert base_url(dc, None) == expected
    assert base_url(dc, "") == expected


def test_base_url_override_drops_trailing_slashes() -> None:
    assert base_url("02", "http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert base_url("02", "http://127.0.0.1:8080//") == "http://127.0.0.1:8080"
    url = report_url(base_url("02", "http://127.0.0.1:8080/"), "ACME01", "R_20261127.zip")
    assert url == "http://127.0.0.1:8080/campaign_reports/rest_api/ACME01/R_20261127.zip"


@pytest.mark.parametrize(("url", "expected"), [
    ("https://api-02.moengage.com/x", ("https", "api-02.moengage.com", 443)),
    ("HTTP://Example.COM/x", ("http", "example.com", 80)),
    ("http://127.0.0.1:8080/x", ("http", "127.0.0.1", 8080)),
    ("https://h:8443", ("https", "h", 8443)),
])
def test_origin(url: str, expected: tuple[str, str, int]) -> None:
    assert origin(url) == expected


# ----------------------------------------------------------------------- parse_filename

@settings(max_examples=150, deadline=None)
@given(report=st.text(min_size=1, max_size=60), day=st.dates())
def test_parse_filename_inverts_report_filename(report: str, day: date) -> None:
    assert parse_filename(report_filename(report, day)) == (report.replace(" ", "_"), day)


@pytest.mark.parametrize("name", [
    "R_20261327.zip", "R_20260230.zip", "R_2026112.zip", "R_20261127.ZIP", "_20261127.zip",
    "R20261127.zip", "R_20261127.zip.part", "",
])
def test_parse_filename_rejects_malformed(name: str) -> None:
    assert parse_filename(name) is None


# ----------------------------------------------------------------------- safe_component

@pytest.mark.parametrize(("value", "expected"), [
    ("Daily campaign summary", "Daily_campaign_summary"),
    ("a/b", "a_b"),
    ("a\\b", "a_b"),
    ("..", "_"),
    (".", "_"),
    ("", "_"),
    ("...hidden", "hidden"),
    ("C:evil", "C_evil"),
    ('a*b?c"d<e>f|g', "a_b_c_d_e_f_g"),
    ("nul\x00tab\tdel\x7fnel\x85", "nul_tab_del_nel_"),
    ("Résumé", "Résumé"),
])
def test_safe_component_known(value: str, expected: str) -> None:
    assert safe_component(value) == expected


def test_long_names_are_cut_with_a_hash_and_keep_their_extension() -> None:
    value = "é" * 150 + "_20261127.zip"  # 313 bytes
    out = safe_component(value)
    assert len(out.encode()) <= 200
    assert out.endswith(".zip")
    digest = hashlib.sha256(value.encode()).hexdigest()[:12]
    assert f"~{digest}.zip" in out
    assert out.startswith("é" * 10)


SAFE = st.characters(categories=("L", "N"))


@settings(max_examples=200, deadline=None)
@given(prefix=st.text(min_size=1), a=st.text(SAFE, min_size=1, max_size=20),
       b=st.text(SAFE, min_size=1, max_size=20))
def test_distinct_long_names_stay_distinct(prefix: str, a: str, b: str) -> None:
    # Same first 200+ bytes, different tails: the cut alone would merge them. The tails
    # are made of characters kept as they are: ':' and '"' both become '_', so names that
    # differ only there are one local name (config refuses such a pair of reports).
    head = (prefix * (210 // len(prefix.encode()) + 1))
    if a == b:
        b = a + "x"
    first, second = safe_component(head + a), safe_component(head + b)
    assert len(first.encode()) <= 200
    assert len(second.encode()) <= 200
    assert first != second


# ----------------------------------------------------------------------- render_path

LAYOUTS = [
    DEFAULT_LAYOUT,
    "{filename}",
    "{app_id}/{yyyy}/{mm}/{dd}/{filename}",
    "{workspace}/{date}/{report}.zip",
    "by-report/{report}/{workspace}-{app_id}/{filename}",
    "{workspace}{report}{filename}",
]


def test_render_path_default_layout() -> None:
    path = render_path(DEFAULT_LAYOUT, workspace="acme-eu", app_id="ACME01",
                       report="Daily campaign summary", day=date(2026, 11, 21),
                       filename="Daily_campaign_summary_20261121.zip")
    assert path == PurePosixPath(
        "acme-eu/Daily_campaign_summary/Daily_campaign_summary_20261121.zip")


def test_render_path_date_fields() -> None:
    path = render_path("{app_id}/{yyyy}/{mm}/{dd}/{date}-{filename}", workspace="w",
                       app_id="A1", report="r", day=date(2026, 3, 5), filename="r_20260305.zip")
    assert path == PurePosixPath("A1/2026/03/05/2026-03-05-r_20260305.zip")


def test_render_path_neutralises_hostile_values() -> None:
    path = render_path(DEFAULT_LAYOUT, workspace="..", app_id="x", report="../../etc",
                       day=DAY, filename="../../etc/passwd")
    assert path == PurePosixPath("_/_.._etc/_.._etc_passwd")  # no '..' part survives
    assert ".." not in path.parts


def _control(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc"


@settings(max_examples=200, deadline=None)
@given(workspace=st.text(), app_id=st.text(), report=st.text(), day=st.dates(),
       layout=st.sampled_from(LAYOUTS))
def test_render_path_never_escapes(
    workspace: str, app_id: str, report: str, day: date, layout: str
) -> None:
    rel = render_path(layout, workspace=workspace, app_id=app_id, report=report, day=day,
                      filename=report_filename(report, day))
    assert not rel.is_absolute()
    assert rel.parts
    for part in rel.parts:
        assert part not in ("", ".", "..")
        assert len(part.encode("utf-8")) <= 200
        assert not any(_control(ch) for ch in part), repr(part)
        assert "/" not in part
        assert "\\" not in part
    root = "/srv/out"
    joined = os.path.normpath(os.path.join(root, *rel.parts))
    assert joined.startswith(root + "/")


@settings(max_examples=300, deadline=None)
@given(workspace=st.text(), app_id=st.text(), report=st.text(), day=st.dates(),
       layout=st.sampled_from([*LAYOUTS, "a//{filename}", "./{filename}", "{report}.part",
                               "{workspace}/{report}{report}{report}{report}{filename}"]))
def test_render_path_fast_path_agrees_with_the_general_one(
    workspace: str, app_id: str, report: str, day: date, layout: str
) -> None:
    # render_path builds the usual path directly; the general path is the reference
    filename = report_filename(report, day)
    text = layout.format(
        workspace=safe_component(workspace), app_id=safe_component(app_id),
        report=safe_component(report), date=day.isoformat(), yyyy=f"{day.year:04d}",
        mm=f"{day:%m}", dd=f"{day:%d}", filename=safe_component(filename))
    assert render_path(layout, workspace=workspace, app_id=app_id, report=report, day=day,
                       filename=filename) == naming._render_general(layout, text)


@settings(max_examples=200, deadline=None)
@given(value=st.text())
def test_safe_component_is_one_safe_part(value: str) -> None:
    out = safe_component(value)
    assert out
    assert out not in (".", "..")
    assert not out.startswith(".")
    assert len(out.encode("utf-8")) <= 200
    assert not any(_control(ch) or ch in '/\\:*?"<>|' for ch in out)
    assert safe_component(out) == out  # idempotent: a second pass changes nothing


@settings(max_examples=100, deadline=None)
@given(workspace=st.text(min_size=1), report=st.text(min_size=1), day=st.dates())
def test_render_path_combined_parts_stay_short_and_distinct(
    workspace: str, report: str, day: date
) -> None:
    # Two long values in one component would exceed the file system's 255-byte name limit.
    layout = "{workspace}-{report}/{filename}"
    long_ws, long_report = workspace * 200, report * 200
    rel = render_path(layout, workspace=long_ws, app_id="a", report=long_report, day=day,
                      filename=report_filename(long_report, day))
    assert all(len(p.encode()) <= 200 for p in rel.parts)
    other = render_path(layout, workspace=long_ws + "x", app_id="a", report=long_report,
                        day=day, filename=report_filename(long_report, day))
    assert other != rel


def test_render_path_refuses_an_unsafe_layout() -> None:
    for layout in ("../{filename}", "/abs/{filename}", "{workspace}/../{filename}"):
        with pytest.raises(ValueError, match="unsafe path"):
            render_path(layout, workspace="w", app_id="a", report="r", day=DAY,
                        filename="r_20261127.zip")


# ----------------------------------------------------------------------- check_layout

@pytest.mark.parametrize("layout", [*LAYOUTS, "{report}/{date}", "reports/{filename}"])
def test_check_layout_accepts(layout: str) -> None:
    assert check_layout(layout) is None


@pytest.mark.parametrize(("layout", "fragment"), [
    ("{wrkspace}/{filename}", "unknown placeholder {wrkspace}"),
    ("{}/{filename}", "unknown placeholder"),
    ("{workspace[0]}/{filename}", "unknown placeholder"),
    ("{workspace}/{report}", "{filename}"),
    ("{date}", "{filename}"),
    ("../{filename}", "'..'"),
    ("a/../{filename}", "'..'"),
    ("./{filename}", "'.'"),
    ("a\\..\\{filename}", "'..'"),
    ("/abs/{filename}", "relative"),
    ("\\abs\\{filename}", "relative"),
    ("C:{filename}", "relative"),
    ("{filename", "malformed"),
    ("{filename:.0}", "format spec"),
    ("{dd:.>2.0}/{filename}", "format spec"),
    ("{workspace!r}/{filename}", "conversion"),
    ("{workspace:{dd}}/{filename}", "format spec"),
])
def test_check_layout_refuses(layout: str, fragment: str) -> None:
    problem = check_layout(layout)
    assert problem is not None
    assert fragment in problem


def test_layout_fields_are_the_documented_ones() -> None:
    assert frozenset({"workspace", "app_id", "report", "date", "yyyy", "mm", "dd",
                      "filename"}) == LAYOUT_FIELDS
