"""Report files in an object store: nothing torn, nothing overwritten, integrity checked.

How one file is stored (``commit`` of a body that :class:`.Staging` took in and hashed):

1. The zip is checked (in memory, or from the staged file).
2. **Small body** (≤ ``part_size``, 8 MiB by default): one ``PUT`` at the final key with
   ``If-None-Match: *`` (obstore ``mode="create"``). A PUT is atomic, so no partial
   object is ever visible. obstore buffers a create-mode body whole, which is why only
   bodies up to one part take this path.
3. **Large body**: a multipart upload streamed from the staged file (``part_size`` parts,
   ``upload_parts`` in flight, 2 by default) to a temporary key
   ``<prefix>/.backfill-tmp/<run>/<id>``,
   then a server-side copy to the final key that succeeds only if the key is still free
   (``copy(..., overwrite=False)``: S3 multipart copy completed with If-None-Match, Azure
   and GCS native preconditions), then the temporary object is deleted. The final key
   never holds anything but a whole object.
4. **Integrity**: S3 uploads carry ``x-amz-checksum-sha256`` (checked by S3, ignored by
   moto), and what the store holds is compared with the local hash before the file counts
   as stored: for a single PUT the returned ETag when it is the body's MD5 (S3 without
   KMS), else the object is read back and its sha256 compared; a large body's temporary
   object is read back and re-hashed before it is copied. A mismatch fails the file
   (``InvalidBody``, retried) and removes what this run wrote.
5. **Already there**: the object at the key is read and hashed; the same bytes are
   adopted as stored (no upload), other bytes are never overwritten — even when the
   manifest recorded a file there (``commit``'s ``replace`` is not honoured: an object
   store keeps what it has) — and fail that file with :class:`ObjectConflict` (the run
   goes on).

Objects' sha256 are streamed in ``READ_BYTES`` pieces, so memory stays bounded by the
upload parts in flight, whatever the file size.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO

import anyio
import anyio.to_thread

from ...errors import FileStorageError, InvalidBody, StorageError
from ...zipcheck import check_zip, zip_problem
from ..base import Received, Store, Stored
from .backend import KeyExists, KeyMissing, translate
from .settings import Connection
from .staging import Staged, Staging
from .url import ObjectURLError

if TYPE_CHECKING:
    from obstore.store import ObjectStore

TMP_DIR = ".backfill-tmp"
READ_BYTES = 1024 * 1024


class ObjectConflict(FileStorageError):
    """Another object with other bytes is at the key: it is left alone, that file fails."""


@dataclass(frozen=True, slots=True)
class StoredObject(Stored):
    """A file safely stored: the Store protocol's ``Stored`` (relative key, size, sha256)
    plus its URI and object key, and whether it was already there."""

    uri: str
    key: str
    adopted: bool = False


class ObjectRequests:
    """The requests a destination makes under ``conn.url``, each translated to our errors
    (``translate``): probe, head, digest, delete."""

    def __init__(self, conn: Connection, store: ObjectStore) -> None:
        import obstore

        self._ob: Any = obstore
        self.conn = conn
        self.url = conn.url
        self.store = store
        self._pid = os.getpid()  # obstore is not fork-safe: a child must open its own

    @property
    def location(self) -> str:
        """The destination, for messages: ``s3://bucket/prefix``."""
        return str(self.url)

    def _key(self, rel: PurePosixPath | str) -> str:
        try:
            return self.url.key(rel)
        except ObjectURLError as exc:
            raise StorageError(str(exc)) from None

    # ------------------------------------------------------------------ requests

    async def _call(self, what: str, request: Callable[[], Any]) -> Any:
        """Await ``request()`` (an obstore call, made only here, after the fork check),
        its exceptions translated."""
        if os.getpid() != self._pid:
            raise StorageError(f"{self.location}: opened before a fork; open the destination "
                               "in the process that uses it (obstore is not fork-safe)")
        try:
            return await request()
        except StopAsyncIteration:
            raise
        except Exception as exc:
            raise translate(exc, self.conn, what) from None

    async def probe(self) -> None:
        """List one key under the prefix: AccessDenied / BucketMissing (exit 2) or
        DestinationUnavailable now, before anything is fetched."""
        stream = self._ob.list(self.store, prefix=self.url.prefix or None, chunk_size=1)
        with contextlib.suppress(StopAsyncIteration):  # an empty prefix is fine
            await self._call("list", lambda: stream.__anext__())

    async def head(self, key: str) -> dict[str, Any] | None:
        """The object's metadata, None if there is none."""
        try:
            meta: dict[str, Any] = await self._call(
                key, lambda: self._ob.head_async(self.store, key))
        except KeyMissing:
            return None
        return meta

    async def digest(self, key: str) -> tuple[int, str]:
        """Size and sha256 of the object at ``key``, streamed (KeyMissing if none)."""
        result = await self._call(key, lambda: self._ob.get_async(self.store, key))
        sha = hashlib.sha256()
        size = 0
        stream = result.stream(min_chunk_size=READ_BYTES)
        while True:
            try:
                chunk = await self._call(key, lambda: stream.__anext__())
            except StopAsyncIteration:
                break
            size += len(chunk)
            sha.update(chunk)
        return size, sha.hexdigest()

    async def delete(self, key: str) -> None:
        with contextlib.suppress(KeyMissing):
            await self._call(key, lambda: self._ob.delete_async(self.store, key))



class ObjectDestination(ObjectRequests):
    """Stores report files under ``conn.url``; see the module docstring for the promises."""

    def __init__(self, conn: Connection, store: ObjectStore, staging: Staging, *,
                 upload_parts: int = 2, upload_slots: int = 8, scope: str = "") -> None:
        super().__init__(conn, store)
        self.staging = staging
        self.part_size = conn.options.part_size
        self.upload_parts = upload_parts
        self._slots = anyio.CapacityLimiter(upload_slots)  # bodies being uploaded at once
        # a shard's temporary objects live in a folder of its own (scope): only it sweeps it
        self._tmp_root = self.url.key(f"{TMP_DIR}/{scope}" if scope else TMP_DIR)
        self._run_tmp = f"{self._tmp_root}/{staging.run_dir.name}"

    # ------------------------------------------------------------------ save

    async def receive(self, rel: PurePosixPath | str, chunks: AsyncIterable[bytes], *,
                      expected_length: int | None) -> Staged:
        """Take in and hash the whole body (staged locally if large); see :class:`Staging`."""
        self._key(rel)  # refuse a path outside the prefix before fetching a byte
        return await self.staging.receive(PurePosixPath(rel), chunks,
                                          expected_length=expected_length)

    async def save(self, rel: PurePosixPath | str, chunks: AsyncIterable[bytes], *,
                   expected_length: int | None, replace: bool = False) -> StoredObject:
        """:meth:`receive` then :meth:`commit`."""
        return await self.commit(await self.receive(rel, chunks,
                                                    expected_length=expected_length),
                                 replace=replace)

    async def commit(self, received: Received, *, replace: bool = False) -> StoredObject:
        """Store a received body at its final key (module docstring, steps 1-5; other
        bytes there are never overwritten, whatever ``replace`` says)."""
        if not isinstance(received, Staged):
            received.discard()
            raise TypeError("commit() takes what this destination's receive() returned")
        staged = received
        try:
            await self._check_zip(staged)
            key = self._key(staged.rel)
            async with self._slots:  # so at most upload_slots × part_size in memory
                if staged.size <= self.part_size:
                    if staged.body is None:
                        assert staged.path is not None
                        staged.body = await anyio.to_thread.run_sync(staged.path.read_bytes)
                    return await self._put_small(staged, key)
                return await self._put_large(staged, key)
        finally:
            staged.discard()

    async def _check_zip(self, staged: Staged) -> None:
        if staged.body is not None:
            problem = zip_problem(staged.body)
        else:
            assert staged.path is not None
            problem = await anyio.to_thread.run_sync(check_zip, staged.path)
        if problem:
            raise InvalidBody(str(problem))

    def _stored(self, staged: Staged, key: str, adopted: bool = False) -> StoredObject:
        return StoredObject(staged.rel, staged.size, staged.sha256, self.url.uri(staged.rel),
                            key, adopted)

    async def _put_small(self, staged: Staged, key: str) -> StoredObject:
        body = staged.body
        assert body is not None
        try:
            result = await self._call(key, lambda: self._ob.put_async(self.store, key, body,
                                                              mode="create"))
        except KeyExists:
            return await self._existing(staged, key)
        etag = (result.get("e_tag") or "").strip('"').lower()
        if etag != staged.md5:  # not a plain-MD5 ETag (Azure, GCS, KMS), or a mismatch
            size, sha = await self.digest(key)
            if (size, sha) != (staged.size, staged.sha256):
                await self.delete(key)  # ours: the create succeeded
                raise InvalidBody(f"{key}: the stored object differs from the body "
                                  f"(size {size}, sha256 {sha[:12]}…); removed")
        return self._stored(staged, key)

    async def _put_large(self, staged: Staged, key: str) -> StoredObject:
        if await self.head(key) is not None:
            return await self._existing(staged, key)
        tmp = f"{self._run_tmp}/{secrets.token_hex(8)}"
        try:
            await self._upload(staged, tmp)
            size, sha = await self.digest(tmp)
            if (size, sha) != (staged.size, staged.sha256):
                raise InvalidBody(f"{key}: the uploaded object differs from the body "
                                  f"(size {size}, sha256 {sha[:12]}…)")
            try:
                await self._call(key, lambda: self._ob.copy_async(self.store, tmp, key,
                                                          overwrite=False))
            except KeyExists:
                return await self._existing(staged, key)
            return self._stored(staged, key)
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(StorageError):
                await self.delete(tmp)

    async def _upload(self, staged: Staged, tmp: str) -> None:
        """Upload the staged body to ``tmp``, in parts when it is larger than one."""
        if staged.path is None:
            source: Any = staged.body
        else:  # opened here and closed here: obstore leaves a Path's file to the GC
            source = await anyio.to_thread.run_sync(open, staged.path, "rb")
        try:
            await self._call(tmp, lambda: self._ob.put_async(
                self.store, tmp, source, use_multipart=staged.size > self.part_size,
                chunk_size=self.part_size, max_concurrency=self.upload_parts))
        finally:
            if staged.path is not None:
                source.close()

    async def _existing(self, staged: Staged, key: str) -> StoredObject:
        """Adopt the object at ``key`` if it holds these bytes; ObjectConflict if not."""
        meta = await self.head(key)
        if meta is not None and meta["size"] == staged.size:
            size, sha = await self.digest(key)
            if (size, sha) == (staged.size, staged.sha256):
                return self._stored(staged, key, adopted=True)
        raise ObjectConflict(f"{self.url.uri(staged.rel)}: an object with other bytes is "
                             "already there; not overwritten")

    # ------------------------------------------------------------------ upkeep

    async def sweep_temporary(self) -> int:
        """Delete the temporary objects runs left under ``<prefix>/.backfill-tmp/``
        (a kill mid-upload; a shard run: under its own folder there only); return how
        many. Only while holding the lock."""
        prefix = self._tmp_root
        stream = self._ob.list(self.store, prefix=prefix, chunk_size=100)
        removed = 0
        while True:
            try:
                batch = await self._call("list", lambda: stream.__anext__())
            except StopAsyncIteration:
                return removed
            for meta in batch:
                await self.delete(meta["path"])
                removed += 1

    async def sweep(self) -> int:
        """The Store protocol's sweep: temporary objects and staging directories that
        killed runs left; only while holding the lock."""
        swept = await self.sweep_temporary()
        return swept + await anyio.to_thread.run_sync(self.staging.sweep)

    @contextlib.asynccontextmanager
    async def open_read(self, rel: PurePosixPath | str) -> AsyncIterator[BinaryIO]:
        """The object at ``rel`` as a local file (downloaded to the staging directory,
        removed on exit), positioned at 0."""
        key = self._key(rel)
        result = await self._call(key, lambda: self._ob.get_async(self.store, key))
        path = self.staging.run_dir / f"read-{secrets.token_hex(8)}"
        f = await anyio.to_thread.run_sync(open, path, "xb+")
        try:
            async for chunk in result.stream(min_chunk_size=READ_BYTES):
                await anyio.to_thread.run_sync(f.write, chunk)
            f.seek(0)
            yield f
        finally:
            f.close()
            with contextlib.suppress(OSError):
                os.unlink(path)

    async def close(self) -> None:
        """Remove this run's staging directory (idempotent)."""
        self.staging.close()

    async def verify(self, rel: PurePosixPath | str, *, sha256: str, size: int) -> str | None:
        """None if the object at ``rel`` has ``size`` bytes and this sha256 (re-hashed by
        streaming it), else the reason: ``missing``, ``size X != Y``, ``sha256 mismatch``."""
        key = self._key(rel)
        meta = await self.head(key)
        if meta is None:
            return "missing"
        if meta["size"] != size:
            return f"size {meta['size']} != {size}"
        try:
            got_size, got = await self.digest(key)
        except KeyMissing:
            return "missing"
        if got_size != size:
            return f"size {got_size} != {size}"
        return None if got == sha256.lower() else "sha256 mismatch"


if TYPE_CHECKING:  # mypy checks that ObjectDestination keeps the Store protocol
    def _is_a_store(dest: ObjectDestination) -> Store:
        return dest
