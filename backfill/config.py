"""Configuration: TOML → frozen, validated settings objects.

Every problem becomes one line naming the file, the table and the key; all problems of a
file are reported together in one :class:`ConfigError`. Secrets are held in
:class:`Secret`, whose repr never shows the value, and missing ``${ENV}`` variables are
named without printing anything they might have held.

Relative paths in the file are resolved against the file's own directory, so a cron job
behaves the same whatever its working directory.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from .destination import (
    ObjectURL,
    ObjectURLError,
    OutputDir,
    StorageOptions,
    local_root,
    parse_output_dir,
    parse_storage_table,
)
from .errors import ConfigError
from .exposure import exposure_warning
from .monitor.settings import NOTIFY_KEYS, NotifySettings, parse_notify
from .naming import (
    DATA_CENTERS,
    DEFAULT_LAYOUT,
    TEMP_SUFFIX,
    check_layout,
    layout_fields,
    parse_filename,
    render_path,
    report_filename,
    safe_component,
)
from .proxy import ProxyTable
from .safe_open import NotRegularFile, dangling_link, read_small
from .schedule import DEFAULT_READY_BUFFER, Schedule, Timing, parse_clock, parse_duration
from .zones import zone

GIB = 1024**3
MANIFEST_NAME = "manifest.jsonl"  # the manifest's default name, inside output_dir
RedirectRule = Literal["refuse", "strip"]


class Secret:
    """A credential. ``str``/``repr`` are masked; :meth:`reveal` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class DateSpec:
    """An absolute date, or an offset in days from a workspace's 'today' (0 = today)."""

    absolute: date | None = None
    offset_days: int = 0

    @classmethod
    def parse(cls, text: str | date) -> DateSpec:
        """``YYYY-MM-DD``, ``today``, ``yesterday`` or ``-Nd``; ValueError otherwise."""
        if isinstance(text, date):
            return cls(absolute=text)
        t = text.strip().lower()
        if t == "today":
            return cls(offset_days=0)
        if t == "yesterday":
            return cls(offset_days=-1)
        m = re.fullmatch(r"-(\d{1,5})d", t)
        if m:
            return cls(offset_days=-int(m.group(1)))
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", t):
            raise ValueError(f"{text!r} is not a date (use YYYY-MM-DD, 'today' or '-Nd')")
        try:
            return cls(absolute=date.fromisoformat(t))
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a valid date ({exc})") from None

    def resolve(self, today: date) -> date:
        return self.absolute if self.absolute is not None else today + timedelta(self.offset_days)

    def __str__(self) -> str:
        if self.absolute is not None:
            return self.absolute.isoformat()
        return "today" if self.offset_days == 0 else f"{self.offset_days}d"


@dataclass(frozen=True, slots=True)
class Report:
    name: str
    schedule: Schedule = field(default_factory=Schedule)
    timing: Timing = field(default_factory=Timing)


@dataclass(frozen=True, slots=True)
class Workspace:
    name: str
    app_id: str
    data_center: str
    api_key: Secret = field(repr=False)
    secret_key: Secret = field(repr=False)
    timezone: str
    reports: tuple[Report, ...]
    concurrency: int = 4
    rate: float | None = None  # requests per second, None = unlimited
    base_url: str | None = None
    ready_buffer: timedelta = DEFAULT_READY_BUFFER  # default for its reports with an `at`


@dataclass(frozen=True, slots=True)
class RunSettings:
    start: DateSpec = field(default_factory=lambda: DateSpec(offset_days=-7))
    end: DateSpec = field(default_factory=DateSpec)
    output_dir: OutputDir = Path("reports")  # a local folder or an s3:// gs:// az:// prefix
    manifest: Path | None = None  # None: <output_dir>/manifest.jsonl (see manifest_path)
    concurrency: int = 32
    per_host: int = 0  # connections per host; 0 = same as concurrency
    layout: str = DEFAULT_LAYOUT
    max_file_bytes: int = 2 * GIB
    max_outage_s: float = 1800.0
    metrics_file: Path | None = None  # Prometheus textfile written at the end of a run

    @property
    def manifest_path(self) -> Path:
        """``manifest``, or ``<output_dir>/manifest.jsonl`` when not set. For an object
        destination without ``manifest``: the local journal of the manifest that lives with
        the data (``remote_manifest``), in this machine's private place for it."""
        if self.manifest is not None:
            return self.manifest
        if isinstance(self.output_dir, ObjectURL):
            return local_root(self.output_dir) / MANIFEST_NAME
        return self.output_dir / MANIFEST_NAME

    @property
    def remote_manifest(self) -> bool:
        """True when the manifest lives with the data in an object store."""
        return self.manifest is None and isinstance(self.output_dir, ObjectURL)


@dataclass(frozen=True, slots=True)
class HttpSettings:
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0  # idle time between two chunks
    file_timeout_s: float = 900.0  # whole request, headers to last byte
    cross_origin_redirects: RedirectRule = "refuse"  # or "strip": follow without credentials
    max_redirects: int = 5
    proxy: str | None = None  # None: from the environment (proxy.py); "": never a proxy
    ca_bundle: Path | None = None  # PEM file of CAs to trust instead of the system's


@dataclass(frozen=True, slots=True)
class RetrySettings:
    max_attempts: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 60.0
    retry_after_max_s: float = 300.0
    breaker_threshold: int = 5  # consecutive transient failures that pause a host
    probe_interval_s: float = 1.0
    probe_interval_max_s: float = 60.0


@dataclass(frozen=True, slots=True)
class ExtractSettings:
    """``[extract]``: ``enabled`` makes ``run`` convert each file to Parquet once durable."""

    enabled: bool = False


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    run: RunSettings
    http: HttpSettings
    retry: RetrySettings
    workspaces: tuple[Workspace, ...]
    notify: NotifySettings = field(default_factory=NotifySettings)
    extract: ExtractSettings = field(default_factory=ExtractSettings)
    storage: StorageOptions = field(default_factory=StorageOptions)  # [storage]
    warnings: tuple[str, ...] = ()  # said once by the command (exposure.py)

    def workspace(self, name: str) -> Workspace:
        for ws in self.workspaces:
            if ws.name == name:
                return ws
        raise KeyError(name)


# ---------------------------------------------------------------------------- loading

# The keys of each table and their defaults are the settings classes' own fields.
_RUN, _HTTP, _RETRY = RunSettings(), HttpSettings(), RetrySettings()
_RUN_KEYS = {f.name for f in fields(RunSettings)}
_HTTP_KEYS = {f.name for f in fields(HttpSettings)}
_RETRY_KEYS = {f.name for f in fields(RetrySettings)}
_WS_KEYS = {f.name for f in fields(Workspace)}
_WS_SHARED_KEYS = _WS_KEYS - {"name", "app_id"}  # also allowed in [defaults]
_WS_CONCURRENCY = cast(int, next(f.default for f in fields(Workspace)
                                  if f.name == "concurrency"))
_TOP_KEYS = {"run", "http", "retry", "defaults", "workspace", "notify", "extract",
             "storage"}
_ENV = re.compile(r"\$\{([^}]*)\}")
_NAME_BAD = re.compile(r"[\x00-\x1f\x7f/\\]")


class _Problems:
    """Collects problems as 'file: [table] key: message' lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []

    def add(self, where: str, key: str | None, message: str) -> None:
        loc = f"{where} {_show(key)}" if key else where
        line = f"{self.path}: {loc}: {message}"
        if line not in self.lines:  # a bad [defaults] value is reported once, not per workspace
            self.lines.append(line)


def _show(text: str) -> str:
    """Text as typed, or its repr when it would break the one-line message."""
    return text if text.isprintable() else repr(text)


def _unknown_keys(p: _Problems, where: str, table: Mapping[str, Any], known: set[str]) -> None:
    for key in table:
        if key not in known:
            import difflib  # only for a mistake: not paid by every start-up

            hint = difflib.get_close_matches(key, sorted(known), n=1)
            extra = f" (did you mean '{hint[0]}'?)" if hint else ""
            p.add(where, key, f"unknown key{extra}")


_SECRET_KEYS = frozenset({"api_key", "secret_key", "webhook"})
# UPPER_CASE with an underscore (MOE_ACME_API_KEY), or without digits (TOKEN): a key
# pasted into ${} rarely looks like that.
_CONVENTIONAL_VAR = re.compile(r"(?=.{1,64}$)(?:[A-Z_]*_[A-Z0-9_]*|[A-Z]+)")
_BARE_VAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_MASKED = "not shown: it does not look like a variable name, so it may be a pasted key"


def _interpolate(p: _Problems, where: str, key: str, value: str, env: Mapping[str, str] | None,
                 ) -> str:
    """Replace ``${VAR}``. With ``env=None`` (planning only) references are left unresolved."""

    def sub(m: re.Match[str]) -> str:
        var = m.group(1)
        # In a secret, what is inside ${} may be the key itself, pasted by mistake: it is
        # named in an error only when it looks like a conventional variable name.
        masked = key in _SECRET_KEYS and not _CONVENTIONAL_VAR.fullmatch(var)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", var):
            p.add(where, key, f"'${{{var}}}' is not a valid environment variable reference"
                  if not masked else f"'${{…}}' is not a valid environment variable reference"
                  f" ({_MASKED})")
            return ""
        if env is None:
            return ""
        if var not in env:
            p.add(where, key, f"environment variable {var} is not set" if not masked
                  else f"the environment variable in '${{…}}' is not set ({_MASKED})")
            return ""
        if key in _SECRET_KEYS and not env[var].strip():
            p.add(where, key, f"environment variable {var} is set but empty" if not masked
                  else f"the environment variable in '${{…}}' is set but empty ({_MASKED})")
        return env[var]

    bare = _BARE_VAR.fullmatch(value.strip())
    if key in _SECRET_KEYS and bare:
        # "$MOE_KEY" would be sent as the key itself and fail later as 401s
        var = bare.group(1)
        shown = (f"'{value.strip()}' is" if _CONVENTIONAL_VAR.fullmatch(var)
                 else f"this value ({_MASKED}) is")
        p.add(where, key, f"{shown} a shell-style reference, which is not expanded: "
              f"write \"${{{var if _CONVENTIONAL_VAR.fullmatch(var) else 'VAR'}}}\" (with "
              "braces) to read it from the environment")
        return ""
    return _ENV.sub(sub, value)


def _table(p: _Problems, raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        p.add(f"[{key}]", None, f"must be a table, got {type(value).__name__}")
        return {}
    return value


def _int(p: _Problems, where: str, t: Mapping[str, Any], key: str, default: int,
         minimum: int = 1) -> int:
    v = t.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int):
        p.add(where, key, f"must be an integer, got {v!r}")
        return default
    if v < minimum:
        p.add(where, key, f"must be at least {minimum}, got {v}")
        return default
    return v


def _float(p: _Problems, where: str, t: Mapping[str, Any], key: str, default: float,
           minimum: float = 0.0) -> float:
    v = t.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float):
        p.add(where, key, f"must be a number, got {v!r}")
        return default
    if math.isnan(v):
        p.add(where, key, "must be a number, got nan")
        return default
    if v < minimum:
        p.add(where, key, f"must be at least {minimum}, got {v}")
        return default
    return float(v)


def _str(p: _Problems, where: str, t: Mapping[str, Any], key: str, default: str) -> str:
    v = t.get(key, default)
    if not isinstance(v, str):
        p.add(where, key, f"must be a string, got {v!r}")
        return default
    return v


def _date(p: _Problems, where: str, t: Mapping[str, Any], key: str, default: DateSpec) -> DateSpec:
    if key not in t:
        return default
    v = t[key]
    if not isinstance(v, str | date) or (hasattr(v, "hour")):
        p.add(where, key, f"must be a date string, got {v!r}")
        return default
    try:
        return DateSpec.parse(v)
    except ValueError as exc:
        p.add(where, key, str(exc))
        return default


def _path(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _url_problem(url: str) -> str | None:
    """Why requests could not be sent to ``url`` (a base URL), or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError when out of range
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL"
    if parts.username is not None or parts.password is not None:
        return "must not hold credentials (user:password@)"
    if parts.query or parts.fragment or "#" in url or any(c.isspace() for c in url):
        return "must be a plain URL: no query, fragment or spaces"
    return None


def _proxy(p: _Problems, http_t: Mapping[str, Any]) -> str | None:
    if "proxy" not in http_t:
        return None
    value = _str(p, "[http]", http_t, "proxy", "")
    try:
        ProxyTable(value, {})
    except ConfigError as exc:
        p.add("[http]", "proxy", str(exc).removeprefix("proxy [http] proxy="))
    return value


def _ca_bundle(p: _Problems, base: Path, http_t: Mapping[str, Any]) -> Path | None:
    if "ca_bundle" not in http_t:
        return None
    value = _str(p, "[http]", http_t, "ca_bundle", "")
    if not value.strip():
        p.add("[http]", "ca_bundle", "is empty: name a PEM file of CA certificates")
        return None
    path = _path(base, value)
    if not path.is_file():
        p.add("[http]", "ca_bundle", f"{path}: no such file (a PEM file of CA certificates)")
    return path


def _buffer(p: _Problems, where: str, key: str, value: Any) -> timedelta | None:
    """A ready_buffer value ("30m", "2h", seconds), or None after reporting why not."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        p.add(where, key, f"must be a duration like '30m' or '2h', got {value!r}")
        return None
    try:
        got = parse_duration(str(value))
    except ValueError as exc:
        p.add(where, key, str(exc))
        return None
    if got > timedelta(days=1):
        p.add(where, key, f"{value!r} is longer than a day (files live 7 days from generation)")
        return None
    return got


def _report_item(p: _Problems, where: str, i: int, item: Any,
                 buffer: timedelta) -> tuple[str, str, Timing] | None:
    """(name, schedule text, timing) of one ``reports`` entry, or None after reporting."""
    if isinstance(item, str):
        return item, "daily", Timing(buffer=buffer)
    if not isinstance(item, dict):
        p.add(where, f"reports[{i}]", f"must be a name or {{name, schedule}}, got {item!r}")
        return None
    _unknown_keys(p, f"{where} reports[{i}]", item, {"name", "schedule", "at", "ready_buffer"})
    name, sched, at = item.get("name"), item.get("schedule", "daily"), item.get("at")
    if not isinstance(name, str):
        p.add(where, f"reports[{i}].name", "is required and must be a string")
        return None
    if not isinstance(sched, str):
        p.add(where, f"reports[{i}].schedule", f"must be a string, got {sched!r}")
        return None
    clock = None
    if at is not None:
        try:
            clock = _clock(at)
        except ValueError as exc:
            p.add(where, f"reports[{i}].at", str(exc))
            return None
    if "ready_buffer" in item:
        own = _buffer(p, where, f"reports[{i}].ready_buffer", item["ready_buffer"])
        if own is None:
            return None
        buffer = own
    return name, sched, Timing(at=clock, buffer=buffer)


def _clock(value: Any) -> time:
    """``at``: "09:00", or TOML's own local time (``at = 09:00:00``)."""
    if isinstance(value, time) and value.tzinfo is None and not value.second:
        return value.replace(microsecond=0)
    if isinstance(value, str):
        return parse_clock(value)
    raise ValueError(f"{value!r} is not a time of day (use \"HH:MM\", e.g. \"09:00\")")


def _report_name_problem(name: str) -> str | None:
    if not name.strip():
        return "report name is empty"
    if re.search(r"[\x00-\x1f\x7f]", name):
        return "report name contains control characters"
    if len(name.encode()) > 250:
        return "report name is longer than 250 bytes"
    return None


def _reports(p: _Problems, where: str, value: Any,
             buffer: timedelta = DEFAULT_READY_BUFFER) -> tuple[Report, ...]:
    if not isinstance(value, list):
        p.add(where, "reports", f"must be a list of report names, got {value!r}")
        return ()
    if not value:
        p.add(where, "reports", "is empty: list at least one report name")
        return ()
    out: list[Report] = []
    seen: dict[str, str] = {}  # local path component -> report name
    for i, item in enumerate(value):
        parsed = _report_item(p, where, i, item, buffer)
        if parsed is None:
            continue
        name, sched, timing = parsed
        problem = _report_name_problem(name)
        if problem:
            p.add(where, f"reports[{i}]", problem)
            continue
        pasted = _pasted_file_name(name)
        if pasted:
            p.add(where, f"reports[{i}]", pasted)
            continue
        local = safe_component(name)
        if local in seen:
            p.add(where, f"reports[{i}]", f"report {name!r} is listed twice" if seen[local] == name
                  else f"report {name!r} and report {seen[local]!r} would be saved under the "
                  f"same local name {local!r}")
            continue
        seen[local] = name
        try:
            out.append(Report(name, Schedule.parse(sched), timing))
        except ValueError as exc:
            p.add(where, f"reports[{i}].schedule", str(exc))
    return tuple(out)


def data_center(value: Any) -> str | None:
    """``2``, ``"2"`` and ``"02"`` are all data center ``"02"``; None when unknown."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    dc = f"{int(text):02d}" if text.isascii() and text.isdigit() else text
    return dc if dc in DATA_CENTERS else None


def _pasted_file_name(name: str) -> str | None:
    """A file name pasted where the report name goes (``Daily_summary_20261201.zip``)."""
    parsed = parse_filename(name)
    if parsed is not None:
        return (f"report {name!r} is a file name, not a report name: use "
                f"{parsed[0]!r} (without the date and .zip; with spaces where the "
                "dashboard's name has them)")
    if name.lower().endswith(".zip"):
        return f"report {name!r} ends in .zip: use the report's name as the dashboard shows it"
    return None


class _WorkspaceReader:
    """Reads one ``[[workspace]]`` table merged over ``[defaults]``; problems go to ``p``."""

    def __init__(self, p: _Problems, index: int, raw: dict[str, Any],
                 defaults: Mapping[str, Any], env: Mapping[str, str] | None) -> None:
        self.p, self.raw, self.defaults, self.env = p, raw, defaults, env
        label = raw.get("name") or raw.get("app_id")
        self.where = f"[[workspace]] #{index + 1}" + (
            f" ({_show(label)})" if isinstance(label, str) else "")
        self.merged: dict[str, Any] = {**defaults, **raw}

    def at(self, key: str) -> str:
        """Where a value came from: an inherited value's problem belongs to [defaults]."""
        return "[defaults]" if key not in self.raw and key in self.defaults else self.where

    def read(self) -> Workspace:
        p = self.p
        _unknown_keys(p, self.where, self.raw, _WS_KEYS)
        # in this order, so that problems are listed in the order of the table's keys
        app_id, name = self.identity()
        data_center = self.data_center()
        api_key = self.secret("api_key")
        if api_key is None:
            p.add(self.where, "api_key",
                  "is required (use \"${ENV_VAR}\" to keep it out of the file)")
            api_key = ""
        secret_key = self.secret("secret_key")
        for key in ("api_key", "secret_key"):
            v = self.merged.get(key)
            if isinstance(v, str) and not v.strip():
                p.add(self.at(key), key,
                      "is empty (use \"${ENV_VAR}\" to read it from the environment)")
        timezone = self.timezone()
        concurrency = _int(p, self.at("concurrency"), self.merged, "concurrency",
                           _WS_CONCURRENCY)
        rate, base_url = self.rate(), self.base_url()
        buffer = self.ready_buffer()
        reports = _reports(p, self.at("reports"), self.merged.get("reports", []), buffer)
        return Workspace(
            name=name, app_id=app_id, data_center=data_center, api_key=Secret(api_key),
            secret_key=Secret(secret_key if secret_key is not None else api_key),
            timezone=timezone, reports=reports, concurrency=concurrency, rate=rate,
            base_url=base_url, ready_buffer=buffer,
        )

    def ready_buffer(self) -> timedelta:
        if "ready_buffer" not in self.merged:
            return DEFAULT_READY_BUFFER
        got = _buffer(self.p, self.at("ready_buffer"), "ready_buffer",
                      self.merged["ready_buffer"])
        return DEFAULT_READY_BUFFER if got is None else got

    def identity(self) -> tuple[str, str]:
        p, where, merged = self.p, self.where, self.merged
        app_id = merged.get("app_id")
        if not isinstance(app_id, str) or not app_id.strip():
            p.add(where, "app_id", "is required (the workspace ID from Settings → Account → APIs)")
            app_id = ""
        elif _NAME_BAD.search(app_id):
            p.add(where, "app_id", "contains '/', '\\' or control characters")
        name = merged.get("name", app_id)
        if not isinstance(name, str) or not name.strip():
            p.add(where, "name", "must be a non-empty string")
            name = app_id
        elif _NAME_BAD.search(name) or name in (".", "..") or len(name.encode()) > 100:
            p.add(where, "name", f"{name!r} is not usable as a label "
                  "(no '/', '\\', control characters, '..'; at most 100 bytes)")
        return app_id, name if isinstance(name, str) else str(name)

    def data_center(self) -> str:
        dc_raw = self.merged.get("data_center", "01")
        dc = data_center(dc_raw)
        if dc is None:
            self.p.add(self.at("data_center"), "data_center", f"unknown data center {dc_raw!r} "
                       "(the number in your dashboard's address, dashboard-NN; known: "
                       f"{', '.join(DATA_CENTERS)})")
        return dc or "01"

    def secret(self, key: str) -> str | None:
        v = self.merged.get(key)
        if v is None:
            return None
        if not isinstance(v, str):
            self.p.add(self.at(key), key, "must be a string")
            return None
        return _interpolate(self.p, self.at(key), key, v, self.env)

    def timezone(self) -> str:
        tz = _str(self.p, self.at("timezone"), self.merged, "timezone", "UTC")
        try:
            zone(tz)
        except (ValueError, OSError):  # unknown; "Europe" is a directory of tzdata
            self.p.add(self.at("timezone"), "timezone",
                       f"unknown time zone {tz!r} (an IANA name like 'Europe/Berlin')")
            tz = "UTC"
        return tz

    def rate(self) -> float | None:
        if "rate" not in self.merged:
            return None
        rate = _float(self.p, self.at("rate"), self.merged, "rate", 1.0)  # 1.0: reported
        if rate <= 0:
            self.p.add(self.at("rate"), "rate", "must be a positive number of requests per second")
            return None
        return rate

    def base_url(self) -> str | None:
        base = self.merged.get("base_url")
        if base is None:
            return None
        at = self.at("base_url")
        if not isinstance(base, str) or not re.match(r"https?://[^/\s]+", base):
            self.p.add(at, "base_url", f"must be an http(s) URL, got {base!r}")
            return None
        value = _interpolate(self.p, at, "base_url", base, self.env)
        problem = _url_problem(value) if self.env is not None or "${" not in base else None
        if problem:
            self.p.add(at, "base_url", f"{problem}, got {base!r}")
            return None
        return value


def _workspace(
    p: _Problems, index: int, raw: Any, defaults: Mapping[str, Any], env: Mapping[str, str] | None
) -> Workspace | None:
    if not isinstance(raw, dict):
        p.add(f"[[workspace]] #{index + 1}", None, "must be a table")
        return None
    return _WorkspaceReader(p, index, raw, defaults, env).read()


def parse_config(
    raw: Mapping[str, Any], path: Path, env: Mapping[str, str] | None = None,
    *, secrets: bool = True,
) -> Config:
    """Validate a parsed TOML document. Raises ConfigError listing every problem.

    ``secrets=False`` skips resolving ``${ENV}`` references (for ``plan``, which sends
    nothing): credentials are then empty.
    """
    env = (os.environ if env is None else env) if secrets else None
    p = _Problems(path)
    _unknown_keys(p, "(top level)", raw, _TOP_KEYS)
    base = path.resolve().parent
    run, layout_ok = _run_settings(p, _table(p, raw, "run"), base)
    http = _http_settings(p, _table(p, raw, "http"), base)
    retry = _retry_settings(p, _table(p, raw, "retry"))
    workspaces = _workspaces(p, raw, env)
    if layout_ok and len(workspaces) > 1 and not {"workspace", "app_id"} & set(
            layout_fields(run.layout)):
        p.add("[run]", "layout", f"{run.layout!r}: must contain {{workspace}} or {{app_id}} "
              "when several workspaces are configured, so their files stay apart")
    if not p.lines:
        _one_path_per_file(p, run.layout, workspaces)
    extract = _extract(p, _table(p, raw, "extract"))
    notify_t = _table(p, raw, "notify")
    _unknown_keys(p, "[notify]", notify_t, set(NOTIFY_KEYS))
    notify = parse_notify(p, notify_t, None if env is None else
                          lambda key, value: _interpolate(p, "[notify]", key, value, env))
    storage = _storage(p, _table(p, raw, "storage"))
    if p.lines:
        raise ConfigError(p.lines)
    return Config(path=path, run=run, http=http, retry=retry, workspaces=tuple(workspaces),
                  notify=notify, extract=extract, storage=storage)


def _extract(p: _Problems, t: Mapping[str, Any]) -> ExtractSettings:
    _unknown_keys(p, "[extract]", t, {"enabled"})
    enabled = t.get("enabled", False)
    if not isinstance(enabled, bool):
        p.add("[extract]", "enabled", f"must be true or false, got {_show(repr(enabled))}")
        enabled = False
    return ExtractSettings(enabled=enabled)


def _storage(p: _Problems, t: Mapping[str, Any]) -> StorageOptions:
    try:
        return parse_storage_table(t)
    except ConfigError as exc:
        for line in exc.problems:  # "[storage] key: message"
            key, _, message = line.removeprefix("[storage] ").partition(": ")
            p.add("[storage]", key, message)
        return StorageOptions()


def _output_dir(p: _Problems, t: Mapping[str, Any], base: Path) -> OutputDir:
    text = _str(p, "[run]", t, "output_dir", str(_RUN.output_dir))
    try:
        return parse_output_dir(text, base)
    except ObjectURLError as exc:
        p.add("[run]", "output_dir", str(exc))
        return _RUN.output_dir


def _run_settings(p: _Problems, t: Mapping[str, Any], base: Path) -> tuple[RunSettings, bool]:
    """[run], and whether its layout is valid."""
    _unknown_keys(p, "[run]", t, _RUN_KEYS)
    output_dir = _output_dir(p, t, base)
    manifest = _path(base, _str(p, "[run]", t, "manifest", "")) if "manifest" in t else None
    if manifest is not None and manifest.name.endswith(TEMP_SUFFIX):
        p.add("[run]", "manifest", f"must not end in '{TEMP_SUFFIX}' (partial downloads do; "
              "a run deletes them)")
    layout = _str(p, "[run]", t, "layout", _RUN.layout)
    problem = check_layout(layout)
    if problem:
        p.add("[run]", "layout", f"{layout!r}: {problem}")
    run = RunSettings(
        start=_date(p, "[run]", t, "start", _RUN.start),
        end=_date(p, "[run]", t, "end", _RUN.end),
        output_dir=output_dir,
        manifest=manifest,
        concurrency=_int(p, "[run]", t, "concurrency", _RUN.concurrency),
        per_host=_int(p, "[run]", t, "per_host", _RUN.per_host, minimum=0),
        layout=layout,
        max_file_bytes=_int(p, "[run]", t, "max_file_bytes", _RUN.max_file_bytes),
        max_outage_s=_float(p, "[run]", t, "max_outage_s", _RUN.max_outage_s),
        metrics_file=(_path(base, _str(p, "[run]", t, "metrics_file", ""))
                      if "metrics_file" in t else None),
    )
    if start_after_end(run.start, run.end):
        p.add("[run]", "start", f"start {run.start} is after end {run.end}")
    return run, problem is None


def start_after_end(start: DateSpec, end: DateSpec) -> bool:
    """True when ``start`` is after ``end`` whatever 'today' is (both absolute, or both
    offsets); a mix can only be judged once 'today' is known."""
    if start.absolute is not None and end.absolute is not None:
        return start.absolute > end.absolute
    return start.absolute is None and end.absolute is None and start.offset_days > end.offset_days


def _http_settings(p: _Problems, t: Mapping[str, Any], base: Path) -> HttpSettings:
    _unknown_keys(p, "[http]", t, _HTTP_KEYS)
    cross = _str(p, "[http]", t, "cross_origin_redirects", _HTTP.cross_origin_redirects)
    if cross not in ("refuse", "strip"):
        p.add("[http]", "cross_origin_redirects", f"must be 'refuse' or 'strip', got {cross!r}")
        cross = _HTTP.cross_origin_redirects
    return HttpSettings(
        connect_timeout_s=_float(p, "[http]", t, "connect_timeout_s", _HTTP.connect_timeout_s,
                                 0.001),
        read_timeout_s=_float(p, "[http]", t, "read_timeout_s", _HTTP.read_timeout_s, 0.001),
        file_timeout_s=_float(p, "[http]", t, "file_timeout_s", _HTTP.file_timeout_s, 0.001),
        cross_origin_redirects=cast(RedirectRule, cross),
        max_redirects=_int(p, "[http]", t, "max_redirects", _HTTP.max_redirects, minimum=0),
        proxy=_proxy(p, t),
        ca_bundle=_ca_bundle(p, base, t),
    )


def _retry_settings(p: _Problems, t: Mapping[str, Any]) -> RetrySettings:
    _unknown_keys(p, "[retry]", t, _RETRY_KEYS)
    d = _RETRY
    return RetrySettings(
        max_attempts=_int(p, "[retry]", t, "max_attempts", d.max_attempts),
        backoff_base_s=_float(p, "[retry]", t, "backoff_base_s", d.backoff_base_s),
        backoff_max_s=_float(p, "[retry]", t, "backoff_max_s", d.backoff_max_s),
        retry_after_max_s=_float(p, "[retry]", t, "retry_after_max_s", d.retry_after_max_s),
        breaker_threshold=_int(p, "[retry]", t, "breaker_threshold", d.breaker_threshold),
        probe_interval_s=_float(p, "[retry]", t, "probe_interval_s", d.probe_interval_s, 0.001),
        probe_interval_max_s=_float(p, "[retry]", t, "probe_interval_max_s",
                                    d.probe_interval_max_s, 0.001),
    )


def _workspaces(p: _Problems, raw: Mapping[str, Any], env: Mapping[str, str] | None,
                ) -> list[Workspace]:
    defaults = _table(p, raw, "defaults")
    _unknown_keys(p, "[defaults]", defaults, _WS_SHARED_KEYS)
    ws_raw = raw.get("workspace", [])
    if not isinstance(ws_raw, list):
        p.add("[[workspace]]", None, "must be an array of tables ([[workspace]])")
        ws_raw = []
    if not ws_raw:
        p.add("[[workspace]]", None, "no workspace configured: add at least one [[workspace]]")
    workspaces: list[Workspace] = []
    # Keyed by the local path component, so 'acme eu' and 'acme_eu' (one directory) clash too.
    seen: dict[tuple[str, str], tuple[int, str]] = {}  # (key, local name) -> (index, value)
    for i, item in enumerate(ws_raw):
        ws = _workspace(p, i, item, defaults, env)
        if ws is None:
            continue
        where = f"[[workspace]] #{i + 1} ({_show(ws.name)})"
        for key, value in (("name", ws.name), ("app_id", ws.app_id)):
            if not value:
                continue
            local = safe_component(value)
            if (key, local) not in seen:
                seen[key, local] = (i, value)
                continue
            j, other = seen[key, local]
            if other == value:
                label = "workspace name" if key == "name" else "app_id"
                p.add(where, key, f"duplicate {label} {value!r} (also workspace #{j + 1})")
            else:
                p.add(where, key, f"{value!r} and {other!r} (workspace #{j + 1}) would be "
                      f"saved under the same local name {local!r}")
        workspaces.append(ws)
    return workspaces


def _one_path_per_file(p: _Problems, layout: str, workspaces: list[Workspace]) -> None:
    """Two (workspace, report) pairs whose files the layout puts on one path would
    overwrite each other: refuse. Only the date varies within a pair, so rendering one
    date per pair finds every clash between two files of the same date."""
    day = date(2000, 1, 3)
    seen: dict[str, str] = {}
    for ws in workspaces:
        for report in ws.reports:
            try:
                rel = str(render_path(layout, workspace=ws.name, app_id=ws.app_id,
                                      report=report.name, day=day,
                                      filename=report_filename(report.name, day)))
            except ValueError:
                continue  # an unsafe layout is refused by check_layout
            label = f"workspace {ws.name!r} report {report.name!r}"
            other = seen.setdefault(rel, label)
            if other != label:
                p.add("[run]", "layout", f"{layout!r}: {other} and {label} would be saved to "
                      f"the same file (for 2000-01-03: {rel})")
                return


MAX_CONFIG_BYTES = 4 * 1024 * 1024


def load_config(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None, *, secrets: bool = True
) -> Config:
    """Read and validate a TOML config file. Raises ConfigError (exit 2) on any problem."""
    p = Path(path)
    try:  # a FIFO, /dev/zero or a huge file: refused at once, never read without end
        text = read_small(p, MAX_CONFIG_BYTES).decode("utf-8")
    except FileNotFoundError:
        why = "a symbolic link to nothing" if dangling_link(p) else "not found"
        raise ConfigError(f"{p}: config file {why}") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a directory, not a config file") from None
    except NotRegularFile as exc:
        raise ConfigError(f"{p}: is {exc.kind}, not a config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:
        raise ConfigError(f"{p}: {exc}: not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror})") from None
    import tomllib  # here, not at import: the engine given a parsed document never pays it

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    config = parse_config(raw, p, env, secrets=secrets)
    try:
        folders = [os.stat(d).st_mode for d in p.absolute().parents] if secrets else []
        warning = exposure_warning(p, os.stat(p).st_mode, raw, folders) if secrets else None
    except OSError:
        warning = None
    return dataclasses.replace(config, warnings=(warning,)) if warning else config
