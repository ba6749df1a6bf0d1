"""Zip bombs: every method zipfile accepts (stored, deflate, bzip2, lzma) is inflated in
bounded steps, one byte past its declared size at most; a member claiming a ratio no
deflate stream reaches is refused before inflating; the checkpoint runs between steps."""

from __future__ import annotations

import bz2
import functools
import lzma
import struct
import tracemalloc
import zlib
from collections.abc import Callable

import pytest

from backfill import zipcheck
from backfill.zipcheck import zip_problem

STORED, DEFLATED, BZIP2, LZMA = 0, 8, 12, 14
ZEROS = 16 << 20  # inflated size of the bombs: enough to see, cheap to build


def _lzma(data: bytes) -> bytes:
    """LZMA as zip frames it: version, properties size, properties, raw LZMA1 stream."""
    lzma1 = {"id": lzma.FILTER_LZMA1, "preset": 1}  # quick to build
    props = lzma._encode_filter_properties(lzma1)  # type: ignore[attr-defined]
    return struct.pack("<BBH", 9, 4, len(props)) + props + lzma.compress(
        data, format=lzma.FORMAT_RAW, filters=[lzma1])


COMPRESS: dict[int, Callable[[bytes], bytes]] = {
    STORED: lambda d: d,
    DEFLATED: lambda d: zlib.compress(d, 9, wbits=-15),
    BZIP2: lambda d: bz2.compress(d, 9),
    LZMA: _lzma,
}


@functools.cache
def compressed(method: int, size: int) -> tuple[bytes, int]:
    data = bytes(size)
    return COMPRESS[method](data), zlib.crc32(data)


def one_member_zip(method: int, body: bytes, crc: int, declared: int,
                   name: bytes = b"bomb.csv") -> bytes:
    local = struct.pack("<4sHHHHHLLLHH", b"PK\x03\x04", 63, 0, method, 0, 33, crc,
                        len(body), declared, len(name), 0) + name + body
    central = struct.pack("<4sBBBBHHHHLLLHHHHHLL", b"PK\x01\x02", 63, 3, 63, 0, 0, method,
                          0, 33, crc, len(body), declared, len(name), 0, 0, 0, 0, 0,
                          0) + name
    end = struct.pack("<4sHHHHLLH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local), 0)
    return local + central + end


def peak_memory(func: Callable[[], object]) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = func()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


@pytest.mark.parametrize("method", [DEFLATED, BZIP2, LZMA])
@pytest.mark.parametrize("limit", [None, 128 * 1024])  # in a thread; on the event loop
def test_member_inflating_past_its_declared_size(method: int, limit: int | None) -> None:
    """A few hundred bytes declaring 1000 and inflating to 16 MiB: stopped at 1001."""
    body, crc = compressed(method, ZEROS)
    bomb = one_member_zip(method, body, crc, declared=1000)
    problem, peak = peak_memory(lambda: zip_problem(bomb, limit))
    assert problem == "corrupt zip: data inflating past its declared size in member 'bomb.csv'"
    assert peak < 2 * 1024 * 1024


@pytest.mark.parametrize("method", [BZIP2, LZMA])
def test_honest_bomb_is_refused_before_inflating(method: int) -> None:
    """Declared sizes a thousand times past what deflate can reach: refused unread."""
    body, crc = compressed(method, ZEROS)
    bomb = one_member_zip(method, body, crc, declared=ZEROS)
    calls: list[None] = []
    problem = zip_problem(bomb, checkpoint=lambda: calls.append(None))
    assert isinstance(problem, str) and problem.startswith("corrupt zip: member 'bomb.csv'")
    assert "a zip bomb" in problem
    assert calls == []


def test_members_adding_up_past_the_total_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zipcheck, "MAX_INFLATED_BYTES", 1000)
    body, crc = compressed(DEFLATED, 2000)
    problem = zip_problem(one_member_zip(DEFLATED, body, crc, declared=2000))
    assert problem == "corrupt zip: members would inflate to 2000 bytes (more than 1000)"


@pytest.mark.parametrize("method", [STORED, DEFLATED, BZIP2, LZMA])
def test_honest_members_pass_in_bounded_memory(method: int) -> None:
    body, crc = compressed(method, 8 << 20)
    if method in (BZIP2, LZMA):  # zeros compress too well for the ratio bound
        data = b"".join(b"%d,campaign %d,%d\n" % (i, i % 97, i * 7919 % 10007)
                        for i in range(300_000))
        body, crc = COMPRESS[method](data), zlib.crc32(data)
        declared = len(data)
    else:
        declared = 8 << 20
    good = one_member_zip(method, body, crc, declared=declared)
    problem, peak = peak_memory(lambda: zip_problem(good))
    assert problem is None
    extra = len(good) if method == STORED else 0  # the stored body is read as it is
    if method == LZMA:
        extra = 1 << 20  # the decoder's dictionary (preset 1's, at most the member's size)
    assert peak < 4 * 1024 * 1024 + extra  # about two steps of output, not the member


@pytest.mark.parametrize("method", [DEFLATED, BZIP2, LZMA])
def test_short_or_corrupt_members(method: int) -> None:
    data = b"x" * 5000
    body, crc = COMPRESS[method](data), zlib.crc32(data)
    assert zip_problem(one_member_zip(method, body, crc, declared=6000)) == (
        "corrupt zip: data inflating to 5000 of 6000 declared bytes in member 'bomb.csv'")
    assert zip_problem(one_member_zip(method, body, crc ^ 1, declared=5000)) == (
        "corrupt zip: bad CRC in member 'bomb.csv'")
    cut = one_member_zip(method, body[: len(body) // 2], crc, declared=5000)
    problem = zip_problem(cut)
    assert isinstance(problem, str) and problem.startswith("corrupt zip: ")


def test_lzma_dictionary_is_bounded_by_the_member() -> None:
    """A header asking for a 4 GiB dictionary gets one no larger than the member."""
    data = b"abc" * 1000
    body = bytearray(_lzma(data))
    body[5:9] = (0xFFFF_FFFF).to_bytes(4, "little")  # the dictionary size in the properties
    good = one_member_zip(LZMA, bytes(body), zlib.crc32(data), declared=len(data))
    assert zip_problem(good) is None


class Stop(BaseException):
    pass


def test_checkpoint_runs_every_step_and_can_stop_the_check() -> None:
    """Ctrl-C or a cancelled task: the checkpoint raises and the check ends at once."""
    body, crc = compressed(DEFLATED, ZEROS)
    big = one_member_zip(DEFLATED, body, crc, declared=ZEROS)
    calls: list[None] = []
    assert zip_problem(big, checkpoint=lambda: calls.append(None)) is None
    assert len(calls) >= ZEROS >> 20  # at least once per MiB inflated

    def stop_at_third() -> None:
        calls.append(None)
        if len(calls) == 3:
            raise Stop

    calls.clear()
    with pytest.raises(Stop):
        zip_problem(big, checkpoint=stop_at_third)
    assert len(calls) == 3
