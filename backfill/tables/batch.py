"""``backfill extract``: convert every completed download not yet extracted.

Under the tables lock (``<ledger>.lock``: one converter at a time; a ``run`` may go on
downloading meanwhile, its manifest is only read): load the manifest and the ledger,
sweep private folders of dead runs, then convert, oldest first, every ``completed``
file whose ledger entry is missing, failed, or for another download (another sha256).
``--workspace`` and ``--start``/``--end`` narrow the files considered; by default every
completed file is, whatever the config's download window.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Any

from ..journal import ManifestLock, Record, Status, load_manifest
from .extract import Extractor, Job
from .files import TableFiles
from .ledger import EXTRACTED, Entry, Ledger, ledger_path


@dataclass(frozen=True, slots=True)
class Selection:
    """Which completed files to consider: workspaces (empty: all) and a date range per
    workspace (``None``: unbounded)."""

    workspaces: frozenset[str] = frozenset()
    ranges: Mapping[str, tuple[date | None, date | None]] = field(default_factory=dict)

    def wants(self, rec: Record) -> bool:
        if self.workspaces and rec.workspace not in self.workspaces:
            return False
        start, end = self.ranges.get(rec.workspace, (None, None))
        day = date.fromisoformat(rec.date)
        return (start is None or day >= start) and (end is None or day <= end)


@dataclass(slots=True)
class Outcome:
    """What one ``extract`` did."""

    written: list[Entry] = field(default_factory=list)
    failed: list[Entry] = field(default_factory=list)
    unchanged: int = 0

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def document(self) -> dict[str, Any]:
        return {
            "written": [{"path": e.path, "rows": e.rows, "bytes": e.bytes,
                         "workspace": e.workspace, "report": e.report, "date": e.date,
                         "source": e.source} for e in self.written],
            "failed": [{"source": e.source, "workspace": e.workspace, "report": e.report,
                        "date": e.date, "error": e.error} for e in self.failed],
            "unchanged": self.unchanged,
            "rows": sum(e.rows or 0 for e in self.written),
        }


def jobs(records: Iterable[Record], selection: Selection) -> Iterator[Job]:
    """The completed downloads ``selection`` wants, oldest first."""
    chosen = [r for r in records if r.status is Status.COMPLETED and r.path and r.sha256
              and selection.wants(r)]
    chosen.sort(key=lambda r: (r.date, r.report, r.workspace))
    for r in chosen:
        assert r.path is not None and r.sha256 is not None
        yield Job(r.workspace, r.app_id, r.report, date.fromisoformat(r.date), r.filename,
                  PurePosixPath(r.path), r.sha256)


def open_extractor(output_dir: Path, manifest: Path) -> Extractor:
    """An extractor over ``output_dir`` with the manifest's ledger, dead runs swept."""
    files = TableFiles(output_dir, batched=True)
    files.sweep()
    return Extractor(files, Ledger(ledger_path(manifest)))


def close_extractor(extractor: Extractor) -> None:
    """Flush (sync, then the pending ledger lines) and close."""
    try:
        extractor.flush()
    finally:
        extractor.files.close()
        extractor.ledger.close()


def extract_all(output_dir: Path, manifest: Path, selection: Selection) -> Outcome:
    """Convert what ``selection`` wants and is not extracted yet (see the module doc)."""
    outcome = Outcome()
    with ManifestLock(ledger_path(manifest)):  # the tables lock, not the manifest's
        state = load_manifest(manifest)
        extractor = open_extractor(output_dir, manifest)
        try:
            for job in jobs(state, selection):
                if not extractor.needed(job):
                    outcome.unchanged += 1
                    continue
                entry = extractor.extract(job)
                (outcome.written if entry.status == EXTRACTED else outcome.failed).append(entry)
        finally:
            close_extractor(extractor)
    return outcome


def ranges(names: Sequence[str], start: Mapping[str, date] | None,
           end: Mapping[str, date] | None) -> dict[str, tuple[date | None, date | None]]:
    """Per workspace (start, end) from resolved per-workspace dates, ``None`` if not given."""
    return {n: ((start or {}).get(n), (end or {}).get(n)) for n in names}
