"""One manifest line: :class:`Record` and its JSON Lines codec. Pure; no I/O.

A record is one compact, ASCII-only JSON object and ``\n`` (:meth:`Record.to_line`, keys
in design.md order, ``v`` first). :func:`parse_line` reads any valid JSON spelling back
and names the first bad field; :func:`check_line` accepts exactly what
:func:`~backfill.journal.state.load_manifest` would load (fast for ``to_line``'s shape).
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, Final

from ..model import Status

VERSION: Final = 1
STATUSES: Final = tuple(Status)
STATUS_CODE: Final = {s.value: i for i, s in enumerate(STATUSES)}
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
        if not valid_date(day):
            raise ValueError(f"field 'date': {_clip(day)!r} is not a YYYY-MM-DD date")
        filename = _str(obj, "filename", nonempty=True)
        status = _str(obj, "status")
        if status not in STATUS_CODE:
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


def valid_date(text: str) -> bool:
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


# The exact shape Record.to_line writes (each group: one field's raw bytes); the state
# loader unpacks matches straight into its packed form, anything else takes parse_line.
_S = rb'"([\x20\x21\x23-\x5b\x5d-\x7e]*)"'  # a JSON string without escapes, printable ASCII
_S1 = rb'"([\x20\x21\x23-\x5b\x5d-\x7e]+)"'
_SN = rb'(?:"([\x20\x21\x23-\x5b\x5d-\x7e]*)"|null)'
CANONICAL: Final = re.compile(
    rb'\{"v":1,"workspace":' + _S + rb',"app_id":' + _S1 + rb',"report":' + _S
    + rb',"date":"([0-9]{4}-[0-9]{2}-[0-9]{2})","filename":' + _S1
    + rb',"status":"(completed|missing|expired|failed|pending)","path":' + _SN
    + rb',"bytes":(?:(0|[1-9][0-9]{0,17})|null),"sha256":(?:"([0-9a-f]{64})"|null)'
    + rb',"attempts":(0|[1-9][0-9]{0,8}),"http_status":(?:(0|[1-9][0-9]{0,2})|null)'
    + rb',"error":' + _SN + rb',"request_id":' + _SN
    + rb',"updated_at":"([\x20\x21\x23-\x5b\x5d-\x7e]{0,1000})"\}\n?'  # fits the "H" length
)
STATUS_BYTE: Final = {s.value.encode(): i for i, s in enumerate(STATUSES)}


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
    m = CANONICAL.fullmatch(line)
    if m is not None and valid_date(m[4].decode()):
        return
    try:
        parse_line(line)
    except ValueError as exc:
        raise ValueError(f"record would not load back: {exc}") from None
