"""Where report files are stored: the :class:`Store` protocol, the local file system or an
object store.

    base.py    the Store protocol, Received and Stored: what "committed" promises
    local/     LocalStore: the local file system (durability helpers live here, once)
    object/    S3, GCS and Azure destinations through obstore (an extra)

The engine calls only the protocol; a store is chosen when the run is set up
(:func:`open_store`). Importing this package loads only the protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..destination import ObjectURL, OutputDir, StorageOptions
from .base import Received, Store, Stored

if TYPE_CHECKING:
    from .object import ObjectDestination

__all__ = ["Received", "Store", "Stored", "open_object_store", "open_store"]


def open_store(output_dir: OutputDir, *, max_file_bytes: int,
               storage: StorageOptions | None = None, owner: str = "") -> Store:
    """The store for ``output_dir``: the local file system, or the object store it names
    (see :func:`open_object_store`). ``owner`` names the run's private place for partial
    files (the manifest's path: two manifests sharing an output directory never touch
    each other's partial files)."""
    if isinstance(output_dir, ObjectURL):
        return open_object_store(output_dir, max_file_bytes=max_file_bytes, storage=storage)
    from .local import LocalStore

    return LocalStore(output_dir, max_file_bytes=max_file_bytes, owner=owner)


def open_object_store(url: ObjectURL, *, max_file_bytes: int,
                      storage: StorageOptions | None = None, scope: str = "",
                      ) -> ObjectDestination:
    """The destination for ``url`` (no request made yet). ConfigError (exit 2) when
    obstore is missing (naming ``moe-backfill[cloud]``) or a credential is missing (naming
    the variable). ``scope``: a shard run's own staging and temporary objects."""
    from .object import open_destination

    return open_destination(url, options=storage, max_file_bytes=max_file_bytes, scope=scope)
