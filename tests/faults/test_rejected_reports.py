"""A report rejected as a whole (a wrong name, the wrong case) is a configuration problem
said by name with the server's message and exit 4 — even with ``-q``; a re-check of the
missing files of a report that has completed files is never one."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from backfill.model import Status
from backfill.simulator import FirstN, run_simulator
from backfill.summary import EXIT_REJECTED

from .conftest import (
    SMALL,
    TODAY,
    cli_command,
    make_config,
    manifest_records,
    planned,
    pointed_at,
    run_engine,
)

pytestmark = pytest.mark.anyio

WRONG = "daily campaign summary"  # the server knows "Daily campaign summary"


def configs(tmp: Path, wrong: bool) -> tuple[object, object]:
    workspaces = [
        {"name": "acme", "app_id": "ACME01", "reports": [SMALL]},
        {"name": "globex", "app_id": "GLOBEX7", "reports": [WRONG if wrong else SMALL]},
    ]
    served = make_config(tmp, [{**w, "reports": [SMALL]} for w in workspaces],
                         run={"start": "-6d"})
    ours = make_config(tmp, workspaces, run={"start": "-6d"})
    return served, ours


async def test_a_wrong_report_name_is_named_with_exit_4(tmp_path: Path) -> None:
    served, ours = configs(tmp_path, wrong=True)
    async with run_simulator(served, today=TODAY) as sim:  # type: ignore[arg-type]
        out = await run_engine(pointed_at(ours, sim.base_url))  # type: ignore[arg-type]
    assert out.summary.exit_code == EXIT_REJECTED
    [rejected] = out.summary.rejected
    assert (rejected.workspace, rejected.report) == ("globex", WRONG)
    assert rejected.message and rejected.requests == 7
    doc = out.summary.document(run=True)
    assert doc["rejected_reports"][0]["report"] == WRONG
    records = manifest_records(pointed_at(ours, sim.base_url))  # type: ignore[arg-type]
    assert {r.status for r in records if r.workspace == "acme"} == {Status.COMPLETED}


async def test_quiet_and_json_runs_still_say_it(tmp_path: Path) -> None:
    served, _ = configs(tmp_path, wrong=True)
    async with run_simulator(served, today=TODAY) as sim:  # type: ignore[arg-type]
        text = (tmp_path / "backfill.toml")
        text.write_text(TOML.format(base_url=sim.base_url, wrong=WRONG))
        for extra in (["-q"], ["--json"]):
            result = await anyio.run_process(
                cli_command("run", str(text), "--today", TODAY.isoformat(), "--no-progress",
                            *extra), check=False)
            err = result.stderr.decode()
            assert result.returncode == EXIT_REJECTED, err
            [line] = [ln for ln in err.splitlines() if "rejected" in ln or WRONG in ln]
            assert WRONG in line and "globex" in line and "server said" in line
            if extra == ["--json"]:
                doc = json.loads(result.stdout)
                assert doc["rejected_reports"][0]["workspace"] == "globex"


async def test_rechecks_of_missing_files_are_never_a_rejection(tmp_path: Path) -> None:
    """The second run asks only for the files still missing (400 each time): the
    report has completed files, so nothing is flagged (was: 'all rejected')."""
    served, ours = configs(tmp_path, wrong=False)
    tasks = [t for t in planned(ours) if t.workspace.name == "globex"]  # type: ignore[arg-type]
    late = [t.filename for t in tasks if 1 <= t.age <= 5][:2]
    async with run_simulator(served, today=TODAY) as sim:  # type: ignore[arg-type]
        sim.faults.first_n = [FirstN(f, 99, 400, app_id="GLOBEX7") for f in late]
        cfg = pointed_at(ours, sim.base_url)  # type: ignore[arg-type]
        first = await run_engine(cfg)
        second = await run_engine(cfg)
    for out in (first, second):
        assert out.summary.rejected == [] and out.summary.exit_code == 0
        assert not any(t.flags for t in out.summary.workspaces.values())
    missing = {r.filename for r in manifest_records(cfg)
               if r.status is Status.MISSING and r.workspace == "globex"}
    assert missing == set(late)


TOML = """\
[run]
start = "-6d"
end = "today"
output_dir = "out"
[retry]
backoff_base_s = 0.01
backoff_max_s = 0.05
[defaults]
api_key = "test-key"
base_url = "{base_url}"
[[workspace]]
name = "acme"
app_id = "ACME01"
reports = ["Daily campaign summary"]
[[workspace]]
name = "globex"
app_id = "GLOBEX7"
reports = ["{wrong}"]
"""
