"""stdout and stderr that may go away: a closed pipe ends the output, never the run.

``backfill run … 2>&1 | logger`` and the logger dies; ``backfill plan | head -1``: the
next write raises BrokenPipeError (EPIPE; EBADF or EIO for a closed or hung-up stream).
Losing an output stream is not a reason to stop a run or to change its exit code, so
every writer of stdout/stderr goes through here: :func:`write` reports the stream gone
instead of raising, and :func:`forget` points the file descriptor at ``/dev/null`` so
that later writes — rich's, logging's, the interpreter's final flush — succeed quietly.
:class:`QuietConsole` is rich's console with the same rule (rich's own answer to a broken
pipe is ``SystemExit(1)``).
"""

from __future__ import annotations

import contextlib
import errno
import os
from typing import IO, Any

from rich.console import Console

_GONE = (errno.EPIPE, errno.EBADF, errno.EIO, errno.ECONNRESET)


def is_gone(exc: BaseException) -> bool:
    """Is this the error of writing to a stream whose reader (or terminal) is gone?"""
    return isinstance(exc, BrokenPipeError) or (
        isinstance(exc, OSError) and exc.errno in _GONE)


def forget(stream: IO[Any]) -> None:
    """Point ``stream``'s descriptor at /dev/null (what is buffered goes there too)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)


def write(stream: IO[str], text: str) -> bool:
    """Write and flush ``text``; False (and the stream forgotten) if the reader is gone."""
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError) as exc:  # ValueError: the file object itself was closed
        if not (isinstance(exc, ValueError) or is_gone(exc)):
            raise
        forget(stream)
        return False
    return True


class QuietConsole(Console):
    """A rich console that stops printing, without exiting, when its reader is gone."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        forget(self.file)
