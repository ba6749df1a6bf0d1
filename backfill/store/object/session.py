"""One run against an object-store destination: lock, sweep, pull; checkpoints; publish.

    async with RemoteRun(dest) as run:     # probe, lock, sweep, pull the manifest
        journal = run.local_manifest        # the engine journals here, as for a local run
        run.view_main                       # private copies of the other manifests (the
                                            # main one and every shard's) for the merged view
        ...
        await run.checkpoint()              # publish the journal (also every interval)
                                            # on exit: publish, release the lock, clean up

A shard run (``remote`` named ``manifest.shard-I-of-N.jsonl``) keeps that manifest and
its lock. Readers take the other manifests from the bucket (``view_main``,
:meth:`locked_others`), never from local journals, which may be stale copies. A shard run
and a run without --shard exclude each other through their lock objects (siblings.py).

Start-up faults come before anything is fetched: a missing bucket or refused credentials
(exit 2, from the probe), the lock held by another run (exit 75). :meth:`read_only` gives
``status``, ``verify`` and ``plan`` the remote manifest without taking the lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType

import anyio

from .destination import ObjectDestination
from .remote import MANIFEST_NAME, RemoteManifest
from .siblings import check_apart, live_locks, manifest_names, pull


class RemoteRun:
    """See the module docstring. ``checkpoint_s``: publish at least this often while
    :meth:`publish_periodically` runs."""

    def __init__(self, dest: ObjectDestination, remote: RemoteManifest | None = None, *,
                 checkpoint_s: float = 60.0, local_manifest: Path | None = None) -> None:
        self.dest = dest
        self.remote = remote or RemoteManifest(dest)
        self.checkpoint_s = checkpoint_s
        self.local_manifest = local_manifest or dest.staging.run_dir / "manifest.jsonl"
        self.view_main = dest.staging.run_dir / "view" / MANIFEST_NAME
        self.others: list[str] = []  # the other manifests found at start, by name
        self.swept = 0
        self._lock = anyio.Lock()

    async def __aenter__(self) -> RemoteRun:
        await self.dest.probe()
        await self.remote.acquire()
        try:
            await self._start()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.remote.release()
            raise
        return self

    async def _start(self) -> None:
        """Under the lock: apart from runs of the other kind, sweep, pull."""
        own = self.remote.name
        listing = await manifest_names(self.dest)
        live = await live_locks(self.dest, [n for n in listing.locks if n != own],
                                self.remote._now())
        check_apart(live, own, self.dest.location)
        self.swept = await self.dest.sweep()
        if not await self.remote.pull(self.local_manifest):  # none yet: start afresh
            self.local_manifest.unlink(missing_ok=True)
        self.others = [n for n in listing.manifests if n != own]
        await pull(self.dest, self.others, self.view_main.parent)

    @contextlib.asynccontextmanager
    async def locked_others(self) -> AsyncIterator[list[Path]]:
        """The other manifests found at start, each locked and pulled to a private file
        to write to; on a clean exit each is published back, and always unlocked
        (``verify`` marks a bad file failed in whichever manifest holds it)."""
        held: list[tuple[RemoteManifest, Path]] = []
        try:
            for name in self.others:
                remote = RemoteManifest(self.dest, name=name, ttl=self.remote.ttl,
                                        now=self.remote._now)
                await remote.acquire()
                local = self.view_main.parent / name
                held.append((remote, local))
                if not await remote.pull(local):  # deleted meanwhile: nothing to mark
                    local.unlink(missing_ok=True)
            yield [local for _, local in held]
            for remote, local in held:
                if local.exists():
                    await remote.publish(local)
        finally:
            with anyio.CancelScope(shield=True):
                for remote, _ in held:
                    await remote.release()

    async def checkpoint(self) -> None:
        """Publish the local journal (one atomic PUT), if there is one yet."""
        async with self._lock:
            if self.local_manifest.exists():
                await self.remote.publish(self.local_manifest)

    async def publish_periodically(self) -> None:
        """Checkpoint every ``checkpoint_s`` until cancelled (run it in a task group)."""
        while True:
            await anyio.sleep(self.checkpoint_s)
            await self.checkpoint()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        with anyio.CancelScope(shield=True):
            try:
                await self.checkpoint()
            finally:
                await self.remote.release()
                await self.dest.close()

    @staticmethod
    @contextlib.asynccontextmanager
    async def read_only(dest: ObjectDestination) -> AsyncIterator[Path | None]:
        """The remote manifest as a local file (None if there is none), removed on exit."""
        await dest.probe()
        local = dest.staging.run_dir / "manifest.readonly.jsonl"
        try:
            yield local if await RemoteManifest(dest).pull(local) else None
        finally:
            await dest.close()

    @staticmethod
    @contextlib.asynccontextmanager
    async def read_all(dest: ObjectDestination) -> AsyncIterator[Path]:
        """Every manifest under the prefix (the main one and every shard's) copied to a
        private folder, removed on exit; yields the main one's path there (read it with
        :func:`backfill.shards.view.load_view`; it may not exist)."""
        await dest.probe()
        into = dest.staging.run_dir / "view"
        try:
            await pull(dest, (await manifest_names(dest)).manifests, into)
            yield into / MANIFEST_NAME
        finally:
            await dest.close()
