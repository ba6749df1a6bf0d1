"""Compaction: rewrite the journal as one line per key, atomically, when it pays.

:func:`should_compact` decides from counts (pure); :func:`compact` rewrites the file
(temporary file, fsync, rename, fsync of the directory): killed at any instant, the
manifest is the old or the new file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import StorageError, os_error_reason
from ..safe_write import LinkAtName, replacing
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
    directory (:func:`backfill.safe_write.replacing`): killed at any instant, ``path`` is
    the old or the new file, readable. A link at ``path`` is refused, nothing changed.
    Call it under the lock and with no writer running (the writer would keep appending
    to the replaced file). OSError becomes StorageError.
    """
    path = Path(path)
    try:
        # the temporary file new (O_EXCL) and never through a link (O_NOFOLLOW); a link
        # at the manifest's own name is refused, as the run that opened it refused it
        with replacing(path, temp=path.name + ".compact.tmp", buffering=1024 * 1024) as f:
            for record in records:
                f.write(record.to_line())
    except LinkAtName as exc:
        raise StorageError(f"{path}: cannot compact the manifest ({exc.strerror})") from None
    except OSError as exc:
        raise StorageError(
            f"{path}: cannot compact the manifest ({os_error_reason(exc)})"
        ) from None
