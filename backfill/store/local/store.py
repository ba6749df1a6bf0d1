"""The local-filesystem store: stream a body to a ``.part`` file, check it, fsync, rename.

A file appears under its final name only once it is complete, a readable zip and
fsynced, together with the directory entry that names it; until then it lives as a
``.part`` file in the run's private folder (:mod:`.part`), which any failure or
cancellation removes and which :meth:`LocalStore.sweep` removes after a crash. So "the
final name exists" always means "the whole, verified body is on disk".

Nothing is created, renamed or removed through a link the store did not make: the root
is opened once, and every folder below it is reached by descriptor, name by name,
without following a link, afresh at every commit (:mod:`.paths`); a link or a
non-directory on the way fails that file (:class:`FileStorageError` naming the path),
the run goes on. What is already at a final name is replaced only when the manifest
recorded a file there (``commit(..., replace=True)``); otherwise the same bytes are
adopted and anything else fails that file, untouched (:mod:`.place`).

Small bodies (up to ``chunk_size``, 256 KiB by default) are buffered, then checked and
hashed on the event loop when they inflate to at most 128 KiB (microseconds for the
usual stored body, by :mod:`backfill.zipcheck`; less than a thread hop), else in a
worker thread whose check stops when the caller is cancelled (a zip bomb neither holds
the loop nor delays Ctrl-C; zipcheck bounds its memory and size), and made durable
by a *group commit* (:mod:`.group`) in a single thread (``commit_threads``) contending
for the GIL with the event loop. Larger bodies are written chunk by chunk, hashed in the
same thread hop as each write, so memory stays at about ``write_size`` (1 MiB) per
download whatever the file size.

Errors: a body that is too large raises :class:`BodyTooLarge`; a truncated body or one
that is not a readable zip raises :class:`InvalidBody`; the local disk failing raises
:class:`StorageError` naming the path and the reason, nothing else. Exceptions raised by
the chunk iterator itself pass through unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path, PurePosixPath
from typing import BinaryIO, TypeVar, TypeVarTuple, Unpack

import anyio
import anyio.to_thread
from anyio.from_thread import check_cancelled

from ...errors import BodyTooLarge, InvalidBody, StorageError, os_error_reason, storage_error
from ...zipcheck import zip_problem
from ..base import Received, Stored
from .disk import Disk
from .durability import syncfs_function
from .group import GroupCommit, Job, commit_batch
from .part import PART_SUFFIX, LocalReceived, Part, part_name, partials_names
from .paths import Root
from .verify import open_final, sweep_parts, verify_file

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

DEFAULT_MAX_FILE_BYTES = 2 * 1024**3
DEFAULT_CHUNK_SIZE = 256 * 1024
DEFAULT_WRITE_SIZE = 1024 * 1024
# Checked on the event loop when the members inflate to at most this: a stored 10 KiB body
# costs ~5 µs (zipcheck's fast path), a deflated one inflating to 128 KiB ~0.5 ms.
_CHECK_ON_LOOP_BYTES = 128 * 1024


class LocalStore:
    """Stores report files under ``root``; see the module docstring for the guarantees.

    ``max_file_bytes`` caps a body (:class:`BodyTooLarge` beyond); ``chunk_size`` is the
    small-file threshold; a larger body is written ``write_size`` bytes (default 1 MiB)
    per thread hop, with one ``writev`` of the chunks as received (no copy to gather
    them); ``commit_threads`` bounds the worker threads of the small-file group commit.
    """

    def __init__(
        self, root: Path, *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        chunk_size: int = DEFAULT_CHUNK_SIZE, write_size: int = DEFAULT_WRITE_SIZE,
        commit_threads: int = 1, syncfs: bool = True, owner: str = "",
    ) -> None:
        if max_file_bytes < 0:
            raise ValueError("max_file_bytes must be >= 0")
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        self._root = Root(root)
        self.root = self._root.path
        self._partials = partials_names(owner)  # this run's own folder (see .part)
        self.partials = self.root.joinpath(*self._partials)
        self._disk = Disk(self._root, self._partials)
        self.max_file_bytes = max_file_bytes
        self.chunk_size = chunk_size
        self.write_size = max(write_size, chunk_size)
        self._group = GroupCommit(self._commit_batch, commit_threads)
        self._syncfs = syncfs_function() if syncfs else None

    @property
    def location(self) -> str:
        return str(self.root)

    def target(self, rel: PurePosixPath) -> Path:
        """Absolute final path ``root/rel`` (no system call); FileStorageError if it would
        leave ``root``."""
        return self._root.final(rel)

    async def save(
        self, rel: PurePosixPath, chunks: AsyncIterable[bytes], *, expected_length: int | None,
        replace: bool = False,
    ) -> Stored:
        """:meth:`receive`, then :meth:`commit`."""
        received = await self.receive(rel, chunks, expected_length=expected_length)
        return await self.commit(received, replace=replace)

    async def receive(
        self, rel: PurePosixPath, chunks: AsyncIterable[bytes], *, expected_length: int | None
    ) -> LocalReceived:
        """Take in the whole body, checked for length (see :class:`~backfill.store.Store`).

        A small body stays in memory; a larger one is in ``<file>.part``, not yet synced.
        On any exception or cancellation the ``.part`` file is removed and the exception
        re-raised; the final name is untouched.
        """
        final = self._root.final(rel)
        part = Part(self.partials / part_name(PurePosixPath(rel)))
        limit = self.max_file_bytes
        if expected_length is not None and expected_length > limit:
            raise BodyTooLarge(f"body of {expected_length} bytes exceeds the {limit}-byte limit")
        hasher = hashlib.sha256()
        held: list[bytes] = []  # chunks not written yet: referenced, not copied
        held_len = total = 0
        threshold = self.chunk_size  # then write_size, once the body turned out large
        try:
            async for chunk in chunks:
                total += len(chunk)
                if total > limit:
                    raise BodyTooLarge(f"body exceeds the {limit}-byte limit")
                if expected_length is not None and total > expected_length:
                    raise InvalidBody(
                        f"length mismatch: more than the {expected_length} bytes announced"
                    )
                held.append(chunk)
                held_len += len(chunk)
                if held_len >= threshold:
                    data, held, held_len = held, [], 0
                    threshold = self.write_size
                    await self._in_thread(final, self._disk.write_chunks, part, hasher, data)
            if expected_length is not None and total != expected_length:
                raise InvalidBody(f"truncated: got {total} of {expected_length} bytes")
            buf = held[0] if len(held) == 1 else b"".join(held)
        except BaseException:
            part.discard()
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                # the iterator's own cleanup failing must not mask the error being raised
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await aclose()
            raise
        return LocalReceived(PurePosixPath(rel), final, part, hasher, buf, total)

    async def commit(self, received: Received, *, replace: bool) -> Stored:
        """Check the zip, fsync, rename, fsync the folder (see the module docstring).
        ``replace``: the manifest recorded a file at this key, so other bytes at the final
        name are replaced; else they fail the file (the same bytes are adopted).

        On any exception or cancellation the ``.part`` file is removed (the final name is
        left untouched) and the exception re-raised.
        """
        if not isinstance(received, LocalReceived):
            raise TypeError("LocalStore.commit() takes what LocalStore.receive() returned")
        r = received
        r.replace = replace
        try:
            if r.part.fd >= 0:
                return await self._in_thread(r.final, self._disk.finish, r)
            # The whole body is in memory: check it here if that is quick (bounded: members
            # inflate one byte past their declared ≤ 128 KiB at most), else in a thread of
            # its own that a cancellation stops (a bomb never holds up the loop or Ctrl-C).
            problem: str | bool | None = zip_problem(r.tail, _CHECK_ON_LOOP_BYTES)
            if problem is False:
                problem, digest = await self._in_thread(r.final, _check_and_hash, r.tail)
            else:
                digest = hashlib.sha256(r.tail).hexdigest()
            if problem:
                raise InvalidBody(str(problem))
            job = Job(r, digest)
            await self._group.run(job)
        except BaseException:
            r.discard()
            raise
        if job.error is not None:
            r.discard()
            if isinstance(job.error, OSError):
                raise self._translate(r.final, job.error) from job.error
            raise job.error
        assert job.sha256 is not None
        return Stored(r.rel, r.total, job.sha256)

    async def verify(self, rel: PurePosixPath, *, sha256: str, size: int) -> str | None:
        """None if ``root/rel`` has ``size`` bytes and this sha256, else the reason (see
        :class:`~backfill.store.Store`; a link is not followed). Hashes in a worker
        thread, fixed-size buffer."""
        self._root.final(rel)  # StorageError for a key that would leave the root
        return await anyio.to_thread.run_sync(verify_file, self._root, rel, sha256.lower(),
                                              size)

    @contextlib.asynccontextmanager
    async def open_read(self, rel: PurePosixPath) -> AsyncIterator[BinaryIO]:
        """The committed file at ``rel``, never read through a link (StorageError)."""
        path = self._root.final(rel)
        try:
            fd = await anyio.to_thread.run_sync(open_final, self._root, rel)
        except OSError as exc:
            raise StorageError(f"{path}: {os_error_reason(exc)}") from None
        with os.fdopen(fd, "rb") as f:
            yield f

    async def sweep(self) -> int:
        """Delete what a crashed run left in this manifest's private folder, nothing else."""
        return await anyio.to_thread.run_sync(self.remove_stale_parts)

    def remove_stale_parts(self) -> int:
        """:meth:`sweep`, blocking; only under the manifest's lock (its folder)."""
        return sweep_parts(self._root, self._partials, PART_SUFFIX)

    async def close(self) -> None:
        """Remove the private folder if empty (every thread call has ended by now)."""
        await anyio.to_thread.run_sync(self._disk.close)


    # ------------------------------------------------------------------ in worker threads

    def _commit_batch(self, jobs: list[Job]) -> None:
        commit_batch(jobs, open_part=self._disk.open_part,
                     open_folder=self._disk.open_folder, syncfs=self._syncfs)

    async def _in_thread(
        self, final: Path, func: Callable[[Unpack[_Ts]], _T], *args: *_Ts
    ) -> _T:
        """Run ``func(*args)`` in a worker thread; OSError becomes a StorageError naming
        ``final`` (FileStorageError unless the fault is run-wide)."""
        try:
            return await anyio.to_thread.run_sync(func, *args)
        except OSError as exc:
            raise self._translate(final, exc) from exc

    def _translate(self, final: Path, exc: OSError) -> StorageError:
        """The StorageError of ``exc`` met for ``final``: run-wide when the output
        directory is gone (one stat, on the error path only) or the errno says so."""
        if exc.errno == errno.ENOENT and not os.path.isdir(self.root):
            return StorageError(f"{self.root}: the output directory is gone")
        return storage_error(final, exc)


def _check_and_hash(data: bytes) -> tuple[str | bool | None, str]:
    """In a worker thread: the zip's problem (stopped at once when the caller is
    cancelled: the check's checkpoint) and the body's sha256."""
    return zip_problem(data, checkpoint=check_cancelled), hashlib.sha256(data).hexdigest()
