"""Compaction: rewrite the journal as one line per key, atomically, when it pays.

:func:`should_compact` decides from counts (pure); :func:`compact` rewrites the file
(temporary file, fsync, rename, fsync of the directory): killed at any instant, the
manifest is the old or the new file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import StorageError, os_error_reason
from ..store.local.durability import replace_durably
from .record import Record

MIN_SUPERSEDED = 64  # superseded lines below which a rewrite is never worth it


def should_compact(*, lines: int, keys: int, torn: bool) -> bool:
    """Rewrite the journal when superseded lines make up a fifth of it (and at least 64),
    or a torn line was found: a daily run adding a few lines to a huge manifest does not
    pay for a full rewrite.

    ``lines``: lines in the file now (read at load + written since); ``keys``: distinct
    keys among them.
    """
    return torn or lines - keys >= max(MIN_SUPERSEDED, lines // 5)


def compact(path: Path, records: Iterable[Record]) -> None:
    """Atomically replace the manifest with exactly ``records``, one line each.

    Writes ``<path>.compact.tmp``, fsyncs it, renames it over ``path`` and fsyncs the
    directory: killed at any instant, ``path`` is the old or the new file, readable.
    Call it under the lock and with no writer running (the writer would keep appending
    to the replaced file). OSError becomes StorageError.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".compact.tmp")
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # a crashed compaction's, or a planted link (unlink never follows)
        # new (O_EXCL) and never through a link (O_NOFOLLOW): nothing planted is written to
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o644)
        with os.fdopen(fd, "wb", buffering=1024 * 1024) as f:
            for record in records:
                f.write(record.to_line())
            f.flush()
            os.fsync(f.fileno())
        replace_durably(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StorageError(
            f"{path}: cannot compact the manifest ({os_error_reason(exc)})"
        ) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
