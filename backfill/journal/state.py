"""The journal's loaded state: the latest record of every key, packed small.

:func:`load_manifest` tolerates an unparseable *last* line (a torn write) and reports
it; an unparseable line anywhere else means the file cannot be trusted:
:class:`ManifestError` naming the file and the line.

Memory: a loaded 1,000,000-record manifest holds each key's latest record packed into
one ``bytes`` object (repeated strings interned into a table), about 250 bytes per key;
:class:`Record` objects are built on demand.

Speed: a big manifest's spans are shared out between this process and a forked child
(:mod:`.halves`), whose records refer to its own string table (table 1, in the flags).
"""

from __future__ import annotations

import binascii
import builtins
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final, NamedTuple

from ..errors import ManifestError, os_error_reason
from ..safe_open import NotRegularFile, open_regular
from . import halves
from .record import CANONICAL, STATUS_BYTE, STATUS_CODE, STATUSES, Record, parse_line, valid_date

#
# Each key's latest record is packed into one bytes object:
#   _HEAD: workspace, report, date, path (string-table indexes), status code, flags
#          (bits 0-5 below; bits 6-7: which string table),
#          bytes, attempts, http_status, error (index, 0 = null), len(updated_at)
#   then 32 raw sha256 bytes, updated_at (UTF-8), request_id (UTF-8, if any).
# The path is stored as "same as filename", "<dir>/<filename>" (dir interned) or whole.
# The outer dict is keyed by app_id, the inner one by filename, both UTF-8 bytes.

_HEAD: Final = struct.Struct("<IIIIBBqIHIH32s")
_TAIL_AT: Final = _HEAD.size
_SMALL_INTS: Final = {str(i).encode(): i for i in range(1000)}
_NO_SHA: Final = bytes(32)
_PATH_MASK, _PATH_NONE, _PATH_IS_NAME, _PATH_IN_DIR, _PATH_WHOLE = 3, 0, 1, 2, 3
_HAS_BYTES, _HAS_SHA, _HAS_HTTP, _HAS_RID = 4, 8, 16, 32
_TABLE_SHIFT: Final = 6


def _enc(text: str) -> builtins.bytes:
    return text.encode("utf-8", "surrogatepass")


def _dec(raw: builtins.bytes) -> str:
    return raw.decode("utf-8", "surrogatepass")


class ManifestState:
    """The latest record of every key, as loaded by :func:`load_manifest`.

    ``torn_line``: 1-based number of a torn last line that was ignored, or None.
    ``lines``: lines read (including blank and torn ones); ``lines > len(state)`` means
    compaction would shrink the file.
    """

    __slots__ = ("_apps", "_index", "_strings", "_tables", "_tag", "lines", "torn_line")

    def __init__(self, table: int = 0) -> None:
        """``table`` 1: the state a helper process loads into, taken later (see _take)."""
        self._apps: dict[builtins.bytes, dict[builtins.bytes, builtins.bytes]] = {}
        self._strings: list[str] = [""]
        self._tables: list[list[str]] = [[""]] * table + [self._strings]
        self._tag = table << _TABLE_SHIFT
        self._index: dict[builtins.bytes, int] = {}
        self.torn_line: int | None = None
        self.lines = 0

    def __len__(self) -> int:
        return sum(len(inner) for inner in self._apps.values())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and self._blob(key) is not None

    def get(self, key: tuple[str, str]) -> Record | None:
        """The latest record for ``(app_id, filename)``, or None."""
        blob = self._blob(key)
        return None if blob is None else self._unpack(key[0], key[1], blob)

    def __iter__(self) -> Iterator[Record]:
        """One (the latest) record per key, in order of each key's first appearance."""
        unpack = self._unpack
        for app, inner in self._apps.items():
            app_id = _dec(app)
            for filename, blob in inner.items():
                yield unpack(app_id, _dec(filename), blob)

    def add(self, record: Record) -> None:
        """Make ``record`` the latest for its key (what appending it to the file does)."""
        self._store(record)

    # internals

    def _blob(self, key: tuple[Any, ...]) -> builtins.bytes | None:
        if len(key) != 2 or not all(isinstance(k, str) for k in key):
            return None
        inner = self._apps.get(_enc(key[0]))
        return None if inner is None else inner.get(_enc(key[1]))

    def _intern(self, text: builtins.bytes) -> int:
        i = self._index.get(text)
        if i is None:
            i = self._index[text] = len(self._strings)
            self._strings.append(_dec(text))
        return i

    def _store(self, r: Record) -> None:
        """Pack a validated Record (the general path; see load_manifest for the fast one)."""
        filename = _enc(r.filename)
        flags = self._tag
        path_ref = 0
        if r.path is not None:
            path = _enc(r.path)
            if path == filename:
                flags |= _PATH_IS_NAME
            elif path.endswith(b"/" + filename):
                flags |= _PATH_IN_DIR
                path_ref = self._intern(path[: -len(filename) - 1])
            else:
                flags |= _PATH_WHOLE
                path_ref = self._intern(path)
        if r.bytes is not None:
            flags |= _HAS_BYTES
        sha = _NO_SHA
        if r.sha256 is not None:
            flags |= _HAS_SHA
            sha = binascii.unhexlify(r.sha256)
        if r.http_status is not None:
            flags |= _HAS_HTTP
        rid = b""
        if r.request_id is not None:
            flags |= _HAS_RID
            rid = _enc(r.request_id)
        updated = _enc(r.updated_at)
        head = _HEAD.pack(
            self._intern(_enc(r.workspace)), self._intern(_enc(r.report)),
            self._intern(_enc(r.date)), path_ref, STATUS_CODE[r.status.value], flags,
            -1 if r.bytes is None else r.bytes, r.attempts,
            0 if r.http_status is None else r.http_status,
            0 if r.error is None else self._intern(_enc(r.error)), len(updated), sha,
        )
        app = _enc(r.app_id)
        inner = self._apps.get(app)
        if inner is None:
            inner = self._apps[app] = {}
        inner[filename] = head + updated + rid

    def _unpack(self, app_id: str, filename: str, blob: builtins.bytes) -> Record:
        ws, rep, day, path_ref, code, flags, size, attempts, http, err, ulen, sha = (
            _HEAD.unpack_from(blob)
        )
        s = self._tables[flags >> _TABLE_SHIFT]
        kind = flags & _PATH_MASK
        path = (
            None if kind == _PATH_NONE
            else filename if kind == _PATH_IS_NAME
            else f"{s[path_ref]}/{filename}" if kind == _PATH_IN_DIR
            else s[path_ref]
        )
        end = _TAIL_AT + ulen
        return Record(  # positional: noticeably faster than keywords for 15 fields
            s[ws], app_id, s[rep], s[day], filename, STATUSES[code], path,
            size if flags & _HAS_BYTES else None,
            sha.hex() if flags & _HAS_SHA else None,
            attempts,
            http if flags & _HAS_HTTP else None,
            s[err] if err else None,
            _dec(blob[end:]) if flags & _HAS_RID else None,
            _dec(blob[_TAIL_AT:end]),
        )


def load_manifest(path: Path, keep: Callable[[str], bool] | None = None) -> ManifestState:
    """Read a manifest; the last record per key wins. A missing file is an empty state.
    ``keep(workspace)`` False leaves that workspace's records out as they are read (a
    shard keeps only its own workspaces of the other manifests: memory scales with 1/N);
    every line is still checked.

    A torn or unparseable *last* line is ignored and reported as ``state.torn_line``;
    any other bad line raises ManifestError ``"<path>:<line>: corrupt manifest line
    (<reason>)"``. Blank lines are skipped. Runs in about 3 µs per line on one core.
    """
    state = ManifestState()
    try:  # never through a link, never a FIFO or device (a hang, a read without end)
        f = os.fdopen(open_regular(path, follow_symlinks=False), "rb")
    except FileNotFoundError:
        return state
    except NotRegularFile as exc:
        raise ManifestError(f"{path}: cannot read the manifest ({exc})") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest ({os_error_reason(exc)})") from None
    with f:
        try:
            _read(state, f, keep)
        except OSError as exc:
            raise ManifestError(
                f"{path}: cannot read the manifest ({os_error_reason(exc)})"
            ) from None
        except _Corrupt as exc:
            raise ManifestError(f"{path}:{exc.args[0]}: corrupt manifest line ({exc.args[1]})"
                                ) from None
    return state


class _Corrupt(Exception):
    """A bad line followed by another non-blank one: args (line number, reason)."""


class _Part(NamedTuple):
    """What a stretch of lines held besides its records."""

    bad: tuple[int, str] | None  # its last non-blank line, if bad: fatal if more follow
    lines: int
    blanks: int


_Records = dict[builtins.bytes, builtins.bytes]  # one app_id's: filename -> packed record


def _read(state: ManifestState, f: BinaryIO, keep: Callable[[str], bool] | None) -> None:
    """All lines into ``state``; a big file's spans shared with a helper process (same
    result, line numbers and errors as reading it in one go)."""
    fd = f.fileno()
    size = os.fstat(fd).st_size
    ranges = halves.spans(fd, size) if halves.worth_splitting(size) else []
    if len(ranges) < 2:
        part = _load_lines(state, f, keep)
        state.lines = part.lines
        state.torn_line = None if part.bad is None else part.bad[0]
        return
    parts: dict[int, _Part | _Corrupt] = {}
    spans: dict[int, dict[builtins.bytes, _Records]] = {}
    helper = ManifestState(table=1)  # filled in the child only

    def here(i: int, lines: BinaryIO) -> None:
        parts[i], spans[i] = _load_span(_sharing(state), lines, keep)

    def there(i: int, lines: BinaryIO) -> None:
        parts[i], spans[i] = _load_span(_sharing(helper), lines, keep)

    def answer(done: list[int]) -> list[Any]:  # plain types, for marshal
        head = [(i, *_plain(parts[i])) for i in done]
        return [(helper._strings, head), *((i, app, inner) for i in done
                                           for app, inner in spans[i].items())]

    _, reply = halves.share(fd, ranges, here, there, answer)
    if reply is not None:
        _take(reply, state, parts, spans)
    for i in set(range(len(ranges))) - set(parts):
        here(i, halves.byte_range(fd, *ranges[i]))
    _chain(state, [parts[i] for i in range(len(ranges))], spans)


def _plain(part: _Part | _Corrupt) -> tuple[tuple[Any, ...] | None, tuple[Any, ...] | None]:
    """(the _Part's fields, None) or (None, the _Corrupt's arguments)."""
    return (tuple(part), None) if isinstance(part, _Part) else (None, part.args)


def _sharing(base: ManifestState) -> ManifestState:
    """An empty state of its own records that interns into ``base``'s string table."""
    s = ManifestState()
    s._strings, s._index, s._tables, s._tag = base._strings, base._index, base._tables, base._tag
    return s


def _load_span(s: ManifestState, lines: BinaryIO, keep: Callable[[str], bool] | None,
               ) -> tuple[_Part | _Corrupt, dict[builtins.bytes, _Records]]:
    try:
        return _load_lines(s, lines, keep), s._apps
    except _Corrupt as exc:
        return exc, {}


def _take(reply: list[Any], state: ManifestState, parts: dict[int, _Part | _Corrupt],
          spans: dict[int, dict[builtins.bytes, _Records]]) -> None:
    """The helper's answer: its string table (table 1), each span's part, its records."""
    strings, head = reply[0]
    state._tables.append(strings)
    for i, part, corrupt in head:
        if part is not None:
            bad, lines, blanks = part
            parts[i] = _Part(None if bad is None else (bad[0], bad[1]), lines, blanks)
        else:
            parts[i] = _Corrupt(*corrupt)
        spans[i] = {}
    for i, app, inner in reply[1:]:
        spans[i][app] = inner


def _chain(state: ManifestState, parts: list[_Part | _Corrupt],
           spans: dict[int, dict[builtins.bytes, _Records]]) -> None:
    """The spans' records into ``state`` in file order (each key's newest wins, first
    appearance orders), their line numbers made the file's, a bad line fatal when a
    non-blank one follows in any later span."""
    offset = 0
    pending: tuple[int, str] | None = None
    mine = state._apps
    for i, part in enumerate(parts):
        if isinstance(part, _Corrupt):
            raise _Corrupt(*pending) if pending else _Corrupt(
                offset + part.args[0], part.args[1])
        if pending is not None and part.lines > part.blanks:
            raise _Corrupt(*pending)
        if part.bad is not None:
            pending = (offset + part.bad[0], part.bad[1])
        offset += part.lines
        for app, inner in spans.pop(i).items():
            have = mine.get(app)
            if have is None:
                mine[app] = inner
            else:
                have.update(inner)
    state.lines = offset
    state.torn_line = None if pending is None else pending[0]


def _load_lines(
    state: ManifestState, f: Iterable[builtins.bytes], keep: Callable[[str], bool] | None = None,
) -> _Part:
    """The hot loop: lines in the shape Record.to_line writes are unpacked straight from
    a regex match (validation included, :func:`_pack_match`); anything else goes through
    parse_line. _Corrupt for a bad line followed by a non-blank one."""
    kept, filtering = _Kept(keep), keep is not None
    apps = state._apps
    strings = state._strings
    index = state._index
    tag = state._tag
    match = CANONICAL.fullmatch
    good_dates: set[builtins.bytes] = set()
    bad: tuple[int, str] | None = None
    lineno = blanks = 0
    for lineno, line in enumerate(f, 1):
        m = match(line)
        if m is None:
            if not line.strip():
                blanks += 1
                continue
            if bad is not None:
                raise _Corrupt(*bad)
            try:
                record = parse_line(line)
            except ValueError as exc:
                bad = (lineno, str(exc))
            else:
                if kept(_enc(record.workspace)):
                    state._store(record)
            continue
        groups = m.groups()
        day = groups[3]
        if day not in good_dates:
            if not valid_date(day.decode()):
                if bad is not None:
                    raise _Corrupt(*bad)
                bad = (lineno, f"field 'date': {day.decode()!r} is not a YYYY-MM-DD date")
                continue
            good_dates.add(day)
        if bad is not None:
            raise _Corrupt(*bad)
        if filtering and not kept(groups[0]):
            continue
        _pack_match(apps, groups, strings, index, tag)
    return _Part(bad, lineno, blanks)


class _Kept:
    """``keep`` of a workspace's raw name, decided once per workspace (all True if None)."""

    __slots__ = ("cache", "keep")

    def __init__(self, keep: Callable[[str], bool] | None) -> None:
        self.keep = keep
        self.cache: dict[builtins.bytes, bool] = {}

    def __call__(self, workspace: builtins.bytes) -> bool:
        if self.keep is None:
            return True
        ok = self.cache.get(workspace)
        if ok is None:
            ok = self.cache[workspace] = self.keep(_dec(workspace))
        return ok


def _add(strings: list[str], index: dict[builtins.bytes, int], text: builtins.bytes) -> int:
    """Intern ``text`` (not interned yet); its index, never 0 (0 is the null string)."""
    i = index[text] = len(strings)
    strings.append(text.decode())
    return i


def _pack_match(
    apps: dict[builtins.bytes, _Records], groups: tuple[Any, ...], strings: list[str],
    index: dict[builtins.bytes, int], tag: int,
) -> None:
    """Store the record of a CANONICAL match whose date is valid in ``apps``; ``tag``:
    the flags naming the string table."""
    ws, app, rep, day, fn, st, p, size, sha, attempts, http, err, rid, upd = groups
    if p is None:
        flags, path_ref = tag, 0
    elif p == fn:
        flags, path_ref = tag | _PATH_IS_NAME, 0
    elif p.endswith(b"/" + fn):
        flags = tag | _PATH_IN_DIR
        d = p[: -len(fn) - 1]
        path_ref = index.get(d) or _add(strings, index, d)
    else:
        flags = tag | _PATH_WHOLE
        path_ref = index.get(p) or _add(strings, index, p)
    if size is None:
        nbytes = -1
    else:
        nbytes = int(size)
        flags |= _HAS_BYTES
    if sha is None:
        sha = _NO_SHA
    else:
        sha = binascii.unhexlify(sha)
        flags |= _HAS_SHA
    if http is None:
        status_http = 0
    else:
        status_http = _SMALL_INTS.get(http) or int(http)
        flags |= _HAS_HTTP
    n_attempts = _SMALL_INTS.get(attempts)
    if n_attempts is None:
        n_attempts = int(attempts)
    if rid is None:
        rid = b""
    else:
        flags |= _HAS_RID
    wi = index.get(ws) or _add(strings, index, ws)
    ri = index.get(rep) or _add(strings, index, rep)
    di = index.get(day) or _add(strings, index, day)
    ei = 0 if err is None else index.get(err) or _add(strings, index, err)
    blob = _HEAD.pack(wi, ri, di, path_ref, STATUS_BYTE[st], flags, nbytes, n_attempts,
                      status_http, ei, len(upd), sha) + upd
    inner = apps.get(app)
    if inner is None:
        inner = apps[app] = {}
    inner[fn] = blob + rid if rid else blob
