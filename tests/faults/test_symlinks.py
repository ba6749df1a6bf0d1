"""No file the tool creates, truncates or renames is reached through a link it did not
make: the lock file, the compaction's temporary file, a workspace folder swapped for a
link in the middle of a run (every commit walks its folders afresh, by descriptor)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath

import anyio
import pytest

from backfill.errors import FileStorageError, StorageError
from backfill.journal.compaction import compact
from backfill.journal.record import Record
from backfill.model import Status
from backfill.store.local import LocalStore

from .conftest import TODAY, cli_command
from .test_hostile_files import assert_one_line, write_config

pytestmark = pytest.mark.anyio
PRECIOUS = b"somebody else's file\n"


def precious(tmp: Path) -> Path:
    target = tmp / "elsewhere" / "precious.txt"
    target.parent.mkdir()
    target.write_bytes(PRECIOUS)
    return target


async def test_a_lock_file_planted_as_a_link_is_refused(tmp_path: Path) -> None:
    target = precious(tmp_path)
    config = write_config(tmp_path)
    (tmp_path / "out").mkdir()
    lock = tmp_path / "out" / "manifest.jsonl.lock"
    lock.symlink_to(target)
    with anyio.fail_after(30):
        result = await anyio.run_process(
            cli_command("run", str(config), "--today", TODAY.isoformat(), "--no-progress"),
            check=False)
    assert_one_line(result.returncode, result.stderr.decode(), lock, "symbolic link")
    assert target.read_bytes() == PRECIOUS  # not truncated


def test_a_compaction_temp_file_planted_as_a_link_is_not_written_through(
        tmp_path: Path) -> None:
    target = precious(tmp_path)
    manifest = tmp_path / "manifest.jsonl"
    rec = Record(workspace="w", app_id="A", report="r", date="2026-11-20",
                 filename="r_20261120.zip", status=Status.EXPIRED)
    manifest.write_bytes(rec.to_line() * 3)
    (tmp_path / "manifest.jsonl.compact.tmp").symlink_to(target)
    compact(manifest, [rec])
    assert target.read_bytes() == PRECIOUS
    assert not manifest.is_symlink() and manifest.read_bytes() == rec.to_line()
    assert not (tmp_path / "manifest.jsonl.compact.tmp").exists()


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.mark.parametrize("chunk_size", [256 * 1024, 16], ids=["group-commit", "part-file"])
async def test_a_folder_swapped_for_a_link_mid_run_is_caught(tmp_path: Path,
                                                            chunk_size: int) -> None:
    from ..unit.store.test_local_store import make_zip

    root, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    store = LocalStore(root, chunk_size=chunk_size)
    data = make_zip(2000)
    await store.save(PurePosixPath("acme/a.zip"), body(data), expected_length=None)
    (root / "acme").rename(tmp_path / "moved")  # the folder is swapped for a link out
    (root / "acme").symlink_to(outside)
    with pytest.raises(FileStorageError, match="acme: is a symbolic link, not followed"):
        await store.save(PurePosixPath("acme/b.zip"), body(data), expected_length=None)
    assert list(outside.iterdir()) == []


def test_compaction_refuses_a_link_at_the_manifest_name(tmp_path: Path) -> None:
    """The manifest swapped for a link after the run opened it: the rename is refused,
    the link and what it points to stay as they were, no temporary file is left."""
    target = precious(tmp_path)
    manifest = tmp_path / "manifest.jsonl"
    manifest.symlink_to(target)
    rec = Record(workspace="w", app_id="A", report="r", date="2026-11-20",
                 filename="r_20261120.zip", status=Status.EXPIRED)
    with pytest.raises(StorageError) as info:
        compact(manifest, [rec])
    assert str(info.value) == (f"{manifest}: cannot compact the manifest "
                               "(is a symbolic link, not followed)")
    assert manifest.is_symlink() and target.read_bytes() == PRECIOUS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "manifest.jsonl"]


async def test_manifest_merge_refuses_an_out_that_is_a_link(tmp_path: Path) -> None:
    """OUT is a manifest the merge writes: a link there is refused as a run refuses one."""
    target = precious(tmp_path)
    rec = Record(workspace="w", app_id="A", report="r", date="2026-11-20",
                 filename="r_20261120.zip", status=Status.EXPIRED)
    source = tmp_path / "manifest.shard-0-of-2.jsonl"
    source.write_bytes(rec.to_line())
    out = tmp_path / "manifest.jsonl"
    out.symlink_to(target)
    with anyio.fail_after(30):
        result = await anyio.run_process(
            cli_command("manifest", "merge", str(out), str(source)), check=False)
    assert_one_line(result.returncode, result.stderr.decode(), out, "symbolic link")
    assert out.is_symlink() and target.read_bytes() == PRECIOUS


async def test_a_demo_config_planted_as_a_link_is_not_written_through(
        tmp_path: Path) -> None:
    target = precious(tmp_path)
    out = tmp_path / "demo"
    out.mkdir()
    (out / "demo.toml").symlink_to(target)
    with anyio.fail_after(60):
        result = await anyio.run_process(
            cli_command("demo", "--output-dir", str(out)), check=False)
    assert_one_line(result.returncode, result.stderr.decode(), out / "demo.toml",
                    "is a symbolic link, not followed")
    assert target.read_bytes() == PRECIOUS
    assert sorted(p.name for p in out.iterdir()) == ["demo.toml"]


@pytest.mark.parametrize("name", ["manifest.jsonl.lock", "manifest.jsonl.shards.lock"])
async def test_a_shard_lock_file_planted_as_a_link_is_refused(tmp_path: Path,
                                                             name: str) -> None:
    """A shard run opens the main manifest's lock and the shards' lock as a plain run
    opens its lock: a link there is one line (exit 2), nothing opened through it."""
    target = precious(tmp_path)
    config = write_config(tmp_path)
    (tmp_path / "out").mkdir()
    lock = tmp_path / "out" / name
    lock.symlink_to(target)
    with anyio.fail_after(30):
        result = await anyio.run_process(
            cli_command("run", str(config), "--shard", "0/2", "--today", TODAY.isoformat(),
                        "--no-progress"), check=False)
    assert_one_line(result.returncode, result.stderr.decode(), lock,
                    "cannot create the lock file (is a symbolic link)")
    assert target.read_bytes() == PRECIOUS and lock.is_symlink()


def test_the_manifest_tail_is_judged_from_the_open_file_not_its_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest is swapped for a link (to a file with a torn last line) just after the
    writer opened it: its tail is read through the descriptor, so the writer's own file
    only gains its missing newline, and the link's target is neither read nor cut."""
    from backfill.journal import file as file_module

    rec = Record(workspace="w", app_id="A", report="r", date="2026-11-20",
                 filename="r_20261120.zip", status=Status.EXPIRED)
    manifest, moved = tmp_path / "manifest.jsonl", tmp_path / "moved.jsonl"
    manifest.write_bytes(rec.to_line() * 2 + rec.to_line().rstrip(b"\n"))
    other = tmp_path / "elsewhere.jsonl"
    other.write_bytes(rec.to_line() + b'{"v": 1, "workspace": "w", "app')
    real_kind_of = file_module.kind_of

    def swap_then_look(mode: int) -> str | None:
        manifest.rename(moved)
        manifest.symlink_to(other)
        return real_kind_of(mode)

    monkeypatch.setattr(file_module, "kind_of", swap_then_look)
    appender = file_module.AppendFile(manifest)
    appender.open()
    appender.close()
    assert appender.tail_repaired == "newline added"
    assert moved.read_bytes() == rec.to_line() * 3
    assert other.read_bytes() == rec.to_line() + b'{"v": 1, "workspace": "w", "app'
