"""What extracting tables costs: rows/s and peak RSS, next to plain pyarrow.

1. ``small``: 1,000 simulator zips of 10 KiB (10 workspaces × 100 days of one report)
   extracted by :class:`~backfill.tables.extract.Extractor` into one dataset — the two
   passes, the dataset layout, atomic renames, the ledger.
2. ``large``: one zip holding a ~500 MB CSV (the simulator's, stored, Revenue integral
   for its first 16,384 rows then decimal). Timed as a whole, and its first pass (whole-file
   type inference) alone.
3. ``baseline``: plain ``pyarrow.csv.read_csv(zip member)`` + ``pq.write_table`` on the
   same files, once with pyarrow's own inference (which decides from the first block and
   may fail later in the file) and once with the column types given (the floor for a
   second pass with known types).

Every case runs in its own process, so its peak RSS (``ru_maxrss``) is its own.
Run: ``python -m tests.benchmarks.bench_tables [--quick]``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import date, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

SMALL_FILES = 1000
SMALL_SIZE = 10 * 1024
LARGE_SIZE = 500 * 1024 * 1024
REPORT = "Daily campaign summary"


def _write_zip(path: Path, spec: Any) -> None:
    from backfill.simulator.body import iter_body

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for chunk in iter_body(spec):
            f.write(chunk)


def _jobs(root: Path, files: int, size: int) -> list[Any]:
    """Zips in ``root`` and the extraction jobs for them (sha256 not checked here)."""
    from backfill.naming import report_filename
    from backfill.simulator.body import BodySpec
    from backfill.tables.extract import Job

    out = []
    first = date(2026, 8, 1)
    for i in range(files):
        ws, day = f"ws{i % 10}", first + timedelta(days=i // 10)
        filename = report_filename(REPORT, day)
        rel = PurePosixPath(ws, "Daily_campaign_summary", filename)
        _write_zip(root / rel, BodySpec(0, ws.upper(), filename, size))
        out.append(Job(ws, ws.upper(), REPORT, day, filename, rel, f"sha{i}"))
    return out


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def case_extract(root: Path, files: int, size: int) -> dict[str, Any]:
    from backfill.tables.batch import close_extractor, open_extractor
    from backfill.tables.source import scan

    jobs = _jobs(root, files, size)
    base_mib = _peak_mib()
    out: dict[str, Any] = {}
    if files == 1:  # the first pass alone: what whole-file inference costs
        t0 = time.perf_counter()
        scan(lambda: open(root / jobs[0].source, "rb"))  # noqa: SIM115 - scan closes it
        out["scan_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    extractor = open_extractor(root, root / "manifest.jsonl")  # what `backfill extract` uses
    rows = 0
    for job in jobs:
        entry = extractor.extract(job)
        assert entry.status == "extracted", entry.error
        rows += entry.rows or 0
    close_extractor(extractor)  # the final sync and ledger lines are part of the cost
    wall = time.perf_counter() - t0
    out["cpu_ms_per_file"] = round((time.process_time() - cpu0) / files * 1000, 1)
    return {**out, "rows": rows, "wall_s": round(wall, 2), "rows_per_s": round(rows / wall),
            "peak_rss_mib": round(_peak_mib()), "rss_before_mib": round(base_mib)}


def case_baseline(root: Path, files: int, size: int, typed: bool) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from backfill.tables.infer import arrow_type
    from backfill.tables.source import scan

    jobs = _jobs(root, files, size)
    types = None
    if typed:  # the types the first pass finds, given to pyarrow up front (not timed)
        member = scan(lambda: open(root / jobs[0].source, "rb")).members[0]  # noqa: SIM115
        types = {h: arrow_type(t) for h, t in zip(member.header, member.types, strict=True)}
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    rows = 0
    try:
        for i, job in enumerate(jobs):
            with zipfile.ZipFile(root / job.source) as zf, zf.open(zf.namelist()[0]) as f:
                table = pacsv.read_csv(f, convert_options=pacsv.ConvertOptions(
                    column_types=types or {}))
            pq.write_table(table, root / f"out-{i}.parquet", compression="zstd")
            rows += table.num_rows
    except pa.ArrowInvalid as exc:
        return {"failed": str(exc).splitlines()[0][:160], "peak_rss_mib": round(_peak_mib())}
    wall = time.perf_counter() - t0
    return {"rows": rows, "wall_s": round(wall, 2), "rows_per_s": round(rows / wall),
            "cpu_ms_per_file": round((time.process_time() - cpu0) / files * 1000, 1),
            "peak_rss_mib": round(_peak_mib())}


def _in_child(case: str, files: int, size: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-tables-") as tmp:
        done = subprocess.run(
            [sys.executable, "-m", "tests.benchmarks.bench_tables", "--case", case, tmp,
             str(files), str(size)], capture_output=True, text=True, check=False,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    if done.returncode != 0:
        return {"failed": done.stderr.strip().splitlines()[-1][:200]}
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main(quick: bool = False) -> dict[str, Any]:
    files = 100 if quick else SMALL_FILES
    large = 64 * 1024 * 1024 if quick else LARGE_SIZE
    results: dict[str, Any] = {"small_files": files, "large_mib": large // 2**20}
    for name, case, n, size in [
        ("small", "extract", files, SMALL_SIZE),
        ("small_baseline", "baseline", files, SMALL_SIZE),
        ("large", "extract", 1, large),
        ("large_baseline", "baseline", 1, large),
        ("large_baseline_typed", "baseline-typed", 1, large),
    ]:
        results[name] = _in_child(case, n, size)
        print(f"tables {name}: {results[name]}", file=sys.stderr)
    return results


def _child(argv: list[str]) -> None:
    case, root, files, size = argv[0], Path(argv[1]), int(argv[2]), int(argv[3])
    if case == "extract":
        result = case_extract(root, files, size)
    else:
        result = case_baseline(root, files, size, typed=case == "baseline-typed")
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--case":
        _child(sys.argv[2:])
    else:
        print(json.dumps(main(quick="--quick" in sys.argv), indent=2))
