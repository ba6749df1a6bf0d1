"""A file already at a final path that the manifest does not know is never overwritten
silently (issue 12, item 8): the same bytes are adopted, left as they are (the usual case:
a run killed after its rename, before its journal line); other bytes fail that file,
naming the path, and the run goes on. A file the manifest recorded (and ``verify`` then
found corrupt) is replaced by the new download, as before. Real simulator, 127.0.0.1;
small files (the group commit) and 600 kB ones (the .part file path) alike."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backfill.config import Config
from backfill.model import Status
from backfill.simulator import Faults, run_simulator
from backfill.verify import verify

from .conftest import (
    BIG,
    SMALL,
    TODAY,
    big_sizes,
    check_promise,
    make_config,
    manifest_records,
    pointed_at,
    run_engine,
)

pytestmark = pytest.mark.anyio
PAST = 1_600_000_000_000_000_000  # ns: an mtime no rewrite keeps


def config_for(tmp: Path) -> Config:
    return make_config(tmp, [{"name": "acme", "app_id": "ACME01", "reports": [SMALL, BIG],
                              "timezone": "Europe/Berlin"}], run={"start": "-3d"})


def completed_files(config: Config) -> dict[str, Path]:
    out = config.run.output_dir
    assert isinstance(out, Path)
    return {r.filename: out / r.path for r in manifest_records(config)
            if r.status is Status.COMPLETED and r.path}


def fingerprint(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def drop_records(manifest: Path, filenames: set[str]) -> None:
    """The journal lines of ``filenames`` never written (a kill after the rename)."""
    lines = manifest.read_bytes().splitlines(keepends=True)
    manifest.write_bytes(b"".join(line for line in lines
                                  if not any(f.encode() in line for f in filenames)))


async def test_files_renamed_before_their_journal_lines_are_adopted_in_place(
        tmp_path: Path) -> None:
    config = config_for(tmp_path)
    manifest = config.run.output_dir / "manifest.jsonl"
    async with run_simulator(config, today=TODAY, faults=Faults(sizes=big_sizes(config))) as sim:
        cfg = pointed_at(config, sim.base_url)
        first = await run_engine(cfg)
        assert first.summary.exit_code == 0
        files = completed_files(cfg)
        lost = set(sorted(files)[::2])  # every other file's line lost, of both sizes
        sizes = {files[name].stat().st_size for name in lost}
        assert min(sizes) < 256 * 1024 < max(sizes)  # group commit and .part file alike
        for name in lost:  # as if renamed in place long ago, by the killed run
            os.utime(files[name], ns=(PAST, PAST))
        before = {name: fingerprint(files[name]) for name in lost}
        drop_records(manifest, lost)
        again = await run_engine(cfg)
        check_promise(cfg, sim)
    assert again.summary.exit_code == 0
    assert {n for n, r in again.records.items() if r.status is Status.COMPLETED} >= lost
    assert {name: fingerprint(files[name]) for name in lost} == before  # never rewritten


async def test_a_file_of_other_bytes_fails_that_file_only_and_stays(tmp_path: Path) -> None:
    """Someone's own file at one final path (the manifest has no record of it), another
    one's records lost: that file fails naming the path, untouched; every other completes
    (the lost one adopted); the exit code says a file failed."""
    config = config_for(tmp_path)
    manifest = config.run.output_dir / "manifest.jsonl"
    async with run_simulator(config, today=TODAY, faults=Faults(sizes=big_sizes(config))) as sim:
        cfg = pointed_at(config, sim.base_url)
        await run_engine(cfg)
        files = completed_files(cfg)
        theirs, ours = sorted(files)[:2]
        files[theirs].write_bytes(b"a report somebody edited by hand\n")
        before = fingerprint(files[theirs])
        drop_records(manifest, {theirs, ours})
        again = await run_engine(cfg)
        for _ in range(2):  # and the next run keeps refusing, never replacing it
            assert again.summary.exit_code == 1 and again.summary.error is None
            bad = again.records[theirs]
            assert bad.status is Status.FAILED and bad.error == (
                f"a file not written by this manifest is already at {files[theirs]} "
                "(different bytes); move it away")
            assert fingerprint(files[theirs]) == before
            assert files[theirs].read_bytes() == b"a report somebody edited by hand\n"
            others = {n: r.status for n, r in again.records.items() if n in files and n != theirs}
            assert set(others.values()) == {Status.COMPLETED} and ours in others
            again = await run_engine(cfg)
        files[theirs].unlink()  # moved away, as the message says: the next run fetches it
        last = await run_engine(cfg)
        check_promise(cfg, sim)
    assert last.summary.exit_code == 0 and last.records[theirs].status is Status.COMPLETED


async def test_a_recorded_file_verify_found_corrupt_is_replaced(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    async with run_simulator(config, today=TODAY, faults=Faults(sizes=big_sizes(config))) as sim:
        cfg = pointed_at(config, sim.base_url)
        await run_engine(cfg)
        files = completed_files(cfg)
        small = min(files, key=lambda n: files[n].stat().st_size)  # group commit
        big = max(files, key=lambda n: files[n].stat().st_size)  # .part file
        for name in (small, big):
            data = bytearray(files[name].read_bytes())
            data[len(data) // 2] ^= 0xFF  # bit rot
            files[name].write_bytes(bytes(data))
        report = await verify(cfg)
        assert {b["filename"] for b in report["bad"]} == {small, big}
        again = await run_engine(cfg)
        check_promise(cfg, sim)  # the server's bytes again, at the same paths
    assert again.summary.exit_code == 0
    assert {again.records[n].status for n in (small, big)} == {Status.COMPLETED}
