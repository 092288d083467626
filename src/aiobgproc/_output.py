"""Batches a child's output into the store: bounded memory, byte-exact, capped.

The pipe reader feeds chunks in; a flusher task writes them as one BLOB row per batch (at
most ``flush_bytes``, or whatever arrived within ``flush_interval``). Output beyond the cap is
counted and dropped, but reading goes on so the child never blocks on a full pipe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Writer = Callable[[int, bytes, int, bool], Awaitable[None]]
"""``write(seq, data, output_size, truncated)``: append one chunk and the running totals."""


class OutputRecorder:
    def __init__(
        self,
        write: Writer,
        *,
        first_seq: int = 0,
        output_size: int = 0,
        stored_size: int = 0,
        cap: int | None = None,
        flush_bytes: int = 1 << 20,
        flush_interval: float = 0.05,
        max_buffer: int = 4 << 20,
    ) -> None:
        self._write = write
        self._seq = first_seq
        self.output_size = output_size
        self._stored = stored_size
        self._cap = cap
        self.truncated = False
        self._flush_bytes = flush_bytes
        self._flush_interval = flush_interval
        self._max_buffer = max_buffer
        self._buffer = bytearray()
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

    def feed(self, data: bytes) -> bool:
        """Take a chunk; False asks the reader to pause until ``on_drain`` is called."""
        self.output_size += len(data)
        self._dirty = True
        room = None if self._cap is None else self._cap - self._stored - len(self._buffer)
        if room is not None and len(data) > room:
            data = data[: max(room, 0)]
            self.truncated = True
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

    async def _flush(self) -> None:
        while self._dirty:
            data = bytes(self._buffer[: self._flush_bytes])
            del self._buffer[: len(data)]
            self._dirty = bool(self._buffer)
            if data:
                seq = self._seq
                self._seq += 1
                self._stored += len(data)
            else:
                seq = -1  # totals only
            await self._write(seq, data, self.output_size, self.truncated)
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
