"""Is a report body a readable zip? A fast check for bodies in memory, and the reference.

``zipfile.ZipFile(...).testzip()`` spends tens of microseconds of pure Python per small
body (ZipInfo objects, a ZipExtFile with its buffering, per-call seeks), which showed up
near the top of the profile. :func:`zip_problem` reads the common layouts — a central
directory at the end (optionally followed by a comment), STORED or DEFLATED members laid
out one after another from offset 0, no zip64, no encryption — with ``struct`` and
``zlib`` directly, and hands everything else to the ``zipfile`` path
(:func:`zipfile_problem`, also used by :func:`check_zip` for files on disk).

Its one rule: it answers "good" only where ``testzip`` accepts the bytes and "bad" only
where ``zipfile`` rejects them; whenever that is not certain it asks ``zipfile``. That is
why some things that look wrong are still handed over rather than rejected: ``zipfile``
reads a member by its central-directory sizes and checks only the CRC of what it reads,
so it accepts, for instance, a deflate stream followed by stray bytes, or one that
inflates to fewer bytes than declared, as long as the CRC matches.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path
from typing import IO

_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive
_EOCD_SIG = b"PK\x05\x06"
_CENTRAL_SIG = b"PK\x01\x02"
_LOCAL_SIG = b"PK\x03\x04"
_ZIP64_LOCATOR_SIG = b"PK\x06\x07"

# Only the fields used; the rest are pad bytes ("x").
# End of central directory: signature, this disk, directory's disk, entries on this disk,
# entries in total, directory size, directory offset, comment length.
_EOCD = struct.Struct("<4s4HLLH")
# Central directory entry: signature, version needed to extract, flags, method, CRC,
# compressed size, uncompressed size, name/extra/comment lengths, disk, local header offset.
_CENTRAL = struct.Struct("<4s2xBxHH4xLLLHHHH6xL")
# Local file header: signature, flags, name length, extra length.
_LOCAL = struct.Struct("<4s2xH18xHH")
_EXTRA_HEADER = struct.Struct("<HH")

_EOCD_SIZE = 22
_CENTRAL_SIZE = 46
_LOCAL_SIZE = 30
_ZIP64_LOCATOR_SIZE = 20
_COMMENT_WINDOW = (1 << 16) + _EOCD_SIZE  # how far from the end zipfile looks for the EOCD
_MAX_EXTRACT_VERSION = 63  # zipfile raises NotImplementedError above this
_UTF8_NAME = 0x800
# Flag bits read as usual: 1-2 (deflate options), 3 (data descriptor), 11 (UTF-8 name).
# Anything else (encryption, patch data, ...) is zipfile's to judge.
_KNOWN_FLAGS = 0x080E
_UNSURE_EXTRAS = (0x0001, 0x7075)  # zip64 sizes; Unicode path (newer zipfiles validate it)
_MAX_32 = 0xFFFF_FFFF  # a 32-bit field at its maximum means "see the zip64 record"
_STORED, _DEFLATED = 0, 8
# Above this a member is handed to zipfile, which inflates in 1 MiB steps: the fast path
# holds a whole member in memory, and at this size inflating dwarfs zipfile's overhead.
_MAX_FAST_INFLATE = 4 * 1024 * 1024


class _Undecided(Exception):
    """Raised anywhere in the fast path: let zipfile decide."""


def zip_problem(data: bytes, max_inflated: int | None = None) -> str | bool | None:
    """The problem with the zip in ``data``, or None; same contract as
    ``zipfile_problem(io.BytesIO(data), max_inflated)``.

    ``"not a zip"`` or ``"corrupt zip: …"`` when it is bad; with ``max_inflated``, False
    when the members' declared sizes add up to more than that (nothing else is checked
    then). Layouts the fast path does not cover go to ``zipfile``.
    """
    if data and data[:4] not in _MAGIC:
        return "not a zip"  # zipfile_problem's first test, verbatim
    try:
        if data:
            return _check(data, max_inflated)
    except _Undecided:
        pass
    return zipfile_problem(io.BytesIO(data), max_inflated)


_Member = tuple[bytes, int, int, int, int, int, int]  # name flags method crc csize usize offset


def _check(data: bytes, max_inflated: int | None) -> str | bool | None:
    eocd, count, cd_offset = _end_record(data)
    members, inflated = _directory(data, eocd, count, cd_offset)
    if max_inflated is not None and inflated > max_inflated:
        return False
    return _members_problem(data, members, cd_offset)


def _end_record(data: bytes) -> tuple[int, int, int]:
    """(offset of the end record, member count, directory offset)."""
    size = len(data)
    eocd = size - _EOCD_SIZE
    if eocd < 0:
        raise _Undecided
    # Find the end record exactly where zipfile does: at the very end with no comment,
    # else the last signature in the final 64 KiB (and then the comment must fill the rest).
    if not (data.startswith(_EOCD_SIG, eocd) and data.endswith(b"\0\0")):
        eocd = data.rfind(_EOCD_SIG, max(size - _COMMENT_WINDOW, 0))
        if eocd < 0 or eocd + _EOCD_SIZE > size:
            raise _Undecided
    _, disk, cd_disk, on_disk, count, cd_size, cd_offset, comment_len = _EOCD.unpack_from(
        data, eocd)
    if (eocd + _EOCD_SIZE + comment_len != size
            or disk or cd_disk or on_disk != count
            # zipfile shifts every offset by the bytes before the directory that it does
            # not account for (a prefix); only the unshifted case is covered here
            or cd_offset + cd_size != eocd
            or (eocd >= _ZIP64_LOCATOR_SIZE
                and data[eocd - _ZIP64_LOCATOR_SIZE : eocd - 16] == _ZIP64_LOCATOR_SIG)):
        raise _Undecided
    return eocd, count, cd_offset


def _directory(data: bytes, eocd: int, count: int, cd_offset: int,
               ) -> tuple[list[_Member], int]:
    """The central directory's members and their declared inflated size. Everything
    zipfile could raise on while opening the archive is undecided, so that past this
    point zipfile's member list is the one read here."""
    members: list[_Member] = []
    inflated = 0
    pos = cd_offset
    while pos < eocd:
        if pos + _CENTRAL_SIZE > eocd:
            raise _Undecided
        (sig, version, flags, method, crc, csize, usize, name_len, extra_len, comment_len,
         disk_start, offset) = _CENTRAL.unpack_from(data, pos)
        name_start = pos + _CENTRAL_SIZE
        extra_start = name_start + name_len
        pos = extra_start + extra_len + comment_len
        if (sig != _CENTRAL_SIG or version > _MAX_EXTRACT_VERSION or flags & ~_KNOWN_FLAGS
                or method not in (_STORED, _DEFLATED) or disk_start
                or _MAX_32 in (csize, usize, offset) or pos > eocd):
            raise _Undecided
        if extra_len:
            _check_extra(data, extra_start, extra_start + extra_len)
        members.append((data[name_start:extra_start], flags, method, crc, csize, usize,
                        offset))
        inflated += usize
    if len(members) != count or (not members and cd_offset):
        raise _Undecided
    names = [_name(m[0], m[1]) for m in members] if len(members) > 1 else None
    if names is not None:
        # testzip opens members by name: with two alike, one is never read
        keys = {n.replace("\\", "/") for n in names}
        if len(keys) != len(names) or any("\0" in n for n in names):
            raise _Undecided
    elif members and members[0][1] & _UTF8_NAME:
        _name(members[0][0], members[0][1])  # zipfile fails on a bad UTF-8 name
    return members, inflated


def _members_problem(data: bytes, members: list[_Member], cd_offset: int) -> str | None:
    """The members, in directory order, which must also be their order in the file: each
    one's data ends before the next local header and the last one's before the directory."""
    if members and members[0][6]:
        raise _Undecided  # something before the first local header
    view = memoryview(data)
    floor = 0
    for name, flags, method, crc, csize, usize, offset in members:
        if offset < floor or offset + _LOCAL_SIZE > cd_offset:
            raise _Undecided
        sig, local_flags, local_name_len, local_extra_len = _LOCAL.unpack_from(data, offset)
        if sig != _LOCAL_SIG:
            return f"corrupt zip: bad local header for member {_label(name, flags)}"
        name_start = offset + _LOCAL_SIZE
        start = name_start + local_name_len + local_extra_len
        floor = start + csize
        if floor > cd_offset:
            raise _Undecided
        if data[name_start : name_start + local_name_len] != name:
            if (local_flags ^ flags) & _UTF8_NAME:
                raise _Undecided  # cp437 against UTF-8: decoded, they might still agree
            return f"corrupt zip: local header name differs for member {_label(name, flags)}"
        if (local_flags ^ flags) & _UTF8_NAME and not name.isascii():
            raise _Undecided
        if method == _STORED:
            if csize != usize:
                raise _Undecided
            if zlib.crc32(view[start:floor]) != crc:
                return f"corrupt zip: bad CRC in member {_label(name, flags)}"
        else:
            problem = _inflate_problem(view[start:floor], usize, crc)
            if problem:
                return f"corrupt zip: {problem} in member {_label(name, flags)}"
    return None


def _inflate_problem(stream: memoryview, usize: int, crc: int) -> str | None:
    """What is wrong with one DEFLATED member's data, or None when it is right.

    Inflating stops at ``usize + 1`` bytes, so a bomb costs no more than its declared
    size. zipfile keeps only the first ``usize`` bytes of the output and checks their CRC,
    so only a CRC mismatch over them is a sure rejection; other oddities are undecided.
    """
    if usize > _MAX_FAST_INFLATE:
        raise _Undecided
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(stream, usize + 1)  # max_length 0 would mean "no limit"
    except zlib.error:
        # zipfile may stop reading before it reaches the bad data
        raise _Undecided from None
    if len(out) > usize:
        if zlib.crc32(memoryview(out)[:usize]) != crc:
            return "data inflating past its declared size"
        raise _Undecided
    if not inflater.eof:
        raise _Undecided  # a truncated stream: zipfile flushes what it has and checks that
    if zlib.crc32(out) != crc:
        return "bad CRC"
    if len(out) != usize or inflater.unused_data:
        raise _Undecided  # short output or stray bytes: zipfile accepts them if the CRC fits
    return None


def _check_extra(data: bytes, pos: int, end: int) -> None:
    """Undecided unless the extra field is well-formed blocks of no special meaning."""
    while pos + 4 <= end:
        kind, length = _EXTRA_HEADER.unpack_from(data, pos)
        pos += 4 + length
        if kind in _UNSURE_EXTRAS:
            raise _Undecided
    if pos != end:
        raise _Undecided


def _name(raw: bytes, flags: int) -> str:
    """A member name decoded as zipfile decodes it."""
    try:
        return raw.decode("utf-8" if flags & _UTF8_NAME else "cp437")
    except UnicodeDecodeError:
        raise _Undecided from None


def _label(raw: bytes, flags: int) -> str:
    """A member name for a message: decoded, shortened, quoted (no raw bytes)."""
    return repr(_short(raw.decode("utf-8" if flags & _UTF8_NAME else "cp437",
                                  errors="replace")))


# ------------------------------------------------------------------ the zipfile path


def check_zip(path: Path) -> str | None:
    """The problem with the zip file at ``path`` (``"not a zip"``, ``"corrupt zip: …"``), or None.

    Checks the magic number, reads the central directory and decompresses every member
    to check its CRC (``ZipFile.testzip``). Memory stays bounded; time is proportional
    to the uncompressed size. OSError opening the file propagates; errors while
    decompressing (including bz2's OSError) count as corruption.
    """
    with open(path, "rb") as f:
        problem = zipfile_problem(f)  # without a size limit: never False
    return problem if isinstance(problem, str) else None


def zipfile_problem(f: IO[bytes], max_inflated: int | None = None) -> str | bool | None:
    """The problem with a zip, by ``zipfile`` (the reference), or None. With
    ``max_inflated``, False instead of checking when the members inflate to more."""
    if bytes(f.read(4)) not in _MAGIC:
        return "not a zip"
    f.seek(0)
    try:
        with zipfile.ZipFile(f) as zf:
            if max_inflated is not None and (
                    sum(i.file_size for i in zf.infolist()) > max_inflated):
                return False
            bad = zf.testzip()
    except zipfile.BadZipFile as exc:
        return f"corrupt zip: {_short(str(exc))}"
    except Exception as exc:  # zlib.error, EOFError, bz2's OSError, encrypted members, ...
        return f"corrupt zip: {type(exc).__name__}"
    if bad is not None:
        return f"corrupt zip: bad CRC in member {_short(bad)!r}"
    return None


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
