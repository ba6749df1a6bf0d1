"""The manifest of an object-store destination: it lives with the data.

``<prefix>/manifest.jsonl`` is pulled to a local journal at start (a cron container with
no disk resumes from it), the run journals locally as it does for a local destination,
and the journal is published back whole with one PUT at each checkpoint and at the end:
a PUT is atomic, so a reader sees the previous manifest or the new one, never a mix. A
crash between checkpoints costs only re-checks: objects already stored are adopted.

The lock is ``<prefix>/manifest.jsonl.lock``, created with a create-if-absent PUT and
holding JSON ``{"host", "pid", "token", "expires"}``. A second run finds it and stops
(LockedError, exit 75) unless it has expired, in which case it is taken over with a PUT
conditional on the ETag that was read (so of two runs taking over, one wins). The holder
renews it at each checkpoint (conditional on its own last ETag: a run whose lock was taken
over learns it there and stops) and deletes it at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from ...errors import LockedError, StorageError
from .backend import KeyExists, KeyMissing
from .destination import ObjectRequests

MANIFEST_NAME = "manifest.jsonl"
DEFAULT_LOCK_TTL = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class LockInfo:
    """The content of a lock object."""

    host: str
    pid: int
    token: str
    expires: datetime

    def to_json(self) -> bytes:
        return json.dumps({"host": self.host, "pid": self.pid, "token": self.token,
                           "expires": self.expires.isoformat()}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> LockInfo | None:
        try:
            raw = json.loads(data)
            return cls(str(raw["host"]), int(raw["pid"]), str(raw["token"]),
                       datetime.fromisoformat(raw["expires"]))
        except (ValueError, KeyError, TypeError):
            return None


class RemoteManifest:
    """Pull, publish and lock ``<prefix>/manifest.jsonl``; ``now`` is injectable."""

    def __init__(self, dest: ObjectRequests, *, name: str = MANIFEST_NAME,
                 ttl: timedelta = DEFAULT_LOCK_TTL,
                 now: Any = lambda: datetime.now(UTC)) -> None:
        self.dest = dest
        self.name = name
        self.key = dest.url.key(name)
        self.lock_key = dest.url.key(name + ".lock")
        self.uri = dest.url.uri(name)
        self.ttl = ttl
        self._now = now
        self._lock_etag: str | None = None
        self._info: LockInfo | None = None

    async def pull(self, local: Path) -> bool:
        """Copy the remote manifest to ``local`` (replaced atomically); False if none."""
        ob, store = self.dest._ob, self.dest.store
        tmp = local.with_name(local.name + f".pull-{secrets.token_hex(4)}")
        try:
            result = await self.dest._call(self.key, lambda: ob.get_async(store, self.key))
        except KeyMissing:
            return False
        try:
            f = await anyio.open_file(tmp, "xb")
            async with f:
                async for chunk in result.stream(min_chunk_size=1024 * 1024):
                    await f.write(chunk)
                await f.flush()
                await anyio.to_thread.run_sync(os.fsync, f.wrapped.fileno())
            os.replace(tmp, local)
        except OSError as exc:
            raise StorageError(f"{local}: cannot write the pulled manifest "
                               f"({exc.strerror or type(exc).__name__})") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return True

    async def publish(self, local: Path) -> None:
        """Upload ``local`` as the remote manifest with one atomic PUT (after renewing the
        lock, so a run that lost its lock never overwrites the new holder's manifest)."""
        await self.renew()
        ob, store = self.dest._ob, self.dest.store
        await self.dest._call(self.key, lambda: ob.put_async(store, self.key, local))  # streamed

    # ------------------------------------------------------------------ lock

    async def acquire(self) -> LockInfo:
        """Create the lock object, or take over an expired one; LockedError if held."""
        ob, store = self.dest._ob, self.dest.store
        info = LockInfo(socket.gethostname(), os.getpid(), secrets.token_hex(8),
                        self._now() + self.ttl)
        try:
            result = await self.dest._call(self.lock_key, lambda: ob.put_async(
                store, self.lock_key, info.to_json(), mode="create"))
        except KeyExists:
            result = await self._take_over(info)
        self._lock_etag, self._info = result.get("e_tag"), info
        return info

    async def _take_over(self, info: LockInfo) -> Any:
        ob, store = self.dest._ob, self.dest.store
        try:
            got = await self.dest._call(self.lock_key, lambda: ob.get_async(store, self.lock_key))
            data = bytes(await got.bytes_async())
        except KeyMissing:  # released meanwhile: try once more to create it
            return await self.dest._call(self.lock_key, lambda: ob.put_async(
                store, self.lock_key, info.to_json(), mode="create"))
        held = LockInfo.from_json(data)
        if held is not None and held.expires > self._now():
            raise LockedError(f"{self.uri} is locked by pid {held.pid} on {held.host} until "
                              f"{held.expires:%Y-%m-%d %H:%M:%S %Z}")
        etag = got.meta.get("e_tag")
        try:
            return await self.dest._call(self.lock_key, lambda: ob.put_async(
                store, self.lock_key, info.to_json(), mode={"e_tag": etag}))
        except KeyExists:
            raise LockedError(f"{self.uri}: another run took over the expired lock") from None

    async def renew(self) -> None:
        """Push the expiry on; LockedError if another run has taken the lock over."""
        if self._info is None:
            raise LockedError(f"{self.uri}: the lock is not held")
        ob, store = self.dest._ob, self.dest.store
        info = LockInfo(self._info.host, self._info.pid, self._info.token,
                        self._now() + self.ttl)
        try:
            result = await self.dest._call(self.lock_key, lambda: ob.put_async(
                store, self.lock_key, info.to_json(), mode={"e_tag": self._lock_etag}))
        except (KeyExists, KeyMissing):
            self._info = None
            raise LockedError(f"{self.uri}: the lock was taken over by another run") from None
        self._lock_etag, self._info = result.get("e_tag"), info

    async def release(self) -> None:
        """Delete the lock object if it is still ours."""
        if self._info is None:
            return
        ob, store = self.dest._ob, self.dest.store
        token = self._info.token
        self._info = None
        try:
            got = await self.dest._call(self.lock_key, lambda: ob.get_async(store, self.lock_key))
            held = LockInfo.from_json(bytes(await got.bytes_async()))
        except KeyMissing:
            return
        if held is not None and held.token == token:
            await self.dest.delete(self.lock_key)
