"""zipcheck.zip_problem: known good and bad zips, simulator bodies, and a differential
fuzz against the zipfile path (zipcheck.zipfile_problem), which is the reference."""

from __future__ import annotations

import io
import struct
import tracemalloc
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, cast
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backfill import zipcheck
from backfill.simulator.body import BodySpec, build_body
from backfill.zipcheck import zip_problem

STORED, DEFLATED = zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED
NAME = "Daily_campaign_summary_20261126.zip"


_zipfile_path = zipcheck.zipfile_problem  # kept: the tests below patch the module attribute


def reference(data: bytes, max_inflated: int | None = None) -> str | bool | None:
    return _zipfile_path(io.BytesIO(data), max_inflated)


@contextmanager
def no_fallback() -> Iterator[None]:
    """Fail if zip_problem hands the body to the zipfile path."""
    with mock.patch.object(zipcheck, "zipfile_problem", side_effect=AssertionError("fell back")):
        yield


@contextmanager
def counting_fallback() -> Iterator[mock.Mock]:
    with mock.patch.object(zipcheck, "zipfile_problem", wraps=_zipfile_path) as spy:
        yield spy


class _Unseekable:
    """A write-only sink: zipfile then writes data descriptors (flag bit 3)."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()

    def write(self, b: bytes) -> int:
        return self.buf.write(b)

    def flush(self) -> None:
        pass


def make_zip(members: list[tuple[str, bytes, int]], *, comment: bytes = b"",
             streamed: bool = False, extra: bytes = b"") -> bytes:
    sink = _Unseekable() if streamed else None
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names, on purpose in the fuzz
        with zipfile.ZipFile(cast(IO[bytes], sink) if sink else buf, "w") as zf:
            for name, content, method in members:
                info = zipfile.ZipInfo(name)
                info.extra = extra
                zf.writestr(info, content, compress_type=method)
            zf.comment = comment
    return (sink.buf if sink else buf).getvalue()


def zip64_local() -> bytes:
    """force_zip64: the local header carries a zip64 extra, the directory does not."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, zf.open("a.csv", "w", force_zip64=True) as f:
        f.write(b"1,2\n")
    return buf.getvalue()


def csv_bytes(n: int) -> bytes:
    row = b"cmp_0001,Winter sale push,PUSH,ANDROID,2026-11-26,1000,990,800,40,4,1,12.50\n"
    return (row * (n // len(row) + 1))[:n]


def data_offset(data: bytes, index: int = 0) -> tuple[int, int]:
    """(start, compressed size) of member ``index``'s data."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.infolist()[index]
    name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
    return info.header_offset + 30 + name_len + extra_len, info.compress_size


def patch(data: bytes, pos: int, new: bytes) -> bytes:
    return data[:pos] + new + data[pos + len(new):]


def central_offset(data: bytes, index: int = 0) -> int:
    cd: int = struct.unpack_from("<L", data, len(data) - 22 + 16)[0]
    for _ in range(index):
        n, m, k = struct.unpack_from("<HHH", data, cd + 28)
        cd += 46 + n + m + k
    return cd


def set_sizes(data: bytes, *, usize: int, index: int = 0) -> bytes:
    """Change a member's declared uncompressed size in both headers."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        local = zf.infolist()[index].header_offset
    packed = struct.pack("<L", usize)
    return patch(patch(data, local + 22, packed), central_offset(data, index) + 24, packed)


# ---------------------------------------------------------------------------- known cases

GOOD = {
    "stored one": make_zip([("a.csv", csv_bytes(5000), STORED)]),
    "deflated one": make_zip([("a.csv", csv_bytes(50_000), DEFLATED)]),
    "stored many": make_zip([(f"m{i}.csv", csv_bytes(100 * i), STORED) for i in range(4)]),
    "deflated many": make_zip([(f"m{i}.csv", csv_bytes(900 * i), DEFLATED) for i in range(4)]),
    "mixed, data descriptors": make_zip(
        [("a.csv", csv_bytes(3000), DEFLATED), ("b.csv", b"xyz", STORED)], streamed=True),
    "empty members": make_zip([("e1", b"", STORED), ("e2", b"", DEFLATED)]),
    "utf-8 names": make_zip([("Ümlaut_ß.csv", b"1,2\n", DEFLATED), ("日本.csv", b"", STORED)]),
    "with comment": make_zip([("a.csv", csv_bytes(700), DEFLATED)], comment=b"hello PK"),
    "extra fields": make_zip([("a.csv", b"1,2\n", DEFLATED)], extra=struct.pack(
        "<HHBl", 0x5455, 5, 1, 1_700_000_000)),
    "zip64 extra in local header only": zip64_local(),
    "empty archive": make_zip([]),
    "empty archive, comment": make_zip([], comment=b"nothing here"),
}


@pytest.mark.parametrize("name", GOOD)
def test_good_zips_pass_without_zipfile(name: str) -> None:
    data = GOOD[name]
    assert reference(data) is None
    with no_fallback():
        assert zip_problem(data) is None
        assert zip_problem(data, 10**9) is None


def test_streamed_case_has_data_descriptors() -> None:
    assert GOOD["mixed, data descriptors"][6] & 0x08  # flag bit 3 in the first local header


@pytest.mark.parametrize("size", [0, 600, 10 * 1024, 100_000, 1_000_000])
def test_simulator_bodies(size: int) -> None:
    body = build_body(BodySpec(7, "ACME01", NAME, size))
    with no_fallback():
        assert zip_problem(body) is None
        assert zip_problem(body, 1024 * 1024) is None
    utf8 = build_body(BodySpec(7, "ACME01", "Odd_Ümlaut_(x)_20261126.zip", size))
    with no_fallback():
        assert zip_problem(utf8) is None


def test_max_inflated_returns_false() -> None:
    data = GOOD["deflated many"]
    total = sum(900 * i for i in range(4))
    with no_fallback():
        assert zip_problem(data, total) is None
        assert zip_problem(data, total - 1) is False
    assert reference(data, total - 1) is False


def test_false_before_member_checks() -> None:
    """Like zipfile: too large to check here wins over bad member data."""
    data = GOOD["stored one"]
    start, _ = data_offset(data)
    bad = patch(data, start + 10, b"#")
    assert reference(bad, 100) is False
    with no_fallback():
        assert zip_problem(bad, 100) is False


@pytest.mark.parametrize("data", [b"hello world", b"PK\x01\x02" + bytes(40), b"\x00" * 30])
def test_not_a_zip(data: bytes) -> None:
    with no_fallback():
        assert zip_problem(data) == "not a zip" == reference(data)


def test_empty_buffer_falls_back() -> None:
    with counting_fallback() as spy:
        assert zip_problem(b"") == "not a zip"
    assert spy.call_count == 1


@pytest.mark.parametrize("keep", [4, 30, 100, 0.5, -22, -1])
def test_truncated(keep: float) -> None:
    data = GOOD["deflated one"]
    cut = data[: int(keep * len(data)) if isinstance(keep, float) else keep]
    problem = zip_problem(cut)
    assert isinstance(problem, str) and problem.startswith("corrupt zip: ")
    assert isinstance(reference(cut), str)


def test_bad_crc_stored() -> None:
    data = GOOD["stored one"]
    start, size = data_offset(data)
    bad = patch(data, start + size // 2, b"#")
    assert isinstance(reference(bad), str)
    with no_fallback():
        assert zip_problem(bad) == "corrupt zip: bad CRC in member 'a.csv'"


def test_bad_crc_in_second_member() -> None:
    data = GOOD["stored many"]
    start, size = data_offset(data, 2)
    bad = patch(data, start + size - 1, b"#")
    assert isinstance(reference(bad), str)
    with no_fallback():
        assert zip_problem(bad) == "corrupt zip: bad CRC in member 'm2.csv'"


def test_flipped_byte_in_deflate_stream() -> None:
    data = GOOD["deflated one"]
    start, size = data_offset(data)
    for pos in (start, start + 1, start + size // 3, start + size - 1):
        bad = patch(data, pos, bytes([data[pos] ^ 0x55]))
        problem = zip_problem(bad)
        assert isinstance(problem, str) and problem.startswith("corrupt zip: ")
        assert isinstance(reference(bad), str)


def test_declared_size_too_small() -> None:
    data = set_sizes(GOOD["deflated one"], usize=1000)
    assert isinstance(reference(data), str)
    with no_fallback():
        problem = zip_problem(data)
    assert problem == "corrupt zip: data inflating past its declared size in member 'a.csv'"


def test_declared_size_too_large_agrees_with_zipfile() -> None:
    """zipfile accepts a deflated member that ends early if its CRC is right."""
    data = set_sizes(GOOD["deflated one"], usize=60_000)
    assert zip_problem(data) == reference(data)


def test_stored_size_mismatch_falls_back() -> None:
    data = set_sizes(GOOD["stored one"], usize=4000)
    with counting_fallback() as spy:
        assert (zip_problem(data) is None) == (reference(data) is None)
    assert spy.call_count >= 1


def test_name_mismatch() -> None:
    data = GOOD["stored one"]
    bad = patch(data, 30, b"b")  # the local header's name: "a.csv" -> "b.csv"
    assert isinstance(reference(bad), str)
    with no_fallback():
        assert zip_problem(bad) == "corrupt zip: local header name differs for member 'a.csv'"


def test_bad_local_signature() -> None:
    data = GOOD["stored many"]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        offset = zf.infolist()[1].header_offset
    bad = patch(data, offset, b"PK\x07\x08")
    assert isinstance(reference(bad), str)
    with no_fallback():
        assert zip_problem(bad) == "corrupt zip: bad local header for member 'm1.csv'"


def test_encrypted_flag_falls_back() -> None:
    data = GOOD["stored one"]
    cd = central_offset(data)
    flags = struct.unpack_from("<H", data, cd + 8)[0] | 1
    bad = patch(patch(data, 6, struct.pack("<H", flags)), cd + 8, struct.pack("<H", flags))
    with counting_fallback() as spy:
        assert zip_problem(bad) == reference(bad) == "corrupt zip: RuntimeError"
    assert spy.call_count == 1


def test_overlapping_entries_fall_back() -> None:
    """Member b's header and data lie inside member a's data: zipfile 3.11 reads both,
    newer versions reject the overlap. The fast path hands it over."""
    inner = local_header(b"b", zlib.crc32(b"hi"), 2, 2) + b"hi"
    local = local_header(b"a", zlib.crc32(inner), len(inner), len(inner)) + inner
    central = (central_entry(b"a", zlib.crc32(inner), len(inner), len(inner), 0)
               + central_entry(b"b", zlib.crc32(b"hi"), 2, 2, 31))
    data = local + central + end_record(2, len(central), len(local))
    with counting_fallback() as spy:
        assert zip_problem(data) == reference(data)
    assert spy.call_count == 1


def test_zip64_end_record_falls_back() -> None:
    local = local_header(b"a.csv", zlib.crc32(b"x,y\n"), 4, 4) + b"x,y\n"
    central = central_entry(b"a.csv", zlib.crc32(b"x,y\n"), 4, 4, 0)
    cd_end = len(local) + len(central)
    zip64_end = struct.pack("<4sQHHLLQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, 1, 1,
                            len(central), len(local))
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, cd_end, 1)
    end = struct.pack("<4sHHHHLLH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFF_FFFF,
                      0xFFFF_FFFF, 0)
    data = local + central + zip64_end + locator + end
    assert reference(data) is None
    with counting_fallback() as spy:
        assert zip_problem(data) is None
    assert spy.call_count == 1


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_other_methods_fall_back(method: int) -> None:
    data = make_zip([("a.csv", csv_bytes(2000), method)])
    with counting_fallback() as spy:
        assert zip_problem(data) is None is reference(data)
    assert spy.call_count == 1


def test_multi_disk_falls_back() -> None:
    local = local_header(b"a", 0, 0, 0)
    central = central_entry(b"a", 0, 0, 0, 0)
    data = local + central + end_record(1, len(central), len(local), disk=1)
    with counting_fallback() as spy:
        assert zip_problem(data) == reference(data)
    assert spy.call_count == 1


def test_prefix_falls_back() -> None:
    data = GOOD["deflated many"]
    for prefixed in (b"PK\x03\x04 self-extractor stub " + data, data[:30] + data):
        with counting_fallback() as spy:
            assert zip_problem(prefixed) == reference(prefixed)
        assert spy.call_count == 1


def test_duplicate_names_fall_back() -> None:
    data = make_zip([("a", b"one", STORED), ("a", b"two", STORED)])
    with counting_fallback() as spy:
        assert zip_problem(data) is None is reference(data)
    assert spy.call_count == 1


def test_trailing_garbage_after_comment_falls_back() -> None:
    data = GOOD["with comment"] + b"junk"
    with counting_fallback() as spy:
        assert zip_problem(data) == reference(data)
    assert spy.call_count == 1


def local_header(name: bytes, crc: int, csize: int, usize: int, method: int = 0) -> bytes:
    return struct.pack("<4sHHHHHLLLHH", b"PK\x03\x04", 20, 0, method, 0, 33, crc, csize,
                       usize, len(name), 0) + name


def central_entry(name: bytes, crc: int, csize: int, usize: int, offset: int,
                  method: int = 0) -> bytes:
    return struct.pack("<4sBBBBHHHHLLLHHHHHLL", b"PK\x01\x02", 20, 3, 20, 0, 0, method, 0, 33,
                       crc, csize, usize, len(name), 0, 0, 0, 0, 0, offset) + name


def end_record(count: int, cd_size: int, cd_offset: int, disk: int = 0) -> bytes:
    return struct.pack("<4sHHHHLLH", b"PK\x05\x06", disk, disk, count, count, cd_size,
                       cd_offset, 0)


def deflate_bomb(declared: int, actual: int) -> bytes:
    """A zip whose member inflates to ``actual`` bytes but declares ``declared``."""
    stream = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    body = b"".join(stream.compress(chunk) for _ in range(actual >> 20)) + stream.flush()
    crc = 0
    for _ in range(actual >> 20):
        crc = zlib.crc32(chunk, crc)
    local = local_header(b"bomb.csv", crc, len(body), declared, DEFLATED) + body
    central = central_entry(b"bomb.csv", crc, len(body), declared, 0, DEFLATED)
    return local + central + end_record(1, len(central), len(local))


def test_deflate_bomb_is_rejected_with_little_memory() -> None:
    bomb = deflate_bomb(declared=1000, actual=256 << 20)  # ~256 KiB inflating to 256 MiB
    assert len(bomb) < 300_000
    tracemalloc.start()
    try:
        with no_fallback():
            problem = zip_problem(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert problem == "corrupt zip: data inflating past its declared size in member 'bomb.csv'"
    assert peak < 2 * 1024 * 1024
    assert isinstance(reference(bomb), str)


def test_honest_large_member_goes_to_zipfile() -> None:
    """Above a few MiB a member is inflated by zipfile, in steps, not in one piece."""
    big = deflate_bomb(declared=8 << 20, actual=8 << 20)
    assert reference(big) is None
    with counting_fallback() as spy:
        assert zip_problem(big) is None
    assert spy.call_count == 1
    assert zip_problem(big, 1 << 20) is False


# ----------------------------------------------------------------- differential fuzzing

names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)
contents = st.one_of(
    st.binary(max_size=400),
    st.integers(0, 3000).map(csv_bytes),
)
member = st.tuples(names, contents, st.sampled_from([STORED, DEFLATED]))


def _key(member: tuple[str, bytes, int]) -> str:
    """The name zipfile files a member under (cut at NUL); alike names are handed over."""
    return member[0].split("\0")[0].replace("\\", "/")


distinct_members = st.lists(member, max_size=3, unique_by=_key)
any_members = st.lists(member, max_size=3)


@st.composite
def valid_zips(draw: st.DrawFn, clean: bool = False) -> bytes:
    """Zips written by zipfile; ``clean`` ones are all meant for the fast path."""
    chosen = draw(distinct_members if clean else st.one_of(distinct_members, any_members))
    comment = draw(st.one_of(st.just(b""), st.binary(max_size=30)))
    if clean:  # an end-record signature in the comment is handed to zipfile on purpose
        while b"PK\x05\x06" in comment:
            comment = comment.replace(b"PK\x05\x06", b"")
    return make_zip(chosen, comment=comment, streamed=draw(st.booleans()))


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "u32", "u16"]))
        if kind == "truncate":
            del buf[draw(st.integers(0, max(len(buf) - 1, 0))):]
            continue
        headers = [i for i in range(len(buf) - 1) if buf[i : i + 2] == b"PK"]
        aim = draw(st.booleans())
        if headers and aim:  # at a header field, half the time
            pos = draw(st.sampled_from(headers)) + draw(st.integers(0, 45))
        else:
            pos = draw(st.integers(0, len(buf)))
        if kind == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del buf[pos : pos + draw(st.integers(1, 8))]
        elif pos < len(buf):  # a value overwritten in place
            width = {"flip": 1, "u16": 2, "u32": 4}[kind]
            if kind == "flip":
                new = bytes([buf[pos] ^ draw(st.integers(1, 255))])
            else:
                value = draw(st.one_of(
                    st.sampled_from([0, 1, 0xFF, 0xFFFF, 0xFFFF_FFFF, len(buf)]),
                    st.integers(0, 256**width - 1)))
                new = (value % 256**width).to_bytes(width, "little")
            buf[pos : pos + width] = new[: len(buf) - pos]
    return bytes(buf)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_agrees_with_zipfile_on_mutated_zips(data: st.DataObject) -> None:
    original = data.draw(valid_zips())
    body = data.draw(mutated(original))
    limit = data.draw(st.one_of(st.none(), st.integers(0, 4000)))
    expected = reference(body, limit)
    got = zip_problem(body, limit)
    assert (got is None) == (expected is None), (got, expected)
    assert (got is False) == (expected is False), (got, expected)
    if isinstance(got, str):
        assert got == "not a zip" or got.startswith("corrupt zip: ")


@settings(max_examples=100, deadline=None)
@given(body=valid_zips(clean=True), limit=st.one_of(st.none(), st.integers(0, 4000)))
def test_valid_zips_take_the_fast_path(body: bytes, limit: int | None) -> None:
    expected = reference(body, limit)
    with no_fallback():
        assert zip_problem(body, limit) is expected
