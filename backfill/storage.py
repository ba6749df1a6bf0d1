"""Durable file writes: stream a body to ``<file>.part``, check it, fsync, rename.

A file appears under its final name only once it is complete, a readable zip and
fsynced, together with the directory entry that names it; until then it lives as
``<final>.part``, which any failure or cancellation removes and which
:meth:`Storage.remove_stale_parts` sweeps after a crash. So "the final name exists"
always means "the whole, verified body is on disk".

Small bodies (up to ``chunk_size``, 256 KiB by default) are buffered and written,
checked, fsynced and renamed in a single worker-thread hop; larger ones are written
chunk by chunk, hashed in the same thread hop as each write, so memory stays at about
``chunk_size`` per download whatever the file size.

Errors: a body that is too large raises :class:`BodyTooLarge`; a truncated body or one
that is not a readable zip raises :class:`InvalidBody`; the local disk failing raises
:class:`StorageError` naming the path and the reason, nothing else. Exceptions raised by
the chunk iterator itself pass through unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import stat
import threading
import zipfile
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TypeVar, TypeVarTuple, Unpack

import anyio
import anyio.to_thread

from .errors import BodyTooLarge, InvalidBody, StorageError

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

PART_SUFFIX = ".part"
DEFAULT_MAX_FILE_BYTES = 2 * 1024**3
DEFAULT_CHUNK_SIZE = 256 * 1024
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive
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


def check_zip(path: Path) -> str | None:
    """The problem with the zip file at ``path`` (``"not a zip"``, ``"corrupt zip: …"``), or None.

    Checks the magic number, reads the central directory and decompresses every member
    to check its CRC (``ZipFile.testzip``). Memory stays bounded; time is proportional
    to the uncompressed size. OSError opening the file propagates; errors while
    decompressing (including bz2's OSError) count as corruption.
    """
    with open(path, "rb") as f:
        return _zip_problem(f)


def _zip_problem(f: IO[bytes]) -> str | None:
    if f.read(4) not in _ZIP_MAGIC:
        return "not a zip"
    f.seek(0)
    try:
        with zipfile.ZipFile(f) as zf:
            bad = zf.testzip()
    except zipfile.BadZipFile as exc:
        return f"corrupt zip: {_short(str(exc))}"
    except Exception as exc:  # zlib.error, EOFError, bz2's OSError, encrypted members, ...
        return f"corrupt zip: {type(exc).__name__}"
    if bad is not None:
        return f"corrupt zip: bad CRC in member {_short(bad)!r}"
    return None


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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

    __slots__ = ("final", "hasher", "part", "tail", "total")

    def __init__(self, final: Path, part: _Part, hasher: hashlib._Hash, tail: bytearray,
                 total: int) -> None:
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

    ``max_file_bytes`` caps a body (:class:`BodyTooLarge` beyond); ``chunk_size`` is both
    the small-file threshold and the write size of larger files.
    """

    def __init__(
        self,
        root: Path,
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        if max_file_bytes < 0:
            raise ValueError("max_file_bytes must be >= 0")
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        self.root = Path(root).absolute()
        self.max_file_bytes = max_file_bytes
        self.chunk_size = chunk_size
        self._durable_dirs: set[Path] = set()
        self._inside_dirs: set[PurePosixPath] = set()
        self._dir_lock = threading.Lock()

    # ------------------------------------------------------------------------ paths

    def target(self, rel: PurePosixPath) -> Path:
        """Absolute final path ``root/rel``; StorageError if it would leave ``root``.

        Refuses absolute paths, ``..`` and paths that resolve outside ``root`` through a
        symbolic link (defence in depth: :func:`naming.render_path` already sanitises).
        """
        rel = PurePosixPath(rel)
        if rel.is_absolute() or not rel.parts or any(p in ("..", ".") for p in rel.parts):
            raise StorageError(f"{rel}: path would leave the output directory")
        final = self.root.joinpath(*rel.parts)
        # Resolving costs a syscall per component: do it once per directory, then only
        # look at the file itself (a symbolic link there is resolved too).
        if rel.parent not in self._inside_dirs:
            self._check_inside(rel, final.parent)
            self._inside_dirs.add(rel.parent)
        if os.path.islink(final):
            self._check_inside(rel, final)
        return final

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
        final = self.target(rel)
        part = _Part(final.with_name(final.name + PART_SUFFIX))
        limit = self.max_file_bytes
        if expected_length is not None and expected_length > limit:
            raise BodyTooLarge(f"body of {expected_length} bytes exceeds the {limit}-byte limit")
        hasher = hashlib.sha256()
        buf = bytearray()
        total = 0
        try:
            async for chunk in chunks:
                total += len(chunk)
                if total > limit:
                    raise BodyTooLarge(f"body exceeds the {limit}-byte limit")
                if expected_length is not None and total > expected_length:
                    raise InvalidBody(
                        f"length mismatch: more than the {expected_length} bytes announced"
                    )
                buf += chunk
                if len(buf) >= self.chunk_size:
                    data, buf = buf, bytearray()
                    await self._in_thread(final, self._write_chunk, part, hasher, data)
            if expected_length is not None and total != expected_length:
                raise InvalidBody(f"truncated: got {total} of {expected_length} bytes")
        except BaseException:
            _discard(part)
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                # the iterator's own cleanup failing must not mask the error being raised
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await aclose()
            raise
        return Received(final, part, hasher, buf, total)

    async def commit(self, received: Received) -> Stored:
        """The second half of :meth:`save`: check the zip, fsync, rename, fsync the directory.

        On any exception or cancellation the ``.part`` file is removed (the final name is
        left untouched) and the exception re-raised.
        """
        r = received
        try:
            if r.part.fd < 0:  # the whole body fits in one buffer: one thread hop in all
                return await self._in_thread(r.final, self._store_small, r.final, r.part, r.tail)
            return await self._in_thread(r.final, self._finish, r.final, r.part, r.hasher,
                                         r.tail, r.total)
        except BaseException:
            r.discard()
            raise

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

    def _write_chunk(self, part: _Part, hasher: hashlib._Hash, data: bytearray) -> None:
        if part.fd < 0:
            self._open_part(part)
        hasher.update(data)
        _write_all(part.fd, data)

    def _store_small(self, final: Path, part: _Part, data: bytearray) -> Stored:
        problem = _zip_problem(io.BytesIO(data))
        if problem is not None:
            raise InvalidBody(problem)
        self._open_part(part)
        _write_all(part.fd, data)
        os.fsync(part.fd)
        part.close()
        os.replace(part.path, final)
        _fsync_dir(final.parent)
        return Stored(final, len(data), hashlib.sha256(data).hexdigest())

    def _finish(
        self, final: Path, part: _Part, hasher: hashlib._Hash, tail: bytearray, total: int
    ) -> Stored:
        hasher.update(tail)
        _write_all(part.fd, tail)
        problem = check_zip(part.path)
        if problem is not None:
            raise InvalidBody(problem)
        os.fsync(part.fd)
        part.close()
        os.replace(part.path, final)
        _fsync_dir(final.parent)
        return Stored(final, total, hasher.hexdigest())

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
