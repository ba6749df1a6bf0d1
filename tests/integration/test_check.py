"""`backfill check` against the simulator: each kind of config mistake is told apart, and
nothing is downloaded to disk or written."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest

from backfill.simulator import run_simulator

from .conftest import TODAY, make_config

pytestmark = pytest.mark.anyio

CONFIG = """
[run]
output_dir = "out"

[defaults]
api_key = "test-key"
base_url = "{base}"
reports = ["Daily campaign summary", "Email - delivery (EU)"]

[[workspace]]
name = "acme"
app_id = "ACME01"
timezone = "Europe/Berlin"
reports = ["Daily campaign summary", "Daily campain summary"]

[[workspace]]
name = "globex"
app_id = "GLOBEX7"
secret_key = "not-the-secret"

[[workspace]]
name = "initech"
app_id = "INITECH9"

[[workspace]]
name = "offline"
app_id = "OFF1"
base_url = "http://127.0.0.1:{closed}"
"""


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_check_tells_the_mistakes_apart_and_writes_nothing(tmp_path: Path) -> None:
    async with run_simulator(make_config(tmp_path / "sim"), today=TODAY) as sim:
        cfg = tmp_path / "backfill.toml"
        cfg.write_text(CONFIG.format(base=sim.base_url, closed=closed_port()))
        cmd = [sys.executable, "-m", "backfill", "check", str(cfg), "--today",
               TODAY.isoformat()]
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        text = await anyio.run_process(cmd, check=False, env=env)
        doc = await anyio.run_process([*cmd, "--json"], check=False, env=env)
        one = await anyio.run_process([*cmd, "--workspace", "acme", "--json"], check=False,
                                      env=env)
    out = text.stdout.decode()
    assert text.returncode == 1, text.stderr.decode()
    assert all(len(line) <= 80 for line in out.splitlines()), out
    checks = {(c["workspace"], c["report"]): c for c in json.loads(doc.stdout)["checks"]}
    assert checks["acme", None]["ok"]
    assert checks["acme", "Daily campaign summary"]["text"] == \
        "ok: the file of 2026-11-26 is there"
    bad_name = checks["acme", "Daily campain summary"]
    assert not bad_name["ok"] and "check the report name" in bad_name["text"]
    assert "api_key or secret_key is wrong" in checks["globex", None]["text"]
    assert "check app_id and data_center" in checks["initech", None]["text"]
    assert checks["offline", None]["text"].startswith("unreachable: cannot connect")
    assert ("globex", "Daily campaign summary") not in checks  # one verdict per workspace
    assert sorted(os.listdir(tmp_path)) == ["backfill.toml"]
    # one request per (workspace, report) that can be reached: 2 + 2 + 2 for each of the
    # two full checks, 2 for acme alone
    assert sim.counters.total == 6 + 6 + 2
    assert one.returncode == 1  # its misspelt report
    assert {c["workspace"] for c in json.loads(one.stdout)["checks"]} == {"acme"}
    assert "FAIL  globex" not in out and f"globex (app_id GLOBEX7, {sim.base_url})" in out
