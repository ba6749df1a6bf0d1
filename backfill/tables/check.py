"""``verify`` for tables: every extracted Parquet file still has its recorded size and
sha256. A missing or altered one gets a ``failed`` ledger entry ("verify: …"), so the
next ``extract`` converts its download again. Needs no pyarrow: it only hashes files."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import StorageError, os_error_reason
from ..journal import ManifestLock, now_utc
from .files import TableFiles
from .ledger import EXTRACTED, FAILED, Ledger, ledger_path


def _problem(files: TableFiles, rel: PurePosixPath, size: int, sha256: str) -> str | None:
    try:
        with files.open_read(rel) as f:
            actual = os.fstat(f.fileno()).st_size
            if actual != size:
                return f"size {actual} != {size}"
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except FileNotFoundError:
        return "missing"
    except StorageError as exc:
        return "missing" if "no such file" in str(exc) else str(exc)
    except OSError as exc:
        return f"unreadable ({os_error_reason(exc)})"
    return None if digest == sha256 else "sha256 mismatch"


def verify_tables(output_dir: Path, manifest: Path) -> dict[str, Any] | None:
    """``{"checked", "ok", "bad": [{"path", "source", "reason"}]}``, or None when there is
    no ledger (nothing was ever extracted). Takes the tables lock."""
    path = ledger_path(manifest)
    if not path.exists():
        return None
    lock = ManifestLock(path)  # the tables lock: no extract converts meanwhile
    lock.acquire()
    ledger = Ledger(path)
    files = TableFiles(output_dir)
    bad: list[dict[str, str]] = []
    checked = 0
    try:
        for entry in list(ledger):
            if entry.status != EXTRACTED or not entry.path:
                continue
            checked += 1
            problem = _problem(files, PurePosixPath(entry.path), entry.bytes or 0,
                               entry.sha256 or "")
            if problem is None:
                continue
            bad.append({"path": entry.path, "source": entry.source, "reason": problem})
            ledger.put(dataclasses.replace(entry, status=FAILED, error=f"verify: {problem}",
                                           updated_at=now_utc()))
    finally:
        ledger.close()
        lock.release()
    return {"checked": checked, "ok": checked - len(bad), "bad": bad}
