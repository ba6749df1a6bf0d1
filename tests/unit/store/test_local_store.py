from __future__ import annotations

import functools
import hashlib
import io
import os
import resource
import signal
import tracemalloc
import zipfile
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import anyio
import anyio.to_thread
import pytest

from backfill.errors import (
    BodyTooLarge,
    ConnectionLost,
    FileStorageError,
    InvalidBody,
    StorageError,
)
from backfill.store import Stored
from backfill.store.local import LocalStore
from backfill.store.local import place as place_module
from backfill.store.local.part import part_name
from backfill.zipcheck import check_zip

REL = PurePosixPath("acme-eu/Daily_campaign_summary/Daily_campaign_summary_20261121.zip")


def make_zip(size: int = 10_000, *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        zf.writestr("report.csv", os.urandom(size // 2).hex()[:size])
    return buf.getvalue()


def flip_member_byte(data: bytes) -> bytes:
    """Flip one byte in the middle of the first member's data (headers intact)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.infolist()[0]
    name_len = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    pos = start + info.compress_size // 2
    return data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1 :]


async def chunked(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------- save: ok


@pytest.mark.anyio
async def test_save_small_file(tmp_path: Path) -> None:
    body = make_zip()
    storage = LocalStore(tmp_path / "out")
    stored = await storage.save(REL, chunked(body), expected_length=len(body))
    final = tmp_path / "out" / REL
    assert stored == Stored(REL, len(body), hashlib.sha256(body).hexdigest())
    assert final.read_bytes() == body
    assert leftovers(tmp_path / "out") == [str(REL)]


@pytest.mark.anyio
async def test_save_large_file_streams_in_chunks(tmp_path: Path) -> None:
    body = make_zip(200_000, compression=zipfile.ZIP_STORED)
    storage = LocalStore(tmp_path, chunk_size=16 * 1024)
    stored = await storage.save(REL, chunked(body, 7000), expected_length=None)
    assert stored.bytes == len(body)
    assert stored.sha256 == hashlib.sha256(body).hexdigest()
    assert (tmp_path / REL).read_bytes() == body
    assert leftovers(tmp_path) == [str(REL)]


@pytest.mark.anyio
async def test_small_file_takes_one_thread_hop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = anyio.to_thread.run_sync

    async def counting(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        calls.append(func.__name__)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    body = make_zip()
    await LocalStore(tmp_path).save(REL, chunked(body, 1024), expected_length=len(body))
    assert calls == ["_commit_batch"]


@pytest.mark.anyio
async def test_concurrent_small_files_share_thread_hops_and_directory_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 bodies arriving together: a few batches, each directory fsynced once per batch,
    and every file's own fsync and rename still before its save() returns."""
    hops: list[int] = []
    real = anyio.to_thread.run_sync

    async def counting(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if func.__name__ == "_commit_batch":
            hops.append(len(args[0]))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    storage = LocalStore(tmp_path, commit_threads=1, syncfs=False)
    bodies = {PurePosixPath(f"ws-{i % 2}/r_{i:02d}.zip"): make_zip(1000 + i) for i in range(40)}
    stored: dict[PurePosixPath, Stored] = {}

    async def one(rel: PurePosixPath) -> None:
        stored[rel] = await storage.save(rel, chunked(bodies[rel]), expected_length=None)
        final = tmp_path / rel
        assert final.read_bytes() == bodies[rel]
        part = storage.partials / part_name(rel)
        assert str(part) in synced  # its data was fsynced before the rename

    async with anyio.create_task_group() as tg:
        for rel in bodies:
            tg.start_soon(one, rel)
    assert sum(hops) == 40 and len(hops) < 40
    dirs = {str(tmp_path / "ws-0"), str(tmp_path / "ws-1")}
    dir_syncs = [p for p in synced if p in dirs]  # (creating them fsyncs tmp_path too)
    assert len(dir_syncs) <= 2 * len(hops)  # per batch: each of the 2 directories once
    assert set(dir_syncs) == dirs
    for rel, body in bodies.items():
        assert stored[rel].sha256 == hashlib.sha256(body).hexdigest()


@pytest.mark.anyio
async def test_a_batch_syncs_its_data_before_any_rename_and_the_names_before_returning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With syncfs, a batch is: all written, one syncfs, all renamed, one syncfs; no save
    returns before its batch has ended. (syncfs itself is stubbed: this is about order.)"""
    events: list[str] = []
    storage = LocalStore(tmp_path, commit_threads=1)
    storage._syncfs = lambda fd: events.append("syncfs")
    real_batch = storage._commit_batch

    def batch(jobs: list[Any]) -> None:
        events.append(f"begin {len(jobs)}")
        real_batch(jobs)
        events.append("end")

    storage._group._run_batch = batch
    real_rename = place_module.rename_noreplace

    def rename(*args: Any) -> None:
        events.append("rename")
        real_rename(*args)

    monkeypatch.setattr(place_module, "rename_noreplace", rename)

    async def one(i: int) -> None:
        await storage.save(PurePosixPath(f"ws/f{i}.zip"), chunked(make_zip()),
                           expected_length=None)
        assert events[-1] == "end"  # its batch is over

    async with anyio.create_task_group() as tg:
        for i in range(12):
            tg.start_soon(one, i)
    text = " | ".join(events).split(" | end")
    grouped = [b for b in text if "begin 1 " not in b + " " and b.strip(" |")]
    assert grouped  # 12 saves at once: at least one batch of several files
    for b in grouped:
        n = int(b.split("begin ")[1].split(" ")[0])
        assert b.strip(" |") == " | ".join([f"begin {n}", "syncfs", *["rename"] * n, "syncfs"])
    assert leftovers(tmp_path) == sorted(f"ws/f{i}.zip" for i in range(12))


@pytest.mark.anyio
async def test_a_failed_syncfs_fails_its_batch_and_leaves_no_part(tmp_path: Path) -> None:
    storage = LocalStore(tmp_path, commit_threads=1)

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    storage._syncfs = broken
    errors: list[BaseException] = []
    gate = anyio.Event()

    async def one(i: int) -> None:
        await gate.wait()
        try:
            await storage.save(PurePosixPath(f"ws/f{i}.zip"), chunked(make_zip()),
                               expected_length=None)
        except StorageError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(one, i)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    # a lone file is fsynced (syncfs is for batches); the others failed, renamed or not
    assert errors and all("I/O error" in str(e) for e in errors)
    assert not [p for p in leftovers(tmp_path) if p.endswith(".part")]


@pytest.mark.anyio
async def test_a_bad_body_in_a_batch_fails_alone(tmp_path: Path) -> None:
    storage = LocalStore(tmp_path, commit_threads=1)
    good, bad = make_zip(), flip_member_byte(make_zip())
    results: dict[str, object] = {}

    async def one(name: str, body: bytes) -> None:
        try:
            results[name] = await storage.save(PurePosixPath(f"ws/{name}.zip"), chunked(body),
                                               expected_length=None)
        except InvalidBody as exc:
            results[name] = exc

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(one, f"f{i}", bad if i == 4 else good)
    assert isinstance(results.pop("f4"), InvalidBody)
    assert all(isinstance(r, Stored) for r in results.values())
    assert leftovers(tmp_path) == sorted(f"ws/{n}.zip" for n in results)


@pytest.mark.anyio
async def test_large_inflation_is_checked_in_the_thread(tmp_path: Path) -> None:
    """A small body that inflates to more than 1 MiB is not checked on the event loop;
    the thread checks it the same way (a bad CRC fails, a good one is stored)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("report.csv", b"0" * (3 << 20))
    body = buf.getvalue()
    assert len(body) < 64 * 1024
    storage = LocalStore(tmp_path)
    stored = await storage.save(REL, chunked(body), expected_length=None)
    assert stored.sha256 == hashlib.sha256(body).hexdigest()
    with pytest.raises(InvalidBody, match="corrupt zip"):
        await storage.save(REL, chunked(flip_member_byte(body)), expected_length=None)
    assert (tmp_path / REL).read_bytes() == body
    assert leftovers(tmp_path) == [str(REL)]


@pytest.mark.anyio
async def test_cancelled_while_waiting_for_a_batch_leaves_no_part(tmp_path: Path) -> None:
    """Saves cancelled while another batch holds the only commit thread: nothing of
    theirs stays behind; the file in the running batch is complete."""
    storage = LocalStore(tmp_path, commit_threads=1)
    started, release = anyio.Event(), anyio.Event()
    real = storage._commit_batch

    def slow_batch(jobs: list[Any]) -> None:
        anyio.from_thread.run_sync(started.set)
        anyio.from_thread.run(release.wait)
        real(jobs)

    storage._commit_batch = slow_batch  # type: ignore[method-assign]
    storage._group._run_batch = slow_batch
    body = make_zip()
    async with anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(storage.save, PurePosixPath("ws/first.zip"),
                                        chunked(body), expected_length=None))
        await started.wait()
        async with anyio.create_task_group() as waiting:
            for i in range(5):
                waiting.start_soon(functools.partial(
                    storage.save, PurePosixPath(f"ws/w{i}.zip"), chunked(body),
                    expected_length=None))
            await anyio.wait_all_tasks_blocked()
            waiting.cancel_scope.cancel()
        release.set()
    assert leftovers(tmp_path) == ["ws/first.zip"]


@pytest.mark.anyio
@pytest.mark.parametrize("chunk_size", [1 << 20, 1024], ids=["group-commit", "part-file"])
async def test_save_replaces_existing_file_when_the_manifest_wrote_it(
        tmp_path: Path, chunk_size: int) -> None:
    final = tmp_path / REL
    final.parent.mkdir(parents=True)
    final.write_bytes(b"old")
    body = make_zip()
    await LocalStore(tmp_path, chunk_size=chunk_size).save(REL, chunked(body),
                                                           expected_length=None, replace=True)
    assert final.read_bytes() == body


# ---------------------------------------------------------------------------- save: refused


@pytest.mark.anyio
@pytest.mark.parametrize("chunk_size", [1 << 20, 1024])  # small-file path and streaming path
async def test_too_large_body(tmp_path: Path, chunk_size: int) -> None:
    body = make_zip(50_000, compression=zipfile.ZIP_STORED)
    storage = LocalStore(tmp_path, max_file_bytes=len(body) - 1, chunk_size=chunk_size)
    with pytest.raises(BodyTooLarge):
        await storage.save(REL, chunked(body), expected_length=None)
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_announced_length_too_large_fails_before_reading(tmp_path: Path) -> None:
    started = False

    async def body() -> AsyncIterator[bytes]:
        nonlocal started
        started = True
        yield b"x"

    with pytest.raises(BodyTooLarge):
        await LocalStore(tmp_path, max_file_bytes=100).save(REL, body(), expected_length=101)
    assert not started
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
@pytest.mark.parametrize("chunk_size", [1 << 20, 1024])
async def test_truncated_body(tmp_path: Path, chunk_size: int) -> None:
    body = make_zip()
    storage = LocalStore(tmp_path, chunk_size=chunk_size)
    expected = rf"^truncated: got {len(body)} of {len(body) + 10} bytes$"
    with pytest.raises(InvalidBody, match=expected):
        await storage.save(REL, chunked(body), expected_length=len(body) + 10)
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_body_longer_than_announced(tmp_path: Path) -> None:
    body = make_zip()
    with pytest.raises(InvalidBody, match="length mismatch"):
        await LocalStore(tmp_path).save(REL, chunked(body), expected_length=len(body) - 1)
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
@pytest.mark.parametrize("chunk_size", [1 << 20, 64])
@pytest.mark.parametrize(
    "body",
    [
        b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>",
        b'{"error": {"code": "400", "message": "file not found"}}',
        b"",
    ],
    ids=["html", "json", "empty"],
)
async def test_not_a_zip(tmp_path: Path, chunk_size: int, body: bytes) -> None:
    storage = LocalStore(tmp_path, chunk_size=chunk_size)
    with pytest.raises(InvalidBody, match=r"^not a zip$"):
        await storage.save(REL, chunked(body, 16), expected_length=len(body))
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
@pytest.mark.parametrize("chunk_size", [1 << 20, 1024])
async def test_corrupt_zip_flipped_byte(tmp_path: Path, chunk_size: int) -> None:
    body = flip_member_byte(make_zip(compression=zipfile.ZIP_STORED))
    storage = LocalStore(tmp_path, chunk_size=chunk_size)
    with pytest.raises(InvalidBody, match=r"^corrupt zip: bad CRC in member 'report\.csv'$"):
        await storage.save(REL, chunked(body), expected_length=len(body))
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_failed_save_keeps_existing_file(tmp_path: Path) -> None:
    final = tmp_path / REL
    final.parent.mkdir(parents=True)
    final.write_bytes(b"previous")
    with pytest.raises(InvalidBody):
        await LocalStore(tmp_path).save(REL, chunked(b"<html>"), expected_length=None)
    assert final.read_bytes() == b"previous"
    assert leftovers(tmp_path) == [str(REL)]


# ---------------------------------------------------------------------------- save: failures


@pytest.mark.anyio
async def test_cancellation_mid_stream_leaves_no_part(tmp_path: Path) -> None:
    storage = LocalStore(tmp_path, chunk_size=1024)
    part = storage.partials / part_name(REL)
    part_written = anyio.Event()
    closed = False

    async def stalling() -> AsyncIterator[bytes]:
        nonlocal closed
        try:
            yield b"PK\x03\x04" + bytes(4096)
            part_written.set()  # asked for more: the first chunk is on disk
            await anyio.sleep_forever()
            yield b""  # pragma: no cover
        finally:
            closed = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(storage.save, REL, stalling(), expected_length=None))
        await part_written.wait()
        assert part.exists()
        tg.cancel_scope.cancel()
    assert leftovers(tmp_path) == []
    assert closed


@pytest.mark.anyio
async def test_iterator_errors_pass_through(tmp_path: Path) -> None:
    error = ConnectionLost("connection lost mid-body")
    reset = ConnectionResetError(104, "reset")  # an OSError, but not ours: not a StorageError

    for exc in (error, reset):

        async def failing(exc: BaseException = exc) -> AsyncIterator[bytes]:
            yield b"PK\x03\x04" + bytes(5000)
            raise exc

        with pytest.raises(type(exc)) as info:
            await LocalStore(tmp_path, chunk_size=1024).save(REL, failing(), expected_length=None)
        assert info.value is exc
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
@pytest.mark.parametrize("chunk_size", [1 << 20, 1024])
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
async def test_disk_full_becomes_storage_error(tmp_path: Path, chunk_size: int) -> None:
    """A full disk as the process sees it: writes past RLIMIT_FSIZE fail with EFBIG."""
    final = tmp_path / REL
    body = make_zip(50_000)
    storage = LocalStore(tmp_path, chunk_size=chunk_size)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(StorageError) as info:
            await storage.save(REL, chunked(body), expected_length=None)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert str(info.value).startswith(f"{final}: disk full")
    assert not isinstance(info.value, FileStorageError)  # run-wide: the run stops
    assert isinstance(info.value.__cause__, OSError)
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_unwritable_directory_becomes_storage_error(tmp_path: Path) -> None:
    (tmp_path / "acme-eu").write_bytes(b"a file where a directory should be")
    with pytest.raises(StorageError) as info:
        await LocalStore(tmp_path).save(REL, chunked(make_zip()), expected_length=None)
    assert isinstance(info.value, FileStorageError)  # that file only
    assert str(info.value) == f"{tmp_path / 'acme-eu'}: not a directory"  # the folder at fault


@pytest.mark.anyio
@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
async def test_read_only_directory_becomes_storage_error(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir(mode=0o555)
    rel = PurePosixPath("ro/x.zip")
    try:
        with pytest.raises(StorageError) as info:
            await LocalStore(tmp_path).save(rel, chunked(make_zip()), expected_length=None)
    finally:
        (tmp_path / "ro").chmod(0o755)
    assert str(info.value) == f"{tmp_path / rel}: permission denied"


@pytest.mark.anyio
async def test_memory_stays_flat_for_a_large_body(tmp_path: Path) -> None:
    chunk = bytes(64 * 1024)
    total = 64 * 1024 * 1024

    async def big() -> AsyncIterator[bytes]:
        for _ in range(total // len(chunk)):
            yield chunk

    tracemalloc.start()
    try:
        with pytest.raises(InvalidBody, match="not a zip"):  # zeros: checked after streaming
            await LocalStore(tmp_path).save(REL, big(), expected_length=total)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------- paths


@pytest.mark.parametrize("rel", ["../x.zip", "a/../../x.zip", "/etc/x.zip", "."])
def test_escaping_paths_refused(tmp_path: Path, rel: str) -> None:
    with pytest.raises(StorageError, match="would leave the output directory"):
        LocalStore(tmp_path / "out").target(PurePosixPath(rel))


def test_target_inside_root(tmp_path: Path) -> None:
    assert LocalStore(tmp_path).target(REL) == tmp_path / REL


# ---------------------------------------------------------------------------- upkeep


def test_remove_stale_parts_only_in_its_own_folder(tmp_path: Path) -> None:
    """Another program's *.part, another manifest's partial files: never touched."""
    mine, theirs = LocalStore(tmp_path, owner="/a/manifest.jsonl"), LocalStore(
        tmp_path, owner="/b/manifest.jsonl")
    assert mine.partials != theirs.partials and mine.partials.parent == theirs.partials.parent
    foreign = ["a/x.zip.part", "b/c/y.zip.part", "b/keep.zip", "z.part", "manifest.jsonl"]
    for path in [*(tmp_path / n for n in foreign), mine.partials / "1.part",
                 mine.partials / "2.part", theirs.partials / "3.part"]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    assert mine.remove_stale_parts() == 2
    left = leftovers(tmp_path)
    assert [n for n in left if not n.startswith(".backfill-partial")] == sorted(foreign)
    assert (theirs.partials / "3.part").exists()
    assert mine.remove_stale_parts() == 0
    assert LocalStore(tmp_path / "absent").remove_stale_parts() == 0


@pytest.mark.anyio
async def test_verify(tmp_path: Path) -> None:
    body = make_zip()
    storage = LocalStore(tmp_path)
    stored = await storage.save(REL, chunked(body), expected_length=None)
    final = tmp_path / REL

    assert await storage.verify(REL, sha256=stored.sha256, size=stored.bytes) is None
    assert await storage.verify(REL, sha256=stored.sha256.upper(), size=stored.bytes) is None

    final.write_bytes(flip_member_byte(body))
    assert await storage.verify(REL, sha256=stored.sha256, size=stored.bytes) == "sha256 mismatch"

    final.write_bytes(body + b"x")
    assert await storage.verify(REL, sha256=stored.sha256, size=stored.bytes) == (
        f"size {len(body) + 1} != {len(body)}"
    )

    final.unlink()
    assert await storage.verify(REL, sha256=stored.sha256, size=stored.bytes) == "missing"

    final.mkdir()
    assert await storage.verify(REL, sha256=stored.sha256, size=0) == "not a regular file"


# ---------------------------------------------------------------------------- check_zip


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def cases() -> Iterable[tuple[str, bytes, str | None]]:
    good = make_zip()
    yield "ok", good, None
    yield "empty archive", _empty_zip(), None
    yield "html", b"<html></html>", "not a zip"
    yield "no central directory", good[: len(good) - 30], "corrupt zip: "
    yield "flipped stored byte", flip_member_byte(make_zip(compression=zipfile.ZIP_STORED)), (
        "corrupt zip: bad CRC in member 'report.csv'"
    )
    yield "flipped deflated byte", flip_member_byte(good), "corrupt zip: "


def _empty_zip() -> bytes:
    buf = io.BytesIO()
    zipfile.ZipFile(buf, "w").close()
    return buf.getvalue()


@pytest.mark.parametrize(("name", "data", "problem"), list(cases()), ids=[c[0] for c in cases()])
def test_check_zip(tmp_path: Path, name: str, data: bytes, problem: str | None) -> None:
    result = check_zip(_write(tmp_path / "f.zip", data))
    if problem is None:
        assert result is None
    else:
        assert result is not None and result.startswith(problem), result
