"""A 300 MB report streams through the engine with flat memory."""

from __future__ import annotations

import hashlib
import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest

from backfill.engine import Backfill, Options
from backfill.journal import Status
from backfill.naming import report_filename
from backfill.simulator import Faults, run_simulator

from .conftest import TODAY, make_config, manifest_records, pointed_at

pytestmark = pytest.mark.anyio
SIZE = 300 * 1024 * 1024


@pytest.mark.slow
async def test_300_mb_file_streams_with_flat_memory(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"name": "a", "app_id": "A1"}],
                         run={"start": "-1d", "end": "-1d"},
                         defaults={"reports": ["Daily campaign summary"]},
                         http={"file_timeout_s": 110})
    name = report_filename("Daily campaign summary", TODAY - timedelta(days=1))
    async with run_simulator(config, today=TODAY, faults=Faults(sizes={name: SIZE})) as sim:
        cfg = pointed_at(config, sim.base_url)
        tracemalloc.start()
        try:
            summary = await Backfill(cfg, Options(today=TODAY)).run()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert summary.totals["completed"] == 1
        # simulator and engine together: far below the file's size
        assert peak < 50 * 1024 * 1024, f"peak Python allocations {peak / 2**20:.0f} MiB"
        [rec] = manifest_records(cfg)
        assert rec.status is Status.COMPLETED and rec.bytes == SIZE
        length, digest = sim.expected_digest("A1", name)
        assert (rec.bytes, rec.sha256) == (length, digest)
        assert sha256_of(tmp_path / "out" / (rec.path or "")) == digest


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
