"""The local store follows no link below its root (issue 12, item 8): every folder is
walked by descriptor at every commit, the private folder and the sweep too, and a final
file is never read through a link. A link met fails that file, naming the path."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from backfill.errors import FileStorageError, StorageError
from backfill.store.local import LocalStore
from backfill.store.local import place as place_module

from .test_local_store import REL, chunked, make_zip

pytestmark = pytest.mark.anyio
SIZES = pytest.mark.parametrize("chunk_size", [1 << 20, 1024], ids=["group-commit", "part-file"])


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if not p.is_dir())


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    return path


@SIZES
@pytest.mark.parametrize("level", [1, 2], ids=["workspace-folder", "report-folder"])
async def test_a_link_at_a_folder_fails_that_file_naming_it(
        tmp_path: Path, outside: Path, chunk_size: int, level: int) -> None:
    """A link anywhere below the root, even one leading back inside it, is not followed."""
    root = tmp_path / "out"
    (root / "inside").mkdir(parents=True)
    link = root.joinpath(*REL.parts[:level])
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside)
    store = LocalStore(root, chunk_size=chunk_size)
    with pytest.raises(FileStorageError) as info:
        await store.save(REL, chunked(make_zip()), expected_length=None)
    assert str(info.value) == f"{link}: is a symbolic link, not followed"
    assert files_under(outside) == []
    link.unlink()
    link.symlink_to(root / "inside")  # inside the root: still a link, still refused
    with pytest.raises(FileStorageError, match="is a symbolic link, not followed"):
        await store.save(REL, chunked(make_zip()), expected_length=None)
    assert files_under(root / "inside") == []
    assert files_under(store.partials) == []


@SIZES
async def test_a_folder_swapped_for_a_link_between_receive_and_commit(
        tmp_path: Path, outside: Path, chunk_size: int) -> None:
    """The body is in (in memory, or in its .part file); then the workspace folder becomes
    a link to a folder inside the root: the commit walks afresh and refuses it."""
    root = tmp_path / "out"
    store = LocalStore(root, chunk_size=chunk_size)
    body = make_zip()
    await store.save(REL.with_name("first.zip"), chunked(body), expected_length=None)
    received = await store.receive(REL, chunked(body), expected_length=None)
    workspace = root / REL.parts[0]
    workspace.rename(outside / "moved")
    (root / "decoy" / REL.parts[1]).mkdir(parents=True)  # what the link would lead into
    workspace.symlink_to(root / "decoy")
    with pytest.raises(FileStorageError, match=f"{workspace}: is a symbolic link"):
        await store.commit(received, replace=False)
    assert files_under(root / "decoy") == []
    assert files_under(store.partials) == []


@SIZES
async def test_a_folder_swapped_at_the_rename_itself_is_not_written_through(
        tmp_path: Path, outside: Path, chunk_size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Swapped after the walk, just before the rename: the rename acts in the folder the
    walk opened (moved away, with the file), never through the link now at its name."""
    root = tmp_path / "out"
    store = LocalStore(root, chunk_size=chunk_size)
    workspace = root / REL.parts[0]
    real = place_module.rename_noreplace

    def swap_then_rename(*args: Any) -> None:
        workspace.rename(outside / "moved")
        workspace.symlink_to(root / "decoy")
        real(*args)

    (root / "decoy").mkdir(parents=True)
    monkeypatch.setattr(place_module, "rename_noreplace", swap_then_rename)
    await store.save(REL, chunked(make_zip()), expected_length=None)
    assert files_under(root / "decoy") == []  # nothing through the link
    assert (outside / "moved").joinpath(*REL.parts[1:]).is_file()  # where the folder went


async def test_a_link_at_the_final_name_is_never_read_through(tmp_path: Path) -> None:
    """A link planted at a final name, to a file with exactly the recorded bytes: verify
    does not vouch for it and open_read does not hand the other file out."""
    root, body = tmp_path / "out", make_zip()
    other = tmp_path / "other.zip"
    other.write_bytes(body)
    final = root / REL
    final.parent.mkdir(parents=True)
    final.symlink_to(other)
    store = LocalStore(root)
    sha = hashlib.sha256(body).hexdigest()
    problem = await store.verify(REL, sha256=sha, size=len(body))
    assert problem == f"not a regular file ({final}: is a symbolic link, not followed)"
    with pytest.raises(StorageError, match="is a symbolic link"):
        async with store.open_read(REL):
            pass
    (root / REL.parts[0]).rename(tmp_path / "moved")
    (root / REL.parts[0]).symlink_to(tmp_path / "moved")  # a link at a folder: the same
    assert (await store.verify(REL, sha256=sha, size=len(body)) or "").endswith(
        "is a symbolic link, not followed)")


async def test_a_link_planted_at_the_private_folder_stops_the_run_writing_nothing(
        tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "out"
    store = LocalStore(root, chunk_size=1024, owner="/m/manifest.jsonl")
    store.partials.parent.mkdir(parents=True)
    store.partials.symlink_to(outside)
    with pytest.raises(StorageError) as info:
        await store.save(REL, chunked(make_zip()), expected_length=None)
    assert not isinstance(info.value, FileStorageError)  # every file would meet it
    assert str(info.value) == f"{store.partials}: is a symbolic link, not followed"
    assert files_under(outside) == []


@pytest.mark.parametrize("planted", ["folder", "top"])
def test_the_sweep_deletes_nothing_through_a_link(tmp_path: Path, outside: Path,
                                                  planted: str) -> None:
    """A link planted at the private folder (or at .backfill-partial) to a folder of
    someone else's *.part files: the sweep refuses it, naming the path; they stay."""
    root = tmp_path / "out"
    store = LocalStore(root, owner="/m/manifest.jsonl")
    (outside / "theirs.part").write_bytes(b"x")
    link = store.partials if planted == "folder" else store.partials.parent
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside)
    with pytest.raises(StorageError, match=f"{link}: is a symbolic link, not followed"):
        store.remove_stale_parts()
    assert (outside / "theirs.part").read_bytes() == b"x"


def test_the_sweep_removes_a_link_inside_its_folder_not_its_target(
        tmp_path: Path, outside: Path) -> None:
    store = LocalStore(tmp_path / "out", owner="/m/manifest.jsonl")
    store.partials.mkdir(parents=True)
    (outside / "theirs.part").write_bytes(b"x")
    (store.partials / "planted.part").symlink_to(outside / "theirs.part")
    (store.partials / "sub.part").mkdir()  # a folder is not a partial file of ours
    (store.partials / "sub.part" / "deep.part").write_bytes(b"y")
    (store.partials / "mine.part").write_bytes(b"z")
    assert store.remove_stale_parts() == 2  # the link itself and ours
    assert (outside / "theirs.part").read_bytes() == b"x"
    assert files_under(store.partials) == ["sub.part/deep.part"]


async def test_each_commit_walks_its_folders_afresh(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """No folder descriptor kept from one commit to the next (only the root's): each
    save opens its folders again, name by name, without following a link."""
    store = LocalStore(tmp_path / "out", chunk_size=1 << 20)
    opened: list[tuple[str, int]] = []
    real_open = os.open

    def spy(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_DIRECTORY:
            opened.append((str(path), flags & os.O_NOFOLLOW))
        return real_open(path, flags, *args, **kwargs)

    await store.save(REL.with_name("a.zip"), chunked(make_zip()), expected_length=None)
    monkeypatch.setattr(os, "open", spy)
    await store.save(REL.with_name("b.zip"), chunked(make_zip()), expected_length=None)
    walked = [name for name, nofollow in opened if nofollow]
    assert walked.count(REL.parts[0]) == 1 and walked.count(REL.parts[1]) == 1
    assert all(nofollow for name, nofollow in opened)  # the root was opened once, before
