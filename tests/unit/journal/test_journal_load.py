"""load_manifest's two ways of reading a line and its two processes give the same state.

The fast path (a line in to_line's exact shape, unpacked from one regex match) against
the general one (json.loads, for any other spelling), and a manifest read in one go
against one whose spans are shared out with a forked helper process.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backfill.errors import ManifestError
from backfill.journal import Record, Status, halves, load_manifest
from backfill.journal import state as state_module
from backfill.journal.record import CANONICAL

from .test_journal import records

# Strings the fast path never takes (quotes, backslashes, control characters, non-ASCII)
# as well as the ones it does.
_hard = st.text(st.sampled_from('"\\\x00\x01\x1f\x7f\n\té€\U0001f600 aZ/'), max_size=12)


@st.composite
def hard_records(draw: st.DrawFn) -> Record:
    r = draw(records())
    return Record(
        r.workspace, r.app_id, r.report, r.date, r.filename, r.status, r.path, r.bytes,
        r.sha256, r.attempts, r.http_status, draw(st.none() | _hard),
        draw(st.none() | _hard | st.just(r.request_id)), r.updated_at,
    )


def respelled(r: Record, drop: set[str]) -> bytes:
    """The same record as json.dumps writes it with other separators, raw UTF-8, and
    the optional fields in ``drop`` left out where they hold their default."""
    obj = json.loads(r.to_line())
    defaults = {"path": None, "bytes": None, "sha256": None, "attempts": 0,
                "http_status": None, "error": None, "request_id": None, "updated_at": ""}
    for name in drop:
        if obj[name] == defaults[name]:
            del obj[name]
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": ")).encode(
        "utf-8", "surrogatepass") + b"\n"


def outcome(path: Path) -> tuple[Any, ...]:
    try:
        state = load_manifest(path)
    except ManifestError as exc:
        return ("error", str(exc))
    return (list(state), state.lines, state.torn_line, len(state))


_optional = st.sets(st.sampled_from(
    ["path", "bytes", "sha256", "attempts", "http_status", "error", "request_id",
     "updated_at"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(records(), hard_records()), min_size=1, max_size=6), _optional)
def test_fast_path_and_json_fallback_load_the_same_state(
    tmp_path_factory: pytest.TempPathFactory, batch: list[Record], drop: set[str]
) -> None:
    folder = tmp_path_factory.mktemp("paths")
    fast = folder / "fast.jsonl"
    general = folder / "general.jsonl"
    fast.write_bytes(b"".join(r.to_line() for r in batch))
    general.write_bytes(b"".join(respelled(r, drop) for r in batch))
    assert not any(CANONICAL.fullmatch(respelled(r, drop)) for r in batch)
    assert outcome(fast) == outcome(general)
    state = load_manifest(fast)
    assert {r.key: r for r in batch} == {r.key: r for r in state}


def test_the_fast_path_takes_what_to_line_writes() -> None:
    r = Record("acme", "A1", "Daily", "2026-11-27", "Daily_20261127.zip", Status.COMPLETED,
               "acme/Daily/Daily_20261127.zip", 10, "ab" * 32, 1, 200, None, None,
               "2026-11-27T00:41:03Z")
    assert CANONICAL.fullmatch(r.to_line())


# ------------------------------------------------------------------ two processes

_tails = st.sampled_from([b"", b"\n\n", b'{"v":1,"torn', b"oops\n", b"\x00" * 40])


@st.composite
def manifests(draw: st.DrawFn) -> bytes:
    """Lines with repeated keys, blank lines and maybe one bad line anywhere."""
    pool = draw(st.lists(records(), min_size=1, max_size=4))
    lines = [draw(st.sampled_from(pool)).to_line() for _ in range(draw(st.integers(1, 30)))]
    for _ in range(draw(st.integers(0, 3))):
        lines.insert(draw(st.integers(0, len(lines))), b"\n")
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), b'{"v": 1, "bad"\n')
    return b"".join(lines) + draw(_tails)


def split_and_whole(path: Path, span: int = 40) -> tuple[Any, Any]:
    """The outcome with spans of about ``span`` bytes shared with a helper process, and
    the outcome read in one go."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(halves, "SPLIT_MIN_BYTES", 0)
        m.setattr(halves, "SPAN_BYTES", span)
        split = outcome(path)
        m.setenv("BACKFILL_LOAD_PROCESSES", "1")
        whole = outcome(path)
    return split, whole


@settings(max_examples=150, deadline=None)
@given(manifests(), st.sampled_from([1, 40, 200, 1000]))
def test_spans_shared_with_a_helper_process_change_nothing(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, span: int
) -> None:
    path = tmp_path_factory.mktemp("halves") / "m.jsonl"
    path.write_bytes(data)
    split, whole = split_and_whole(path, span)
    assert split == whole


def parse_shared(data: bytes, tmp_path: Path, answer: Any = None,
                 span: int = 8) -> tuple[list[int], dict[int, bytes], Any]:
    """share() over ``data``'s lines: the spans parsed here, everything read, the reply."""
    path = tmp_path / "lines"
    path.write_bytes(data)
    read: dict[int, bytes] = {}
    parent = os.getpid()

    def keep(i: int, f: Any) -> None:
        read[i] = f.read()

    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.MonkeyPatch.context() as m:
            m.setattr(halves, "SPAN_BYTES", span)
            ranges = halves.spans(fd, len(data))
        assert b"".join(data[a:b] for a, b in ranges) == data
        assert all(a == 0 or data[a - 1:a] == b"\n" for a, _ in ranges)
        mine, reply = halves.share(
            fd, ranges, keep, keep,
            answer or (lambda done: [os.getpid() != parent, *((i, read[i]) for i in done)]))
    finally:
        os.close(fd)
    return mine, read, reply


def test_every_span_is_parsed_once_here_or_in_the_child(tmp_path: Path) -> None:
    data = b"".join(f"line {i}\n".encode() for i in range(3000))
    mine, read, reply = parse_shared(data, tmp_path)
    assert reply is not None and reply[0] is True  # answered from the child
    got = {**{i: read[i] for i in mine}, **dict(reply[1:])}
    assert sorted(got) == list(range(len(got))) and set(mine).isdisjoint(dict(reply[1:]))
    assert b"".join(got[i] for i in range(len(got))) == data


def test_a_child_that_dies_costs_time_not_the_result(tmp_path: Path) -> None:
    def answer(done: list[int]) -> list[Any]:  # runs in the child, however many it took
        os._exit(3)

    data = b"".join(f"{i}\n".encode() for i in range(500))
    reply = parse_shared(data, tmp_path, answer)[2]
    assert reply is None  # the caller parses the spans it did not get (load_manifest does)


def test_a_child_that_raises_gives_no_answer(tmp_path: Path) -> None:
    def answer(done: list[int]) -> list[Any]:
        raise ValueError("bad span")

    data = b"".join(f"{i}\n".encode() for i in range(500))
    assert parse_shared(data, tmp_path, answer)[2] is None


def test_a_helper_that_dies_leaves_the_state_whole(tmp_path: Path) -> None:
    lines = [Record(f"ws{i % 3}", f"A{i % 3}", "R", "2026-11-27", f"f{i % 40}.zip",
                    Status.FAILED, attempts=i).to_line() for i in range(300)]
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"".join(lines))
    parent = os.getpid()
    real = state_module._load_span

    def dying(*args: Any) -> Any:
        if os.getpid() != parent:
            os._exit(3)
        return real(*args)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(state_module, "_load_span", dying)
        split, whole = split_and_whole(path, 500)
    assert split == whole and split[1] == 300


def test_a_shard_filter_applies_in_the_helper_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [Record(f"ws{i % 3}", f"A{i % 3}", "R", "2026-11-27", f"f{i}.zip",
                    Status.FAILED, attempts=1).to_line() for i in range(60)]
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"".join(lines))
    monkeypatch.setattr(halves, "SPLIT_MIN_BYTES", 0)
    state = load_manifest(path, keep=lambda ws: ws != "ws1")
    assert len(state) == 40 and {r.workspace for r in state} == {"ws0", "ws2"}
    assert state.lines == 60


@pytest.mark.parametrize(("after", "expected"), [
    (b"\n\n", (None, 3)),  # only blank lines follow: a torn last line, as in one go
    (b"\n" + Record("w", "A", "R", "2026-11-27", "g.zip", Status.MISSING).to_line(),
     ("error", ":3: corrupt manifest line (invalid JSON")),
])
def test_a_bad_last_line_of_a_span(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after: bytes, expected: tuple[Any, Any]
) -> None:
    head = b"".join(Record("w", "A", "R", "2026-11-27", f"f{i}.zip", Status.MISSING).to_line()
                    for i in range(2)) + b'{"v": 1, "bad"\n'
    path = tmp_path / "m.jsonl"
    path.write_bytes(head + after)
    monkeypatch.setattr(halves, "spans", lambda fd, size: [(0, len(head)), (len(head), size)])
    split, whole = split_and_whole(path)
    assert split == whole
    if expected[0] == "error":
        assert split[0] == "error" and expected[1] in split[1]
    else:
        assert split[2] == expected[1]
