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

import bz2
import io
import lzma
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Protocol

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


Checkpoint = Callable[[], None]
"""Called between bounded steps of a check; it may raise (a BaseException) to stop it."""


class _Undecided(Exception):
    """Raised anywhere in the fast path: let zipfile decide."""


def zip_problem(data: bytes, max_inflated: int | None = None, *,
                checkpoint: Checkpoint | None = None) -> str | bool | None:
    """The problem with the zip in ``data``, or None; same contract as
    ``zipfile_problem(io.BytesIO(data), max_inflated, checkpoint=checkpoint)``.

    ``"not a zip"`` or ``"corrupt zip: …"`` when it is bad; with ``max_inflated``, False
    when the members' declared sizes add up to more than that (nothing else is checked
    then). Layouts the fast path does not cover go to ``zipfile``. The fast path inflates
    at most 4 MiB per member in one piece; ``checkpoint`` runs only on the zipfile path.
    """
    if data and data[:4] not in _MAGIC:
        return "not a zip"  # zipfile_problem's first test, verbatim
    try:
        if data:
            return _check(data, max_inflated)
    except _Undecided:
        pass
    return zipfile_problem(io.BytesIO(data), max_inflated, checkpoint=checkpoint)


_Member = tuple[bytes, int, int, int, int, int, int]  # name flags method crc csize usize offset


def _check(data: bytes, max_inflated: int | None) -> str | bool | None:
    eocd, count, cd_offset = _end_record(data)
    members, inflated = _directory(data, eocd, count, cd_offset)
    if max_inflated is not None and inflated > max_inflated:
        return False
    bomb = _bomb_problem([(_text(m[0], m[1]), m[4], m[5]) for m in members])
    if bomb:
        return f"corrupt zip: {bomb}"
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


def _text(raw: bytes, flags: int) -> str:
    """A member name decoded for a message (no raw bytes)."""
    return raw.decode("utf-8" if flags & _UTF8_NAME else "cp437", errors="replace")


def _label(raw: bytes, flags: int) -> str:
    """A member name for a message: decoded, shortened, quoted."""
    return repr(_short(_text(raw, flags)))


# ------------------------------------------------------------------ the zipfile path

# Bounds on what a zip may ask of the check (a zip bomb asks for gigabytes from kilobytes).
# A member's declared sizes are judged before anything is inflated; inflating then stops
# one byte past the declared size, so the declared sizes bound the work and, since output
# is taken at most ``_STEP`` bytes at a time, memory stays at about ``_STEP`` per check
# (plus, for lzma, the decoder's dictionary: at most the member's size and 64 MiB).
MAX_INFLATED_BYTES = 16 * 1024**3  # all members together
# inflated / compressed, per member above _RATIO_FLOOR: deflate never passes ~1032, so this
# only refuses the bzip2/lzma bombs that reach a million to one
MAX_RATIO = 2000
_RATIO_FLOOR = 1024 * 1024
_MAX_LZMA_DICT = 64 * 1024 * 1024  # the largest preset's dictionary
_STEP = 1024 * 1024  # output per decompress call; the checkpoint runs once per step
_READ = 64 * 1024  # compressed bytes read at a time
_BZIP2, _LZMA = 12, 14

def check_zip(path: Path, checkpoint: Checkpoint | None = None) -> str | None:
    """The problem with the zip file at ``path`` (``"not a zip"``, ``"corrupt zip: …"``), or None.

    Checks the magic number, reads the central directory and inflates every member to
    check its size and CRC (:func:`zipfile_problem`). Memory stays bounded whatever the
    member claims; time is proportional to the declared sizes, which are bounded.
    ``checkpoint`` is called between steps (it may raise to stop the check, e.g. on
    cancellation). OSError opening the file propagates.
    """
    with open(path, "rb") as f:
        problem = zipfile_problem(f, checkpoint=checkpoint)  # without a limit: never False
    return problem if isinstance(problem, str) else None


def zipfile_problem(f: IO[bytes], max_inflated: int | None = None, *,
                    checkpoint: Checkpoint | None = None) -> str | bool | None:
    """The problem with a zip, by ``zipfile``'s directory reading (the reference), or None.
    With ``max_inflated``, False instead of checking when the members inflate to more.

    ``zipfile`` reads the directory and the local headers; the members are inflated here,
    in bounded steps, by method (stored, deflate, bzip2, lzma — what zipfile accepts):
    ``testzip`` itself hands bzip2 and lzma data to a decompressor in one call without an
    output limit, so a few kilobytes could claim gigabytes of memory. A member must
    inflate to exactly its declared size with its CRC; a zip bomb (see
    :data:`MAX_RATIO`, :data:`MAX_INFLATED_BYTES`) is refused before inflating.
    """
    if bytes(f.read(4)) not in _MAGIC:
        return "not a zip"
    f.seek(0)
    try:
        with zipfile.ZipFile(f) as zf:
            infos = zf.infolist()
            if max_inflated is not None and sum(i.file_size for i in infos) > max_inflated:
                return False
            problem = _bomb_problem([(i.filename, i.compress_size, i.file_size)
                                     for i in infos])
            if problem:
                return f"corrupt zip: {problem}"
            for info in infos:
                zf.open(info).close()  # zipfile's checks of the local header, encryption
                problem = _member_problem(f, info, checkpoint)
                if problem:
                    return f"corrupt zip: {problem} in member {_short(info.filename)!r}"
    except zipfile.BadZipFile as exc:
        return f"corrupt zip: {_short(str(exc))}"
    except Exception as exc:  # zlib.error, EOFError, bz2's OSError, LZMAError, encrypted ...
        return f"corrupt zip: {type(exc).__name__}"
    return None


def _bomb_problem(members: list[tuple[str, int, int]]) -> str | None:
    """Why these (name, compressed, inflated) sizes look like a zip bomb, or None."""
    total = 0
    for name, csize, usize in members:
        total += usize
        if usize > _RATIO_FLOOR and usize > MAX_RATIO * max(csize, 1):
            return (f"member {_short(name)!r} would inflate {usize // max(csize, 1)} times "
                    f"(more than {MAX_RATIO}: a zip bomb)")
    if total > MAX_INFLATED_BYTES:
        return f"members would inflate to {total} bytes (more than {MAX_INFLATED_BYTES})"
    return None


class _Inflater(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def needs_input(self) -> bool: ...

    def decompress(self, data: bytes, max_length: int = ...) -> bytes: ...


def _member_problem(f: IO[bytes], info: zipfile.ZipInfo,
                    checkpoint: Checkpoint | None) -> str | None:
    """Inflate one member in bounded steps: a problem unless it gives exactly
    ``file_size`` bytes with the declared CRC."""
    f.seek(info.header_offset)
    header = f.read(_LOCAL_SIZE)
    _, _, name_len, extra_len = _LOCAL.unpack(header)
    f.seek(info.header_offset + _LOCAL_SIZE + name_len + extra_len)
    compressed = _chunks(f, info.compress_size)
    usize = info.file_size
    method = info.compress_type
    inflater: _Inflater | None
    if method == zipfile.ZIP_STORED:
        inflater = None
    elif method == zipfile.ZIP_DEFLATED:
        inflater = _Deflate()
    elif method == _BZIP2:
        inflater = bz2.BZ2Decompressor()
    elif method == _LZMA:
        inflater = _lzma_inflater(compressed, usize)
    else:
        raise NotImplementedError("compression method")
    crc = out_len = 0
    while True:
        if checkpoint is not None:
            checkpoint()
        if inflater is None:
            out = next(compressed, b"")
            if not out:
                break
        else:
            if inflater.eof:
                break
            fed = next(compressed, b"") if inflater.needs_input else b""
            if inflater.needs_input and not fed:
                return "truncated data"
            out = inflater.decompress(fed, min(_STEP, usize - out_len + 1))
            if not (out or fed or inflater.needs_input or inflater.eof):
                return "truncated data"  # no progress: should not happen, never loop
        out_len += len(out)
        if out_len > usize:
            return "data inflating past its declared size"
        crc = zlib.crc32(out, crc)
    if out_len != usize:
        return f"data inflating to {out_len} of {usize} declared bytes"
    return "bad CRC" if crc != info.CRC else None


def _chunks(f: IO[bytes], size: int) -> Iterator[bytes]:
    while size > 0:
        data = f.read(min(_READ, size))
        if not data:
            return
        size -= len(data)
        yield data


def _lzma_inflater(compressed: Iterator[bytes], usize: int) -> _Inflater:
    """A raw LZMA1 inflater for zip's framing (version, properties size, properties),
    its dictionary no larger than the member could need (a hostile header could ask
    for 4 GiB) and refused above :data:`_MAX_LZMA_DICT`."""
    head = b""
    for chunk in compressed:
        head += chunk
        if len(head) >= 4 and len(head) >= 4 + struct.unpack_from("<H", head, 2)[0]:
            break
    if len(head) < 4:
        raise EOFError
    psize = struct.unpack_from("<H", head, 2)[0]
    if len(head) < 4 + psize:
        raise EOFError
    props = lzma._decode_filter_properties(  # type: ignore[attr-defined]  # as zipfile does
        lzma.FILTER_LZMA1, head[4 : 4 + psize])
    props["dict_size"] = min(props["dict_size"], max(usize + 1, 4096))
    if props["dict_size"] > _MAX_LZMA_DICT:
        raise ValueError("lzma dictionary too large")
    inflater = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[props])
    rest = head[4 + psize :]
    return _Primed(inflater, rest) if rest else inflater


class _Deflate:
    """zlib's raw inflater with bz2's interface (``needs_input``; unread input kept)."""

    def __init__(self) -> None:
        self._inflater = zlib.decompressobj(-15)

    @property
    def eof(self) -> bool:
        return self._inflater.eof

    @property
    def needs_input(self) -> bool:
        return not self._inflater.unconsumed_tail

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        tail = self._inflater.unconsumed_tail
        return self._inflater.decompress(tail + data if tail else data, max(max_length, 1))


class _Primed:
    """An inflater whose first input is already read: handed over on the first call."""

    def __init__(self, inflater: _Inflater, first: bytes) -> None:
        self._inflater = inflater
        self._first = first

    @property
    def eof(self) -> bool:
        return self._inflater.eof

    @property
    def needs_input(self) -> bool:
        return not self._first and self._inflater.needs_input

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        if self._first:
            data, self._first = self._first + data, b""
        return self._inflater.decompress(data, max_length)


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
