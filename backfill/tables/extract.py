"""Converting one downloaded report zip into its dataset's Parquet file.

:class:`Extractor` is synchronous and CPU-bound (call it in a worker thread from async
code). For each :class:`Job` it reads the zip twice (types from the whole file, then
conversion; see :mod:`.source`), writes ``tables/<report>/date=<day>/<workspace>.parquet``
atomically (:mod:`.files`) with the dataset's schema, and records the outcome in the
:class:`~.ledger.Ledger`. When the file needs a wider schema than the dataset had (a
new column, an integer column that is decimal this day), every earlier part is rewritten
to the new schema — row group by row group — and its ledger entry updated, so one
report's dataset always has one schema. A crash in the middle leaves parts of two
schemas; the next extraction of that report finds them (it reads every part's footer)
and finishes the rewrite.

An extraction that fails (unreadable zip, ragged CSV, disk error) is a ``failed`` entry
with the reason; it is retried by the next ``extract``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import PurePosixPath
from typing import Any, BinaryIO

import pyarrow as pa

from ..errors import StorageError
from ..journal import now_utc
from . import parquet
from .files import TableFiles
from .infer import arrow_type, column_type
from .ledger import EXTRACTED, FAILED, Entry, Ledger
from .names import PARTITION_KEY, dataset_dir, table_path
from .schema import Columns, merge, merge_all
from .source import BLOCK_SIZE, Member, Scan, SourceError, batches, scan


@dataclass(frozen=True, slots=True)
class Job:
    """One completed download to convert: the manifest's facts about it."""

    workspace: str
    app_id: str
    report: str
    day: date
    filename: str
    source: PurePosixPath  # the zip, relative to output_dir
    sha256: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.app_id, self.filename)


@dataclass(slots=True)
class _Dataset:
    """What is known of one report's dataset: its columns and each part's schema."""

    columns: Columns = field(default_factory=list)
    parts: dict[PurePosixPath, Any] = field(default_factory=dict)


class Extractor:
    """Converts jobs into Parquet under ``files.root``, recording them in ``ledger``."""

    def __init__(self, files: TableFiles, ledger: Ledger, *,
                 row_group_rows: int = parquet.ROW_GROUP_ROWS, block_size: int = BLOCK_SIZE,
                 now: Callable[[], str] = now_utc,
                 source: Callable[[PurePosixPath], BinaryIO] | None = None,
                 sync_every: int = 256) -> None:
        """``source`` opens a downloaded zip (seekable) by its path relative to the
        output directory; by default it is read from ``files.root`` without following a
        link. Another destination (object storage) passes its own opener."""
        self.files = files
        self.ledger = ledger
        self._source = source or files.open_read
        self.sync_every = sync_every
        self._pending: dict[tuple[str, str], Entry] = {}
        self.row_group_rows = row_group_rows
        self.block_size = block_size
        self._now = now
        self._datasets: dict[PurePosixPath, _Dataset] = {}

    def needed(self, job: Job) -> bool:
        """False when the ledger has this very download (same sha256) extracted."""
        entry = self.ledger.get(job.key)
        return not (entry is not None and entry.status == EXTRACTED
                    and entry.source_sha256 == job.sha256)

    def extract(self, job: Job) -> Entry:
        """Convert ``job``; the ledger entry (``extracted`` or ``failed``), recorded."""
        base = Entry(workspace=job.workspace, app_id=job.app_id, report=job.report,
                     date=job.day.isoformat(), filename=job.filename, status=FAILED,
                     source=str(job.source), source_sha256=job.sha256)
        try:
            entry = self._convert(job, base)
        except (SourceError, StorageError, pa.ArrowException, OSError) as exc:
            reason = str(exc) if isinstance(exc, SourceError | StorageError) else (
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            entry = Entry(**{**Ledger.document(base), "error": reason[:500],
                             "updated_at": self._now()})
        self._record(entry)
        if entry.status == EXTRACTED:
            # parts left narrower by a failure here are rewritten by the next extraction
            with contextlib.suppress(StorageError, pa.ArrowException, OSError):
                self._widen_others(job)
        return entry

    def flush(self) -> None:
        """Make the files written so far durable, then write their ledger lines."""
        if not self._pending:
            return
        self.files.sync()
        for entry in self._pending.values():
            self.ledger.put(entry)
        self._pending.clear()

    def _record(self, entry: Entry) -> None:
        if not self.files.batched or entry.status != EXTRACTED:
            self._pending.pop(entry.key, None)
            self.ledger.put(entry)
            return
        self._pending[entry.key] = entry
        if len(self._pending) >= self.sync_every:
            self.flush()

    # ------------------------------------------------------------------ one file

    def open_source(self, rel: PurePosixPath) -> BinaryIO:
        """The downloaded zip at ``rel`` (relative to the output directory), for reading."""
        return self._source(rel)

    def _opener(self, rel: PurePosixPath) -> Callable[[], BinaryIO]:
        return lambda: self._source(rel)

    def _convert(self, job: Job, base: Entry) -> Entry:
        opener = self._opener(job.source)
        found = scan(opener, block_size=self.block_size)
        if not found.members:
            skipped = ", ".join(found.skipped[:5]) or "none"
            raise SourceError(f"no CSV member in the zip (members: {skipped})")
        ds = self._dataset(job.report)
        target = merge(ds.columns, _columns(found))
        schema = parquet.arrow_schema(target)
        rel = table_path(job.report, job.day, job.workspace)
        origin = parquet.Origin(job.workspace, job.app_id, job.report, job.day,
                                str(job.source))
        types = {name: arrow_type(t) for name, t in target}
        rows_in = (parquet.complete(b, schema, origin)
                   for m in found.members
                   for b in batches(opener, m, types, block_size=self.block_size))
        rows, size, digest = self._write(rel, schema, rows_in)
        ds.columns = target
        ds.parts[rel] = schema
        return Entry(**{**Ledger.document(base), "status": EXTRACTED, "path": str(rel),
                        "rows": rows, "bytes": size, "sha256": digest,
                        "members": [m.name for m in found.members],
                        "skipped": found.skipped, "encoding": _encoding(found.members),
                        "updated_at": self._now()})

    def _write(self, rel: PurePosixPath, schema: Any,
               rows_in: Iterator[Any]) -> tuple[int, int, str]:
        name, sink = self.files.create_temp()
        try:
            with sink:
                rows = parquet.write(sink, schema, rows_in, row_group_rows=self.row_group_rows)
        except BaseException:
            self.files.discard_temp(name)
            raise
        size, digest = self.files.publish(name, rel)
        return rows, size, digest

    # ------------------------------------------------------------------ the dataset

    def _dataset(self, report: str) -> _Dataset:
        key = dataset_dir(report)
        ds = self._datasets.get(key)
        if ds is None:
            ds = self._datasets[key] = self._load(key)
        return ds

    def _load(self, folder: PurePosixPath) -> _Dataset:
        """Every part's footer: the dataset's columns are the merge of them all."""
        ds = _Dataset()
        for rel in self._parts(folder):
            try:
                with self.files.open_read(rel) as f:
                    ds.parts[rel] = parquet.read_schema(f)
            except (pa.ArrowException, OSError, StorageError):
                continue  # unreadable (verify reports it): replaced when its file is redone
        ds.columns = merge_all(
            [(n, column_type(t)) for n, t in parquet.csv_columns(s).items()]
            for s in ds.parts.values())
        return ds

    def _parts(self, folder: PurePosixPath) -> list[PurePosixPath]:
        out: list[PurePosixPath] = []
        try:
            with self.files.directory(folder, create=False) as fd:
                days = sorted(e.name for e in os.scandir(fd)
                              if e.name.startswith(f"{PARTITION_KEY}=")
                              and e.is_dir(follow_symlinks=False))
                for day in days:
                    with self.files.directory(folder / day, create=False) as dfd:
                        out += [folder / day / e.name for e in os.scandir(dfd)
                                if e.name.endswith(".parquet")
                                and e.is_file(follow_symlinks=False)]
        except FileNotFoundError:
            return []
        except StorageError:
            return []
        return sorted(out)

    def _widen_others(self, job: Job) -> None:
        """Rewrite every part of ``job``'s dataset whose schema is not the dataset's."""
        ds = self._dataset(job.report)
        schema = parquet.arrow_schema(ds.columns)
        owners = self.ledger.by_path()
        owners.update({e.path: e for e in self._pending.values() if e.path})
        for rel, part_schema in sorted(ds.parts.items()):
            if part_schema.equals(schema):
                continue
            with self.files.open_read(rel) as src:
                _, size, digest = self._write(rel, schema, iter(parquet.rewritten(src, schema)))
            ds.parts[rel] = schema
            owner = owners.get(str(rel))
            if owner is not None:
                self._record(owner.with_part(size, digest, self._now()))


def _columns(found: Scan) -> Columns:
    return merge_all(list(zip(m.columns, m.types, strict=True)) for m in found.members)


def _encoding(members: list[Member]) -> str:
    return "latin-1" if any(m.encoding != "utf-8" for m in members) else "utf-8"
