"""The manifest: an append-only JSON Lines journal of every file's outcome.

One compact JSON object per line (``Record.to_line``); the last line for a key
``(app_id, filename)`` wins. Durability rules:

- One writer (:class:`ManifestWriter`) per file, guarded by :class:`ManifestLock` for
  the whole run. It batches whatever is queued into a single ``os.write``, so a kill
  can tear at most the last line, and fsyncs at least every ``fsync_interval_s``.
- :func:`load_manifest` tolerates an unparseable *last* line (a torn write) and reports
  it; an unparseable line anywhere else means the file cannot be trusted:
  :class:`ManifestError` naming the file and the line.
- When the writer opens a file whose last line is torn, it cuts that line off before
  appending (it carries nothing loadable, and left in place it would become a corrupt
  line in the middle of the file). A complete last record that only lacks its newline
  is kept and given one.
- :func:`compact` rewrites the file atomically (temporary file, fsync, rename, fsync
  of the directory): killed at any instant, the manifest is the old or the new file.

Memory: a loaded 1,000,000-record manifest holds each key's latest record packed into
one ``bytes`` object (repeated strings interned into a table), about 250 bytes per key;
:class:`Record` objects are built on demand.
"""

from __future__ import annotations

import binascii
import builtins
import contextlib
import enum
import errno
import fcntl
import json
import os
import re
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from json.encoder import encode_basestring_ascii as _quote
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.abc
import anyio.to_thread

from .errors import LockedError, ManifestError, StorageError
from .storage import os_error_reason

VERSION: Final = 1


class Status(enum.StrEnum):
    COMPLETED = "completed"
    MISSING = "missing"
    EXPIRED = "expired"
    FAILED = "failed"
    PENDING = "pending"


_STATUSES: Final = tuple(Status)
_STATUS_CODE: Final = {s.value: i for i, s in enumerate(_STATUSES)}
_FIELDS: Final = (
    "v", "workspace", "app_id", "report", "date", "filename", "status", "path", "bytes",
    "sha256", "attempts", "http_status", "error", "request_id", "updated_at",
)
_REQUIRED: Final = frozenset(("v", "workspace", "app_id", "report", "date", "filename", "status"))
_MAX_BYTES: Final = 2**63 - 1
_MAX_ATTEMPTS: Final = 2**32 - 1
_MAX_UPDATED_AT: Final = 0xFFFF  # bytes, UTF-8


def now_utc(now: datetime | None = None) -> str:
    """``now`` (default: the current time) as ``YYYY-MM-DDTHH:MM:SSZ`` in UTC."""
    moment = datetime.now(UTC) if now is None else now.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _opt(value: str | int | None) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return _quote(value)
    return str(value)


@dataclass(frozen=True, slots=True)
class Record:
    """One file's outcome; ``key`` is ``(app_id, filename)``. See design.md "The manifest"."""

    workspace: str
    app_id: str
    report: str
    date: str  # ISO date, the report's generation date
    filename: str
    status: Status
    path: str | None = None  # relative to output_dir, posix
    bytes: int | None = None
    sha256: str | None = None
    attempts: int = 0
    http_status: int | None = None
    error: str | None = None
    request_id: str | None = None
    updated_at: str = ""  # "2026-11-27T00:41:03Z"
    v: int = VERSION

    @property
    def key(self) -> tuple[str, str]:
        return (self.app_id, self.filename)

    def to_line(self) -> builtins.bytes:
        """One compact, ASCII-only JSON object and ``\\n``; keys in design.md order, ``v`` first.

        Byte for byte what ``json.dumps(obj, separators=(",", ":"))`` produces.
        """
        q = _quote
        return (
            f'{{"v":{self.v},"workspace":{q(self.workspace)},"app_id":{q(self.app_id)},'
            f'"report":{q(self.report)},"date":{q(self.date)},"filename":{q(self.filename)},'
            f'"status":{q(self.status.value)},"path":{_opt(self.path)},'
            f'"bytes":{_opt(self.bytes)},"sha256":{_opt(self.sha256)},'
            f'"attempts":{self.attempts},"http_status":{_opt(self.http_status)},'
            f'"error":{_opt(self.error)},"request_id":{_opt(self.request_id)},'
            f'"updated_at":{q(self.updated_at)}}}\n'
        ).encode("ascii")

    @classmethod
    def from_json(cls, obj: Any) -> Record:
        """Validate a parsed JSON object; ValueError naming the first bad field."""
        if not isinstance(obj, dict):
            raise ValueError(f"expected a JSON object, got {_json_type(obj)}")
        for name in obj:
            if name not in _FIELDS:
                raise ValueError(f"unknown field {_clip(name)!r}")
        for name in _FIELDS:
            if name in _REQUIRED and name not in obj:
                raise ValueError(f"missing field {name!r}")
        v = obj["v"]
        if type(v) is not int:
            raise ValueError(f"field 'v': expected an integer, got {_json_type(v)}")
        if v != VERSION:
            raise ValueError(f"unsupported record version {v} (this program reads {VERSION})")
        workspace = _str(obj, "workspace")
        app_id = _str(obj, "app_id", nonempty=True)
        report = _str(obj, "report")
        day = _str(obj, "date")
        if not _valid_date(day):
            raise ValueError(f"field 'date': {_clip(day)!r} is not a YYYY-MM-DD date")
        filename = _str(obj, "filename", nonempty=True)
        status = _str(obj, "status")
        if status not in _STATUS_CODE:
            raise ValueError(f"field 'status': {_clip(status)!r} is not a status")
        path = _opt_str(obj, "path")
        size = _opt_int(obj, "bytes", _MAX_BYTES)
        sha = _opt_str(obj, "sha256")
        if sha is not None:
            if len(sha) != 64 or not _is_hex(sha):
                raise ValueError("field 'sha256': expected 64 hex digits")
            sha = sha.lower()
        attempts = _opt_int(obj, "attempts", _MAX_ATTEMPTS)
        http_status = _opt_int(obj, "http_status", 999)
        error = _opt_str(obj, "error")
        request_id = _opt_str(obj, "request_id")
        updated_at = _opt_str(obj, "updated_at")
        if updated_at is not None and len(updated_at.encode("utf-8", "surrogatepass")) > (
            _MAX_UPDATED_AT
        ):
            raise ValueError("field 'updated_at': too long")
        return cls(
            workspace=workspace, app_id=app_id, report=report, date=day, filename=filename,
            status=Status(status), path=path, bytes=size, sha256=sha,
            attempts=0 if attempts is None else attempts, http_status=http_status,
            error=error, request_id=request_id,
            updated_at="" if updated_at is None else updated_at, v=v,
        )


def _json_type(value: object) -> str:
    return {
        dict: "an object", list: "an array", str: "a string", int: "an integer",
        float: "a number", bool: "a boolean", type(None): "null",
    }.get(type(value), type(value).__name__)


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _str(obj: Mapping[str, Any], name: str, *, nonempty: bool = False) -> str:
    value = obj[name]
    if type(value) is not str:
        raise ValueError(f"field {name!r}: expected a string, got {_json_type(value)}")
    if nonempty and not value:
        raise ValueError(f"field {name!r}: must not be empty")
    return value


def _opt_str(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is not None and type(value) is not str:
        raise ValueError(f"field {name!r}: expected a string or null, got {_json_type(value)}")
    return value


def _opt_int(obj: Mapping[str, Any], name: str, maximum: int) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if type(value) is not int:
        raise ValueError(f"field {name!r}: expected an integer, got {_json_type(value)}")
    if not 0 <= value <= maximum:
        raise ValueError(f"field {name!r}: {value} is out of range")
    return value


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _valid_date(text: str) -> bool:
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def parse_line(line: builtins.bytes) -> Record:
    """One manifest line (with or without its newline) → Record; ValueError if invalid."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 (byte {exc.start + 1})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None
    return Record.from_json(obj)


def check_line(line: builtins.bytes) -> None:
    """ValueError unless :func:`load_manifest` would accept ``line`` (fast for to_line's shape)."""
    m = _CANONICAL.fullmatch(line)
    if m is not None and _valid_date(m[4].decode()):
        return
    try:
        parse_line(line)
    except ValueError as exc:
        raise ValueError(f"record would not load back: {exc}") from None


# -------------------------------------------------------------------------- loaded state
#
# Each key's latest record is packed into one bytes object:
#   _HEAD: workspace, report, date, path (string-table indexes), status code, flags,
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

_S = rb'"([\x20\x21\x23-\x5b\x5d-\x7e]*)"'  # a JSON string without escapes, printable ASCII
_S1 = rb'"([\x20\x21\x23-\x5b\x5d-\x7e]+)"'
_SN = rb'(?:"([\x20\x21\x23-\x5b\x5d-\x7e]*)"|null)'
# The exact shape Record.to_line writes; anything else takes the general path.
_CANONICAL: Final = re.compile(
    rb'\{"v":1,"workspace":' + _S + rb',"app_id":' + _S1 + rb',"report":' + _S
    + rb',"date":"([0-9]{4}-[0-9]{2}-[0-9]{2})","filename":' + _S1
    + rb',"status":"(completed|missing|expired|failed|pending)","path":' + _SN
    + rb',"bytes":(?:(0|[1-9][0-9]{0,17})|null),"sha256":(?:"([0-9a-f]{64})"|null)'
    + rb',"attempts":(0|[1-9][0-9]{0,8}),"http_status":(?:(0|[1-9][0-9]{0,2})|null)'
    + rb',"error":' + _SN + rb',"request_id":' + _SN
    + rb',"updated_at":"([\x20\x21\x23-\x5b\x5d-\x7e]{0,1000})"\}\n?'  # fits the "H" length
)
_STATUS_BYTE: Final = {s.value.encode(): i for i, s in enumerate(_STATUSES)}


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

    __slots__ = ("_apps", "_index", "_strings", "lines", "torn_line")

    def __init__(self) -> None:
        self._apps: dict[builtins.bytes, dict[builtins.bytes, builtins.bytes]] = {}
        self._strings: list[str] = [""]
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
        flags = 0
        path_ref = 0
        if r.path is not None:
            path = _enc(r.path)
            if path == filename:
                flags = _PATH_IS_NAME
            elif path.endswith(b"/" + filename):
                flags = _PATH_IN_DIR
                path_ref = self._intern(path[: -len(filename) - 1])
            else:
                flags = _PATH_WHOLE
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
            self._intern(_enc(r.date)), path_ref, _STATUS_CODE[r.status.value], flags,
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
        s = self._strings
        kind = flags & _PATH_MASK
        path = (
            None if kind == _PATH_NONE
            else filename if kind == _PATH_IS_NAME
            else f"{s[path_ref]}/{filename}" if kind == _PATH_IN_DIR
            else s[path_ref]
        )
        end = _TAIL_AT + ulen
        return Record(  # positional: noticeably faster than keywords for 15 fields
            s[ws], app_id, s[rep], s[day], filename, _STATUSES[code], path,
            size if flags & _HAS_BYTES else None,
            sha.hex() if flags & _HAS_SHA else None,
            attempts,
            http if flags & _HAS_HTTP else None,
            s[err] if err else None,
            _dec(blob[end:]) if flags & _HAS_RID else None,
            _dec(blob[_TAIL_AT:end]),
        )


def load_manifest(path: Path) -> ManifestState:
    """Read a manifest; the last record per key wins. A missing file is an empty state.

    A torn or unparseable *last* line is ignored and reported as ``state.torn_line``;
    any other bad line raises ManifestError ``"<path>:<line>: corrupt manifest line
    (<reason>)"``. Blank lines are skipped. Runs in about 4 µs per line.
    """
    state = ManifestState()
    try:
        f = open(path, "rb")  # noqa: SIM115 -- closed below; the loop is kept flat for speed
    except FileNotFoundError:
        return state
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest ({os_error_reason(exc)})") from None
    bad: tuple[int, str] | None = None  # a bad line, fatal unless it turns out to be last
    lineno = 0
    with f:
        try:
            bad, lineno = _load_lines(state, f, path)
        except OSError as exc:
            raise ManifestError(
                f"{path}: cannot read the manifest ({os_error_reason(exc)})"
            ) from None
    state.lines = lineno
    if bad is not None:
        state.torn_line = bad[0]
    return state


def _load_lines(
    state: ManifestState, f: Iterable[builtins.bytes], path: Path
) -> tuple[tuple[int, str] | None, int]:
    # The hot loop: lines in the shape Record.to_line writes are unpacked straight from
    # a regex match (validation included); anything else goes through parse_line.
    apps = state._apps
    strings = state._strings
    index = state._index
    pack = _HEAD.pack
    unhex = binascii.unhexlify
    match = _CANONICAL.fullmatch
    status_code = _STATUS_BYTE
    no_sha = _NO_SHA
    small = _SMALL_INTS
    good_dates: set[builtins.bytes] = set()
    bad: tuple[int, str] | None = None
    lineno = 0
    for lineno, line in enumerate(f, 1):
        m = match(line)
        if m is None:
            if not line.strip():
                continue
            if bad is not None:
                raise _corrupt(path, bad)
            try:
                state._store(parse_line(line))
            except ValueError as exc:
                bad = (lineno, str(exc))
            continue
        ws, app, rep, day, fn, st, p, size, sha, attempts, http, err, rid, upd = m.groups()
        if day not in good_dates:
            if not _valid_date(day.decode()):
                if bad is not None:
                    raise _corrupt(path, bad)
                bad = (lineno, f"field 'date': {day.decode()!r} is not a YYYY-MM-DD date")
                continue
            good_dates.add(day)
        if bad is not None:
            raise _corrupt(path, bad)
        path_ref: int | None
        if p is None:
            flags = path_ref = 0
        elif p == fn:
            flags, path_ref = _PATH_IS_NAME, 0
        elif p.endswith(b"/" + fn):
            flags = _PATH_IN_DIR
            d = p[: -len(fn) - 1]
            path_ref = index.get(d)
            if path_ref is None:
                path_ref = index[d] = len(strings)
                strings.append(d.decode())
        else:
            flags = _PATH_WHOLE
            path_ref = index.get(p)
            if path_ref is None:
                path_ref = index[p] = len(strings)
                strings.append(p.decode())
        if size is None:
            nbytes = -1
        else:
            nbytes = int(size)
            flags |= _HAS_BYTES
        if sha is None:
            sha = no_sha
        else:
            sha = unhex(sha)
            flags |= _HAS_SHA
        status_http: int | None
        if http is None:
            status_http = 0
        else:
            status_http = small.get(http)
            if status_http is None:
                status_http = int(http)
            flags |= _HAS_HTTP
        n_attempts: int | None = small.get(attempts)
        if n_attempts is None:
            n_attempts = int(attempts)
        if rid is None:
            rid = b""
        else:
            flags |= _HAS_RID
        wi = index.get(ws)
        if wi is None:
            wi = index[ws] = len(strings)
            strings.append(ws.decode())
        ri = index.get(rep)
        if ri is None:
            ri = index[rep] = len(strings)
            strings.append(rep.decode())
        di = index.get(day)
        if di is None:
            di = index[day] = len(strings)
            strings.append(day.decode())
        ei: int | None
        if err is None:
            ei = 0
        else:
            ei = index.get(err)
            if ei is None:
                ei = index[err] = len(strings)
                strings.append(err.decode())
        blob = pack(wi, ri, di, path_ref, status_code[st], flags, nbytes, n_attempts,
                    status_http, ei, len(upd), sha) + upd
        inner = apps.get(app)
        if inner is None:
            inner = apps[app] = {}
        inner[fn] = blob + rid if rid else blob
    return bad, lineno


def _corrupt(path: Path, bad: tuple[int, str]) -> ManifestError:
    return ManifestError(f"{path}:{bad[0]}: corrupt manifest line ({bad[1]})")


# -------------------------------------------------------------------------- lock


def lock_path(manifest_path: Path) -> Path:
    """``<manifest>.lock``."""
    return manifest_path.with_name(manifest_path.name + ".lock")


class ManifestLock:
    """Exclusive lock on ``<manifest>.lock`` for a whole run (a sync context manager).

    ``flock(LOCK_EX | LOCK_NB)``: the kernel drops it when the process dies, so a killed
    run never leaves a stale lock. The holder's PID is written into the file so that a
    refused run can name it: LockedError ``"<manifest> is in use by another run (pid N)"``.
    The lock file is left in place (deleting it would let two runs lock different inodes).
    """

    def __init__(self, manifest_path: Path) -> None:
        self.manifest_path = Path(manifest_path)
        self.path = lock_path(self.manifest_path)
        self._fd = -1

    def acquire(self) -> None:
        if self._fd >= 0:
            raise RuntimeError("ManifestLock is already held")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot create the lock file "
                               f"({os_error_reason(exc)})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockedError(
                    f"{self.manifest_path} is in use by another run (pid {holder})"
                ) from None
            raise StorageError(
                f"{self.path}: cannot lock ({os_error_reason(exc)})"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)  # closing releases the lock
            raise StorageError(f"{self.path}: cannot write the lock file "
                               f"({os_error_reason(exc)})") from None
        self._fd = fd

    def release(self) -> None:
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # releases the flock

    def __enter__(self) -> ManifestLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


# -------------------------------------------------------------------------- writer


@dataclass(frozen=True, slots=True)
class WriterStatistics:
    records: int  # records written
    writes: int  # os.write batches
    fsyncs: int
    bytes_written: int
    tail_repaired: str | None  # "newline added" / "torn line removed" / None


class _FlushRequest:
    __slots__ = ("done", "failed")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.failed = False


class ManifestWriter:
    """The one task that appends to the manifest; everyone else calls :meth:`put`.

    Start it with ``await tg.start(writer.run)``; :meth:`close` ends it once the queue
    is drained and fsynced. Records travel through a bounded memory stream
    (``buffer`` records), so :meth:`put` waits when the writer falls behind. Whatever is
    queued is written with one ``os.write``, at most once per ``write_interval_s`` (so a
    busy run pays a thread hop per batch of records, not per record; a flush or close
    does not wait); data is fsynced at least every ``fsync_interval_s`` (in a worker
    thread), at :meth:`flush` and at close.
    Cancelled, the writer still writes and fsyncs what it had received (shielded), then
    re-raises.
    """

    def __init__(
        self, path: Path, *, fsync_interval_s: float = 0.5, buffer: int = 1024,
        write_interval_s: float = 0.01,
    ) -> None:
        if buffer < 1:
            raise ValueError("buffer must be >= 1")
        self.path = Path(path)
        self.fsync_interval_s = fsync_interval_s
        self.write_interval_s = write_interval_s
        self._wrote_at = float("-inf")
        self._send, self._recv = anyio.create_memory_object_stream[builtins.bytes | _FlushRequest](
            buffer
        )
        self._wake = anyio.Event()
        self._fd = -1
        self._state = "new"  # running, done, failed
        self._broken = False  # a write failed: never write again (it could glue lines)
        self._in_hand: list[builtins.bytes | _FlushRequest] = []
        self._unsynced_since: float | None = None
        self._records = self._writes = self._fsyncs = self._bytes = 0
        self._tail: str | None = None

    def statistics(self) -> WriterStatistics:
        return WriterStatistics(
            self._records, self._writes, self._fsyncs, self._bytes, self._tail
        )

    # ------------------------------------------------------------------ producer side

    async def put(self, record: Record) -> None:
        """Queue ``record``; waits while the queue is full (backpressure).

        ValueError if the record would not load back (a bad date, a negative size, ...):
        written, such a line would make the whole manifest unreadable once followed by
        another one. Checking costs about as much as serialising.
        """
        line = record.to_line()
        check_line(line)
        try:
            try:
                self._send.send_nowait(line)  # no yield to the loop when there is room
            except anyio.WouldBlock:
                await self._send.send(line)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            if self._state == "failed":
                raise self._stopped() from None
            raise RuntimeError("ManifestWriter.put() after close()") from None
        self._wake.set()

    async def flush(self) -> None:
        """Return once everything put so far is written and fsynced."""
        request = _FlushRequest()
        try:
            await self._send.send(request)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            if self._state == "done":
                return  # closed cleanly: everything was written and fsynced
            raise self._stopped() from None
        self._wake.set()
        await request.done.wait()
        if request.failed:
            raise self._stopped()

    async def close(self) -> None:
        """No more records: :meth:`run` drains the queue, fsyncs and returns."""
        self._send.close()
        self._wake.set()

    def _stopped(self) -> StorageError:
        return StorageError(f"{self.path}: the manifest writer has stopped")

    # ------------------------------------------------------------------ writer task

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        if self._state != "new":
            raise RuntimeError("ManifestWriter.run() can only be called once")
        self._state = "running"
        try:
            self._fd = await anyio.to_thread.run_sync(self._open)
        except BaseException:
            self._state = "failed"
            self._recv.close()
            self._send.close()
            raise
        task_status.started()
        try:
            await self._loop()
            self._state = "done"
        except BaseException:
            self._state = "failed"
            with anyio.CancelScope(shield=True):
                await self._last_write()
            raise
        finally:
            self._recv.close()
            self._send.close()  # nothing can be written any more
            os.close(self._fd)
            self._fd = -1

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageError(
                f"{self.path}: cannot open the manifest ({os_error_reason(exc)})"
            ) from None
        try:
            self._tail = _repair_tail(self.path, fd)
        except OSError as exc:
            os.close(fd)
            raise StorageError(
                f"{self.path}: cannot repair the manifest's last line ({os_error_reason(exc)})"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _drain(self) -> bool:
        """Move everything queued into ``_in_hand``; True once the stream has ended."""
        receive = self._recv.receive_nowait
        take = self._in_hand.append
        try:
            while True:
                take(receive())
        except anyio.WouldBlock:
            return False
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return True

    async def _loop(self) -> None:
        while True:
            self._wake = anyio.Event()  # before draining, so no put() can go unnoticed
            ended = self._drain()
            if self._in_hand:
                wait = self._wrote_at + self.write_interval_s - anyio.current_time()
                if wait > 0 and not ended and not any(
                        isinstance(i, _FlushRequest) for i in self._in_hand):
                    await anyio.sleep(wait)  # let more records gather for this write
                    continue
                await self._write_in_hand(sync=False)
                self._wrote_at = anyio.current_time()
                continue
            if ended:
                if self._unsynced_since is not None:
                    await self._write_in_hand(sync=True)
                return
            if self._unsynced_since is None:
                await self._wake.wait()
                continue
            delay = self._unsynced_since + self.fsync_interval_s - anyio.current_time()
            if delay <= 0:
                await self._write_in_hand(sync=True)
                continue
            with anyio.move_on_after(delay):
                await self._wake.wait()

    async def _write_in_hand(self, *, sync: bool) -> None:
        """Write ``_in_hand`` with one os.write (+ fsync if due), in one thread hop."""
        items = self._in_hand
        lines: list[builtins.bytes] = []
        flushes: list[_FlushRequest] = []
        for item in items:
            if isinstance(item, _FlushRequest):
                flushes.append(item)
            else:
                lines.append(item)
        data = b"".join(lines)
        now = anyio.current_time()
        unsynced = self._unsynced_since if self._unsynced_since is not None else (
            now if data else None
        )
        sync = sync or bool(flushes) or (
            unsynced is not None and now - unsynced >= self.fsync_interval_s
        )
        sync = sync and unsynced is not None
        if data or sync:
            await anyio.to_thread.run_sync(self._write_sync, data, sync)
        # The thread call cannot be interrupted once started: from here on it is done.
        self._in_hand = []
        self._records += len(lines)
        self._unsynced_since = None if sync else unsynced
        for request in flushes:
            request.done.set()

    def _write_sync(self, data: builtins.bytes, sync: bool) -> None:
        if self._broken:
            raise self._stopped()
        try:
            if data:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
                self._writes += 1
                self._bytes += len(data)
            if sync:
                os.fsync(self._fd)
                self._fsyncs += 1
        except OSError as exc:
            self._broken = True
            raise StorageError(
                f"{self.path}: cannot write the manifest ({os_error_reason(exc)})"
            ) from None

    async def _last_write(self) -> None:
        """After a failure or cancellation: write and fsync what was received, wake flushers."""
        self._drain()
        requests = [i for i in self._in_hand if isinstance(i, _FlushRequest)]
        if not self._broken and (self._in_hand or self._unsynced_since is not None):
            with contextlib.suppress(Exception):  # the original error is the one to raise
                await self._write_in_hand(sync=True)
        for request in requests:
            if not request.done.is_set():
                request.failed = True
                request.done.set()
        self._in_hand = []


def _last_line(f: Any, size: int) -> tuple[int, builtins.bytes]:
    """(offset, text) of the last non-blank line of a binary file, text without newline."""
    block = 64 * 1024
    pos = size
    buf = b""
    while pos > 0:
        step = min(block, pos)
        pos -= step
        f.seek(pos)
        buf = f.read(step) + buf
        body = buf.rstrip()
        if not body:
            continue
        cut = body.rfind(b"\n")
        if cut >= 0:
            return pos + cut + 1, body[cut + 1 :]
    body = buf.rstrip()
    return (0, body) if body else (size, b"")


def _repair_tail(path: Path, fd: int) -> str | None:
    """Make the file end cleanly before appending; see the module docstring."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    with open(path, "rb") as f:
        f.seek(size - 1)
        ends_with_newline = f.read(1) == b"\n"
        start, line = _last_line(f, size)
    if not line:
        return None
    try:
        parse_line(line)
    except ValueError:
        os.ftruncate(fd, start)
        os.fsync(fd)
        return "torn line removed"
    if ends_with_newline:
        return None
    os.write(fd, b"\n")
    os.fsync(fd)
    return "newline added"


# -------------------------------------------------------------------------- compaction


def compact(path: Path, records: Iterable[Record]) -> None:
    """Atomically replace the manifest with exactly ``records``, one line each.

    Writes ``<path>.compact.tmp``, fsyncs it, renames it over ``path`` and fsyncs the
    directory: killed at any instant, ``path`` is the old or the new file, readable.
    Call it under the lock and with no writer running (the writer would keep appending
    to the replaced file). OSError becomes StorageError.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".compact.tmp")
    try:
        with open(tmp, "wb", buffering=1024 * 1024) as f:
            for record in records:
                f.write(record.to_line())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StorageError(
            f"{path}: cannot compact the manifest ({os_error_reason(exc)})"
        ) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
