"""How fast, and in how little memory, the manifest loads, iterates, compacts and appends.

1. Writes a 1,000,000-key manifest (plus 100,000 superseded lines: earlier failures of
   the same keys) the way a long agency backfill would leave it: 300 workspaces,
   mostly ``completed`` records with path and sha256, some failed/missing/expired.
2. Loads it in a fresh interpreter (so the figures are the loader's alone): seconds and
   peak RSS (``ru_maxrss``), then the time to iterate every record and to ``get`` each key.
3. Compacts it (atomic rewrite of the 1,000,000 latest records).
4. Appends 100,000 records through :class:`ManifestWriter` from 32 producer tasks:
   records per second, ``os.write`` batches and fsyncs.

Targets (issue 7): load ≤ 5 s, peak RSS ≤ 400 MB. Run:
``python -m tests.benchmarks.bench_manifest [keys] [writer_records]``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio

from backfill.journal import ManifestWriter, Record, Status, compact, load_manifest

ROOT = Path(__file__).resolve().parents[2]
WORKSPACES = 300


def records(keys: int, *, superseded: int = 0) -> Iterator[Record]:
    """``superseded`` failed records for the first keys, then the latest record of every key."""
    for i in range(superseded):
        yield _record(i, failed=True)
    for i in range(keys):
        yield _record(i)


def _record(i: int, *, failed: bool = False) -> Record:
    w = i % WORKSPACES
    n = i // WORKSPACES
    report = f"Campaign report {n % 37:02d}"
    day = f"2026-{1 + n // 37 % 12:02d}-{1 + n // 444 % 28:02d}"
    filename = f"{report.replace(' ', '_')}_{day.replace('-', '')}_{n}.zip"
    ws = f"ws-{w:04d}"
    stamp = f"2026-11-27T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"
    base = Record(ws, f"APP{w:04d}", report, day, filename, Status.EXPIRED, updated_at=stamp)
    if failed or i % 50 == 1:
        return replace(base, status=Status.FAILED, attempts=6, http_status=503,
                       error="http 503", request_id=f"req-{i:x}")
    if i % 50 == 2:
        return replace(base, status=Status.MISSING, attempts=1, http_status=400)
    if i % 50 == 3:
        return base
    return replace(
        base, status=Status.COMPLETED, path=f"{ws}/{report.replace(' ', '_')}/{filename}",
        bytes=10_240 + i % 5000, sha256=f"{i * 2654435761 % 2**256:064x}", attempts=1,
        http_status=200,
    )


_LOADER = """
import json, sys, time
from pathlib import Path
from backfill.journal import load_manifest

def peak_rss_kib():  # VmHWM: unlike ru_maxrss, not inherited from the parent across exec
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

rss0 = peak_rss_kib()
t0 = time.perf_counter()
state = load_manifest(Path(sys.argv[1]))
load_s = time.perf_counter() - t0
rss1 = peak_rss_kib()
t0 = time.perf_counter()
keys = [r.key for r in state]
iter_s = time.perf_counter() - t0
t0 = time.perf_counter()
for key in keys:
    state.get(key)
get_s = time.perf_counter() - t0
print(json.dumps({"keys": len(state), "lines": state.lines, "load_s": load_s,
                  "rss_before_mib": rss0 / 1024, "rss_loaded_mib": rss1 / 1024,
                  "iter_s": iter_s, "get_s": get_s}))
"""


async def _write(path: Path, n: int, producers: int = 32) -> dict[str, Any]:
    batch = [_record(i) for i in range(n)]
    writer = ManifestWriter(path)
    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        await tg.start(writer.run)

        async def produce(k: int) -> None:
            for rec in batch[k::producers]:
                await writer.put(rec)

        async with anyio.create_task_group() as inner:
            for k in range(producers):
                inner.start_soon(produce, k)
        await writer.close()
    elapsed = time.perf_counter() - t0
    stats = writer.statistics()
    return {"records": stats.records, "s": elapsed, "writes": stats.writes,
            "fsyncs": stats.fsyncs, "bytes": stats.bytes_written}


def main(keys: int = 1_000_000, writer_records: int = 100_000) -> dict[str, Any]:
    """Run the benchmark; print and return the figures."""
    with tempfile.TemporaryDirectory(prefix="bench-manifest-") as tmp:
        path = Path(tmp) / "manifest.jsonl"
        superseded = keys // 10
        t0 = time.perf_counter()
        with open(path, "wb", buffering=1 << 20) as f:
            for rec in records(keys, superseded=superseded):
                f.write(rec.to_line())
        generate_s = time.perf_counter() - t0
        size = path.stat().st_size
        sample = [_record(i) for i in range(100_000)]
        t0 = time.perf_counter()
        for rec in sample:
            rec.to_line()
        to_line_s = (time.perf_counter() - t0) / len(sample)
        del sample

        out = subprocess.run(
            [sys.executable, "-c", _LOADER, str(path)], cwd=ROOT, check=True,
            capture_output=True, text=True,
        ).stdout
        load = json.loads(out)
        assert load["keys"] == keys and load["lines"] == keys + superseded, load

        state = load_manifest(path)
        t0 = time.perf_counter()
        compact(path, state)
        compact_s = time.perf_counter() - t0
        del state

        write = anyio.run(_write, Path(tmp) / "append.jsonl", writer_records)

    figures = {
        "keys": keys,
        "lines": keys + superseded,
        "file_mib": round(size / 2**20, 1),
        "generate_s": round(generate_s, 2),
        "to_line_us": round(to_line_s * 1e6, 2),
        "load_s": round(load["load_s"], 2),
        "load_lines_per_s": round((keys + superseded) / load["load_s"]),
        "peak_rss_mib": round(load["rss_loaded_mib"], 1),
        "rss_before_load_mib": round(load["rss_before_mib"], 1),
        "iterate_s": round(load["iter_s"], 2),
        "get_us": round(load["get_s"] / keys * 1e6, 2),
        "compact_s": round(compact_s, 2),
        "writer_records": write["records"],
        "writer_records_per_s": round(write["records"] / write["s"]),
        "writer_writes": write["writes"],
        "writer_fsyncs": write["fsyncs"],
    }
    print(f"manifest: {keys:,} keys, {keys + superseded:,} lines, {figures['file_mib']} MiB")
    print(f"  load {figures['load_s']} s ({figures['load_lines_per_s']:,} lines/s; target ≤ 5 s), "
          f"peak RSS {figures['peak_rss_mib']} MiB (interpreter alone "
          f"{figures['rss_before_load_mib']} MiB; target ≤ 400 MB)")
    print(f"  iterate all {figures['iterate_s']} s; get() {figures['get_us']} µs; "
          f"compact {figures['compact_s']} s; to_line {figures['to_line_us']} µs")
    print(f"  writer: {write['records']:,} records in {write['s']:.2f} s "
          f"({figures['writer_records_per_s']:,}/s), {write['writes']} writes, "
          f"{write['fsyncs']} fsyncs")
    return figures


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
