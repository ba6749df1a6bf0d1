"""The store's zip check under a bomb: off the event loop once it is not tiny, stopped at
once by a cancellation (Ctrl-C stays prompt), never leaving a .part or a final file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath

import anyio
import anyio.from_thread
import pytest

from backfill.errors import InvalidBody
from backfill.store.local import LocalStore
from backfill.store.local import disk as disk_module
from backfill.store.local import store as store_module

from ..test_zipcheck_bombs import BZIP2, DEFLATED, ZEROS, compressed, one_member_zip

pytestmark = pytest.mark.anyio
REL = PurePosixPath("acme/bomb.zip")


async def body(data: bytes, piece: int = 8192) -> AsyncIterator[bytes]:
    for i in range(0, len(data), piece):
        yield data[i : i + piece]


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("chunk_size", [256 * 1024, 1024], ids=["in-memory", "part-file"])
async def test_a_bzip2_bomb_is_refused(tmp_path: Path, chunk_size: int) -> None:
    data, crc = compressed(BZIP2, ZEROS)
    bomb = one_member_zip(BZIP2, data, crc, declared=1000)
    store = LocalStore(tmp_path, chunk_size=chunk_size)
    with pytest.raises(InvalidBody, match="inflating past its declared size"):
        await store.save(REL, body(bomb), expected_length=len(bomb))
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("chunk_size", [256 * 1024, 1024], ids=["in-memory", "part-file"])
async def test_cancelling_stops_a_long_check_at_its_next_step(
        tmp_path: Path, chunk_size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """An honest 16 MiB member (inflated in 1 MiB steps in a worker thread): cancelled
    while it is being checked, the check ends at the next step, not at the end."""
    data, crc = compressed(DEFLATED, ZEROS)
    big = one_member_zip(DEFLATED, data, crc, declared=ZEROS)
    store = LocalStore(tmp_path, chunk_size=chunk_size)
    steps: list[None] = []
    real = anyio.from_thread.check_cancelled

    with anyio.CancelScope() as scope:
        def checkpoint() -> None:
            steps.append(None)
            if len(steps) == 2:  # Ctrl-C arrives while the thread is checking
                anyio.from_thread.run_sync(scope.cancel)
            real()

        monkeypatch.setattr(store_module, "check_cancelled", checkpoint)  # in memory
        monkeypatch.setattr(disk_module, "check_cancelled", checkpoint)  # a .part file
        await store.save(REL, body(big), expected_length=len(big))
    assert scope.cancelled_caught
    assert len(steps) == 2  # of the 16 the whole check takes
    assert leftovers(tmp_path) == []
