"""One bad path fails one file (or one workspace), never the run: a directory at a file's
final path, a workspace folder nobody may write (left root-owned by a ``sudo`` run; here
``chattr +i``, which binds root too). The healthy files all complete, on every re-run."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from backfill.model import Status
from backfill.naming import render_path
from backfill.simulator import run_simulator

from .conftest import TODAY, make_config, manifest_records, planned, pointed_at, run_engine

pytestmark = pytest.mark.anyio


def final_path(config: object, task: object) -> Path:
    ws = task.workspace  # type: ignore[attr-defined]
    rel = render_path(config.run.layout, workspace=ws.name, app_id=ws.app_id,  # type: ignore[attr-defined]
                      report=task.report.name, day=task.day, filename=task.filename)  # type: ignore[attr-defined]
    return config.run.output_dir / rel  # type: ignore[attr-defined,no-any-return]


async def test_a_directory_at_one_final_path_fails_that_file_only(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    tasks = [t for t in planned(config) if t.kind.requested]
    blocked = next(t for t in tasks if 1 <= t.age <= 5)  # one the server has
    final_path(config, blocked).mkdir(parents=True)  # a directory where the file goes
    async with run_simulator(config, today=TODAY) as sim:
        cfg = pointed_at(config, sim.base_url)
        for _ in range(2):  # and again on the re-run
            out = await run_engine(cfg)
            assert out.summary.error is None and out.summary.exit_code == 1
            records = {(r.app_id, r.filename): r for r in manifest_records(cfg)}
            bad = records[blocked.key]
            assert bad.status is Status.FAILED and bad.error == (  # not the manifest's
                f"a file not written by this manifest is already at "
                f"{final_path(cfg, blocked)} (a directory); move it away")
            others = [records[t.key].status for t in tasks if t.key != blocked.key]
            assert set(others) <= {Status.COMPLETED, Status.PENDING, Status.EXPIRED,
                                   Status.MISSING}
            assert others.count(Status.COMPLETED) >= len(tasks) - 10


@pytest.fixture
def frozen_dir(tmp_path: Path) -> Iterator[Path]:
    """out/globex, where nothing can be created (chattr +i binds root too)."""
    path = tmp_path / "out" / "globex"
    path.mkdir(parents=True)
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], check=False,
                                        capture_output=True).returncode:
        pytest.skip("needs chattr +i")
    try:
        yield path
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


async def test_an_unwritable_workspace_folder_fails_that_workspace_only(
        tmp_path: Path, frozen_dir: Path) -> None:
    config = make_config(tmp_path)
    async with run_simulator(config, today=TODAY) as sim:
        cfg = pointed_at(config, sim.base_url)
        out = await run_engine(cfg)
    assert out.summary.error is None and out.summary.exit_code == 1
    by_ws: dict[str, set[Status]] = {}
    for r in manifest_records(cfg):
        if r.status in (Status.COMPLETED, Status.FAILED):
            by_ws.setdefault(r.workspace, set()).add(r.status)
    assert by_ws["globex"] == {Status.FAILED}
    assert by_ws["acme"] == by_ws["initech"] == {Status.COMPLETED}
    reasons = {r.error for r in manifest_records(cfg) if r.status is Status.FAILED}
    assert all("permission denied" in (e or "") for e in reasons), reasons
