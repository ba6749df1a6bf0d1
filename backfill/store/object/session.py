"""One run against an object-store destination: lock, sweep, pull; checkpoints; publish.

    async with RemoteRun(dest) as run:     # probe, lock, sweep, pull the manifest
        journal = run.local_manifest        # the engine journals here, as for a local run
        ...
        await run.checkpoint()              # publish the journal (also every interval)
                                            # on exit: publish, release the lock, clean up

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
from .remote import RemoteManifest


class RemoteRun:
    """See the module docstring. ``checkpoint_s``: publish at least this often while
    :meth:`publish_periodically` runs."""

    def __init__(self, dest: ObjectDestination, remote: RemoteManifest | None = None, *,
                 checkpoint_s: float = 60.0, local_manifest: Path | None = None) -> None:
        self.dest = dest
        self.remote = remote or RemoteManifest(dest)
        self.checkpoint_s = checkpoint_s
        self.local_manifest = local_manifest or dest.staging.run_dir / "manifest.jsonl"
        self.swept = 0
        self._lock = anyio.Lock()

    async def __aenter__(self) -> RemoteRun:
        await self.dest.probe()
        await self.remote.acquire()
        try:
            self.swept = await self.dest.sweep()
            if not await self.remote.pull(self.local_manifest):  # none yet: start afresh
                self.local_manifest.unlink(missing_ok=True)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.remote.release()
            raise
        return self

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
