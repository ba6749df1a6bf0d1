"""The journal (the manifest): an append-only JSON Lines file of every file's outcome.

One compact JSON object per line; the last line for a key ``(app_id, filename)`` wins.

    record.py      Record and its line codec (pure)
    state.py       ManifestState (latest record per key, packed) and load_manifest
    halves.py      a big file parsed on two cores (the second half in a forked child)
    lock.py        ManifestLock: one run per manifest (flock)
    batching.py    when the writer writes and fsyncs (pure)
    file.py        the file opened for appending; a torn last line repaired first
    writer.py      ManifestWriter: the one task that appends
    compaction.py  should_compact (pure) and compact (atomic rewrite)
    session.py     open_journal(): lock, load, writer, shielded close, compaction

Importing this package loads only the pure codec; the rest is loaded when first used
(``from backfill.journal import open_journal``), so pure modules may use
:class:`Record` without pulling in locks, threads or file I/O.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..model import Status
from .record import VERSION, Record, check_line, now_utc, parse_line

if TYPE_CHECKING:
    from .compaction import compact, should_compact
    from .lock import ManifestLock, lock_path
    from .session import Journal, open_journal
    from .state import ManifestState, load_manifest
    from .writer import ManifestWriter, WriterStatistics

_LAZY = {
    "compact": "compaction", "should_compact": "compaction",
    "ManifestLock": "lock", "lock_path": "lock",
    "Journal": "session", "open_journal": "session",
    "ManifestState": "state", "load_manifest": "state",
    "ManifestWriter": "writer", "WriterStatistics": "writer",
}

__all__ = [
    "VERSION", "Journal", "ManifestLock", "ManifestState", "ManifestWriter", "Record",
    "Status", "WriterStatistics", "check_line", "compact", "load_manifest", "lock_path",
    "now_utc", "open_journal", "parse_line", "should_compact",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
