"""The one task that appends to the manifest (:class:`ManifestWriter`).

It batches whatever is queued into a single ``os.write``, so a kill can tear at most the
last line, and fsyncs at least every ``fsync_interval_s``; when to write and when to
fsync is decided by :func:`backfill.journal.batching.next_step` (pure, tested alone).
"""

from __future__ import annotations

import builtins
import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc
import anyio.to_thread

from ..clock import Clock
from ..errors import StorageError
from .batching import Action, Batching, next_step
from .file import AppendFile
from .record import Record, check_line


@dataclass(frozen=True, slots=True)
class WriterStatistics:
    records: int  # records written
    writes: int  # os.write batches
    fsyncs: int
    bytes_written: int
    tail_repaired: str | None  # "newline added" / "torn line removed" / None


class _FlushRequest:
    __slots__ = ("done", "failed")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.failed = False


class ManifestWriter:
    """The one task that appends to the manifest; everyone else calls :meth:`put`.

    Start it with ``await tg.start(writer.run)``; :meth:`close` ends it once the queue
    is drained and fsynced. Records travel through a bounded memory stream
    (``buffer`` records), so :meth:`put` waits when the writer falls behind. Whatever is
    queued is written with one ``os.write``, at most once per ``write_interval_s`` (so a
    busy run pays a thread hop per batch of records, not per record; a flush or close
    does not wait); data is fsynced at least every ``fsync_interval_s`` (in a worker
    thread), at :meth:`flush` and at close.
    Cancelled, the writer still writes and fsyncs what it had received (shielded), then
    re-raises.
    """

    def __init__(
        self, path: Path, *, fsync_interval_s: float = 0.5, buffer: int = 1024,
        write_interval_s: float = 0.01, clock: Clock | None = None,
    ) -> None:
        if buffer < 1:
            raise ValueError("buffer must be >= 1")
        self.path = Path(path)
        self.batching = Batching(write_interval_s, fsync_interval_s)
        # Real time by default: the fsync interval bounds what a real crash can lose.
        self._clock = clock or Clock()
        self._wrote_at = float("-inf")
        self._send, self._recv = anyio.create_memory_object_stream[builtins.bytes | _FlushRequest](
            buffer
        )
        self._wake = anyio.Event()
        self._file = AppendFile(self.path)
        self._state = "new"  # running, done, failed
        self._in_hand: list[builtins.bytes | _FlushRequest] = []
        self._unsynced_since: float | None = None
        self._records = 0

    def statistics(self) -> WriterStatistics:
        f = self._file
        return WriterStatistics(self._records, f.writes, f.fsyncs, f.bytes, f.tail_repaired)

    # ------------------------------------------------------------------ producer side

    async def put(self, record: Record) -> None:
        """Queue ``record``; waits while the queue is full (backpressure).

        ValueError if the record would not load back (a bad date, a negative size, ...):
        written, such a line would make the whole manifest unreadable once followed by
        another one. Checking costs about as much as serialising.
        """
        if self.put_nowait(record):  # no yield to the loop when there is room
            return
        try:
            await self._send.send(record.to_line())
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise self._closed() from None
        self._wake.set()

    def put_nowait(self, record: Record) -> bool:
        """Queue ``record`` if there is room now (True; never yields), else nothing (False)."""
        line = record.to_line()
        check_line(line)
        try:
            self._send.send_nowait(line)
        except anyio.WouldBlock:
            return False
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise self._closed() from None
        self._wake.set()
        return True

    def _closed(self) -> BaseException:
        failed = self._state == "failed"
        return self._stopped() if failed else RuntimeError("ManifestWriter.put() after close()")

    async def flush(self) -> None:
        """Return once everything put so far is written and fsynced."""
        request = _FlushRequest()
        try:
            await self._send.send(request)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            if self._state == "done":
                return  # closed cleanly: everything was written and fsynced
            raise self._stopped() from None
        self._wake.set()
        await request.done.wait()
        if request.failed:
            raise self._stopped()

    async def close(self) -> None:
        """No more records: :meth:`run` drains the queue, fsyncs and returns."""
        self._send.close()
        self._wake.set()

    def _stopped(self) -> StorageError:
        return self._file.stopped()

    # ------------------------------------------------------------------ writer task

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        if self._state != "new":
            raise RuntimeError("ManifestWriter.run() can only be called once")
        self._state = "running"
        try:
            await anyio.to_thread.run_sync(self._file.open)
        except BaseException:
            self._state = "failed"
            self._recv.close()
            self._send.close()
            raise
        task_status.started()
        try:
            await self._loop()
            self._state = "done"
        except BaseException:
            self._state = "failed"
            with anyio.CancelScope(shield=True):
                await self._last_write()
            raise
        finally:
            self._recv.close()
            self._send.close()  # nothing can be written any more
            self._file.close()

    def _drain(self) -> bool:
        """Move everything queued into ``_in_hand``; True once the stream has ended."""
        receive = self._recv.receive_nowait
        take = self._in_hand.append
        try:
            while True:
                take(receive())
        except anyio.WouldBlock:
            return False
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return True

    async def _loop(self) -> None:
        while True:
            self._wake = anyio.Event()  # before draining, so no put() can go unnoticed
            ended = self._drain()
            hand = self._in_hand
            step = next_step(
                self.batching, now=self._clock.monotonic(), holds=bool(hand),
                holds_data=any(not isinstance(i, _FlushRequest) for i in hand),
                flush_waiting=any(isinstance(i, _FlushRequest) for i in hand), ended=ended,
                wrote_at=self._wrote_at, unsynced_since=self._unsynced_since,
            )
            if step.action is Action.DONE:
                return
            if step.action is Action.SLEEP:
                assert step.delay_s is not None
                await self._clock.sleep(step.delay_s)  # let more records gather for this write
            elif step.action is Action.WAIT:
                with anyio.move_on_after(
                        math.inf if step.delay_s is None else self._clock.real(step.delay_s)):
                    await self._wake.wait()
            else:
                wrote = bool(hand)
                await self._write_in_hand(sync=step.sync)
                if wrote:
                    self._wrote_at = self._clock.monotonic()

    async def _write_in_hand(self, *, sync: bool) -> None:
        """Write ``_in_hand`` with one os.write (+ fsync if ``sync``), in one thread hop."""
        items = self._in_hand
        lines: list[builtins.bytes] = []
        flushes: list[_FlushRequest] = []
        for item in items:
            if isinstance(item, _FlushRequest):
                flushes.append(item)
            else:
                lines.append(item)
        data = b"".join(lines)
        unsynced = self._unsynced_since if self._unsynced_since is not None else (
            self._clock.monotonic() if data else None
        )
        sync = sync and unsynced is not None
        if data or sync:
            await anyio.to_thread.run_sync(self._file.write, data, sync)
        # The thread call cannot be interrupted once started: from here on it is done.
        self._in_hand = []
        self._records += len(lines)
        self._unsynced_since = None if sync else unsynced
        for request in flushes:
            request.done.set()

    async def _last_write(self) -> None:
        """After a failure or cancellation: write and fsync what was received, wake flushers."""
        self._drain()
        requests = [i for i in self._in_hand if isinstance(i, _FlushRequest)]
        if not self._file.broken and (self._in_hand or self._unsynced_since is not None):
            with contextlib.suppress(Exception):  # the original error is the one to raise
                await self._write_in_hand(sync=True)
        for request in requests:
            if not request.done.is_set():
                request.failed = True
                request.done.set()
        self._in_hand = []
