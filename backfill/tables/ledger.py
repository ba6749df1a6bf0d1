"""The extraction ledger: what was converted to Parquet, kept apart from the manifest.

JSON Lines beside the manifest (``manifest.jsonl`` → ``manifest.tables.jsonl``), one
object per line, the last line for a key ``(app_id, filename)`` wins — the manifest's
key, so a table is tied to the download it came from. The ledger is derived data: a
line that cannot be parsed is ignored (that file is simply converted again), a torn last
line is ended before the next append. Lines are written whole (one ``write`` each) and
fsynced on :meth:`Ledger.close`, not one by one: a crash may lose the last lines, and
their files are then converted again — never a table recorded that is not on disk, as
every Parquet file is durable before its line is written. A failed extraction is a
``failed`` line here; the manifest's record of the download is never touched.

A record (``v`` 1)::

    {"v": 1, "workspace": "acme-eu", "app_id": "ACME01", "report": "Daily campaign summary",
     "date": "2026-11-21", "filename": "Daily_campaign_summary_20261121.zip",
     "status": "extracted", "source": "acme-eu/Daily_campaign_summary/…zip",
     "source_sha256": "…", "path": "tables/daily_campaign_summary/date=2026-11-21/acme-eu.parquet",
     "rows": 1234, "bytes": 56789, "sha256": "…", "members": ["….csv"], "skipped": [],
     "encoding": "utf-8", "error": null, "updated_at": "2026-11-27T00:41:03Z"}
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import StorageError, os_error_reason
from ..safe_open import NotRegularFile, open_regular

VERSION = 1
EXTRACTED = "extracted"
FAILED = "failed"


def ledger_path(manifest: Path) -> Path:
    """``<dir>/<manifest stem>.tables.jsonl``."""
    return manifest.with_name(f"{manifest.stem}.tables.jsonl")


@dataclass(frozen=True, slots=True)
class Entry:
    """One extraction's outcome."""

    workspace: str
    app_id: str
    report: str
    date: str
    filename: str
    status: str
    source: str
    source_sha256: str
    path: str | None = None
    rows: int | None = None
    bytes: int | None = None
    sha256: str | None = None
    members: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    encoding: str | None = None
    error: str | None = None
    updated_at: str = ""
    v: int = VERSION

    @property
    def key(self) -> tuple[str, str]:
        return (self.app_id, self.filename)

    def to_line(self) -> builtins.bytes:
        obj = asdict(self)
        obj = {"v": obj.pop("v"), **obj}
        return (json.dumps(obj, separators=(",", ":"), ensure_ascii=True) + "\n").encode()

    def with_part(self, size: int, sha256: str, at: str) -> Entry:
        """The same extraction after its Parquet file was rewritten (a wider schema)."""
        return replace(self, bytes=size, sha256=sha256, updated_at=at)


_FIELDS = frozenset(Entry.__dataclass_fields__)


def _parse(line: builtins.bytes) -> Entry | None:
    try:
        obj = json.loads(line)
        if not isinstance(obj, dict) or obj.get("v") != VERSION or set(obj) - _FIELDS:
            return None
        return Entry(**obj)
    except (ValueError, TypeError):
        return None


class Ledger:
    """The ledger loaded in memory (latest entry per key), appending as it goes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[tuple[str, str], Entry] = {}
        self.ignored = 0
        self._fd: int | None = None
        self._load()

    def _load(self) -> None:
        try:  # never through a link (nor a FIFO): appends refuse one too (O_NOFOLLOW)
            with os.fdopen(open_regular(self.path, follow_symlinks=False), "rb") as f:
                for line in f:
                    entry = _parse(line) if line.strip() else None
                    if entry is None:
                        self.ignored += bool(line.strip())
                        continue
                    self.entries[entry.key] = entry
        except FileNotFoundError:
            return
        except NotRegularFile as exc:
            raise StorageError(f"{self.path}: {exc}") from None
        except OSError as exc:
            raise StorageError(f"{self.path}: {os_error_reason(exc)}") from exc

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries.values())

    def get(self, key: tuple[str, str]) -> Entry | None:
        return self.entries.get(key)

    def by_path(self) -> dict[str, Entry]:
        """Extracted entries by their Parquet path."""
        return {e.path: e for e in self.entries.values() if e.status == EXTRACTED and e.path}

    def put(self, entry: Entry) -> None:
        """Append ``entry`` (one whole-line write; made durable by :meth:`close`)."""
        data = entry.to_line()
        try:
            fd = self._open()
            os.write(fd, data)
        except OSError as exc:
            raise StorageError(f"{self.path}: {os_error_reason(exc)}") from exc
        self.entries[entry.key] = entry

    def _open(self) -> int:
        if self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o644)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                os.write(fd, b"\n")  # end a torn last line: it stays one ignored line
            self._fd = fd
        return self._fd

    def close(self) -> None:
        """fsync and close the file (if anything was appended)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.fsync(fd)
            except OSError as exc:
                raise StorageError(f"{self.path}: {os_error_reason(exc)}") from exc
            finally:
                with contextlib.suppress(OSError):
                    os.close(fd)

    @staticmethod
    def document(entry: Entry) -> dict[str, Any]:
        return asdict(entry)
