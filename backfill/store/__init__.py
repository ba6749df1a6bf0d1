"""Where report files are stored: the :class:`Store` protocol, the local file system or an
object store.

    base.py    the Store protocol, Received and Stored: what "committed" promises
    local/     LocalStore: the local file system (durability helpers live here, once)
    object/    S3, GCS and Azure destinations through obstore (an extra)

The engine calls only the protocol; a store is chosen when the run is set up
(:func:`open_store`). Importing this package loads only the protocol.
"""

from __future__ import annotations

from pathlib import Path

from .base import Received, Store, Stored

__all__ = ["Received", "Store", "Stored", "open_store"]


def open_store(output_dir: Path, *, max_file_bytes: int) -> Store:
    """The store for ``output_dir`` (today: always the local file system)."""
    from .local import LocalStore

    return LocalStore(output_dir, max_file_bytes=max_file_bytes)
