"""obstore at the boundary: build the store, translate its errors, scrub its messages.

obstore is an optional extra; importing it here only, lazily, keeps the core install
small, and its absence is one line naming the extra. Every obstore exception leaves this
module as one of ours with ``raise … from None`` (its text can carry signed URLs), its
message scrubbed by :func:`scrub`:

    NotFoundError                       -> KeyMissing (a fact, not a failure)
    AlreadyExistsError/PreconditionError -> KeyExists
    401/403, PermissionDenied, Unauthenticated -> AccessDenied      (OutputDirError, exit 2)
    404 on the bucket/container         -> BucketMissing            (OutputDirError, exit 2)
    anything else (refused, reset, 5xx after obstore's retries) -> DestinationUnavailable
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError, OutputDirError, StorageError
from .settings import Connection

if TYPE_CHECKING:
    from obstore.store import ObjectStore

EXTRA_HINT = "pip install 'moe-backfill[cloud]'"


class DestinationUnavailable(StorageError):
    """The object store did not answer usefully (down, refusing, 5xx): retry later; the
    file is not completed."""


class AccessDenied(OutputDirError):
    """The credentials are refused or lack a permission (exit 2)."""


class BucketMissing(OutputDirError):
    """The bucket or container does not exist (exit 2)."""


class KeyMissing(StorageError):
    """No object at the key."""


class KeyExists(StorageError):
    """An object is already at the key (a create-if-absent write lost)."""


def import_obstore() -> Any:
    """The obstore module, or ConfigError naming the extra that installs it."""
    try:
        import obstore
    except ImportError:
        raise ConfigError(f"object-store destinations need obstore: {EXTRA_HINT}") from None
    return obstore


def read_aws_profile(env: Mapping[str, str]) -> dict[str, str]:
    """The keys of AWS_PROFILE (or ``default`` when no keys are set in the environment)
    from the shared credentials and config files; {} if there is none."""
    name = env.get("AWS_PROFILE", "").strip()
    if not name and env.get("AWS_ACCESS_KEY_ID"):
        return {}
    name = name or "default"
    home = Path(env.get("HOME", str(Path.home())))
    found: dict[str, str] = {}
    files = [(env.get("AWS_CONFIG_FILE") or str(home / ".aws/config"), f"profile {name}"),
             (env.get("AWS_SHARED_CREDENTIALS_FILE") or str(home / ".aws/credentials"), name)]
    for path, section in files:
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            raise ConfigError(f"{path}: not a readable AWS config file") from None
        for sec in (section, name):
            if parser.has_section(sec):
                found.update(parser.items(sec))
    return found


def build_store(conn: Connection) -> ObjectStore:
    """The obstore store for ``conn`` (no request is made)."""
    obstore_store = import_obstore().store
    retry = {"max_retries": 10, "retry_timeout": timedelta(seconds=conn.options.retry_timeout),
             "backoff": {"init_backoff": timedelta(milliseconds=100),
                         "max_backoff": timedelta(seconds=5), "base": 2.0}}
    kinds = {"s3": obstore_store.S3Store, "gcs": obstore_store.GCSStore,
             "azure": obstore_store.AzureStore}
    cls = kinds[conn.url.cloud]
    config = dict(conn.config)
    bucket = config.pop("bucket", None) or config.pop("container_name", None)
    try:
        store: ObjectStore = cls(bucket or conn.url.bucket, config=config,
                                 client_options=conn.client_options, retry_config=retry)
        return store
    except Exception as exc:  # obstore raises its own for bad config values
        raise ConfigError(f"{conn.where}: {scrub(str(exc), conn.secrets)}") from None


_URL_QUERY = re.compile(r"(https?://[^\s?\"'<>]*)\?[^\s\"'<>]*")
_XML_BODY = re.compile(r":\s*<\?xml.*", re.S)
_SIGNATURE = re.compile(r"(?i)(signature|sig|x-amz-security-token|credential)=[^&\s]+")


def scrub(message: str, secrets: tuple[str, ...]) -> str:
    """``message`` without the secrets, URL query strings (SAS tokens, signatures) or the
    XML error body the server echoed, on one line."""
    text = _XML_BODY.sub("", re.split(r"\s*Debug source:", message, maxsplit=1)[0])
    text = _URL_QUERY.sub(r"\1?…", text)
    text = _SIGNATURE.sub(r"\1=…", text)
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return " ".join(text.split())[:400]


def _status(message: str) -> int | None:
    match = re.search(r"status code: (\d{3})", message)
    return int(match.group(1)) if match else None


def translate(exc: BaseException, conn: Connection, what: str) -> StorageError:
    """Our error for an obstore exception raised while doing ``what`` (e.g. a key)."""
    from obstore import exceptions as ox

    raw = str(exc)
    text = scrub(raw, conn.secrets)
    status = _status(raw)
    if isinstance(exc, (ox.NotFoundError, FileNotFoundError)):
        return KeyMissing(f"{what}: no such object")
    if isinstance(exc, ox.AlreadyExistsError | ox.PreconditionError | FileExistsError):
        return KeyExists(f"{what}: an object is already there")
    if isinstance(exc, ox.PermissionDeniedError | ox.UnauthenticatedError | PermissionError) \
            or status in (401, 403):
        return AccessDenied(f"{conn.where}: access denied ({what}): {text}")
    if status == 404 or "NoSuchBucket" in raw or "ContainerNotFound" in raw:
        return BucketMissing(f"{conn.where}: the bucket or container does not exist")
    if isinstance(exc, OSError) and not isinstance(exc, ox.BaseError):
        return StorageError(f"{what}: {os.strerror(exc.errno) if exc.errno else text}")
    return DestinationUnavailable(f"{conn.where}: unavailable ({what}): {text}")
