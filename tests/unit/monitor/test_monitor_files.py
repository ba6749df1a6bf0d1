"""The small state files: atomic, and never read or written through a planted symlink."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from backfill.monitor.files import alerts_path, read_small, runs_path, write_atomic


def test_names_sit_beside_the_manifest(tmp_path: Path) -> None:
    m = tmp_path / "m.jsonl"
    assert runs_path(m) == tmp_path / "m.jsonl.runs.json"
    assert alerts_path(m) == tmp_path / "m.jsonl.alerts.json"


def test_write_replaces_a_planted_symlink_and_leaves_no_temp(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    state = tmp_path / "m.jsonl.alerts.json"
    state.symlink_to(victim)
    write_atomic(state, '{"v": 1}\n')
    assert victim.read_text() == "keep"
    assert not state.is_symlink() and state.read_text() == '{"v": 1}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.jsonl.alerts.json", "victim"]


def test_read_refuses_symlinks_and_odd_files(tmp_path: Path) -> None:
    assert read_small(tmp_path / "absent") is None
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "target")
    (tmp_path / "target").write_text("x")
    with pytest.raises(OSError) as err:
        read_small(link)
    assert err.value.errno == errno.ELOOP
    with pytest.raises(ValueError):
        read_small(tmp_path)  # a directory
    big = tmp_path / "big"
    big.write_bytes(b"x" * (1024 * 1024 + 1))
    with pytest.raises(ValueError):
        read_small(big)


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_atomic(path, "old")
    with pytest.raises(OSError):
        write_atomic(tmp_path / "no-such-dir" / "f", "new")
    assert path.read_text() == "old"
