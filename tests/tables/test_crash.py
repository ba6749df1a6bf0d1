"""kill -9 in the middle of writing a Parquet file: nothing partial is visible, the next
run sweeps the dead run's private folder and converts the file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import pyarrow.dataset as ds

from .conftest import DATASET, Out

CHILD = """
import sys
from datetime import date
from pathlib import Path, PurePosixPath
from backfill.tables import parquet
from backfill.tables.extract import Extractor, Job
from backfill.tables.files import TableFiles
from backfill.tables.ledger import Ledger

real_write = parquet.write

def write(sink, schema, batches, **kw):
    def paused():
        for i, batch in enumerate(batches):
            yield batch
            if i == 2:  # a row group is in the file: say so, then wait to be killed
                print("mid-write", flush=True)
                sys.stdin.readline()
    return real_write(sink, schema, paused(), **kw)

parquet.write = write
root = Path(sys.argv[1])
ex = Extractor(TableFiles(root), Ledger(root / "m.tables.jsonl"), row_group_rows=100,
               block_size=4096)
ex.extract(Job(
    sys.argv[2], sys.argv[3], sys.argv[4], date.fromisoformat(sys.argv[5]), sys.argv[6],
    PurePosixPath(sys.argv[7]), sys.argv[8]))
"""


def test_kill_9_leaves_no_partial_parquet(out: Out) -> None:
    day = date(2026, 11, 20)
    rows = "\n".join(f"campaign {i},{i}" for i in range(2_000))
    job = out.zip(day, {"r.csv": "Campaign Name,Sent\n" + rows + "\n"})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(out.root), job.workspace, job.app_id, job.report,
         job.day.isoformat(), job.filename, str(job.source), job.sha256],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "mid-write"
        child.send_signal(signal.SIGKILL)
        child.wait()

    assert not list((out.root / DATASET).rglob("*.parquet"))
    left = list((out.root / "tables" / ".tmp").glob(f"{child.pid}-*/*.parquet.part"))
    assert len(left) == 1 and left[0].stat().st_size > 0  # the partial file, out of sight
    assert not (out.root / "m.tables.jsonl").exists() or not (
        out.root / "m.tables.jsonl").read_text().strip()

    extractor = out.reopen()
    assert extractor.files.sweep() == 1 and not left[0].parent.exists()
    assert extractor.needed(job)
    assert extractor.extract(job).rows == 2_000
    assert ds.dataset(out.root / DATASET, partitioning="hive").count_rows() == 2_000
