"""A torn manifest tail of any length is found and cut in linear time (it was quadratic:
64 MiB of garbage took 27 s, 128 MiB 88 s). The per-test timeout is the guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from backfill.journal import load_manifest
from backfill.model import Status

from .test_journal import rec, run_writer

GARBAGE = 96 * 1024 * 1024  # quadratic: about a minute; linear: a second or two


def write_torn(path: Path, tail: bytes) -> Path:
    with open(path, "wb") as f:
        f.write(rec(0).to_line() + rec(1).to_line())
        for _ in range(GARBAGE // len(tail)):
            f.write(tail)
    return path


@pytest.mark.anyio
@pytest.mark.timeout(30)
@pytest.mark.parametrize("tail", [b"x" * 65536, b" " * 65535 + b"y"], ids=["text", "spaces"])
async def test_a_huge_torn_tail_is_cut_in_linear_time(tmp_path: Path, tail: bytes) -> None:
    path = write_torn(tmp_path / "m.jsonl", tail)
    state = load_manifest(path)
    assert state.torn_line == 3 and len(state) == 2
    writer = await run_writer(path, [rec(2, Status.FAILED)])
    assert writer.statistics().tail_repaired == "torn line removed"
    assert path.read_bytes() == rec(0).to_line() + rec(1).to_line() + rec(
        2, Status.FAILED).to_line()
