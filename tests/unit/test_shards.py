"""Shard assignment, --shard parsing, shard manifest names and the merge rule (pure)."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backfill.journal import Record, Status
from backfill.shards import (
    Shard,
    ShardError,
    is_shard_manifest,
    merge,
    parse_shard,
    shard_manifest,
    shard_of,
    wins,
)

# ----------------------------------------------------------------- assignment


def test_shard_of_is_pinned() -> None:
    # blake2b(name, 8 bytes) mod N: a change here would move workspaces between shards
    # (and so between shard manifests) on upgrade.
    assert {n: shard_of(n, 1000) for n in ("acme-eu", "acme-us", "globex", "ünïcode")} == {
        "acme-eu": 140, "acme-us": 915, "globex": 490, "ünïcode": 293}
    assert [shard_of(f"ws-{i}", 4) for i in range(12)] == [2, 1, 1, 2, 1, 3, 2, 0, 2, 1, 0, 0]
    assert shard_of("acme-eu", 1) == 0


def test_shard_of_is_the_same_in_another_interpreter() -> None:
    # hash() is salted per process; the shard must not be.
    code = ("from backfill.shards import shard_of; "
            "print([shard_of(f'ws-{i}', 7) for i in range(50)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "123", "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == str([shard_of(f"ws-{i}", 7) for i in range(50)])


ROOT = Path(__file__).resolve().parents[2]


@given(st.lists(st.text(min_size=1, max_size=20), unique=True, max_size=40),
       st.integers(1, 9))
def test_every_workspace_is_in_exactly_one_shard(names: list[str], count: int) -> None:
    owners = {n: [i for i in range(count) if Shard(i, count).owns(n)] for n in names}
    assert all(len(o) == 1 for o in owners.values())


def test_shards_spread_workspaces() -> None:
    counts = [0] * 4
    for i in range(4000):
        counts[shard_of(f"workspace-{i}", 4)] += 1
    assert all(900 < c < 1100 for c in counts)


# ----------------------------------------------------------------- --shard


@pytest.mark.parametrize(("text", "shard"), [
    ("0/1", Shard(0, 1)), ("3/4", Shard(3, 4)), (" 2 / 8 ", Shard(2, 8)),
])
def test_parse_shard(text: str, shard: Shard) -> None:
    assert parse_shard(text) == shard
    assert str(shard) == f"{shard.index}/{shard.count}"


def test_parse_shard_reads_an_index_variable() -> None:
    env = {"JOB_COMPLETION_INDEX": "5"}
    assert parse_shard("$JOB_COMPLETION_INDEX/8", env) == Shard(5, 8)
    assert parse_shard("${JOB_COMPLETION_INDEX}/8", env) == Shard(5, 8)
    assert parse_shard("$(JOB_COMPLETION_INDEX)/8", env) == Shard(5, 8)
    with pytest.raises(ShardError, match="JOB_COMPLETION_INDEX is not set"):
        parse_shard("$JOB_COMPLETION_INDEX/8", {})


@pytest.mark.parametrize(("text", "message"), [
    ("4/4", r"'4/4': shard index 4 is out of range \(0..3 for 4 shards\)"),
    ("0/0", r"'0/0': shard count 0 is out of range"),
    ("-1/4", r"whole numbers"),
    ("1", r"expected INDEX/COUNT"),
    ("a/b", r"whole numbers"),
    ("1/2/3", r"whole numbers"),
    ("", r"expected INDEX/COUNT"),
])
def test_parse_shard_refuses(text: str, message: str) -> None:
    with pytest.raises(ShardError, match=message):
        parse_shard(text)


# ----------------------------------------------------------------- naming


def test_shard_manifest_names() -> None:
    main = PurePosixPath("/data/reports/manifest.jsonl")
    assert shard_manifest(main, Shard(2, 8)) == PurePosixPath(
        "/data/reports/manifest.shard-2-of-8.jsonl")
    assert shard_manifest(PurePosixPath("j"), Shard(0, 2)) == PurePosixPath("j.shard-0-of-2")


def test_shard_manifests_are_recognised() -> None:
    assert is_shard_manifest("manifest.jsonl", "manifest.shard-2-of-8.jsonl") == Shard(2, 8)
    assert is_shard_manifest("j", "j.shard-0-of-2") == Shard(0, 2)
    for other in ("manifest.jsonl", "manifest.shard-2-of-8.jsonl.lock",
                  "manifest.shard-8-of-8.jsonl", "manifest.shard-02-of-8.jsonl",
                  "manifest.shard-1-of-0.jsonl", "other.shard-1-of-2.jsonl",
                  "manifest.shard-1-of-2.jsonl.compact-1234"):
        assert is_shard_manifest("manifest.jsonl", other) is None, other


# ----------------------------------------------------------------- merge rule

SHAS = ["a" * 64, "b" * 64]
TIMES = ["", "2026-11-27T00:00:00Z", "2026-11-27T00:00:01Z", "2026-11-28T00:00:00Z"]


@st.composite
def records(draw: st.DrawFn) -> Record:
    status = draw(st.sampled_from(list(Status)))
    done = status is Status.COMPLETED and draw(st.booleans() | st.just(True))
    return Record(
        workspace="ws", app_id=draw(st.sampled_from(["A1", "B2"])), report="r",
        date="2026-11-20", filename=draw(st.sampled_from(["f1.zip", "f2.zip", "f3.zip"])),
        status=status, path="ws/f.zip" if done else None,
        bytes=10 if done else None, sha256=draw(st.sampled_from(SHAS)) if done else None,
        attempts=draw(st.integers(0, 2)), error=None if done else "x",
        updated_at=draw(st.sampled_from(TIMES)),
    )


def states() -> st.SearchStrategy[list[Record]]:
    """A manifest's state: one record per key (the last line per key already applied)."""
    return st.lists(records(), max_size=8).map(lambda rs: list({r.key: r for r in rs}.values()))


inputs = st.lists(states(), min_size=1, max_size=4).map(
    lambda ss: [(f"m{i}.jsonl", s) for i, s in enumerate(ss)])


@given(inputs, st.randoms())
def test_merge_does_not_depend_on_the_order_of_inputs(
    ins: list[tuple[str, list[Record]]], rnd: random.Random
) -> None:
    shuffled = list(ins)
    rnd.shuffle(shuffled)
    a, b = merge(ins), merge(shuffled)
    assert a.records == b.records
    assert a.sources == b.sources
    assert a.conflicts == b.conflicts


@given(inputs)
def test_merge_is_idempotent(ins: list[tuple[str, list[Record]]]) -> None:
    once = merge(ins)
    again = merge([("out", list(once.records.values())), *ins])
    assert again.records == once.records
    assert merge([("out", list(once.records.values()))]).records == once.records


@given(inputs)
def test_merge_never_drops_a_completed_record(ins: list[tuple[str, list[Record]]]) -> None:
    out = merge(ins)
    every = [r for _, s in ins for r in s]
    assert set(out.records) == {r.key for r in every}
    for key in out.records:
        mine = [r for r in every if r.key == key]
        done = [r for r in mine if r.status is Status.COMPLETED and r.path]
        kept = out.records[key]
        assert kept in mine
        if done:
            assert kept.status is Status.COMPLETED and kept.path
            assert kept.updated_at == max(r.updated_at for r in done)
        else:
            assert kept.updated_at == max(r.updated_at for r in mine)
        shas = {r.sha256 for r in done}
        conflict = [c for c in out.conflicts if c.key == key]
        if len(shas) > 1:
            assert len(conflict) == 1
            reported = {conflict[0].kept[1].sha256} | {r.sha256 for _, r in conflict[0].others}
            assert reported == shas
        else:
            assert not conflict


def _r(status: Status, at: str, sha: str | None = None, **kw: object) -> Record:
    done = status is Status.COMPLETED
    return Record(workspace="ws", app_id="A1", report="r", date="2026-11-20",
                  filename="f.zip", status=status, path="ws/f.zip" if done else None,
                  bytes=1 if done else None, sha256=sha if done else None, updated_at=at,
                  **kw)  # type: ignore[arg-type]


def test_completed_beats_a_newer_failure_and_newest_wins_otherwise() -> None:
    done = _r(Status.COMPLETED, TIMES[1], SHAS[0])
    failed = _r(Status.FAILED, TIMES[3])
    missing = _r(Status.MISSING, TIMES[2])
    assert wins(done, failed) and not wins(failed, done)
    assert wins(failed, missing) and not wins(missing, failed)
    out = merge([("shard-0", [failed]), ("main", [done]), ("shard-1", [missing])])
    assert out.records[done.key] == done and out.sources[done.key] == "main"


def test_conflicting_completed_records_are_reported() -> None:
    old = _r(Status.COMPLETED, TIMES[1], SHAS[0])
    new = _r(Status.COMPLETED, TIMES[2], SHAS[1])
    out = merge([("a.jsonl", [old]), ("b.jsonl", [new])])
    assert out.records[old.key] == new
    [c] = out.conflicts
    assert c.kept == ("b.jsonl", new) and c.others == (("a.jsonl", old),)
    assert c.describe() == (f"A1 f.zip: kept sha256 {SHAS[1]} (b.jsonl, {TIMES[2]}); "
                            f"a.jsonl has sha256 {SHAS[0]}")


def test_same_file_twice_is_no_conflict() -> None:
    a = _r(Status.COMPLETED, TIMES[1], SHAS[0])
    b = _r(Status.COMPLETED, TIMES[2], SHAS[0], attempts=2)
    assert merge([("a", [a]), ("b", [b])]).conflicts == []
    assert list(itertools.chain(merge([("a", [a]), ("b", [b])]).records.values())) == [b]


@given(inputs)
def test_the_packed_fold_agrees_with_the_merge_rule(ins: list[tuple[str, list[Record]]]) -> None:
    from backfill.journal import ManifestState
    from backfill.shards.view import fold

    state, conflict_keys = ManifestState(), set()  # type: ignore[var-annotated]
    for _, records in ins:
        part = ManifestState()
        for r in records:
            part.add(r)
        fold(state, part, conflict_keys)
    reference = merge(ins)
    assert {r.key: r for r in state} == reference.records
    assert conflict_keys == {c.key for c in reference.conflicts}


# ----------------------------------------------------------------- a shard's view


def _in(ws: str, n: int, status: Status = Status.COMPLETED) -> Record:
    done = status is Status.COMPLETED
    return Record(workspace=ws, app_id=f"APP_{ws}", report="r", date="2026-11-20",
                  filename=f"f{n}.zip", status=status, path=f"{ws}/f{n}.zip" if done else None,
                  bytes=10 if done else None, sha256="a" * 64 if done else None,
                  attempts=1, error=None if done else "x", updated_at="2026-11-27T00:00:00Z")


def _write(path: Path, recs: list[Record]) -> None:
    path.write_bytes(b"".join(r.to_line() for r in recs))


def test_a_shard_view_keeps_only_its_workspaces_of_the_other_manifests(tmp_path: Path) -> None:
    from backfill.shards.view import load_state, load_view

    names = ["acme", "globex", "initech", "umbrella", "hooli", "wayne", "ßtark"]  # non-ASCII:
    shard = Shard(0, 2)  # its lines take the general parser, filtered all the same
    mine = [n for n in names if shard.owns(n)]
    assert mine and len(mine) < len(names)
    main = tmp_path / "manifest.jsonl"
    _write(main, [_in(n, i) for n in names for i in range(3)])
    other = shard_manifest(main, Shard(1, 2))
    _write(other, [_in(n, 9, Status.FAILED) for n in names])
    own = shard_manifest(main, shard)
    _write(own, [_in(mine[0], 5)])

    state = load_state(main, own, shard=shard)
    assert {r.workspace for r in state} == set(mine)
    assert len(state) == len(mine) * 4 + 1  # 3 from main, 1 from the other shard, own 1
    assert state.lines == 1 + len(mine) * 4  # own lines + keys only the others have
    full = load_view(main, own).state  # a plain reader still sees everything
    assert {r.workspace for r in full} == set(names)
    assert len(full) == len(names) * 4 + 1


def test_a_filtered_load_still_refuses_a_corrupt_line(tmp_path: Path) -> None:
    from backfill.errors import ManifestError
    from backfill.journal import load_manifest

    path = tmp_path / "manifest.jsonl"
    path.write_bytes(_in("acme", 1).to_line() + b"{not json\n" + _in("globex", 1).to_line())
    with pytest.raises(ManifestError, match=r"manifest.jsonl:2: corrupt"):
        load_manifest(path, lambda ws: False)
