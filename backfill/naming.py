"""File names, URLs and local paths. Pure functions, no I/O.

Remote names follow the vendor exactly (api.md): spaces become ``_``, nothing else
changes, and the URL path is percent-encoded. Local paths are a different matter: a
report or workspace name may contain ``/``, ``..``, control characters or be too long
for a file system, so every value placed into a local path goes through
:func:`safe_component`, and :func:`render_path` refuses anything that would leave the
output directory.
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
from datetime import date
from pathlib import PurePosixPath
from urllib.parse import quote

DATA_CENTERS: tuple[str, ...] = ("01", "02", "03", "04", "05", "06", "101")
LAYOUT_FIELDS: frozenset[str] = frozenset(
    {"workspace", "app_id", "report", "date", "yyyy", "mm", "dd", "filename"}
)
DEFAULT_LAYOUT = "{workspace}/{report}/{filename}"
API_PATH = "/campaign_reports/rest_api"
# Most file systems cap a name at 255 bytes; leave room for ".part".
_MAX_COMPONENT_BYTES = 200
# storage.PART_SUFFIX: a run starts by deleting every file ending in it (downloads a crash
# cut short), so no final file name may end in it.
TEMP_SUFFIX = ".part"
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\:*?\"<>|]")  # C0, DEL, C1, separators, ...


def report_filename(report: str, day: date) -> str:
    """``Report - test`` on 2021-02-17 → ``Report_-_test_20210217.zip`` (only spaces change)."""
    return filename_stem(report) + filename_suffix(day)


def filename_stem(report: str) -> str:
    """The part of a report's file names before the date: ``Report_-_test_``."""
    return report.replace(" ", "_") + "_"


def filename_suffix(day: date) -> str:
    """The part of a file name from the date on: ``20210217.zip``."""
    return day.isoformat().replace("-", "") + ".zip"  # %Y would give 999, not 0999


def parse_filename(filename: str) -> tuple[str, date] | None:
    """Inverse of :func:`report_filename`: (report stem, date), or None if malformed."""
    m = re.fullmatch(r"(.+)_(\d{4})(\d{2})(\d{2})\.zip", filename, flags=re.DOTALL)
    if m is None:
        return None
    try:
        return m.group(1), date(int(m.group(2)), int(m.group(3)), int(m.group(4)))
    except ValueError:
        return None


def base_url(data_center: str, override: str | None = None) -> str:
    """``https://api-{dc}.moengage.com``, or the configured override without trailing /."""
    if override:
        return override.rstrip("/")
    return f"https://api-{data_center}.moengage.com"


def report_url(base: str, app_id: str, filename: str) -> str:
    """Full URL; app id and file name are percent-encoded as single path segments."""
    return f"{base}{API_PATH}/{quote(app_id, safe='')}/{quote(filename, safe='')}"


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute URL, default ports filled in."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def safe_component(value: str) -> str:
    """Make ``value`` usable as one local path component.

    Separators, control and Windows-reserved characters become ``_``; leading dots and
    spaces are dropped (no ``..``, no hidden files); names longer than 200 UTF-8 bytes
    are cut and suffixed with a short hash so distinct names stay distinct.
    """
    cleaned = _UNSAFE.sub("_", value).replace(" ", "_").lstrip(". ")
    return _fit(cleaned or "_", value)


def _fit(cleaned: str, value: str) -> str:
    """``cleaned`` cut to 200 bytes, with a hash of ``value`` when cut (extension kept)."""
    raw = cleaned.encode("utf-8")
    if len(raw) <= _MAX_COMPONENT_BYTES:
        return cleaned
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]
    stem, dot, ext = cleaned.rpartition(".")
    suffix = f"~{digest}" + (f".{ext}" if dot and len(ext) <= 8 else "")
    if not (dot and len(ext) <= 8):
        stem = cleaned
    budget = _MAX_COMPONENT_BYTES - len(suffix.encode("utf-8"))
    cut = stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return cut + suffix


def layout_fields(layout: str) -> list[str]:
    """Placeholder names used in a layout; raises ValueError if the template is malformed."""
    return [name for _, name, _, _ in string.Formatter().parse(layout) if name is not None]


def check_layout(layout: str) -> str | None:
    """Return a problem description, or None if the layout is usable."""
    try:
        fields = layout_fields(layout)
    except ValueError as exc:
        return f"malformed template ({exc})"
    for _, name, spec, conv in string.Formatter().parse(layout):
        if name is not None and (spec or conv):
            shown = name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "")
            # A spec can truncate ({filename:.0}: every file on one path) or pad ('..').
            return f"placeholder {{{shown}}} must not have a conversion or format spec"
    unknown = sorted({f for f in fields if f not in LAYOUT_FIELDS})
    if unknown:
        return (
            f"unknown placeholder {{{unknown[0]}}} "
            f"(known: {', '.join('{' + f + '}' for f in sorted(LAYOUT_FIELDS))})"
        )
    if "filename" not in fields and not {"report", "date"} <= set(fields):
        return "must contain {filename} (or both {report} and {date}) so files stay distinct"
    if layout.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", layout):
        return "must be a relative path"
    literal = string.Formatter().parse(layout)
    for text, _, _, _ in literal:
        parts = re.split(r"[/\\]", text)
        if any(p in ("..", ".") for p in parts) or "\x00" in text:
            return "must not contain '..' or '.' path segments"
    return None


def render_path(
    layout: str, *, workspace: str, app_id: str, report: str, day: date, filename: str
) -> PurePosixPath:
    """Relative local path of one file. Every value is made safe; the result stays inside."""
    text = layout.format(
        workspace=_safe_cached(workspace), app_id=_safe_cached(app_id),
        report=_safe_cached(report), date=day.isoformat(), yyyy=f"{day.year:04d}",
        mm=f"{day.month:02d}", dd=f"{day.day:02d}", filename=safe_component(filename),
    )
    # Called once per file: the usual path ("a/b/c", short parts) builds one PurePosixPath;
    # anything else (empty or dot parts, long parts, a '.part' name) takes the general path.
    parts = text.split("/")
    if (all(p and p not in (".", "..") and len(p) <= _MAX_COMPONENT_BYTES // 4 for p in parts)
            and not parts[-1].endswith(TEMP_SUFFIX)):
        return PurePosixPath(text)
    return _render_general(layout, text)


def _render_general(layout: str, text: str) -> PurePosixPath:
    """:func:`render_path` of a formatted layout ``text``: checked, parts cut to size."""
    rel = PurePosixPath(text)
    if rel.is_absolute() or not rel.parts or any(p in ("..", ".", "") for p in rel.parts):
        raise ValueError(f"layout {layout!r} produced an unsafe path")
    # Several values in one component ("{workspace}-{report}") can still be too long.
    parts = [_fit(p, p) for p in rel.parts]
    if parts[-1].endswith(TEMP_SUFFIX):  # 'Weekly.part', '{filename}.part'
        parts[-1] = _fit(parts[-1] + "_", parts[-1] + "_")
    return PurePosixPath(*parts)


# Workspace, app and report names repeat for every file of a run.
_safe_cached = functools.lru_cache(maxsize=4096)(safe_component)
