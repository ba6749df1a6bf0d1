"""Is a literal key in a config file others can read? Pure: a TOML document and a file
mode in, the warning out.

ssh refuses a private key others can read; rclone keeps its config 0600. A config that
names its keys as ``${VAR}`` holds no secret, whatever its mode; one that holds a key
inline and is readable by the group or others (``chmod 644``, the usual umask) gives
every local user the key. moe-backfill still runs (a shared read-only deployment may
have reasons) but says so once, naming the file, the mode and the keys.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_KEYS = ("api_key", "secret_key")


def literal_keys(raw: Mapping[str, Any]) -> list[str]:
    """Where the document holds a key inline (not a ``${VAR}`` reference)."""
    found: list[str] = []

    def look(table: object, where: str) -> None:
        if not isinstance(table, Mapping):
            return
        for key in _KEYS:
            value = table.get(key)
            if isinstance(value, str) and value and "${" not in value:
                found.append(f"{where} {key}")

    look(raw.get("defaults"), "[defaults]")
    workspaces = raw.get("workspace")
    for i, ws in enumerate(workspaces if isinstance(workspaces, list) else []):
        name = ws.get("name") or ws.get("app_id") or i if isinstance(ws, Mapping) else i
        look(ws, f"[[workspace]] {name}")
    return found


def readable_by_others(mode: int, folders: Iterable[int]) -> bool:
    """Can the group or others read a file of ``mode`` whose folders (up to the root) have
    the modes ``folders``? Each folder must let them through (x) too: a 0644 file in a
    0700 folder is private."""
    folders = list(folders)
    return any(mode & read and all(d & through for d in folders)
               for read, through in ((stat.S_IRGRP, stat.S_IXGRP),
                                     (stat.S_IROTH, stat.S_IXOTH)))


def exposure_warning(path: Path, mode: int, raw: Mapping[str, Any],
                     folders: Iterable[int] = ()) -> str | None:
    """The warning for a config others can read that holds a key inline, else None."""
    if not readable_by_others(mode, folders):
        return None
    keys = literal_keys(raw)
    if not keys:
        return None
    return (f"{path} is readable by others (mode {stat.S_IMODE(mode):04o}) and holds "
            f"{', '.join(keys)} inline: chmod 600 it, or use ${{VAR}} references")
