"""The command a user can type to run this tool again, for hints such as "Try: …".

``backfill`` when that name on PATH is this program; otherwise the path it was started by
(``.venv/bin/backfill`` after ``make demo``), or ``<python> -m backfill``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys


def _shown(path: str) -> str:
    """``path`` relative to the working directory when it lies under it."""
    full = os.path.abspath(path)
    rel = os.path.relpath(full, os.getcwd())
    return rel if not rel.startswith("..") else full


def prog(argv0: str | None = None, executable: str | None = None) -> str:
    argv0 = sys.argv[0] if argv0 is None else argv0
    executable = executable or sys.executable
    if os.path.basename(argv0) == "backfill":
        found = shutil.which("backfill")
        if found and os.path.realpath(found) == os.path.realpath(argv0):
            return "backfill"
        return shlex.quote(_shown(argv0))
    return f"{shlex.quote(_shown(executable))} -m backfill"  # python -m backfill


def command(*args: str) -> str:
    """A whole command line for a hint, quoted for a POSIX shell."""
    return " ".join([prog(), *(shlex.quote(a) for a in args)])
