"""Logging: engine events → log records, text or JSON, with secrets redacted.

The engine emits events and never logs credentials; :class:`Redactor` is the second line
of defence: every record is scrubbed of the configured keys, their Basic-auth tokens, and
anything shaped like an ``Authorization``/``Signature`` header value before it is written.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from ..config import Config
from ..errors import ConfigError
from ..events import (
    Event,
    FileFinished,
    HostPaused,
    HostResumed,
    RetryScheduled,
    RunFinished,
    RunStarted,
    Throttled,
    WorkspaceStopped,
)
from ..scrub import scrub
from . import streams

LOGGER = "backfill"


def secrets_of(config: Config) -> list[str]:
    """Every credential string of a config, with its Basic token forms."""
    out: set[str] = set()
    for ws in config.workspaces:
        for secret in (ws.api_key.reveal(), ws.secret_key.reveal()):
            if len(secret) >= 4:
                out.add(secret)
        token = base64.b64encode(f"{ws.app_id}:{ws.api_key.reveal()}".encode()).decode()
        out.add(token)
    return sorted(out, key=len, reverse=True)


class Redactor(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def scrub(self, text: str) -> str:
        return scrub(text, self._secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.scrub(record.getMessage())
        record.args = None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: self.scrub(v) if isinstance(v, str) else v
                             for k, v in fields.items()}
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        return json.dumps(doc, ensure_ascii=False, default=str)


def setup(*, verbose: int = 0, quiet: bool = False, log_file: Path | None = None,
          fmt: str = "text", secrets: Iterable[str] = ()) -> logging.Logger:
    """Configure the 'backfill' logger: stderr (warnings, or more with -v) and an optional
    file (info, or debug with -v). Returns the logger."""
    logger = logging.getLogger(LOGGER)
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    redactor = Redactor(secrets)
    formatter: logging.Formatter = (
        JsonFormatter() if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    )
    stderr = _StderrHandler(sys.stderr)
    stderr.setLevel(logging.ERROR if quiet else
                    logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    stderr.setFormatter(formatter)
    stderr.addFilter(redactor)
    logger.addHandler(stderr)
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            handler = _LogFileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--log-file {log_file}: cannot write ({exc.strerror})") from None
        handler.setLevel(logging.DEBUG if verbose else logging.INFO)
        handler.setFormatter(formatter)
        handler.addFilter(redactor)
        logger.addHandler(handler)
    return logger


def _stop_handler(handler: logging.Handler) -> None:
    handler.setLevel(logging.CRITICAL + 1)  # nothing more is emitted through it


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """stderr gone (its reader died): logging stops quietly; the run goes on."""

    def handleError(self, record: logging.LogRecord) -> None:
        _stop_handler(self)
        streams.forget(self.stream)


class _LogFileHandler(logging.FileHandler):
    """A log file that cannot be written (``/dev/full``, disk full): one warning line on
    stderr, and no more lines go to it — instead of logging's traceback per record."""

    def handleError(self, record: logging.LogRecord) -> None:
        _stop_handler(self)
        exc = sys.exc_info()[1]
        why = (os.strerror(exc.errno).lower() if isinstance(exc, OSError) and exc.errno
               else type(exc).__name__)
        streams.write(sys.stderr, f"backfill: warning: --log-file {self.baseFilename}: "
                                  f"cannot write ({why}); logging to it stopped\n")


class EventLog:
    """An engine subscriber that turns events into log records."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger(LOGGER)

    def _emit(self, level: int, message: str, **fields: object) -> None:
        if self.log.isEnabledFor(level):
            self.log.log(level, message, extra={"fields": fields})

    def __call__(self, event: Event) -> None:
        if isinstance(event, FileFinished):
            if not event.fetched:
                return
            level = logging.WARNING if event.status.value == "failed" else logging.DEBUG
            self._emit(level, f"{event.workspace} {event.filename}: {event.status.value}"
                       + (f" ({event.reason})" if event.reason else ""),
                       event="file", workspace=event.workspace, filename=event.filename,
                       status=event.status.value, bytes=event.bytes, attempts=event.attempts,
                       reason=event.reason)
        elif isinstance(event, RetryScheduled):
            self._emit(logging.DEBUG, f"{event.workspace} {event.filename}: attempt "
                       f"{event.attempt} {event.reason}, retry in {event.delay_s:.2f} s",
                       event="retry", workspace=event.workspace, filename=event.filename,
                       attempt=event.attempt, reason=event.reason, delay_s=event.delay_s)
        elif isinstance(event, HostPaused):
            self._emit(logging.WARNING, f"{event.host} paused after {event.failures} "
                       "failures in a row; probing", event="host_paused", host=event.host)
        elif isinstance(event, HostResumed):
            self._emit(logging.WARNING, f"{event.host} is back after {event.paused_s:.1f} s",
                       event="host_resumed", host=event.host, paused_s=event.paused_s)
        elif isinstance(event, Throttled):
            self._emit(logging.INFO, f"{event.workspace} throttled: concurrency now "
                       f"{event.limit}", event="throttled", workspace=event.workspace,
                       limit=event.limit)
        elif isinstance(event, WorkspaceStopped):
            self._emit(logging.ERROR, f"workspace {event.workspace} {event.reason}",
                       event="workspace_stopped", workspace=event.workspace,
                       reason=event.reason)
        elif isinstance(event, RunStarted):
            total = sum(event.to_fetch.values())
            self._emit(logging.INFO, f"run started: {total} files to fetch",
                       event="run_started", to_fetch=total)
        elif isinstance(event, RunFinished):
            self._emit(logging.INFO, "run interrupted" if event.interrupted else "run finished",
                       event="run_finished", interrupted=event.interrupted)
