"""Request authentication against answers computed here with hashlib and base64."""

from __future__ import annotations

import base64
import hashlib
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backfill.naming import report_filename, report_url
from backfill.signing import basic_auth, request_headers, signature

RAW_NAMES = [
    "Report_-_test_20210217.zip",
    "A&B_(x)_100%_20261127.zip",
    "Sales/EU_20261127.zip",
    "Résumé_été_20261127.zip",
    "日報_20261127.zip",
]


def test_signature_known_answer() -> None:
    # printf 'ACME01|Report_-_test_20210217.zip|s3cret' | sha256sum
    expected = "945f96d05752d47b0492f206d855e9aa23b39d89dc18301a3b6badfa48aa2310"
    assert hashlib.sha256(b"ACME01|Report_-_test_20210217.zip|s3cret").hexdigest() == expected
    assert signature("ACME01", "Report_-_test_20210217.zip", "s3cret") == expected


@pytest.mark.parametrize("filename", RAW_NAMES)
def test_signature_is_over_the_raw_file_name(filename: str) -> None:
    expected = hashlib.sha256(f"APP9|{filename}|key-9".encode()).hexdigest()
    sig = signature("APP9", filename, "key-9")
    assert sig == expected
    assert len(sig) == 64
    assert sig == sig.lower()
    encoded = report_url("https://h", "APP9", filename).rsplit("/", 1)[1]
    if encoded != filename:  # the percent-encoded name would give another signature
        assert sig != hashlib.sha256(f"APP9|{encoded}|key-9".encode()).hexdigest()


def test_signature_depends_on_every_part() -> None:
    base = signature("A", "f.zip", "k")
    assert signature("B", "f.zip", "k") != base
    assert signature("A", "g.zip", "k") != base
    assert signature("A", "f.zip", "K") != base
    # Exactly "{app}|{file}|{key}": the parts are joined by '|', nothing else.
    assert signature("A|B", "C", "k") == signature("A", "B|C", "k")
    assert signature("AB", "C", "k") != signature("A", "BC", "k")


def test_basic_auth_known_answer() -> None:
    assert basic_auth("ACME01", "key") == "Basic QUNNRTAxOmtleQ=="  # base64("ACME01:key")
    assert base64.b64encode(b"ACME01:key").decode() == "QUNNRTAxOmtleQ=="


@settings(max_examples=100, deadline=None)
@given(app_id=st.text(min_size=1, max_size=20), api_key=st.text(max_size=40))
def test_basic_auth_round_trips(app_id: str, api_key: str) -> None:
    header = basic_auth(app_id, api_key)
    scheme, _, token = header.partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(token, validate=True).decode() == f"{app_id}:{api_key}"


def test_request_headers() -> None:
    filename = report_filename("Sales/EU & more", date(2026, 11, 27))
    headers = request_headers("ACME01", filename, "api-key", "secret-key")
    assert set(headers) == {"Authorization", "Signature", "MOE-APPKEY"}
    assert headers["Authorization"] == "Basic " + base64.b64encode(
        b"ACME01:api-key").decode()
    assert headers["Signature"] == hashlib.sha256(
        b"ACME01|Sales/EU_&_more_20261127.zip|secret-key").hexdigest()
    assert headers["MOE-APPKEY"] == "ACME01"


def test_api_key_signs_when_secret_key_is_the_same() -> None:
    headers = request_headers("A", "f_20261127.zip", "same", "same")
    assert headers["Signature"] == hashlib.sha256(b"A|f_20261127.zip|same").hexdigest()
