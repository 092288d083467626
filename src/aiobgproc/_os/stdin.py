"""A child's stdin, written by us: bytes in order, never blocking the event loop.

The pipe's read end goes to the child; we keep the write end, non-blocking, and write what
the kernel takes, the rest when the pipe has room again (``add_writer``). A child that
closed its stdin (or exited) makes further writes fail quietly: what was not taken is
dropped (``broken``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable


class StdinPipe:
    def __init__(self, on_drained: Callable[[], None] | None = None) -> None:
        read_fd, self._fd = os.pipe2(os.O_CLOEXEC)
        self.child_fd: int | None = read_fd
        """The end the child gets as its stdin (closed here once it is started)."""
        os.set_blocking(self._fd, False)
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._waiting = False  # add_writer is on
        self._closing = False
        self.closed = False
        self.broken = False
        self._on_drained = on_drained

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def child_started(self) -> None:
        if self.child_fd is not None:
            os.close(self.child_fd)
            self.child_fd = None

    def write(self, data: bytes) -> None:
        if self.closed or self._closing or self.broken:
            return
        self._buffer += data
        if not self._waiting:
            self._flush()

    def close(self) -> None:
        """Close once everything written so far has been taken (the child then sees EOF)."""
        self._closing = True
        if not self._buffer:
            self._close_now()

    def abort(self) -> None:
        self._buffer.clear()
        self.child_started()
        self._close_now()

    def _flush(self) -> None:
        while self._buffer:
            try:
                written = os.write(self._fd, self._buffer)
            except (BlockingIOError, InterruptedError):
                if not self._waiting:
                    self._loop.add_writer(self._fd, self._flush)
                    self._waiting = True
                return
            except OSError:  # EPIPE: nobody reads any more
                self.broken = True
                self._buffer.clear()
                break
            del self._buffer[:written]
        if self._waiting:
            self._loop.remove_writer(self._fd)
            self._waiting = False
        if self._closing or self.broken:
            self._close_now()
        if self._on_drained is not None:
            self._on_drained()

    def _close_now(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._waiting:
            self._loop.remove_writer(self._fd)
            self._waiting = False
        with contextlib.suppress(OSError):
            os.close(self._fd)
