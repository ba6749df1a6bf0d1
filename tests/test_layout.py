"""The layout's rules (README "How the code is laid out"): pure modules load no I/O
library and ``backfill plan`` no engine (each checked in a fresh interpreter); no class
or function is too long to read."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PURE = ["backfill.model", "backfill.schedule", "backfill.planner", "backfill.policy",
        "backfill.naming", "backfill.destination",
        "backfill.signing", "backfill.journal.record", "backfill.journal.batching",
        "backfill.shards.assign", "backfill.shards.naming", "backfill.shards.merge",
        *(f"backfill.monitor.{m}" for m in ("settings", "atrisk", "digest", "verdict", "alert",
                                            "metrics", "runs", "capacity"))]
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


MAX_CLASS_LINES, MAX_FUNCTION_LINES = 200, 60


def test_no_class_or_function_is_too_long_to_read() -> None:
    root = Path(__file__).resolve().parents[1] / "backfill"
    too_long = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > limit:
                    too_long.append(f"{path.relative_to(root.parent)}:{node.lineno} "
                                    f"{node.name}: {lines} lines (at most {limit})")
    assert not too_long, "\n".join(too_long)


def test_the_engine_loads_no_presentation_no_extras_and_no_toml() -> None:
    """What a run given a parsed config needs before its first request (issue 18): rich
    waits for something to render, tomllib for a file to read, extras for their use."""
    loaded = loaded_after("import backfill.eventloop, backfill.config, backfill.engine")
    heavy = {"rich", "tomllib", "difflib", "obstore", "pyarrow", "distributed", "dask",
             "pendulum", "shtab", "backfill.cli", "backfill.simulator"}
    assert not loaded & heavy, sorted(loaded & heavy)
