from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backfill.errors import LockedError, ManifestError, StorageError
from backfill.journal import (
    ManifestLock,
    ManifestWriter,
    Record,
    Status,
    compact,
    load_manifest,
    now_utc,
    parse_line,
)

ROOT = Path(__file__).resolve().parents[3]


def rec(i: int = 0, status: Status = Status.COMPLETED, **changes: Any) -> Record:
    filename = f"Daily_campaign_summary_{20261101 + i % 28}.zip"
    base = Record(
        workspace="acme-eu",
        app_id=f"ACME{i // 28:02d}",
        report="Daily campaign summary",
        date=f"2026-11-{1 + i % 28:02d}",
        filename=filename,
        status=status,
        path=f"acme-eu/Daily_campaign_summary/{filename}",
        bytes=10240 + i,
        sha256=f"{i:064x}",
        attempts=1,
        http_status=200,
        updated_at="2026-11-27T00:41:03Z",
    )
    return dataclasses.replace(base, **changes)


def write_lines(path: Path, *lines: bytes) -> Path:
    path.write_bytes(b"".join(lines))
    return path


# ---------------------------------------------------------------------------- Record


def test_to_line_is_compact_json_in_design_order() -> None:
    r = rec(3, error="x", request_id="req-1")
    line = r.to_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    obj = json.loads(line)
    assert list(obj) == [
        "v", "workspace", "app_id", "report", "date", "filename", "status", "path", "bytes",
        "sha256", "attempts", "http_status", "error", "request_id", "updated_at",
    ]
    assert line == json.dumps(obj, separators=(",", ":")).encode() + b"\n"
    assert obj["v"] == 1 and obj["status"] == "completed"


def test_to_line_escapes_anything() -> None:
    r = rec(workspace='a"b\\c\nd\x00é€😀', report="Wöchentlich / e-mail", error="line\r\nbreak")
    line = r.to_line()
    assert line.isascii() and line.count(b"\n") == 1
    assert parse_line(line) == r


def test_key() -> None:
    assert rec(5).key == ("ACME00", "Daily_campaign_summary_20261106.zip")


def test_from_json_defaults_optional_fields() -> None:
    obj = {"v": 1, "workspace": "w", "app_id": "A", "report": "R", "date": "2026-11-21",
           "filename": "R_20261121.zip", "status": "expired"}
    assert Record.from_json(obj) == Record("w", "A", "R", "2026-11-21", "R_20261121.zip",
                                           Status.EXPIRED)


def test_from_json_normalises_sha256_case() -> None:
    obj = json.loads(rec(sha256="AB" * 32).to_line())
    assert Record.from_json(obj).sha256 == "ab" * 32


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"v": 2}, "unsupported record version 2"),
        ({"v": "1"}, "field 'v': expected an integer"),
        ({"status": "done"}, "field 'status': 'done' is not a status"),
        ({"date": "2026-13-01"}, "field 'date'"),
        ({"date": "20261121"}, "field 'date'"),
        ({"app_id": ""}, "field 'app_id': must not be empty"),
        ({"filename": None}, "field 'filename': expected a string, got null"),
        ({"bytes": -1}, "field 'bytes': -1 is out of range"),
        ({"bytes": 1.5}, "field 'bytes': expected an integer, got a number"),
        ({"attempts": True}, "field 'attempts': expected an integer, got a boolean"),
        ({"http_status": 1000}, "field 'http_status'"),
        ({"sha256": "xyz"}, "field 'sha256': expected 64 hex digits"),
        ({"sha256": "g" * 64}, "field 'sha256': expected 64 hex digits"),
        ({"path": 3}, "field 'path': expected a string or null, got an integer"),
        ({"extra": 1}, "unknown field 'extra'"),
    ],
)
def test_from_json_rejects(change: dict[str, Any], reason: str) -> None:
    obj = json.loads(rec().to_line()) | change
    with pytest.raises(ValueError, match=reason):
        Record.from_json(obj)


def test_from_json_rejects_missing_field_and_non_object() -> None:
    obj = json.loads(rec().to_line())
    del obj["status"]
    with pytest.raises(ValueError, match="missing field 'status'"):
        Record.from_json(obj)
    with pytest.raises(ValueError, match="expected a JSON object, got an array"):
        Record.from_json([1])


def test_now_utc() -> None:
    berlin = timezone(timedelta(hours=1))
    assert now_utc(datetime(2026, 11, 27, 1, 41, 3, 999, tzinfo=berlin)) == "2026-11-27T00:41:03Z"
    stamp = now_utc()
    assert datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) <= datetime.now(UTC)


# ---------------------------------------------------------------------------- loading


def test_missing_file_is_empty(tmp_path: Path) -> None:
    state = load_manifest(tmp_path / "absent.jsonl")
    assert len(state) == 0 and list(state) == []
    assert state.torn_line is None and state.lines == 0
    assert state.get(("A", "f.zip")) is None


def test_last_record_per_key_wins(tmp_path: Path) -> None:
    a_failed = rec(0, Status.FAILED, path=None, bytes=None, sha256=None, error="http 500")
    a_done = rec(0)
    b_missing = rec(1, Status.MISSING, http_status=400, path=None, bytes=None, sha256=None)
    c_other_app = rec(28)
    path = write_lines(
        tmp_path / "m.jsonl",
        a_failed.to_line(), b_missing.to_line(), a_done.to_line(), c_other_app.to_line(),
    )
    state = load_manifest(path)
    assert state.lines == 4 and len(state) == 3 and state.torn_line is None
    assert state.get(a_done.key) == a_done
    assert state.get(b_missing.key) == b_missing
    assert state.get(c_other_app.key) == c_other_app
    assert sorted(state, key=lambda r: r.key) == sorted(
        [a_done, b_missing, c_other_app], key=lambda r: r.key
    )
    assert a_done.key in state and ("ACME00", "nope.zip") not in state


def test_general_path_matches_fast_path(tmp_path: Path) -> None:
    """Lines not in to_line's exact shape (other key order, spaces, escapes) load the same."""
    records = [rec(i, error=f"e{i}", request_id=f"r{i}") for i in range(4)]
    records.append(rec(9, report="Wöchentlich", path="elsewhere/x.zip"))
    records.append(rec(10, path=None, sha256=None, bytes=None, http_status=None))
    lines = [
        json.dumps(dict(reversed(json.loads(r.to_line()).items())), indent=None).encode() + b"\n"
        for r in records
    ]
    state = load_manifest(write_lines(tmp_path / "m.jsonl", *lines))
    assert [state.get(r.key) for r in records] == records


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "m.jsonl", b"\n", rec(0).to_line(), b"  \n\n", rec(1).to_line())
    state = load_manifest(path)
    assert len(state) == 2 and state.lines == 5 and state.torn_line is None


@pytest.mark.parametrize(
    "torn",
    [
        rec(2).to_line()[:57],  # a kill mid-write: no newline
        rec(2).to_line()[:-2],  # everything but "}\n"
        b"\x00" * 300,  # a power loss: zero-filled tail
        b'{"v": 1, "garbage"\n',  # invalid JSON, newline-terminated
        rec(2, status=Status.COMPLETED).to_line().replace(b'"completed"', b'"complete"'),
    ],
    ids=["prefix", "no-brace", "zeros", "invalid-json", "invalid-record"],
)
def test_torn_last_line_is_tolerated_and_reported(tmp_path: Path, torn: bytes) -> None:
    path = write_lines(tmp_path / "m.jsonl", rec(0).to_line(), rec(1).to_line(), torn)
    state = load_manifest(path)
    assert state.torn_line == 3 and state.lines == 3
    assert [r.key for r in state] == [rec(0).key, rec(1).key]


def test_torn_line_followed_only_by_blank_lines_is_still_last(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "m.jsonl", rec(0).to_line(), b'{"v":1,\n', b"\n")
    assert load_manifest(path).torn_line == 2


def test_complete_last_record_without_newline_is_kept(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "m.jsonl", rec(0).to_line(), rec(1).to_line().rstrip(b"\n"))
    state = load_manifest(path)
    assert state.torn_line is None and state.get(rec(1).key) == rec(1)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (rec(5).to_line()[:40] + b"\n", "invalid JSON"),
        (b"\xff\xfe{}\n", "not UTF-8"),
        (rec(5).to_line().replace(b'"completed"', b'"done"'), "field 'status': 'done'"),
        (rec(5).to_line().replace(b"2026-11-06", b"2026-02-30"), "field 'date'"),
        (b"[1, 2]\n", "expected a JSON object"),
    ],
    ids=["torn-in-middle", "not-utf8", "bad-status", "bad-date", "array"],
)
def test_corrupt_line_in_the_middle_is_refused(tmp_path: Path, bad: bytes, reason: str) -> None:
    path = write_lines(tmp_path / "m.jsonl", rec(0).to_line(), bad, rec(1).to_line())
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = str(info.value)
    assert message.startswith(f"{path}:2: corrupt manifest line (")
    assert reason in message and "\n" not in message
    assert info.value.__suppress_context__ or info.value.__context__ is None


def test_two_bad_lines_at_the_end_are_corruption(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "m.jsonl", rec(0).to_line(), b"oops\n", b"torn")
    with pytest.raises(ManifestError, match=r":2: corrupt manifest line"):
        load_manifest(path)


def test_unreadable_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read the manifest"):
        load_manifest(tmp_path)  # a directory


def test_state_add_makes_a_record_the_latest(tmp_path: Path) -> None:
    state = load_manifest(write_lines(tmp_path / "m.jsonl", rec(0).to_line()))
    newer = rec(0, Status.FAILED, error="verify: sha256 mismatch")
    state.add(newer)
    state.add(rec(1))
    assert state.get(newer.key) == newer and len(state) == 2


_ascii = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
_any_text = st.one_of(_ascii, st.text(max_size=30))
_nonempty = st.one_of(_ascii, st.text()).filter(bool)


@st.composite
def records(draw: st.DrawFn) -> Record:
    filename = draw(_nonempty)
    path = draw(st.one_of(
        st.none(), st.just(filename), _any_text.map(lambda d: f"{d}/{filename}"), _any_text
    ))
    return Record(
        workspace=draw(_any_text),
        app_id=draw(_nonempty),
        report=draw(_any_text),
        date=draw(st.dates()).isoformat(),
        filename=filename,
        status=draw(st.sampled_from(Status)),
        path=path,
        bytes=draw(st.none() | st.integers(0, 2**63 - 1)),
        sha256=draw(st.none() | st.binary(min_size=32, max_size=32).map(bytes.hex)),
        attempts=draw(st.integers(0, 2**32 - 1)),
        http_status=draw(st.none() | st.integers(0, 999)),
        error=draw(st.none() | _any_text),
        request_id=draw(st.none() | _any_text),
        updated_at=draw(_any_text),
    )


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hypothesis") / "m.jsonl"


@settings(max_examples=300, deadline=None)
@given(st.lists(records(), min_size=1, max_size=5))
def test_any_record_survives_a_round_trip(scratch: Path, batch: list[Record]) -> None:
    scratch.write_bytes(b"".join(r.to_line() for r in batch))
    state = load_manifest(scratch)
    latest = {r.key: r for r in batch}
    assert len(state) == len(latest) and state.torn_line is None
    for key, r in latest.items():
        assert state.get(key) == r
        assert parse_line(r.to_line()) == r
    assert sorted(state, key=lambda r: r.key) == sorted(latest.values(), key=lambda r: r.key)


# ---------------------------------------------------------------------------- lock

_HOLDER = """
import sys
from pathlib import Path
from backfill.journal import ManifestLock
lock = ManifestLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock on tmp_path/m.jsonl until killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path / "m.jsonl")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def test_lock_held_by_another_process(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    manifest = tmp_path / "m.jsonl"
    with pytest.raises(LockedError) as info, ManifestLock(manifest):
        pass
    assert str(info.value) == f"{manifest} is in use by another run (pid {holder.pid})"
    assert info.value.exit_code == 75


def test_lock_released_when_the_holder_dies(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with ManifestLock(tmp_path / "m.jsonl") as lock:
        assert lock.path.read_text() == f"{os.getpid()}\n"


def test_lock_conflicts_within_one_process_and_is_reusable(tmp_path: Path) -> None:
    manifest = tmp_path / "deep" / "dir" / "m.jsonl"
    with ManifestLock(manifest) as lock:
        assert lock.path == tmp_path / "deep" / "dir" / "m.jsonl.lock"
        assert lock.path.read_text() == f"{os.getpid()}\n"
        with pytest.raises(LockedError, match=rf"\(pid {os.getpid()}\)$"):
            ManifestLock(manifest).acquire()
    with ManifestLock(manifest):  # released on exit
        pass
    assert lock.path.exists()  # kept: unlinking a flock file races with new lockers


# ---------------------------------------------------------------------------- writer


async def run_writer(path: Path, records: list[Record], **kwargs: Any) -> ManifestWriter:
    writer = ManifestWriter(path, **kwargs)
    async with anyio.create_task_group() as tg:
        await tg.start(writer.run)
        for r in records:
            await writer.put(r)
        await writer.close()
    return writer


@pytest.mark.anyio
async def test_writer_appends_records(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "m.jsonl"
    records = [rec(i) for i in range(50)]
    writer = await run_writer(path, records, fsync_interval_s=1000)
    assert path.read_bytes() == b"".join(r.to_line() for r in records)
    stats = writer.statistics()
    assert stats.records == 50 and stats.bytes_written == path.stat().st_size
    assert stats.fsyncs == 1  # the one on close: no fsync per record
    await run_writer(path, [rec(99)])  # a second run appends
    assert len(load_manifest(path)) == 51


@pytest.mark.anyio
async def test_writer_batches_queued_records_into_one_write(tmp_path: Path) -> None:
    writer = ManifestWriter(tmp_path / "m.jsonl", buffer=200)
    for i in range(150):  # queued before the writer starts
        await writer.put(rec(i))
    await writer.close()
    await writer.run()
    stats = writer.statistics()
    assert (stats.records, stats.writes, stats.fsyncs) == (150, 1, 1)
    assert load_manifest(tmp_path / "m.jsonl").lines == 150


@pytest.mark.anyio
async def test_put_waits_when_the_buffer_is_full(tmp_path: Path) -> None:
    writer = ManifestWriter(tmp_path / "m.jsonl", buffer=2)
    await writer.put(rec(0))
    await writer.put(rec(1))
    third_done = anyio.Event()

    async def third() -> None:
        await writer.put(rec(2))
        third_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(third)
        await anyio.wait_all_tasks_blocked()
        assert not third_done.is_set()  # backpressure: the writer is not running yet
        await tg.start(writer.run)
        await third_done.wait()
        await writer.close()
    assert load_manifest(tmp_path / "m.jsonl").lines == 3


@pytest.mark.anyio
async def test_put_nowait_queues_only_while_there_is_room(tmp_path: Path) -> None:
    writer = ManifestWriter(tmp_path / "m.jsonl", buffer=2)
    assert writer.put_nowait(rec(0)) and writer.put_nowait(rec(1))
    assert not writer.put_nowait(rec(2))  # full: nothing queued, nothing waited for
    with pytest.raises(ValueError):
        writer.put_nowait(rec(3, bytes=-1))  # checked like put()
    await writer.close()
    await writer.run()
    assert (tmp_path / "m.jsonl").read_bytes() == rec(0).to_line() + rec(1).to_line()
    with pytest.raises(RuntimeError, match="after close"):
        writer.put_nowait(rec(4))


@pytest.mark.anyio
async def test_flush_writes_and_fsyncs(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    writer = ManifestWriter(path, fsync_interval_s=1000)
    async with anyio.create_task_group() as tg:
        await tg.start(writer.run)
        await writer.put(rec(0))
        await writer.put(rec(1))
        await writer.flush()
        assert load_manifest(path).lines == 2
        assert writer.statistics().fsyncs == 1
        await writer.flush()  # nothing new: no extra fsync
        assert writer.statistics().fsyncs == 1
        await writer.close()
    await writer.flush()  # closed cleanly: returns at once
    with pytest.raises(RuntimeError, match="after close"):
        await writer.put(rec(2))


@pytest.mark.anyio
async def test_unsynced_data_is_fsynced_within_the_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = anyio.Event()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        if threading.current_thread() is not threading.main_thread():
            anyio.from_thread.run_sync(synced.set)

    monkeypatch.setattr(os, "fsync", fsync)
    writer = ManifestWriter(tmp_path / "m.jsonl", fsync_interval_s=0.01)
    async with anyio.create_task_group() as tg:
        await tg.start(writer.run)
        await writer.put(rec(0))  # no flush, no close: only the timer can fsync
        with anyio.fail_after(10):
            await synced.wait()  # the timer fired while the writer was still running
        await writer.close()


@pytest.mark.anyio
async def test_cancelled_writer_still_writes_what_it_received(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    writer = ManifestWriter(path, fsync_interval_s=1000)
    records = [rec(i) for i in range(60)]
    async with anyio.create_task_group() as tg:
        await tg.start(writer.run)
        for r in records:
            await writer.put(r)
        tg.cancel_scope.cancel()
    state = load_manifest(path)
    assert state.lines == 60 and [state.get(r.key) for r in records] == records
    assert writer.statistics().fsyncs >= 1


@pytest.mark.anyio
async def test_writer_removes_a_torn_last_line_first(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "m.jsonl", rec(0).to_line(), rec(1).to_line()[:50])
    assert load_manifest(path).torn_line == 2
    writer = await run_writer(path, [rec(2)])
    assert writer.statistics().tail_repaired == "torn line removed"
    assert path.read_bytes() == rec(0).to_line() + rec(2).to_line()
    state = load_manifest(path)
    assert state.torn_line is None and len(state) == 2


@pytest.mark.anyio
async def test_writer_ends_an_unterminated_last_record_with_a_newline(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "m.jsonl", rec(0).to_line(), rec(1).to_line().rstrip(b"\n"))
    writer = await run_writer(path, [rec(2)])
    assert writer.statistics().tail_repaired == "newline added"
    assert path.read_bytes() == rec(0).to_line() + rec(1).to_line() + rec(2).to_line()


@pytest.mark.anyio
async def test_writer_leaves_a_clean_file_alone(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "m.jsonl", rec(0).to_line(), b"\n")
    writer = await run_writer(path, [rec(1)])
    assert writer.statistics().tail_repaired is None
    assert path.read_bytes() == rec(0).to_line() + b"\n" + rec(1).to_line()


@pytest.mark.anyio
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
async def test_write_failure_stops_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    writer = ManifestWriter(path)
    with pytest.raises(BaseExceptionGroup) as info:
        async with anyio.create_task_group() as tg:
            await tg.start(writer.run)
            full = os.open("/dev/full", os.O_WRONLY)  # every write fails with ENOSPC
            os.dup2(full, writer._file.fd)  # (the manifest is never opened through a link)
            os.close(full)
            await writer.put(rec(0))
            await writer.flush()  # fails too, unless cancelled first
    assert info.group_contains(StorageError, match=r"cannot write the manifest \(disk full\)$")
    with pytest.raises(StorageError, match="writer has stopped"):
        await writer.put(rec(1))


@pytest.mark.anyio
@pytest.mark.parametrize(
    "bad", [{"date": "2026-02-30"}, {"bytes": -1}, {"app_id": ""}, {"http_status": 1000}]
)
async def test_put_refuses_a_record_that_would_not_load_back(
    tmp_path: Path, bad: dict[str, Any]
) -> None:
    path = tmp_path / "m.jsonl"
    writer = ManifestWriter(path)
    async with anyio.create_task_group() as tg:
        await tg.start(writer.run)
        await writer.put(rec(0))
        with pytest.raises(ValueError, match="record would not load back"):
            await writer.put(rec(1, **bad))
        await writer.put(rec(2))
        await writer.close()
    state = load_manifest(path)
    assert state.lines == 2 and len(state) == 2


@pytest.mark.parametrize("length", [1000, 1001, 0xFFFF])
def test_long_updated_at_loads(tmp_path: Path, length: int) -> None:
    r = rec(0, updated_at="x" * length)
    state = load_manifest(write_lines(tmp_path / "m.jsonl", r.to_line(), rec(1).to_line()))
    assert state.get(r.key) == r


def test_too_long_updated_at_is_refused() -> None:
    with pytest.raises(ValueError, match="'updated_at': too long"):
        parse_line(rec(0, updated_at="x" * 0x10000).to_line())


@pytest.mark.anyio
async def test_writer_cannot_run_twice(tmp_path: Path) -> None:
    writer = await run_writer(tmp_path / "m.jsonl", [])
    with pytest.raises(RuntimeError, match="only be called once"):
        await writer.run()


# ---------------------------------------------------------------------------- compaction


def test_compact_rewrites_latest_records(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "m.jsonl",
        rec(0, Status.FAILED).to_line(), rec(0).to_line(), rec(1).to_line(), b"torn",
    )
    state = load_manifest(path)
    compact(path, state)
    assert path.read_bytes() == rec(0).to_line() + rec(1).to_line()
    assert not (tmp_path / "m.jsonl.compact.tmp").exists()
    again = load_manifest(path)
    assert again.lines == 2 and again.torn_line is None


def test_compact_failing_midway_keeps_the_old_file(tmp_path: Path) -> None:
    old = rec(0).to_line() + rec(1).to_line()
    path = write_lines(tmp_path / "m.jsonl", old)

    def failing() -> Iterator[Record]:
        yield rec(5)
        raise OSError(28, "No space left on device")

    with pytest.raises(StorageError, match=r"cannot compact the manifest \(disk full\)"):
        compact(path, failing())
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.jsonl"]


def test_compact_failing_rename_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = rec(0).to_line()
    path = write_lines(tmp_path / "m.jsonl", old)

    def no_replace(src: Any, dst: Any, **dir_fds: int) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(StorageError, match="permission denied"):
        compact(path, [rec(1)])
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.jsonl"]


_COMPACTOR = """
import sys
from pathlib import Path
from backfill.journal import Record, Status, compact

def records():
    for i in range(1_000_000):
        if i == 50_000:
            print("halfway", flush=True)
            sys.stdin.read()  # wait here to be killed
        yield Record("w", "A", "R", "2026-11-21", f"f{i}.zip", Status.EXPIRED)

compact(Path(sys.argv[1]), records())
"""


def test_compact_killed_midway_leaves_the_old_file(tmp_path: Path) -> None:
    old = b"".join(rec(i).to_line() for i in range(10))
    path = write_lines(tmp_path / "m.jsonl", old)
    proc = subprocess.Popen(
        [sys.executable, "-c", _COMPACTOR, str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "halfway\n"
        assert (tmp_path / "m.jsonl.compact.tmp").exists()
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
    assert path.read_bytes() == old
    assert len(load_manifest(path)) == 10
