"""Object-store destination against moto (S3 emulator), next to the local destination.

1. 5,000 × 10 KiB zips saved by 32 concurrent tasks: files/s and MB/s, to moto and to
   the local Storage (fsync + rename) on the same machine.
2. 100 × 5 MiB zips by 16 tasks: the same figures.
3. One 300 MiB zip in a fresh process: peak RSS above that process's baseline (after
   imports and the store's first request); the target is < 100 MiB.

moto is a single-process Python server that keeps objects in memory, so its figures are
a floor set by the emulator (each small file is one PUT plus, for larger ones, a read-back
and a server-side copy), not what S3 would give. ``aws s3 cp`` and ``s5cmd`` are compared
when installed (``aws s3 cp --recursive`` of the same files from disk).
Run: ``python -m tests.benchmarks.bench_object_store [--quick]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath
from typing import Any

import anyio

MIB = 1024 * 1024


def _zip(size: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("report.csv", os.urandom(max(size - 200, 1)))
    return buf.getvalue()


async def _chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def _moto() -> Any:
    from tests.cloud import emulators

    exe = emulators.find("BACKFILL_MOTO_SERVER", ".venv-moto/bin/moto_server", "moto_server")
    if exe is None:
        return None
    port = emulators.free_port()
    return emulators.start([exe, "-H", "127.0.0.1", "-p", str(port)], r"Running on http",
                           port, cwd=tempfile.gettempdir())


def _env(endpoint: str, bucket: str) -> dict[str, str]:
    with urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")):
        pass
    return {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true",
            "HOME": "/nonexistent"}


def _object_dest(endpoint: str, bucket: str, staging: Path) -> Any:
    from backfill.store.object import StorageOptions, open_destination, parse_object_url

    return open_destination(parse_object_url(f"s3://{bucket}/bench"), options=StorageOptions(),
                            env=_env(endpoint, bucket), max_file_bytes=2048 * MIB,
                            staging_root=staging)


async def _many(save: Any, n: int, size: int, tasks: int) -> dict[str, float]:
    body = _zip(size)
    t0 = time.perf_counter()

    async def worker(k: int) -> None:
        for i in range(k, n, tasks):
            await save(PurePosixPath(f"ws-{i % 10}/R/R_{i:06d}.zip"), _chunks(body),
                       expected_length=len(body))

    async with anyio.create_task_group() as tg:
        for k in range(tasks):
            tg.start_soon(worker, k)
    wall = time.perf_counter() - t0
    return {"files": n, "wall_s": round(wall, 2), "files_per_s": round(n / wall, 1),
            "mb_per_s": round(n * len(body) / wall / 1e6, 1)}


def _scenario(endpoint: str, tmp: Path, name: str, n: int, size: int, tasks: int,
              ) -> dict[str, Any]:
    from backfill.store.local import LocalStore

    dest = _object_dest(endpoint, f"bench-{name}", tmp / f"staging-{name}")
    try:
        obj = anyio.run(_many, dest.save, n, size, tasks)
    finally:
        dest.staging.close()
    local = anyio.run(_many, LocalStore(tmp / f"local-{name}").save, n, size, tasks)
    shutil.rmtree(tmp / f"local-{name}", ignore_errors=True)
    return {"object": obj, "local": local}


def _rss_child(endpoint: str, mib: int) -> None:
    """In a fresh process: upload one ``mib`` MiB zip; print baseline and peak RSS."""
    from tests.benchmarks.harness import vm_hwm_kib

    def rss_kib() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    staging = Path(tempfile.mkdtemp())
    dest = _object_dest(endpoint, "bench-rss", staging)
    if os.environ.get("BENCH_UPLOAD_PARTS"):
        dest.upload_parts = int(os.environ["BENCH_UPLOAD_PARTS"])

    async def body() -> AsyncIterator[bytes]:
        # a stored zip produced piece by piece, never whole in memory
        import zlib
        block = os.urandom(MIB)
        n = mib - 1
        crc = 0
        for _ in range(n):
            crc = zlib.crc32(block, crc)
        name = b"report.csv"
        size = n * MIB
        import struct
        yield struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, size, size,
                          len(name), 0) + name
        for _ in range(n):
            yield block
        central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, crc, size,
                              size, len(name), 0, 0, 0, 0, 0, 0) + name
        offset = 30 + len(name) + size
        yield central + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central),
                                    offset, 0)

    async def main() -> dict[str, Any]:
        await dest.probe()
        base = rss_kib()
        t0 = time.perf_counter()
        stored = await dest.save(f"big/{os.getpid()}.zip", body(), expected_length=None)
        wall = time.perf_counter() - t0
        return {"base_kib": base, "bytes": stored.bytes, "wall_s": wall}

    out = anyio.run(main)
    out["peak_kib"] = vm_hwm_kib(os.getpid())
    dest.staging.close()
    shutil.rmtree(staging, ignore_errors=True)
    print(json.dumps(out))


def _aws_cp(endpoint: str, tmp: Path, name: str, n: int, size: int) -> dict[str, Any] | None:
    """``aws s3 cp --recursive`` of the same files from disk (its default 10 threads)."""
    aws = shutil.which("aws")
    if aws is None:
        return None
    bucket = f"bench-aws-{name}"
    env = {**os.environ, **_env(endpoint, bucket)}
    src = tmp / f"aws-{name}"
    body = _zip(size)
    for i in range(n):
        d = src / f"ws-{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"R_{i:06d}.zip").write_bytes(body)
    t0 = time.perf_counter()
    proc = subprocess.run([aws, "--endpoint-url", endpoint, "s3", "cp", "--recursive",
                           "--quiet", str(src), f"s3://{bucket}/bench"], env=env,
                          capture_output=True, timeout=1800)
    wall = time.perf_counter() - t0
    shutil.rmtree(src, ignore_errors=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.decode(errors="replace")[-300:]}
    return {"files": n, "wall_s": round(wall, 2), "files_per_s": round(n / wall, 1),
            "mb_per_s": round(n * len(body) / wall / 1e6, 1)}


def main(quick: bool = False) -> dict[str, Any]:
    sizes = (500, 20, 100) if quick else (5000, 100, 300)
    moto = _moto()
    if moto is None:
        return {"skipped": "moto is not installed (.ci/run puts it in .venv-moto)"}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            small = _scenario(moto.endpoint, Path(tmp), "small", sizes[0], 10 * 1024, 32)
            large = _scenario(moto.endpoint, Path(tmp), "large", sizes[1], 5 * MIB, 16)
            small["aws_s3_cp"] = _aws_cp(moto.endpoint, Path(tmp), "small", sizes[0], 10 * 1024)
            large["aws_s3_cp"] = _aws_cp(moto.endpoint, Path(tmp), "large", sizes[1], 5 * MIB)
        proc = subprocess.run([sys.executable, "-m", "tests.benchmarks.bench_object_store",
                               "--rss-child", moto.endpoint, str(sizes[2])],
                              capture_output=True, text=True, check=True, timeout=1800)
        rss = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        moto.stop()
    growth = (rss["peak_kib"] - rss["base_kib"]) / 1024
    return {"small_10k": small, "large_5m": large,
            "huge": {"mib": sizes[2], "mb_per_s": round(rss["bytes"] / rss["wall_s"] / 1e6, 1),
                     "rss_growth_mib": round(growth, 1), "target_met": growth < 100},
            "s5cmd": "not installed" if shutil.which("s5cmd") is None else "not compared",
            "note": "moto in one Python process holds every object in memory: a floor, "
                    "not S3's speed"}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rss-child", nargs=2, metavar=("ENDPOINT", "MIB"))
    args = parser.parse_args()
    if args.rss_child:
        _rss_child(args.rss_child[0], int(args.rss_child[1]))
    else:
        print(json.dumps(main(args.quick), indent=2))
