"""What one stored file costs: small reports per second, CPU per file, and a large body.

1. 2,000 small (10 KiB) zips saved by 32 concurrent tasks, each body arriving in one
   chunk (the common case): files per second and process CPU per file (worker threads
   included). Every file is fsynced and renamed and its directory fsynced, so the
   figure depends on the disk as much as on the code.
2. The same with each body in 4 KiB chunks.
3. A 300 MiB zip streamed in 64 KiB chunks: throughput and peak RSS growth (memory
   must stay flat whatever the size).

Run: ``python -m tests.benchmarks.bench_storage [small_files] [large_mib]``.
"""

from __future__ import annotations

import io
import resource
import sys
import tempfile
import time
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath
from typing import Any

import anyio

from backfill.store.local import LocalStore


def small_zip(size: int = 10 * 1024) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("report.csv", b"campaign,sent,opened\n" * (size // 21))
    return buf.getvalue()


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def _small(root: Path, n: int, chunk: int, tasks: int = 32) -> dict[str, float]:
    body = small_zip()
    storage = LocalStore(root)
    cpu0, t0 = time.process_time(), time.perf_counter()

    async def worker(k: int) -> None:
        for i in range(k, n, tasks):
            rel = PurePosixPath(f"ws-{i % 10}/Report/Report_{i:06d}.zip")
            await storage.save(rel, _chunks(body, chunk), expected_length=len(body))

    async with anyio.create_task_group() as tg:
        for k in range(tasks):
            tg.start_soon(worker, k)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return {"files_per_s": n / wall, "cpu_us_per_file": cpu / n * 1e6, "wall_s": wall}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _large(root: Path, mib: int) -> dict[str, float]:
    src = root / "source.zip"
    block = b"0123456789abcdef" * 4096  # 64 KiB of CSV-ish bytes
    with zipfile.ZipFile(src, "w", compression=zipfile.ZIP_STORED) as zf, zf.open(
        "big.csv", "w", force_zip64=True
    ) as member:
        for _ in range(mib * 16):
            member.write(block)
    size = src.stat().st_size

    async def from_file() -> AsyncIterator[bytes]:
        async with await anyio.open_file(src, "rb") as f:
            while chunk := await f.read(64 * 1024):
                yield chunk

    rss0 = _rss_mib()
    t0 = time.perf_counter()
    stored = await LocalStore(root / "out").save(
        PurePosixPath("big/big.zip"), from_file(), expected_length=size
    )
    wall = time.perf_counter() - t0
    assert stored.bytes == size
    return {"mib": size / 2**20, "s": wall, "mib_per_s": size / 2**20 / wall,
            "rss_growth_mib": _rss_mib() - rss0}


def main(small_files: int = 2000, large_mib: int = 300) -> dict[str, Any]:
    """Run the benchmark; print and return the figures."""
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        one = anyio.run(_small, Path(tmp) / "one", small_files, 1 << 20)
        many = anyio.run(_small, Path(tmp) / "many", small_files, 4096)
        large = anyio.run(_large, Path(tmp), large_mib)
    figures = {
        "small_files": small_files,
        "one_chunk_files_per_s": round(one["files_per_s"]),
        "one_chunk_cpu_us_per_file": round(one["cpu_us_per_file"]),
        "4k_chunks_files_per_s": round(many["files_per_s"]),
        "4k_chunks_cpu_us_per_file": round(many["cpu_us_per_file"]),
        "large_mib": round(large["mib"], 1),
        "large_s": round(large["s"], 2),
        "large_mib_per_s": round(large["mib_per_s"]),
        "large_rss_growth_mib": round(large["rss_growth_mib"], 1),
    }
    print(f"storage: {small_files:,} × 10 KiB zips, 32 tasks, each fsynced + renamed + dir fsync")
    print(f"  one chunk: {figures['one_chunk_files_per_s']:,} files/s, "
          f"{figures['one_chunk_cpu_us_per_file']} µs CPU per file")
    print(f"  4 KiB chunks: {figures['4k_chunks_files_per_s']:,} files/s, "
          f"{figures['4k_chunks_cpu_us_per_file']} µs CPU per file")
    print(f"  {figures['large_mib']} MiB body: {figures['large_s']} s "
          f"({figures['large_mib_per_s']} MiB/s), RSS growth {figures['large_rss_growth_mib']} MiB")
    return figures


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
