"""``[notify]`` settings and durations. Pure.

    [notify]
    webhook = "${SLACK_WEBHOOK_URL}"   # a secret: never logged, never shown in an error
    format = "slack"                   # or "json": a generic JSON body
    min_interval = "6h"                # the same alert is not sent again within this
    within = "48h"                     # at the end of a run: files expiring this soon
    timeout_s = 10                     # one POST, connect to last byte
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:  # config imports this module to parse [notify]
    from ..config import Secret

HOUR = 3600.0
_UNITS = {"s": 1.0, "m": 60.0, "h": HOUR, "d": 24 * HOUR}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?\s*[smhd]\s*)+")
NOTIFY_KEYS = frozenset({"webhook", "format", "min_interval", "within", "timeout_s"})
FORMATS = ("slack", "json")


def parse_duration(text: str | float) -> float:
    """Seconds in ``"48h"``, ``"1d12h"``, ``"90m"``, ``"30s"`` or a plain number of seconds.

    ValueError with one sentence naming the value otherwise.
    """
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration (use e.g. '48h', '30m', '2d')")
    if isinstance(text, int | float):
        value = float(text)
    elif not isinstance(text, str):
        raise ValueError(f"{text!r} is not a duration (use e.g. '48h', '30m', '2d')")
    else:
        t = text.strip().lower()
        try:
            value = float(t)
        except ValueError:
            if not _WHOLE.fullmatch(t):
                raise ValueError(f"{text!r} is not a duration (use e.g. '48h', '30m', '2d')"
                                 ) from None
            value = sum(float(n) * _UNITS[u] for n, u in _PART.findall(t))
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{text!r} is not a duration (use e.g. '48h', '30m', '2d')")
    return value


def show_duration(seconds: float) -> str:
    """``172800`` → ``48 h``; ``5400`` → ``90 min``; ``30`` → ``30 s``."""
    s = round(seconds)
    if s >= 2 * HOUR or (s >= HOUR and s % HOUR == 0):
        return f"{s / HOUR:.0f} h" if s % HOUR == 0 else f"{s / HOUR:.1f} h"
    if s >= 60:
        return f"{s // 60} min"
    return f"{s} s"


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """``webhook`` holds the URL as resolved at load time (None when secrets were not
    resolved, e.g. for ``status``); ``webhook_raw`` holds it as typed, for a late
    :func:`resolve_webhook`."""

    webhook: Secret | None = None
    webhook_raw: Secret | None = None
    format: str = "slack"
    min_interval_s: float = 6 * HOUR
    within_s: float = 48 * HOUR
    timeout_s: float = 10.0

    @property
    def enabled(self) -> bool:
        return self.webhook_raw is not None


class Problems(Protocol):
    def add(self, where: str, key: str | None, message: str) -> None: ...


def webhook_problem(url: str) -> str | None:
    """Why ``url`` cannot be posted to, without showing it (it is a secret)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError when out of range
    except ValueError:
        return "is not a valid URL (value not shown: it is a secret)"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL (value not shown: it is a secret)"
    if any(c.isspace() for c in url):
        return "must not contain spaces (value not shown: it is a secret)"
    return None


def parse_notify(p: Problems, table: Mapping[str, Any],
                 interpolate: Callable[[str, str], str] | None) -> NotifySettings:
    """Validate ``[notify]`` (unknown keys are reported by the caller). ``interpolate``
    resolves ``${VAR}`` in a value, or is None when secrets are not resolved."""
    from ..config import Secret

    where = "[notify]"
    raw = table.get("webhook")
    webhook = webhook_raw = None
    if raw is not None:
        if not isinstance(raw, str) or not raw.strip():
            p.add(where, "webhook", "must be a non-empty string, e.g. \"${SLACK_WEBHOOK_URL}\"")
        else:
            webhook_raw = Secret(raw)
            if interpolate is not None:
                url = interpolate("webhook", raw)
                problem = webhook_problem(url) if url else None
                if problem:
                    p.add(where, "webhook", problem)
                webhook = Secret(url)
    fmt = table.get("format", "slack")
    if fmt not in FORMATS:
        p.add(where, "format", f"must be 'slack' or 'json', got {fmt!r}")
        fmt = "slack"
    durations: dict[str, float] = {}
    for key, default in (("min_interval", 6 * HOUR), ("within", 48 * HOUR),
                         ("timeout_s", 10.0)):
        value = table.get(key, default)
        try:
            durations[key] = parse_duration(value)
        except ValueError as exc:
            p.add(where, key, str(exc))
            durations[key] = default
    if durations["timeout_s"] <= 0:
        p.add(where, "timeout_s", "must be more than 0")
        durations["timeout_s"] = 10.0
    return NotifySettings(webhook, webhook_raw, str(fmt), durations["min_interval"],
                          durations["within"], durations["timeout_s"])


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def resolve_webhook(settings: NotifySettings, env: Mapping[str, str]) -> str | None:
    """The webhook URL: as resolved at load time, or resolved now from ``env``.

    ValueError naming the variable (never the value) when it is not set or not a URL.
    """
    if settings.webhook is not None:
        return settings.webhook.reveal() or None
    if settings.webhook_raw is None:
        return None

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in env:
            raise ValueError(f"[notify] webhook: environment variable {m.group(1)} is not set")
        return env[m.group(1)]

    url = _ENV.sub(sub, settings.webhook_raw.reveal())
    problem = webhook_problem(url)
    if problem:
        raise ValueError(f"[notify] webhook: {problem}")
    return url
