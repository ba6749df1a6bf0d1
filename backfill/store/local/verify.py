"""Reading back what the local store wrote: verify a file, sweep partial files."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from ...errors import StorageError, os_error_reason


def verify_file(path: Path, sha256: str, size: int) -> str | None:
    """None if ``path`` is a regular file of ``size`` bytes with this sha256, else why not."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                return "not a regular file"
            if st.st_size != size:
                return f"size {st.st_size} != {size}"
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except FileNotFoundError:
        return "missing"
    except IsADirectoryError:
        return "not a regular file"
    except OSError as exc:
        return f"unreadable ({os_error_reason(exc)})"
    return None if digest == sha256 else "sha256 mismatch"


def sweep_parts(root: Path, suffix: str) -> int:
    """Delete every file ending in ``suffix`` under ``root``; return how many."""
    removed = 0
    for dirpath, _dirnames, filenames in os.walk(root):  # nothing (0) if it does not exist
        for name in filenames:
            if not name.endswith(suffix):
                continue
            path = Path(dirpath, name)
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StorageError(f"{path}: {os_error_reason(exc)}") from exc
            removed += 1
    return removed
