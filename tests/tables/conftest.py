"""Zips written by hand and an extractor over a temporary output directory."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path, PurePosixPath

import pytest

pytest.importorskip("pyarrow")

from backfill.tables.extract import Extractor, Job
from backfill.tables.files import TableFiles
from backfill.tables.ledger import Entry, Ledger

REPORT = "Daily campaign summary"
DATASET = "tables/daily_campaign_summary"


@dataclass
class Out:
    """An output directory: write zips into it, extract them."""

    root: Path
    extractor: Extractor

    def zip(self, day: date, members: dict[str, str | bytes], workspace: str = "acme") -> Job:
        filename = f"Daily_campaign_summary_{day:%Y%m%d}.zip"
        rel = PurePosixPath(workspace, "Daily_campaign_summary", filename)
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        return Job(workspace, workspace.upper(), REPORT, day, filename, rel, sha)

    def extract(self, day: date, members: dict[str, str | bytes],
                workspace: str = "acme") -> Entry:
        return self.extractor.extract(self.zip(day, members, workspace))

    def reopen(self, row_group_rows: int = 4, block_size: int = 1 << 16) -> Extractor:
        self.extractor.files.close()
        self.extractor.ledger.close()
        self.extractor = Extractor(TableFiles(self.root), Ledger(self.root / "m.tables.jsonl"),
                                   row_group_rows=row_group_rows, block_size=block_size)
        return self.extractor


@pytest.fixture
def out(tmp_path: Path) -> Iterator[Out]:
    o = Out(tmp_path, Extractor(TableFiles(tmp_path), Ledger(tmp_path / "m.tables.jsonl"),
                                row_group_rows=4, block_size=1 << 16))
    yield o
    o.extractor.files.close()
    o.extractor.ledger.close()
