"""Durable file writes: stream a body to ``<file>.part``, check it, fsync, rename.

A file appears under its final name only once it is complete, a readable zip and
fsynced, together with the directory entry that names it; until then it lives as
``<final>.part``, which any failure or cancellation removes and which
:meth:`Storage.remove_stale_parts` sweeps after a crash. So "the final name exists"
always means "the whole, verified body is on disk".

Small bodies (up to ``chunk_size``, 256 KiB by default) are buffered, then checked and
hashed on the event loop (when they inflate to at most 128 KiB: microseconds for the
usual stored body, by :mod:`.zipcheck`; less than a thread hop) and made durable by a
*group commit*: whatever bodies are waiting go to one worker thread together, which
writes every file, makes their data durable, renames them, then makes the new names
durable — the order per file is unchanged (data on disk, then
renamed, then the name on disk, and only then returned). Data and names are made
durable with one ``syncfs`` each per batch on Linux ≥ 5.8 (one journal commit and
device flush for the batch instead of two per file, which on a virtual disk cost
~0.35 ms and ~0.1-0.4 ms of CPU each), else with an fsync per file and one per
directory per batch; a batch of one file always takes the fsyncs. One thread hop per
batch instead of one per file, and a single thread (``commit_threads``) contending for
the GIL with the event loop, whose socket calls would otherwise wait for it. Larger
bodies are written chunk by chunk, hashed in the same thread hop as each write, so
memory stays at about ``write_size`` (1 MiB) per download whatever the file size.

Errors: a body that is too large raises :class:`BodyTooLarge`; a truncated body or one
that is not a readable zip raises :class:`InvalidBody`; the local disk failing raises
:class:`StorageError` naming the path and the reason, nothing else. Exceptions raised by
the chunk iterator itself pass through unchanged.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import platform
import stat
import sys
import threading
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeVar, TypeVarTuple, Unpack

import anyio
import anyio.to_thread

from .errors import BodyTooLarge, InvalidBody, StorageError
from .zipcheck import check_zip, zip_problem

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

PART_SUFFIX = ".part"
DEFAULT_MAX_FILE_BYTES = 2 * 1024**3
DEFAULT_CHUNK_SIZE = 256 * 1024
DEFAULT_WRITE_SIZE = 1024 * 1024
_REASONS = {
    errno.ENOSPC: "disk full",
    errno.EFBIG: "disk full (file too large for the file system)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "not a directory",
    errno.EISDIR: "is a directory",
    errno.ENAMETOOLONG: "name too long",
    errno.EIO: "I/O error",
    errno.ENOENT: "no such file or directory",
    errno.EEXIST: "already exists",
}


def os_error_reason(exc: OSError) -> str:
    """A short reason for an OSError, without the paths or text it may carry."""
    if exc.errno in _REASONS:
        return _REASONS[exc.errno]
    if exc.errno is not None:
        return os.strerror(exc.errno).lower()
    return type(exc).__name__


@dataclass(frozen=True, slots=True)
class Stored:
    """A file safely stored: absolute final path, size and lowercase hex sha256."""

    path: Path
    bytes: int
    sha256: str


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs_function() -> Callable[[int], None] | None:
    """``syncfs(fd)`` from the C library on Linux ≥ 5.8, else None.

    Older kernels do not report writeback errors to syncfs, so a failed write could go
    unnoticed: there, and where the call does not exist, files are fsynced one by one.
    """
    if sys.platform != "linux":
        return None
    try:
        major, minor = (int(x) for x in platform.release().split(".")[:2])
    except ValueError:
        return None
    if (major, minor) < (5, 8):
        return None
    try:
        func = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int]
    func.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        if func(fd) != 0:  # the GIL is released during the call (a CDLL, not a PyDLL)
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return syncfs


def _writev_all(fd: int, chunks: list[bytes]) -> None:
    views = [memoryview(c) for c in chunks]
    while views:
        n = os.writev(fd, views)
        while views and n >= len(views[0]):
            n -= len(views.pop(0))
        if n:
            views[0] = views[0][n:]


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class _Part:
    """The open ``.part`` file of one save; ``fd`` is -1 once closed."""

    __slots__ = ("fd", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


class _Job:
    """One small body in a group commit; ``sha256`` None: check and hash it in the thread."""

    __slots__ = ("error", "finished", "received", "sha256", "taken", "wake")

    def __init__(self, received: Received, sha256: str | None) -> None:
        self.received = received
        self.sha256 = sha256
        self.error: BaseException | None = None
        self.taken = False  # in a batch now
        self.finished = False
        # Made only when the owner has to wait (a leader never does): set when the job
        # finished, or when its owner should lead the next batch.
        self.wake: anyio.Event | None = None


class _GroupCommit:
    """Runs jobs in batches, at most ``threads`` batches at a time, without a task of its own.

    A caller arriving while a thread is free takes every queued job (its own included) to
    that thread: it leads the batch. Otherwise it waits; when a batch ends, its jobs'
    owners are woken, and so is the owner of the oldest queued job, to lead the next.
    """

    def __init__(self, run_batch: Callable[[list[_Job]], None], threads: int) -> None:
        self._run_batch = run_batch
        self._threads = threads
        self._queue: list[_Job] = []
        self._running = 0

    async def run(self, job: _Job) -> None:
        self._queue.append(job)
        while not job.finished:
            if not job.taken and self._running < self._threads:
                await self._lead()
                continue
            job.wake = wake = anyio.Event()
            try:
                await wake.wait()
            except BaseException:  # cancelled: leave nothing running on our behalf
                if not job.taken:
                    self._queue.remove(job)
                    self._pass_on()
                    raise
                with anyio.CancelScope(shield=True):  # a thread is at it: wait for the end
                    while not job.finished:
                        job.wake = wake = anyio.Event()
                        await wake.wait()
                raise

    async def _lead(self) -> None:
        batch, self._queue = self._queue, []
        for job in batch:
            job.taken = True
        self._running += 1
        try:
            # not abandoned on cancellation: the thread's work is waited for
            await anyio.to_thread.run_sync(self._run_batch, batch)
        finally:
            self._running -= 1
            for job in batch:
                job.finished = True
                if job.wake is not None:
                    job.wake.set()
            self._pass_on()

    def _pass_on(self) -> None:
        """Wake the owner of the oldest queued job if a thread is free for it."""
        if self._queue and self._running < self._threads:
            wake = self._queue[0].wake
            if wake is not None:  # None: its owner has not waited yet and will lead
                wake.set()


# Checked on the event loop when the members inflate to at most this: a stored 10 KiB body
# costs ~5 µs (zipcheck's fast path), a deflated one inflating to 128 KiB ~0.5 ms.
_CHECK_ON_LOOP_BYTES = 128 * 1024


def _quick_zip_problem(data: bytes) -> str | bool | None:
    """The problem with an in-memory body whose members inflate to ≤ 128 KiB, else False."""
    return zip_problem(data, _CHECK_ON_LOOP_BYTES)


def _discard(part: _Part) -> None:
    part.close()
    # if this fails, the original error matters more; remove_stale_parts sweeps it
    with contextlib.suppress(OSError):
        os.unlink(part.path)


class Received:
    """A whole body taken in by :meth:`Storage.receive`, not yet durable.

    Hand it to :meth:`Storage.commit`, or :meth:`discard` it. Holds at most
    ``chunk_size`` bytes of the body in memory (the rest is in the ``.part`` file).
    """

    __slots__ = ("final", "hasher", "part", "rel", "tail", "total")

    def __init__(self, rel: PurePosixPath, final: Path, part: _Part, hasher: hashlib._Hash,
                 tail: bytes, total: int) -> None:
        self.rel = rel
        self.final = final
        self.part = part
        self.hasher = hasher
        self.tail = tail
        self.total = total

    def discard(self) -> None:
        """Forget the body: close and remove the ``.part`` file, if there is one."""
        _discard(self.part)


class Storage:
    """Stores report files under ``root``; see the module docstring for the guarantees.

    ``max_file_bytes`` caps a body (:class:`BodyTooLarge` beyond); ``chunk_size`` is the
    small-file threshold; a larger body is written ``write_size`` bytes (default 1 MiB)
    per thread hop, with one ``writev`` of the chunks as received (no copy to gather
    them); ``commit_threads`` bounds the worker threads of the small-file group commit.
    """

    def __init__(
        self,
        root: Path,
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        write_size: int = DEFAULT_WRITE_SIZE,
        commit_threads: int = 1,
        syncfs: bool = True,
    ) -> None:
        if max_file_bytes < 0:
            raise ValueError("max_file_bytes must be >= 0")
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        self.root = Path(root).absolute()
        self.max_file_bytes = max_file_bytes
        self.chunk_size = chunk_size
        self.write_size = max(write_size, chunk_size)
        self._durable_dirs: set[Path] = set()
        self._inside_dirs: set[PurePosixPath] = set()
        self._dir_lock = threading.Lock()
        self._group = _GroupCommit(self._commit_batch, commit_threads)
        self._syncfs = _syncfs_function() if syncfs else None

    # ------------------------------------------------------------------------ paths

    def target(self, rel: PurePosixPath) -> Path:
        """Absolute final path ``root/rel``; StorageError if it would leave ``root``.

        Refuses absolute paths, ``..`` and paths that resolve outside ``root`` through a
        symbolic link (defence in depth: :func:`naming.render_path` already sanitises).
        """
        final = self._final(rel)
        self._check_link(PurePosixPath(rel), final)
        return final

    def _final(self, rel: PurePosixPath) -> Path:
        """:meth:`target` without looking at the file itself (no syscall once the
        directory is known): :meth:`save` looks at it in its worker thread, just before
        the rename, rather than on the event loop."""
        rel = PurePosixPath(rel)
        if rel.is_absolute() or not rel.parts or any(p in ("..", ".") for p in rel.parts):
            raise StorageError(f"{rel}: path would leave the output directory")
        final = self.root.joinpath(*rel.parts)
        # Resolving costs a syscall per component: do it once per directory, then only
        # look at the file itself (a symbolic link there is resolved too).
        if rel.parent not in self._inside_dirs:
            self._check_inside(rel, final.parent)
            self._inside_dirs.add(rel.parent)
        return final

    def _check_link(self, rel: PurePosixPath, final: Path) -> None:
        if os.path.islink(final):
            self._check_inside(rel, final)

    def _check_inside(self, rel: PurePosixPath, path: Path) -> None:
        try:
            inside = path.resolve().is_relative_to(self.root.resolve())
        except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop (Python < 3.13)
            raise StorageError(f"{path}: cannot resolve the path") from exc
        if not inside:
            raise StorageError(f"{rel}: path would leave the output directory")

    # ------------------------------------------------------------------------ save

    async def save(
        self,
        rel: PurePosixPath,
        chunks: AsyncIterable[bytes],
        *,
        expected_length: int | None,
    ) -> Stored:
        """Stream ``chunks`` to ``root/rel`` atomically and durably; return what was stored.

        ``expected_length`` is the Content-Length, if any: a body of another size raises
        InvalidBody. On any exception or cancellation the ``.part`` file is removed and
        the exception re-raised; an existing file at the final path is left untouched.
        The same as :meth:`commit` of :meth:`receive`.
        """
        received = await self.receive(rel, chunks, expected_length=expected_length)
        return await self.commit(received)

    async def receive(
        self,
        rel: PurePosixPath,
        chunks: AsyncIterable[bytes],
        *,
        expected_length: int | None,
    ) -> Received:
        """The first half of :meth:`save`: take in the whole body, checked for length.

        A small body stays in memory; a larger one is in ``<file>.part``, not yet synced.
        Nothing is durable and the final name is untouched until :meth:`commit`; the
        caller must commit or :meth:`Received.discard` the result. So a downloader can
        release its connection slot before the disk work. Errors as for :meth:`save`.
        """
        final = self._final(rel)
        part = _Part(final.with_name(final.name + PART_SUFFIX))
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
                    await self._in_thread(final, self._write_chunks, part, hasher, data)
            if expected_length is not None and total != expected_length:
                raise InvalidBody(f"truncated: got {total} of {expected_length} bytes")
            buf = held[0] if len(held) == 1 else b"".join(held)
        except BaseException:
            _discard(part)
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                # the iterator's own cleanup failing must not mask the error being raised
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await aclose()
            raise
        return Received(PurePosixPath(rel), final, part, hasher, buf, total)

    async def commit(self, received: Received) -> Stored:
        """The second half of :meth:`save`: check the zip, fsync, rename, fsync the directory.

        On any exception or cancellation the ``.part`` file is removed (the final name is
        left untouched) and the exception re-raised.
        """
        r = received
        try:
            if r.part.fd >= 0:
                return await self._in_thread(r.final, self._finish, r)
            # The whole body is in memory: check it here if that is quick, then join a batch.
            problem = _quick_zip_problem(r.tail)
            if problem:
                raise InvalidBody(str(problem))
            job = _Job(r, None if problem is False else hashlib.sha256(r.tail).hexdigest())
            await self._group.run(job)
        except BaseException:
            r.discard()
            raise
        if job.error is not None:
            r.discard()
            if isinstance(job.error, OSError):
                raise StorageError(f"{r.final}: {os_error_reason(job.error)}") from job.error
            raise job.error
        assert job.sha256 is not None
        return Stored(r.final, r.total, job.sha256)

    def _commit_batch(self, jobs: list[_Job]) -> None:
        """In a worker thread: every file written and its data made durable, then renamed,
        then the new names made durable. A job's error is kept in the job (its .part
        removed), never raised.

        Durable: one ``syncfs`` per file system for the whole batch where the kernel has
        it (Linux ≥ 5.8, which reports writeback errors to it), else an fsync per file
        and one per directory. Either way no file is renamed before its data is on disk,
        and nothing returns before the renames are.
        """
        written: list[_Job] = []
        for job in jobs:
            r = job.received
            try:
                if job.sha256 is None:
                    problem = zip_problem(r.tail)
                    if problem is not None:
                        raise InvalidBody(problem)
                    job.sha256 = hashlib.sha256(r.tail).hexdigest()
                self._open_part(r.part)
                _write_all(r.part.fd, r.tail)
            except Exception as exc:  # InvalidBody, OSError: this file only
                job.error = exc
                _discard(r.part)
            else:
                written.append(job)
        grouped = self._syncfs is not None and len(written) > 1
        devices: dict[Path, int] = {}  # directory -> st_dev: one fstat per directory
        try:
            if grouped:
                self._sync_filesystems(written, devices)
            renamed: list[_Job] = []
            for job in written:
                r = job.received
                try:
                    if not grouped:
                        os.fsync(r.part.fd)
                    self._check_link(r.rel, r.final)
                    os.replace(r.part.path, r.final)
                except Exception as exc:
                    job.error = exc
                    _discard(r.part)
                else:
                    renamed.append(job)
            if grouped:
                self._sync_filesystems(renamed, devices)
            else:
                for directory in {job.received.final.parent for job in renamed}:
                    try:
                        _fsync_dir(directory)
                    except OSError as exc:
                        for job in renamed:
                            if job.received.final.parent == directory:
                                job.error = exc
        except OSError as exc:  # a syncfs failed: nothing of this batch is known durable
            for job in written:
                if job.error is None:
                    job.error = exc
                    _discard(job.received.part)
        finally:
            for job in written:
                job.received.part.close()

    def _sync_filesystems(self, jobs: list[_Job], devices: dict[Path, int]) -> None:
        """syncfs once for each file system the jobs' open files are on."""
        assert self._syncfs is not None
        seen: set[int] = set()
        for job in jobs:
            fd = job.received.part.fd
            directory = job.received.final.parent
            dev = devices.get(directory)
            if dev is None:
                dev = devices[directory] = os.fstat(fd).st_dev
            if dev not in seen:
                seen.add(dev)
                self._syncfs(fd)

    async def _in_thread(
        self, final: Path, func: Callable[[Unpack[_Ts]], _T], *args: *_Ts
    ) -> _T:
        """Run ``func(*args)`` in a worker thread; OSError becomes StorageError(final, reason)."""
        try:
            return await anyio.to_thread.run_sync(func, *args)
        except OSError as exc:
            raise StorageError(f"{final}: {os_error_reason(exc)}") from exc

    def _open_part(self, part: _Part) -> None:
        self._ensure_dir(part.path.parent)
        part.fd = os.open(
            part.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644
        )

    def _write_chunks(self, part: _Part, hasher: hashlib._Hash, data: list[bytes]) -> None:
        if part.fd < 0:
            self._open_part(part)
        if len(data) > 64:  # many tiny chunks (a drip): one buffer, within IOV_MAX
            data = [b"".join(data)]
        for chunk in data:
            hasher.update(chunk)
        _writev_all(part.fd, data)

    def _finish(self, r: Received) -> Stored:
        part = r.part
        r.hasher.update(r.tail)
        _write_all(part.fd, r.tail)
        problem = check_zip(part.path)
        if problem is not None:
            raise InvalidBody(problem)
        os.fsync(part.fd)
        part.close()
        self._check_link(r.rel, r.final)
        os.replace(part.path, r.final)
        _fsync_dir(r.final.parent)
        return Stored(r.final, r.total, r.hasher.hexdigest())

    def _ensure_dir(self, directory: Path) -> None:
        """Create ``directory`` and its missing parents, each new entry made durable."""
        if directory in self._durable_dirs:
            return
        with self._dir_lock:  # another thread may be creating the same directories
            missing: list[Path] = []
            d = directory
            while not d.is_dir():
                missing.append(d)
                if d.parent == d:
                    break
                d = d.parent
            for d in reversed(missing):
                try:
                    os.mkdir(d)
                except FileExistsError:
                    if not d.is_dir():
                        raise NotADirectoryError(errno.ENOTDIR, "not a directory") from None
                _fsync_dir(d.parent)
            self._durable_dirs.add(directory)

    # ------------------------------------------------------------------------ upkeep

    def remove_stale_parts(self) -> int:
        """Delete every ``*.part`` file under ``root`` (left by a crash); return how many.

        Call it only while holding the manifest lock: a concurrent run's downloads in
        flight are ``.part`` files too.
        """
        removed = 0
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                if not name.endswith(PART_SUFFIX):
                    continue
                path = Path(dirpath, name)
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise StorageError(f"{path}: {os_error_reason(exc)}") from exc
                removed += 1
        return removed

    async def verify(self, rel: PurePosixPath, *, sha256: str, size: int) -> str | None:
        """None if ``root/rel`` has ``size`` bytes and this sha256, else the reason.

        Reasons: ``"missing"``, ``"size X != Y"`` (actual != expected),
        ``"sha256 mismatch"``, ``"not a regular file"``, ``"unreadable (…)"``.
        Hashes in a worker thread with a fixed-size buffer.
        """
        path = self.target(rel)
        return await anyio.to_thread.run_sync(_verify_file, path, sha256.lower(), size)


def _verify_file(path: Path, sha256: str, size: int) -> str | None:
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                return "not a regular file"
            if st.st_size != size:
                return f"size {st.st_size} != {size}"
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except FileNotFoundError:
        return "missing"
    except IsADirectoryError:
        return "not a regular file"
    except OSError as exc:
        return f"unreadable ({os_error_reason(exc)})"
    return None if digest == sha256 else "sha256 mismatch"
