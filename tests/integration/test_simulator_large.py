"""A 300 MB body is streamed: correct bytes, a valid zip, and no 300 MB held anywhere."""

from __future__ import annotations

import hashlib
import resource
import zipfile
from datetime import date
from pathlib import Path

import aiohttp
import pytest
import yarl

from backfill.config import Report, Secret, Workspace
from backfill.simulator import run_simulator

WS = Workspace(name="w", app_id="APP", data_center="01", api_key=Secret("k"),
               secret_key=Secret("s"), timezone="UTC", reports=(Report("Big report"),))


@pytest.mark.slow
@pytest.mark.anyio
async def test_300_mb_body_streams_in_constant_memory(tmp_path: Path) -> None:
    fn = "Big_report_20261126.zip"
    size = 300_000_000
    async with run_simulator([WS], today=date(2026, 11, 27)) as sim, \
            aiohttp.ClientSession() as session:
        sim.faults.sizes[fn] = size
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        h = hashlib.sha256()
        out = tmp_path / fn
        with out.open("wb") as f:
            async with session.get(yarl.URL(sim.url("APP", fn), encoded=True),
                                   headers=sim.headers("APP", fn)) as r:
                assert r.status == 200 and r.content_length == size
                async for chunk in r.content.iter_chunked(1 << 20):
                    h.update(chunk)
                    f.write(chunk)
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        assert grown_mib < 100, f"peak memory grew by {grown_mib:.0f} MiB"
        assert (out.stat().st_size, h.hexdigest()) == sim.expected_digest("APP", fn)
        assert sim.counters.bytes_sent == size and len(sim.cache) == 0
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None
        with zf.open(zf.namelist()[0]) as member:
            assert member.readline().startswith(b"Campaign ID,")
