"""Where a run stores its files, opened for the run and closed after it.

    async with open_destination(settings) as opened:
        opened.store        # the Store the engine commits to
        opened.manifest     # the local journal the engine writes
        opened.remote       # a RemoteRun when the manifest lives with the data, else None
        opened.view_main    # the main manifest the merged view is read beside

A local folder: the directories are prepared (exit 2 if they cannot be) and a LocalStore
opened. An object-store prefix: the destination is built from the environment and
``[storage]`` (exit 2 naming the extra or the missing variable), probed (a missing or
refusing bucket is exit 2 before anything is fetched) and, unless ``manifest`` names a
local file, wrapped in a :class:`~backfill.store.object.session.RemoteRun`: the lock
object is taken, the remote manifest pulled to the local journal, and on the way out the
journal is published and the lock released. A shard run keeps its own manifest and lock
object there (``manifest.shard-I-of-N.jsonl``), and its view reads private copies of the
others (``view_main``).
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
    from collections.abc import Callable
    from pathlib import Path

    from ..journal.state import ManifestState
    from ..shards.assign import Shard
    from ..shards.view import View
    from ..store.object.session import RemoteRun


@dataclass(frozen=True, slots=True)
class Opened:
    store: Store
    manifest: Path
    remote: RemoteRun | None = None
    view_main: Path | None = None  # None: the main manifest of the run's settings

    def main_for_view(self, main: Path) -> Path:
        return main if self.view_main is None else self.view_main


@contextlib.asynccontextmanager
async def open_destination(settings: ResolvedRun) -> AsyncIterator[Opened]:
    """The destination of a resolved run (see the module docstring)."""
    async with open_run_destination(run_settings(settings), settings.config.storage,
                                    settings.shard) as opened:
        yield opened


def run_settings(settings: ResolvedRun) -> RunSettings:
    """``[run]`` with the run's overrides of the destination and the manifest."""
    return dataclasses.replace(settings.config.run, output_dir=settings.output_dir,
                               manifest=None if settings.remote_manifest else settings.manifest)


@contextlib.asynccontextmanager
async def open_run_destination(run: RunSettings, storage: StorageOptions,
                               shard: Shard | None = None) -> AsyncIterator[Opened]:
    """``run``'s destination: ``output_dir``, and ``manifest_path`` as its journal (for a
    ``shard`` run with the manifest in the object store: that shard's)."""
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
    if not run.remote_manifest:  # the manifest is a local file the user named
        dest = open_object_store(out, max_file_bytes=max_bytes, storage=storage,
                                 scope=_scope(shard))
        try:
            prepare_dirs([manifest.parent])
            await dest.probe()
            yield Opened(dest, manifest)
        finally:
            await dest.close()
        return
    async with _remote_run(out, manifest, max_bytes, storage, shard) as opened:
        yield opened


@contextlib.asynccontextmanager
async def _remote_run(url: ObjectURL, main: Path, max_bytes: int, storage: StorageOptions,
                      shard: Shard | None) -> AsyncIterator[Opened]:
    """The manifest lives with the data: lock it, pull it (a shard's own), read the others
    from private copies, publish on the way out."""
    from ..shards.naming import shard_manifest
    from ..store.object import RemoteManifest
    from ..store.object.session import RemoteRun
    from ..store.object.siblings import own_name

    dest = open_object_store(url, max_file_bytes=max_bytes, storage=storage,
                             scope=_scope(shard))
    journal = main if shard is None else shard_manifest(main, shard)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(dest.close)  # also when the lock is refused (idempotent)
        remote = await stack.enter_async_context(RemoteRun(
            dest, RemoteManifest(dest, name=own_name(shard)), local_manifest=journal))
        yield Opened(dest, journal, remote, remote.view_main)


def _scope(shard: Shard | None) -> str:
    """A shard run's own staging folder and temporary objects (none for a plain run)."""
    return "" if shard is None else f"shard-{shard.index}-of-{shard.count}"


def remote_view(run: RunSettings, storage: StorageOptions,
                only: Callable[[str], bool] | None = None) -> View:
    """The manifests that live with the data (``run.remote_manifest``), the main one and
    every shard's, as they are in the object store now: pulled to a private folder, read
    merged (``only``: see :func:`~backfill.shards.view.load_view`), removed. No lock:
    ``status`` and ``plan`` read, they never write."""
    assert run.remote_manifest and isinstance(run.output_dir, ObjectURL)
    return anyio.run(_pull_view, run.output_dir, run.max_file_bytes, storage, only)


async def _pull_view(url: ObjectURL, max_bytes: int, storage: StorageOptions,
                     only: Callable[[str], bool] | None) -> View:
    from ..shards.view import load_view
    from ..store.object.session import RemoteRun

    dest = open_object_store(url, max_file_bytes=max_bytes, storage=storage)
    async with RemoteRun.read_all(dest) as main:
        view = load_view(main, only=only)
    view.where = str(url)
    return view


def remote_state(run: RunSettings, storage: StorageOptions,
                 only: Callable[[str], bool] | None = None) -> ManifestState:
    """The merged state of :func:`remote_view`."""
    return remote_view(run, storage, only).state
