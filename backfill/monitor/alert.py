"""One grouped message per run, and the rule that keeps it from repeating. Pure.

Bodies:

- ``slack``: ``{"text": …, "blocks": […]}``, what a Slack incoming webhook takes (and
  Mattermost, Rocket.Chat, Discord's ``/slack`` endpoint). ``text`` is the whole message
  in plain words (notifications, receivers without blocks); blocks group it by kind.
- ``json``: ``{"source": "moe-backfill", "version": 1, "title", "config", "at",
  "problems": [{"kind", "workspace", "subject", "line", "next_step"}]}``.

Rate limit: an alert is sent when one of its problems (by fingerprint) was not sent within
``min_interval``; it then carries every current problem and all of them count as sent.
State, kept beside the manifest: ``{"v": 1, "sent": {fingerprint: "…Z"}}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .runs import stamp
from .verdict import Problem

MAX_LINES = 20  # per message; the rest is counted
_TITLES = {
    "stale": "Runs stopped", "auth": "Stopped on authentication",
    "rejected": "Reports that look misnamed", "failed": "Failed files",
    "expiring": "Expiring unfetched",
}


@dataclass(frozen=True, slots=True)
class Alert:
    title: str
    config: str
    at: datetime
    problems: tuple[Problem, ...]

    @property
    def fingerprints(self) -> frozenset[str]:
        return frozenset(p.fingerprint for p in self.problems)


def compose(problems: Sequence[Problem], *, config: str, at: datetime, command: str) -> Alert:
    n = len(problems)
    title = (f"moe-backfill: {n} problem{'s' if n != 1 else ''} after {command} "
             f"({config})")
    return Alert(title, config, at, tuple(problems))


def text(alert: Alert) -> str:
    lines = [alert.title]
    lines += [f"- {p}" for p in alert.problems[:MAX_LINES]]
    if len(alert.problems) > MAX_LINES:
        lines.append(f"- … and {len(alert.problems) - MAX_LINES} more "
                     "(backfill status --check lists them all)")
    return "\n".join(lines)


def _mrkdwn(s: str) -> str:
    """Slack's three control characters, escaped as its docs ask."""
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(alert: Alert) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": alert.title[:150]}}]
    shown = 0
    for kind, title in _TITLES.items():
        group = [p for p in alert.problems if p.kind == kind]
        take = group[:max(0, MAX_LINES - shown)]
        shown += len(take)
        if not take:
            continue
        body = "\n".join(f"• {_mrkdwn(p.line)}\n   _next:_ {_mrkdwn(p.step)}" for p in take)
        blocks.append({"type": "section",
                       "text": {"type": "mrkdwn", "text": f"*{title}*\n{body}"[:3000]}})
    if len(alert.problems) > shown:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                       f"… and {len(alert.problems) - shown} more: "
                       "`backfill status --check` lists them all"}]})
    return {"text": text(alert), "blocks": blocks}


def generic_body(alert: Alert) -> dict[str, Any]:
    return {
        "source": "moe-backfill", "version": 1, "title": alert.title, "config": alert.config,
        "at": stamp(alert.at),
        "problems": [{"kind": p.kind, "workspace": p.workspace, "subject": p.subject,
                      "line": p.line, "next_step": p.step} for p in alert.problems],
    }


def body(alert: Alert, fmt: str) -> dict[str, Any]:
    return slack_body(alert) if fmt == "slack" else generic_body(alert)


# ------------------------------------------------------------------ rate limit

def due(alert: Alert, sent: Mapping[str, datetime], now: datetime, min_interval_s: float,
        ) -> bool:
    """True when some problem of ``alert`` was not sent within ``min_interval_s``."""
    return any(fp not in sent or (now - sent[fp]).total_seconds() >= min_interval_s
               for fp in alert.fingerprints)


def remember(sent: Mapping[str, datetime], alert: Alert, now: datetime,
             min_interval_s: float) -> dict[str, datetime]:
    """The state after ``alert`` was sent at ``now``; entries that no longer hold
    anything back are dropped, so the file stays small."""
    kept = {fp: at for fp, at in sent.items() if (now - at).total_seconds() < min_interval_s}
    kept.update(dict.fromkeys(alert.fingerprints, now))
    return kept


def encode_state(sent: Mapping[str, datetime]) -> str:
    return json.dumps({"v": 1, "sent": {fp: stamp(at) for fp, at in sorted(sent.items())}},
                      indent=1) + "\n"


def decode_state(raw: str) -> dict[str, datetime]:
    """ValueError when ``raw`` is not an alert state (the caller starts afresh)."""
    doc = json.loads(raw)
    if not isinstance(doc, dict) or doc.get("v") != 1 or not isinstance(doc.get("sent"), dict):
        raise ValueError("not an alert state")
    out = {}
    for fp, at in doc["sent"].items():
        try:
            out[str(fp)] = datetime.strptime(str(at), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            continue
    return out
