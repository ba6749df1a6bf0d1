"""``backfill verify``: re-hash every completed file; a missing or altered one is recorded
failed, so the next run fetches it again (if its date is still inside the window). Table
files, if any were extracted, are re-hashed too (:mod:`.tables.check`); a bad one is
converted again by the next ``extract``.

With shard manifests beside the main one, the merged view is checked, and a bad file's
``failed`` record goes into every manifest that holds it completed (a completed record
beats any other in the merge, so one left anywhere would hide the failure); every
manifest is locked meanwhile. The same holds for manifests that live in an object store
(each one's lock object is held, and each is published back)."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import PurePosixPath
from typing import Any

import anyio
import anyio.to_thread

from .clock import Clock
from .config import Config
from .destination import ObjectURL
from .engine.destination import open_run_destination
from .errors import StorageError
from .journal import ManifestState, Record, Status, open_journal
from .policy import VERIFY_FAILED
from .shards.merge import has_file
from .shards.view import fold, part_paths
from .store import Store


async def verify(config: Config, clock: Clock | None = None) -> dict[str, Any]:
    clock = clock or Clock()
    run = config.run
    bad: list[dict[str, str]] = []
    checked = 0
    async with contextlib.AsyncExitStack() as stack:
        # A remote manifest: locked, pulled, and published on the way out.
        opened = await stack.enter_async_context(open_run_destination(run, config.storage))
        store, manifest = opened.store, opened.manifest
        # The main manifest and every shard manifest beside it (in the object store: each
        # locked, pulled, published back on the way out), each locked and open.
        paths = part_paths(manifest)
        if opened.remote is not None:
            paths = [manifest, *await stack.enter_async_context(opened.remote.locked_others())]
        journals = [await stack.enter_async_context(open_journal(path)) for path in paths]
        view = journals[0].state
        if len(journals) > 1:
            view = ManifestState()
            for journal in journals:
                fold(view, journal.state, set())
        for rec in view:
            if rec.status is not Status.COMPLETED or not rec.path:
                continue
            checked += 1
            problem = await _problem(store, rec)
            if problem is None:
                continue
            bad.append({"workspace": rec.workspace, "filename": rec.filename,
                        "path": rec.path, "reason": problem})
            at = clock.wall().strftime("%Y-%m-%dT%H:%M:%SZ")
            for journal in journals:  # a completed record left anywhere would win the merge
                held = journal.state.get(rec.key)
                if held is not None and has_file(held):
                    await journal.put(dataclasses.replace(
                        held, status=Status.FAILED, path=None, bytes=None, sha256=None,
                        http_status=None, request_id=None, error=VERIFY_FAILED + problem,
                        updated_at=at))
        tables = None
        if not isinstance(run.output_dir, ObjectURL):  # tables are extracted locally only
            from .tables.check import verify_tables  # hashes only: no pyarrow needed

            tables = await anyio.to_thread.run_sync(verify_tables, run.output_dir, manifest)
    doc: dict[str, Any] = {"checked": checked, "ok": checked - len(bad), "bad": bad}
    if tables is not None:
        doc["tables"] = tables
    return doc


async def _problem(store: Store, rec: Record) -> str | None:
    assert rec.path is not None
    try:
        return await store.verify(PurePosixPath(rec.path), sha256=rec.sha256 or "",
                                  size=rec.bytes or 0)
    except StorageError:  # a tampered path pointing outside output_dir
        return "path outside the output directory"
