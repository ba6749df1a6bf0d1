from __future__ import annotations

import pytest

from backfill.store.object.url import ObjectURL, ObjectURLError, is_object_url, parse_object_url


@pytest.mark.parametrize(("text", "want"), [
    ("s3://bkt", ObjectURL("s3", "bkt")),
    ("s3://bkt/a/b/", ObjectURL("s3", "bkt", "a/b")),
    ("s3a://bkt//a//b", ObjectURL("s3", "bkt", "a/b")),
    ("gs://my.bucket/x", ObjectURL("gcs", "my.bucket", "x")),
    ("gcs://bkt/x", ObjectURL("gcs", "bkt", "x")),
    ("az://cont/land/ing", ObjectURL("azure", "cont", "land/ing")),
    ("azure://cont", ObjectURL("azure", "cont")),
    ("abfss://cont@acct01.dfs.core.windows.net/p", ObjectURL("azure", "cont", "p", "acct01")),
    ("https://acct01.blob.core.windows.net/cont/p/q", ObjectURL("azure", "cont", "p/q", "acct01")),
])
def test_forms(text: str, want: ObjectURL) -> None:
    assert parse_object_url(text) == want


@pytest.mark.parametrize(("text", "says"), [
    ("ftp://bkt/x", "unknown scheme"),
    ("s3://B/x", "not a valid bucket"),
    ("s3://bkt/../x", "'..'"),
    ("s3://bkt/x?X-Amz-Signature=abc", "no query"),
    ("abfss://cont/x", "container@account"),
    ("https://example.com/cont", "only Azure"),
])
def test_bad(text: str, says: str) -> None:
    with pytest.raises(ObjectURLError, match=says) as info:
        parse_object_url(text)
    assert "abc" not in str(info.value)  # a query string (a signature) is never echoed


def test_keys_stay_under_the_prefix() -> None:
    url = parse_object_url("s3://bkt/land")
    assert url.key("ws/2024/a.zip") == "land/ws/2024/a.zip"
    assert url.uri("ws/a.zip") == "s3://bkt/land/ws/a.zip"
    assert parse_object_url("gs://bkt").key("a.zip") == "a.zip"
    for bad in ("../x", "/etc/passwd", "a/../../b", ""):
        with pytest.raises(ObjectURLError):
            url.key(bad)


def test_is_object_url() -> None:
    assert is_object_url("s3://b") and is_object_url("az://c/p")
    assert not is_object_url("reports") and not is_object_url("/tmp/x") and not is_object_url("C:x")
