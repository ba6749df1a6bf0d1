"""Partial downloads belong to the run that wrote them: two configs with their own
manifests sharing one output directory, and another program's ``*.part`` files there
(``--output-dir ~/Downloads``), are never swept by a run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from backfill.model import Status
from backfill.simulator import run_simulator
from backfill.store.local import LocalStore

from .conftest import TODAY, make_config, manifest_records, pointed_at, run_engine

pytestmark = pytest.mark.anyio


async def test_a_run_sweeps_only_its_own_partial_files(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    out = config.run.output_dir
    other_manifest = out / "other-config.jsonl"
    # the other config's run is mid-download: its partial file sits in its own folder
    theirs = LocalStore(out, owner=str(other_manifest.absolute())).partials / "inflight.part"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"the other run's bytes so far")
    foreign = [out / "movie.mkv.part", out / "acme" / "browser-download.zip.part"]
    for path in foreign:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"another program's download")
    # and a crashed run of this manifest left one of its own
    mine = LocalStore(out, owner=str(config.run.manifest_path.absolute())).partials
    mine.mkdir(parents=True)
    (mine / "crashed.part").write_bytes(b"left by kill -9")
    async with run_simulator(config, today=TODAY) as sim:
        cfg = pointed_at(config, sim.base_url)
        result = await run_engine(cfg)
    assert result.summary.exit_code == 0
    assert theirs.read_bytes() == b"the other run's bytes so far"
    assert all(p.read_bytes() == b"another program's download" for p in foreign)
    assert not mine.exists()  # its own leftovers swept, its empty folder removed
    completed = [r for r in manifest_records(cfg) if r.status is Status.COMPLETED]
    assert completed and all(not (r.path or "").endswith(".part") for r in completed)


async def test_two_manifests_one_output_dir_both_complete(tmp_path: Path) -> None:
    first = make_config(tmp_path)
    second_run = dataclasses.replace(first.run, manifest=first.run.output_dir / "b.jsonl")
    second = dataclasses.replace(first, run=second_run)
    async with run_simulator(first, today=TODAY) as sim:
        for cfg in (pointed_at(first, sim.base_url), pointed_at(second, sim.base_url)):
            assert (await run_engine(cfg)).summary.exit_code == 0
    assert not list(first.run.output_dir.rglob("*.part"))
