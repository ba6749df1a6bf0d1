"""Bodies and destinations for the object-store tests."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

from backfill.store.object import StorageOptions, open_destination, parse_object_url
from backfill.store.object.destination import ObjectDestination

MIB = 1024 * 1024


def zip_body(size: int, seed: int = 0) -> bytes:
    """A readable zip of about ``size`` bytes (one stored member of random bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("report.csv", os.urandom(max(size - 200, 1)) if seed == 0
                    else bytes([seed % 256]) * max(size - 200, 1))
    return buf.getvalue()


async def chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def destination(url: str, env: dict[str, str], staging: Path, **options: object,
                ) -> ObjectDestination:
    opts = StorageOptions(**{"retry_timeout": 5.0, "part_size": 5 * MIB,  # type: ignore[arg-type]
                             **options})
    return open_destination(parse_object_url(url), options=opts, env=env,
                            max_file_bytes=1024 * MIB, staging_root=staging)
