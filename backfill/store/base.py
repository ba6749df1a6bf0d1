"""The ``Store`` protocol: where report files go, and what "committed" promises.

The engine talks to a destination only through this protocol, in two steps per file::

    received = await store.receive(rel, chunks, expected_length=n)   # body taken in
    stored = await store.commit(received, replace=known)             # body published

so a downloader can release its connection slot between the two (the disk or upload
work of :meth:`Store.commit` runs after the request's slots are free). ``rel`` is the
file's relative key (``naming.render_path``), the same string the journal records.

The contract every store keeps:

- **receive** takes in the whole body, checking its length against ``expected_length``
  (``InvalidBody`` on a mismatch or truncation, ``BodyTooLarge`` above the store's
  limit). The body goes to a *private* place (memory, a temporary file, an unfinished
  multipart upload): nothing is visible at the final key, and nothing the store did not
  write is touched. The caller must :meth:`Store.commit` the result or
  :meth:`Received.discard` it. Exceptions of the chunk iterator pass through unchanged.
- **commit** checks the body is a readable zip (``InvalidBody`` if not), then publishes
  it at the final key *atomically and durably*: when it returns a :class:`Stored`, the
  whole body with that size and sha256 is at the key and survives a crash (for a local
  store: fsynced data, renamed, directory fsynced; for object storage: the PUT or
  multipart completion acknowledged). Killed or failing at any instant, the key holds
  the old content or the new one, never a part. On any error the private copy is
  discarded. A key already holding *the same bytes* is adopted (success: nothing
  rewritten, the usual case after a run killed between its commit and its journal
  line). *Other bytes* (or not a regular file) at the key are replaced only when
  ``replace`` is true — the caller's word that the manifest recorded a file at this key
  (a corrupt file ``verify`` found, fetched again); otherwise they are left untouched
  and that file fails, :class:`~backfill.errors.FileStorageError` naming the path (the
  run goes on). Object storage never overwrites, whatever ``replace`` says.
- **verify** re-reads a committed file: None when it has that size and sha256, else a
  short reason: exactly ``"missing"`` when there is nothing at the key, otherwise why
  it is corrupt (``"size X != Y"``, ``"sha256 mismatch"``, ``"not a regular file"``,
  ``"unreadable (…)"``). ``StorageError`` when ``rel`` would leave the store's root.
- **open_read** opens a committed file for reading (consumers such as tables
  extraction): a binary file object positioned at 0.
- **sweep** removes the private leftovers (partial files) of earlier, crashed runs and
  nothing else; call it only while holding the journal's lock. Returns how many.
- **close** releases what the store holds (threads, connections); idempotent.

Errors: the store raises :class:`~backfill.errors.StorageError` (naming the path or key
and a secret-free reason) for its own failures — :class:`~backfill.errors.FileStorageError`
when only that file (or folder) is at fault — :class:`~backfill.errors.BodyError`
subclasses for a bad body, nothing else. Paths never leave the root: ``rel`` must be
relative, without ``..``; a local store follows no symbolic link below its root (a link
met there fails that file).
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO, Protocol


@dataclass(frozen=True, slots=True)
class Stored:
    """A file committed: its relative key, size and lowercase hex sha256."""

    rel: PurePosixPath
    bytes: int
    sha256: str


class Received(Protocol):
    """A whole body taken in by :meth:`Store.receive`, not yet visible at its key."""

    @property
    def rel(self) -> PurePosixPath: ...

    @property
    def total(self) -> int:
        """The body's size in bytes."""
        ...

    def discard(self) -> None:
        """Forget the body and remove its private copy (never raises)."""
        ...


class Store(Protocol):
    """A destination for report files; see the module docstring for the contract."""

    @property
    def location(self) -> str:
        """Where the store writes, for messages (a directory, ``s3://bucket/prefix``)."""
        ...

    async def receive(
        self, rel: PurePosixPath, chunks: AsyncIterable[bytes], *, expected_length: int | None
    ) -> Received: ...

    async def commit(self, received: Received, *, replace: bool) -> Stored: ...

    async def verify(self, rel: PurePosixPath, *, sha256: str, size: int) -> str | None: ...

    def open_read(self, rel: PurePosixPath) -> AbstractAsyncContextManager[BinaryIO]: ...

    async def sweep(self) -> int: ...

    async def close(self) -> None: ...
