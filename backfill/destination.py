"""Where report files go when it is not a local folder: object-store URLs and the
``[storage]`` table, parsed without any I/O (config and ``plan`` import this; the store
itself lives in :mod:`backfill.store.object`).

    s3://bucket/prefix            s3a://… is accepted as the same
    gs://bucket/prefix            gcs://… likewise
    az://container/prefix         azure://…, and the forms people paste from Azure tools:
    abfs[s]://container@account.dfs.core.windows.net/prefix
    https://account.blob.core.windows.net/container/prefix

The prefix is normalised to ``a/b`` (no leading, trailing or doubled slashes); keys are
``prefix/rel``. A relative path that is absolute, empty or holds ``.``/``..`` is refused,
as the local store refuses paths that would leave the output directory.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit

from .errors import ConfigError

Cloud = Literal["s3", "gcs", "azure"]

_SCHEMES: dict[str, Cloud] = {
    "s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "azure": "azure",
    "abfs": "azure", "abfss": "azure",
}
_AZURE_HOST = re.compile(r"^(?P<account>[a-z0-9]{3,24})\.(?:blob|dfs)\.core\.windows\.net$")
# Bucket names: S3 and GCS 3-63 (GCS allows 222 with dots), Azure containers 3-63.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]$")


class ObjectURLError(ValueError):
    """Not a usable object-store URL; str() says why (no credentials are ever in it)."""


@dataclass(frozen=True, slots=True)
class ObjectURL:
    """A parsed destination: the cloud, the bucket (or container), the key prefix, and for
    Azure the account when the URL names one."""

    cloud: Cloud
    bucket: str
    prefix: str = ""
    account: str | None = None

    def __str__(self) -> str:
        scheme = {"s3": "s3", "gcs": "gs", "azure": "az"}[self.cloud]
        return f"{scheme}://{self.bucket}/{self.prefix}".rstrip("/")

    def key(self, rel: str | PurePosixPath) -> str:
        """The object key of ``rel`` under the prefix; ObjectURLError if ``rel`` could
        name something outside it."""
        parts = PurePosixPath(rel).parts
        if not parts or PurePosixPath(rel).is_absolute() or any(p in (".", "..") for p in parts):
            raise ObjectURLError(f"{rel}: path would leave the output prefix")
        tail = "/".join(parts)
        return f"{self.prefix}/{tail}" if self.prefix else tail

    def uri(self, rel: str | PurePosixPath) -> str:
        """The full URI of ``rel``: what the manifest records."""
        return f"{ObjectURL(self.cloud, self.bucket)!s}/{self.key(rel)}"


def is_object_url(text: str) -> bool:
    """True when ``text`` looks like a URL rather than a local path (``scheme://``)."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text) is not None


def parse_object_url(text: str) -> ObjectURL:
    """Parse a destination URL (forms in the module docstring); ObjectURLError if bad."""
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise ObjectURLError(f"{text!r}: not a URL ({exc})") from None
    if parts.query or parts.fragment or parts.password is not None:
        raise ObjectURLError(f"{_shown(text)}: no query, fragment or password allowed "
                             "(credentials come from the environment)")
    scheme = parts.scheme.lower()
    if scheme == "https":
        return _azure_https(text, parts.hostname or "", parts.path)
    cloud = _SCHEMES.get(scheme)
    if cloud is None:
        known = ", ".join(f"{s}://" for s in ("s3", "gs", "az", "abfss"))
        raise ObjectURLError(f"{_shown(text)}: unknown scheme {scheme!r} (use {known})")
    account = None
    bucket = parts.netloc
    if scheme in ("abfs", "abfss"):
        container, at, host = parts.netloc.partition("@")
        match = _AZURE_HOST.match(host.lower())
        if not at or match is None:
            raise ObjectURLError(f"{text}: expected {scheme}://container@account"
                                 ".dfs.core.windows.net/prefix")
        bucket, account = container, match["account"]
    return _checked(text, cloud, bucket, parts.path, account)


def parse_output_dir(text: str, base: Path) -> Path | ObjectURL:
    """``[run] output_dir`` / ``--output-dir``: an object-store URL, or a local path
    (``~`` expanded, relative to ``base``). ObjectURLError for a bad URL."""
    if is_object_url(text):
        return parse_object_url(text)
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


OutputDir: TypeAlias = Path | ObjectURL
"""Where a run stores its files: a local folder or an object-store prefix."""


def local_root(url: ObjectURL) -> Path:
    """``$TMPDIR/moe-backfill-<uid>/<hash of the URL>``: this machine's private place for
    one object destination (staging, and the local journal of its remote manifest)."""
    label = hashlib.sha256(str(url).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"moe-backfill-{os.getuid()}" / label


def _azure_https(text: str, host: str, path: str) -> ObjectURL:
    match = _AZURE_HOST.match(host.lower())
    if match is None:
        raise ObjectURLError(f"{_shown(text)}: only Azure blob URLs "
                             "(https://account.blob.core.windows.net/container/…) are https")
    container, _, rest = path.lstrip("/").partition("/")
    return _checked(text, "azure", container, rest, match["account"])


def _checked(text: str, cloud: Cloud, bucket: str, path: str, account: str | None) -> ObjectURL:
    if not _BUCKET.match(bucket):
        raise ObjectURLError(f"{text}: {bucket!r} is not a valid bucket or container name")
    segments = [s for s in path.split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise ObjectURLError(f"{text}: the prefix may not contain '.' or '..'")
    return ObjectURL(cloud, bucket, "/".join(segments), account)


def _shown(text: str) -> str:
    """The URL without anything after the host that could be a token (query, userinfo)."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return "the URL"
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{parts.path}"


STORAGE_KEYS = frozenset({"endpoint", "region", "allow_http", "instance_credentials",
                          "retry_timeout", "part_size"})
DEFAULT_RETRY_TIMEOUT = 60.0
DEFAULT_PART_SIZE = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StorageOptions:
    """The ``[storage]`` table: where to connect and how patiently."""

    endpoint: str | None = None
    region: str | None = None
    allow_http: bool | None = None  # None: the environment decides
    instance_credentials: bool = False
    retry_timeout: float = DEFAULT_RETRY_TIMEOUT  # seconds obstore retries one request
    part_size: int = DEFAULT_PART_SIZE  # multipart part size; bodies up to it: one PUT


def parse_storage_table(table: Mapping[str, Any]) -> StorageOptions:
    """``[storage]`` as StorageOptions; ConfigError naming every bad key at once."""
    problems: list[str] = []
    for key in sorted(set(table) - STORAGE_KEYS):
        problems.append(f"[storage] {key}: unknown key (known: {', '.join(sorted(STORAGE_KEYS))})")

    def typed(key: str, kind: type | tuple[type, ...], what: str) -> Any:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
            problems.append(f"[storage] {key}: expected {what}, got {value!r}")
            return None
        return value

    endpoint = typed("endpoint", str, "a URL string")
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        problems.append(f"[storage] endpoint: expected an http(s):// URL, got {endpoint!r}")
    region = typed("region", str, "a string")
    allow_http = typed("allow_http", bool, "true or false")
    instance = typed("instance_credentials", bool, "true or false")
    retry = typed("retry_timeout", (int, float), "seconds (a number > 0)")
    if retry is not None and retry <= 0:
        problems.append(f"[storage] retry_timeout: expected seconds > 0, got {retry!r}")
    part = typed("part_size", int, "bytes (an integer ≥ 5 MiB)")
    if part is not None and part < 5 * 1024 * 1024:
        problems.append(f"[storage] part_size: expected ≥ 5242880 (5 MiB), got {part}")
    if problems:
        raise ConfigError(problems)
    return StorageOptions(endpoint, region, allow_http, bool(instance),
                          float(retry or DEFAULT_RETRY_TIMEOUT), part or DEFAULT_PART_SIZE)
