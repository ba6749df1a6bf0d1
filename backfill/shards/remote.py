"""``backfill manifest merge`` with manifests in an object store: any IN or OUT may be a
URL (``s3://bucket/prefix/manifest.shard-0-of-2.jsonl``); credentials and endpoints come
from the environment, as for a run.

OUT's lock object is taken first (LockedError, exit 75, while a run holds it), OUT is
pulled under it, every URL input is pulled to a private folder (an input naming OUT reads
that locked copy), the merge is written locally exactly as for files, and the result is
published to OUT with one atomic PUT before the lock is released.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from ..destination import ObjectURLError, is_object_url, parse_object_url
from ..errors import ConfigError
from .view import MergeReport, merge_files

if TYPE_CHECKING:
    from ..store.object import RemoteManifest

MAX_FILE_BYTES = 1 << 40  # no report file goes through here: only manifests


def split(text: str) -> tuple[str, str]:
    """``s3://b/p/manifest.jsonl`` → (``s3://b/p``, ``manifest.jsonl``); ConfigError
    naming a URL without a file name."""
    parent, _, name = text.rstrip().rpartition("/")
    if not name or "://" not in parent or parent.endswith(":/"):
        raise ConfigError(f"{text}: expected the URL of a manifest, e.g. "
                          "s3://bucket/prefix/manifest.jsonl")
    return parent, name


@contextlib.asynccontextmanager
async def _manifest(text: str) -> AsyncIterator[RemoteManifest]:
    """The RemoteManifest of the manifest URL ``text`` (its destination closed on exit)."""
    from ..store import open_object_store
    from ..store.object import RemoteManifest

    parent, name = split(text)
    try:
        url = parse_object_url(parent)
    except ObjectURLError as exc:
        raise ConfigError(str(exc)) from None
    dest = open_object_store(url, max_file_bytes=MAX_FILE_BYTES)
    try:
        await dest.probe()
        yield RemoteManifest(dest, name=name)
    finally:
        await dest.close()


async def merge_urls(out: str, inputs: Sequence[str]) -> tuple[MergeReport, dict[str, str]]:
    """Merge ``inputs`` (paths or URLs) into ``out`` (a path or a URL); the report and the
    names to show for the private copies (``{str(copy): url}``)."""
    with tempfile.TemporaryDirectory(prefix="moe-backfill-merge-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            names: dict[str, str] = {}
            target: RemoteManifest | None = None
            local_out = Path(out)
            if is_object_url(out):
                target = await stack.enter_async_context(_manifest(out))
                local_out = Path(tmp) / "out.jsonl"
                await target.acquire()
                stack.push_async_callback(target.release)
                await target.pull(local_out)
                names[str(local_out)] = out
            paths = [await _local(text, out, local_out, Path(tmp) / f"in-{i}.jsonl", names)
                     for i, text in enumerate(inputs)]
            report = merge_files(local_out, paths)
            if target is not None:
                await target.publish(local_out)
            return report, names


async def _local(text: str, out: str, local_out: Path, copy: Path,
                 names: dict[str, str]) -> Path:
    """The local file to read for the input ``text``."""
    if not is_object_url(text):
        path = Path(text)
        if not await anyio.Path(path).is_file():
            raise ConfigError(f"{path}: no such manifest")
        return path
    if text == out:
        return local_out
    async with _manifest(text) as remote:
        if not await remote.pull(copy):
            raise ConfigError(f"{text}: no such manifest")
    names[str(copy)] = text
    return copy
