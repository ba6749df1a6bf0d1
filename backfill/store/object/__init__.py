"""S3, Google Cloud Storage and Azure Blob destinations, through obstore (an extra).

    url.py          parse s3:// gs:// az:// abfss:// URLs (pure)
    settings.py     credentials and endpoints from the environment and [storage] (pure)
    backend.py      obstore at the boundary: build the store, translate and scrub errors
    staging.py      the private local place a body is hashed into before upload
    destination.py  store, adopt, verify objects (the promises are in its docstring)
    remote.py       the manifest and the lock object beside the data
    siblings.py     the other manifests there (main and shards): list, pull, keep apart
    session.py      one run: lock, sweep, pull; checkpoints; publish

:func:`open_destination` puts them together; nothing here imports obstore until then.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ...destination import local_root
from .backend import (
    AccessDenied,
    BucketMissing,
    DestinationUnavailable,
    build_store,
    import_obstore,
    read_aws_profile,
)
from .destination import ObjectConflict, ObjectDestination, StoredObject
from .remote import RemoteManifest
from .settings import StorageOptions, parse_storage_table, resolve
from .staging import Staging
from .url import ObjectURL, ObjectURLError, is_object_url, parse_object_url

__all__ = [
    "AccessDenied",
    "BucketMissing",
    "DestinationUnavailable",
    "ObjectConflict",
    "ObjectDestination",
    "ObjectURL",
    "ObjectURLError",
    "RemoteManifest",
    "StorageOptions",
    "StoredObject",
    "is_object_url",
    "open_destination",
    "parse_object_url",
    "parse_storage_table",
]


def open_destination(url: ObjectURL, *, options: StorageOptions | None = None,
                     env: Mapping[str, str] | None = None, max_file_bytes: int,
                     staging_root: Path | None = None, scope: str = "") -> ObjectDestination:
    """An ObjectDestination for ``url`` (no request made yet; call ``probe()``).
    ``scope`` (``shard-I-of-N``): a shard run's own staging folder and temporary objects,
    which its start-up sweep alone clears.

    ConfigError when obstore is missing (naming the extra), a credential is missing
    (naming the variable) or an http endpoint is not allowed.
    """
    import_obstore()
    env = os.environ if env is None else env
    options = options or StorageOptions()
    profile = read_aws_profile(env) if url.cloud == "s3" else {}
    conn = resolve(url, env, options, profile)
    staging = Staging(staging_root or local_root(url), max_file_bytes=max_file_bytes,
                      scope=scope)
    staging.open()
    return ObjectDestination(conn, build_store(conn), staging, scope=scope)
