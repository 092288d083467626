"""Batches a child's output into the store: bounded memory, byte-exact, capped.

The pipe readers feed chunks in, each with its stream; a flusher task writes them as BLOB
rows (at most ``flush_bytes`` a batch, or whatever arrived within ``flush_interval``): one
row for each run of the same stream, in arrival order, all of a batch in one transaction.
Output beyond the cap (both streams counted) is counted and dropped, but reading goes on so
the child never blocks on a full pipe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

Chunks = list[tuple[int, int, bytes]]
Writer = Callable[[Sequence[Any], int, bool], Awaitable[None]]
"""``write(chunks, output_size, truncated)``: append chunks (as ``prepare`` made them), none
when only the totals changed, and the running totals."""
Prepare = Callable[[Chunks], Awaitable[Sequence[Any]]]
"""``prepare(chunks)``: chunks (seq, stream, data) as they are to be written (compressed)."""


class OutputRecorder:
    def __init__(
        self,
        write: Writer,
        *,
        prepare: Prepare | None = None,
        first_seq: int = 0,
        output_size: int = 0,
        stored_size: int = 0,
        cap: int | None = None,
        flush_bytes: int = 1 << 20,
        flush_interval: float = 0.05,
        max_buffer: int = 4 << 20,
    ) -> None:
        self._write = write
        self._prepare = prepare
        self._seq = first_seq
        self.output_size = output_size
        self._stored = stored_size
        self._cap = cap
        self.truncated = False
        self._flush_bytes = flush_bytes
        self._flush_interval = flush_interval
        self._max_buffer = max_buffer
        self._buffer = bytearray()
        # Where each stream's run starts in the buffer: (offset, stream), in arrival order.
        self._runs: list[tuple[int, int]] = []
        self._dirty = False
        self._wake = asyncio.Event()
        self._closed = False
        self.on_drain: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        # The flusher task starts with the first output: a silent child costs no task.
        self._loop = asyncio.get_running_loop()

    def feed(self, stream: int, data: bytes) -> bool:
        """Take a chunk of ``stream``; False asks the reader to pause until ``on_drain``."""
        self.output_size += len(data)
        self._dirty = True
        room = None if self._cap is None else self._cap - self._stored - len(self._buffer)
        if room is not None and len(data) > room:
            data = data[: max(room, 0)]
            self.truncated = True
        if data and (not self._runs or self._runs[-1][1] != stream):
            self._runs.append((len(self._buffer), stream))
        self._buffer += data
        if self._task is None and self._loop is not None and not self._closed:
            self._task = self._loop.create_task(self._flush_loop())
        if len(self._buffer) >= self._flush_bytes:
            self._wake.set()
        elif self._timer is None and self._loop is not None:
            # Whatever arrived is stored within flush_interval, even if nothing follows.
            self._timer = self._loop.call_later(self._flush_interval, self._wake.set)
        return len(self._buffer) < self._max_buffer

    async def _flush_loop(self) -> None:
        # Sleeps until there is something to store: an idle child costs no wake-ups.
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                await self._flush()
                if self._closed:
                    return
        except BaseException as exc:
            self.error = exc
            raise

    def _take(self) -> list[tuple[int, int, bytes]]:
        """Up to flush_bytes from the buffer's start: a chunk for each run of one stream."""
        size = min(len(self._buffer), self._flush_bytes)
        chunks = []
        while self._runs and self._runs[0][0] < size:
            start, stream = self._runs[0]
            end = self._runs[1][0] if len(self._runs) > 1 else len(self._buffer)
            if end <= size:
                del self._runs[0]
            else:
                end = size
                self._runs[0] = (size, stream)
            chunks.append((self._seq, stream, bytes(self._buffer[start:end])))
            self._seq += 1
        del self._buffer[:size]
        self._runs = [(start - size, stream) for start, stream in self._runs]
        self._stored += size
        return chunks

    async def _flush(self) -> None:
        """Store what is buffered, a batch at a time: a batch is prepared (compressed, in a
        thread) while the one before it is written; the writes go one after another, in
        order (a follower reading by seq must never see a later chunk before an earlier)."""
        writing: asyncio.Future[None] | None = None
        try:
            while self._dirty:
                chunks = self._take()
                self._dirty = bool(self._buffer)
                totals = (self.output_size, self.truncated)
                prepared = chunks if self._prepare is None else await self._prepare(chunks)
                if writing is not None:
                    await writing
                    self._drained()
                writing = asyncio.ensure_future(self._write(prepared, *totals))
        finally:
            if writing is not None:
                await writing
                self._drained()

    def _drained(self) -> None:
        if len(self._buffer) < self._max_buffer and self.on_drain is not None:
            self.on_drain()

    async def close(self) -> None:
        """Write what is left and stop the flusher."""
        self._closed = True
        self._wake.set()
        if self._task is not None:
            try:
                await self._task
            except Exception:
                # A store failure while flushing: nothing more can be saved.
                pass
        else:
            await self._flush()
