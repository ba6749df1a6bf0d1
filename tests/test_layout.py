"""The layout's import rules (README "How the code is laid out"), checked in a fresh
interpreter: pure modules load no I/O library, ``backfill plan`` loads no engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PURE = ["backfill.model", "backfill.planner", "backfill.policy", "backfill.naming",
        "backfill.signing", "backfill.journal.record", "backfill.journal.batching"]
IO = ["aiohttp", "anyio", "backfill.store", "backfill.engine", "backfill.client",
      "backfill.journal.lock", "backfill.journal.writer", "fcntl"]  # (pendulum loads ctypes)


def loaded_after(code: str) -> set[str]:
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                         text=True).stdout
    return set(json.loads(out.splitlines()[-1]))


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_io(module: str) -> None:
    loaded = loaded_after(f"import {module}")
    assert not loaded & set(IO), f"{module} loads {sorted(loaded & set(IO))}"


def test_backfill_plan_loads_neither_aiohttp_nor_the_store() -> None:
    example = Path(__file__).resolve().parents[1] / "configs" / "example.toml"
    code = ("import contextlib, io\nfrom backfill.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert main(['plan', {str(example)!r}, '--json']) == 0")
    loaded = loaded_after(code)
    assert not loaded & {"aiohttp", "backfill.store", "backfill.engine", "backfill.client"}
