"""Where a run stores its files, opened for the run and closed after it.

    async with open_destination(settings) as opened:
        opened.store        # the Store the engine commits to
        opened.manifest     # the local journal the engine writes
        opened.remote       # a RemoteRun when the manifest lives with the data, else None

A local folder: the directories are prepared (exit 2 if they cannot be) and a LocalStore
opened. An object-store prefix: the destination is built from the environment and
``[storage]`` (exit 2 naming the extra or the missing variable), probed (a missing or
refusing bucket is exit 2 before anything is fetched) and, unless ``manifest`` names a
local file, wrapped in a :class:`~backfill.store.object.session.RemoteRun`: the lock
object is taken, the remote manifest pulled to the local journal, and on the way out the
journal is published and the lock released.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from ..config import RunSettings
from ..destination import ObjectURL, StorageOptions
from ..settings import ResolvedRun
from ..store import Store, open_object_store, open_store
from ..store.local import prepare_dirs

if TYPE_CHECKING:
    from pathlib import Path

    from ..journal.state import ManifestState
    from ..store.object.session import RemoteRun


@dataclass(frozen=True, slots=True)
class Opened:
    store: Store
    manifest: Path
    remote: RemoteRun | None = None


@contextlib.asynccontextmanager
async def open_destination(settings: ResolvedRun) -> AsyncIterator[Opened]:
    """The destination of a resolved run (see the module docstring)."""
    async with open_run_destination(run_settings(settings), settings.config.storage) as opened:
        yield opened


def run_settings(settings: ResolvedRun) -> RunSettings:
    """``[run]`` with the run's overrides of the destination and the manifest."""
    return dataclasses.replace(settings.config.run, output_dir=settings.output_dir,
                               manifest=None if settings.remote_manifest else settings.manifest)


@contextlib.asynccontextmanager
async def open_run_destination(run: RunSettings, storage: StorageOptions,
                               ) -> AsyncIterator[Opened]:
    """``run``'s destination: ``output_dir``, and ``manifest_path`` as its journal."""
    out, manifest, max_bytes = run.output_dir, run.manifest_path, run.max_file_bytes
    if not isinstance(out, ObjectURL):
        prepare_dirs([out, manifest.parent])
        # partial files private to this manifest (a shard's, or the main one)
        store = open_store(out, max_file_bytes=max_bytes, owner=str(manifest.absolute()))
        try:
            yield Opened(store, manifest)
        finally:
            await store.close()
        return
    dest = open_object_store(out, max_file_bytes=max_bytes, storage=storage)
    if not run.remote_manifest:  # the manifest is a local file the user named
        try:
            prepare_dirs([manifest.parent])
            await dest.probe()
            yield Opened(dest, manifest)
        finally:
            await dest.close()
        return
    from ..store.object.session import RemoteRun

    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(dest.close)  # also when the lock is refused (idempotent)
        remote = await stack.enter_async_context(RemoteRun(dest, local_manifest=manifest))
        yield Opened(dest, manifest, remote)


def remote_state(run: RunSettings, storage: StorageOptions) -> ManifestState:
    """The manifest that lives with the data (``run.remote_manifest``), as it is in the
    object store now: pulled to a private file, read, removed. No lock: ``status`` and
    ``plan`` read, they never write."""
    assert run.remote_manifest and isinstance(run.output_dir, ObjectURL)
    return anyio.run(_pull_state, run.output_dir, run.max_file_bytes, storage)


async def _pull_state(url: ObjectURL, max_bytes: int, storage: StorageOptions,
                      ) -> ManifestState:
    from ..journal.state import ManifestState, load_manifest
    from ..store.object.session import RemoteRun

    dest = open_object_store(url, max_file_bytes=max_bytes, storage=storage)
    async with RemoteRun.read_only(dest) as local:
        return ManifestState() if local is None else load_manifest(local)
