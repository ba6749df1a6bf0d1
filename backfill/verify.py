"""``backfill verify``: re-hash every completed file; a missing or altered one is recorded
failed, so the next run fetches it again (if its date is still inside the window)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import anyio

from .clock import Clock
from .config import Config
from .errors import StorageError
from .manifest import ManifestLock, ManifestWriter, Status, load_manifest
from .storage import Storage


async def verify(config: Config, clock: Clock | None = None) -> dict[str, Any]:
    clock = clock or Clock()
    run = config.run
    manifest = run.manifest or run.output_dir / "manifest.jsonl"
    storage = Storage(run.output_dir, max_file_bytes=run.max_file_bytes)
    bad: list[dict[str, str]] = []
    checked = 0
    with ManifestLock(manifest):
        state = await anyio.to_thread.run_sync(load_manifest, manifest)
        writer = ManifestWriter(manifest)
        async with anyio.create_task_group() as tg:
            await tg.start(writer.run)
            try:
                for rec in state:
                    if rec.status is not Status.COMPLETED or not rec.path:
                        continue
                    checked += 1
                    try:
                        problem = await storage.verify(PurePosixPath(rec.path),
                                                       sha256=rec.sha256 or "",
                                                       size=rec.bytes or 0)
                    except StorageError:  # a tampered path pointing outside output_dir
                        problem = "path outside the output directory"
                    if problem is None:
                        continue
                    bad.append({"workspace": rec.workspace, "filename": rec.filename,
                                "path": rec.path, "reason": problem})
                    await writer.put(rec.__class__(
                        workspace=rec.workspace, app_id=rec.app_id, report=rec.report,
                        date=rec.date, filename=rec.filename, status=Status.FAILED,
                        attempts=rec.attempts, error=f"verify: {problem}",
                        updated_at=clock.wall().strftime("%Y-%m-%dT%H:%M:%SZ"),
                    ))
            finally:
                with anyio.CancelScope(shield=True):
                    await writer.close()
    return {"checked": checked, "ok": checked - len(bad), "bad": bad}
