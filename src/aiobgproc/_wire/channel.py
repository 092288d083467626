"""The manager's end of an executor's socket: frames in and out (see _protocol.py).

Read with a reader callback on the event loop, not a stream: a run exchanges a handful of
small frames, and a StreamReader/StreamWriter pair plus a task per frame cost more than
the rest of the conversation.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from typing import Any

from . import frames as _protocol
from .messages import FrameError

_READ_SIZE = 1 << 20
_MAX_QUEUED = 256  # frames parsed but not yet handled: stop reading beyond this


class ExecutorChannel:
    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._frames: deque[tuple[Any, ...]] = deque()
        self._eof = False
        self._error: FrameError | None = None
        self._ready: asyncio.Future[None] | None = None
        self._reading = False
        self._closed = False
        self._resume()

    # -- reading -----------------------------------------------------------------------------

    def _resume(self) -> None:
        if not self._reading and not self._eof and not self._closed:
            self._loop.add_reader(self._sock.fileno(), self._readable)
            self._reading = True

    def _pause(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._sock.fileno())
            self._reading = False

    def _readable(self) -> None:
        try:
            data = self._sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""  # reset by the executor: as good as the end
        if not data:
            self._eof = True
            self._pause()
        else:
            self._buffer += data
            self._parse()
        if self._frames or self._eof or self._error is not None:
            self._wake()

    def _parse(self) -> None:
        buffer = self._buffer
        start = 0
        while len(buffer) - start >= _protocol.HEADER:
            size = int.from_bytes(buffer[start : start + _protocol.HEADER], "big")
            if size > _protocol.MAX_FRAME:
                self._fail(FrameError(f"a frame of {size} bytes (the limit is 1 GiB)"))
                return
            end = start + _protocol.HEADER + size
            if len(buffer) < end:
                break
            try:
                self._frames.append(_protocol.decode(bytes(buffer[start + _protocol.HEADER : end])))
            except (ValueError, EOFError, TypeError) as exc:
                self._fail(FrameError(f"{type(exc).__name__}: {exc}"))
                return
            start = end
        if start:
            del buffer[:start]
        if len(self._frames) > _MAX_QUEUED:
            self._pause()

    def _fail(self, error: FrameError) -> None:
        self._error = error
        self._pause()

    def _wake(self) -> None:
        ready, self._ready = self._ready, None
        if ready is not None and not ready.done():
            ready.set_result(None)

    def ready(self) -> asyncio.Future[None]:
        """Done once a frame (or the end of the conversation) can be popped. Each call may
        return a new future: never cancel it; leaving it pending is harmless."""
        future = self._loop.create_future()
        if self._frames or self._eof or self._error is not None:
            future.set_result(None)
        else:
            self._ready = future
        return future

    def pop(self) -> tuple[Any, ...] | None:
        """The next frame; None when the executor closed its end and all were read. Raises
        FrameError once the frames before the unreadable one were popped. Only call once
        ``ready()`` is done."""
        if self._frames:
            frame = self._frames.popleft()
            if len(self._frames) <= _MAX_QUEUED // 2 and self._error is None:
                self._resume()
            return frame
        if self._error is not None:
            raise self._error
        if self._eof:
            return None
        raise RuntimeError("no frame is ready")  # a bug of the caller

    @property
    def at_end(self) -> bool:
        """The executor closed its end (or sent something unreadable), or we closed ours."""
        return self._eof or self._closed or self._error is not None

    async def next(self) -> tuple[Any, ...] | None:
        """Wait for the next frame (None at the end)."""
        await self.ready()
        return self.pop()

    # -- writing -----------------------------------------------------------------------------

    async def send(self, message: tuple[Any, ...]) -> None:
        """Send a frame; raises ConnectionError if the executor is gone."""
        data = _protocol.encode(message)
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        if sent < len(data):  # a big job (large input): the socket buffer is full
            await self._loop.sock_sendall(self._sock, memoryview(data)[sent:])

    async def send_with_fds(self, message: tuple[Any, ...], fds: list[int]) -> None:
        """Send a frame with ``fds`` (SCM_RIGHTS, with its first byte); the caller still
        closes its copies. Raises ConnectionError if the executor is gone."""
        data = _protocol.encode(message)
        while True:
            try:
                sent = socket.send_fds(self._sock, [data], fds)
                break
            except (BlockingIOError, InterruptedError):
                await asyncio.sleep(0.001)  # an idle executor has read all: rarely if ever
        if sent < len(data):
            await self._loop.sock_sendall(self._sock, memoryview(data)[sent:])

    def close(self) -> None:
        if not self._closed:
            self._pause()
            self._closed = True
            self._eof = True
            self._sock.close()
            self._wake()
