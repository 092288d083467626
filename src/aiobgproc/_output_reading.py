"""Manager.output() and stream_output(): the captured log read back, one stream or both, and
its last lines read from the end a page at a time (never the whole log)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Final

from ._changes import Changes
from .errors import InvalidSpecError
from .models import LIVE_STATUSES, Status
from .store import Chunk, ProcessRecord, Store

STREAMS: Final = {"stdout": 1, "stderr": 2}
"""The stream names of the API, and the numbers chunks carry in the store."""
STREAM_NAMES: Final = {code: name for name, code in STREAMS.items()}
# stream_output() follows while the process may still write.
_FOLLOWED: Final = LIVE_STATUSES | {Status.QUEUED}
# Chunks read at once from the end: a chunk is at most the recorder's flush size (1 MiB), so
# the last lines cost a few pages, and any page at most _PAGES[-1] MiB.
_PAGES: Final = (1, 2, 4, 8)
_FOLLOW_PAGE: Final = 16  # chunks stream_output() reads at once (each at most 1 MiB)


def check_stream(stream: object) -> int | None:
    """The store's number for ``stream`` ("stdout", "stderr", or None for both)."""
    if stream is None:
        return None
    if not isinstance(stream, str) or stream not in STREAMS:
        raise InvalidSpecError(f"stream must be 'stdout', 'stderr' or None, not {stream!r}")
    return STREAMS[stream]


def check_tail(tail: object) -> int | None:
    """A number of lines >= 1, or None (everything)."""
    if tail is None:
        return None
    if isinstance(tail, bool) or not isinstance(tail, int):
        raise InvalidSpecError(f"tail must be a whole number of lines or None, not {tail!r}")
    if tail <= 0:
        raise InvalidSpecError(f"tail must be at least 1 line, not {tail}")
    return tail


async def last_lines(store: Store, process_id: str, stream: int | None, lines: int) -> list[Chunk]:
    """The chunks that hold the last ``lines`` lines, oldest first, the first one cut where
    they start. A line ends after b"\\n"; a last line without one counts."""
    kept: list[Chunk] = []  # newest first
    found = 0  # newlines that end a line before the last ones
    newest = True
    before = None
    for size in itertools.chain(_PAGES, itertools.repeat(_PAGES[-1])):
        page = await store.read_output_before(process_id, before, stream, size)
        for seq, code, data in page:
            end = len(data)
            if newest and data:
                newest = False
                if data.endswith(b"\n"):
                    end -= 1  # the log's last newline ends the last line, it starts none
            count = data.count(b"\n", 0, end)
            if found + count < lines:
                found += count
                kept.append((seq, code, data))
                continue
            start = end
            for _ in range(lines - found):
                start = data.rfind(b"\n", 0, start)
            if start + 1 < len(data):
                kept.append((seq, code, data[start + 1 :]))
            return kept[::-1]
        if len(page) < size:
            return kept[::-1]  # the whole log has fewer lines
        before = page[-1][0]
    return kept[::-1]  # not reached: the pages go on until the log's start


class OutputReading:
    """Mixed into Manager: it provides ``_store``, ``_changes``, ``_record`` and
    ``_wait_step``."""

    _store: Store
    _changes: Changes

    async def _record(self, process_id: str, *, full: bool = True) -> ProcessRecord:
        raise NotImplementedError

    def _wait_step(self, record: ProcessRecord) -> float:
        raise NotImplementedError

    async def output(
        self, process_id: str, *, stream: str | None = None, tail: int | None = None
    ) -> bytes:
        """Everything captured so far: stdout and stderr as they arrived, or only ``stream``
        ("stdout" or "stderr"); with ``tail=N``, only the last N lines of it. Raises
        InvalidSpecError for a bad ``stream`` or ``tail``, ProcessNotFoundError for an
        unknown id.

        ::

            last = await manager.output(process_id, stream="stderr", tail=20)
        """
        code = check_stream(stream)
        lines = check_tail(tail)
        chunks = await self._read_chunks(process_id, code, lines)
        return b"".join(data for _, _, data in chunks)

    def stream_output(self, process_id: str, *, stream: str | None = None) -> AsyncIterator[bytes]:
        """Yield the output (both streams, or only ``stream``) from the beginning, then live,
        until the process is no longer queued, running or suspended."""
        code = check_stream(stream)
        return _data(self._follow_chunks(process_id, code, -1))

    async def _read_chunks(
        self, process_id: str, stream: int | None, lines: int | None
    ) -> list[Chunk]:
        await self._record(process_id, full=False)
        if lines is not None:
            return await last_lines(self._store, process_id, stream, lines)
        return await self._store.read_output(process_id, -1, stream)

    async def _follow_chunks(
        self, process_id: str, stream: int | None, after_seq: int
    ) -> AsyncIterator[Chunk]:
        seq = after_seq
        while True:
            event = self._changes.event(process_id)
            record = await self._record(process_id, full=False)
            # A page at a time: following a long log from its start holds a page, not the log.
            chunks = await self._store.read_output(process_id, seq, stream, _FOLLOW_PAGE)
            for chunk in chunks:
                seq = chunk[0]
                yield chunk
            if len(chunks) == _FOLLOW_PAGE:
                continue  # more is stored already
            if record.status not in _FOLLOWED:
                return
            if not chunks:
                await self._changes.wait(event, self._wait_step(record))


async def _data(chunks: AsyncIterator[Chunk]) -> AsyncIterator[bytes]:
    async for _, _, data in chunks:
        yield data


async def output_chunks(
    reader: OutputReading,
    process_id: str,
    *,
    stream: str | None = None,
    tail: int | None = None,
    follow: bool = False,
) -> AsyncIterator[Chunk]:
    """For the CLI: the chunks (seq, stream, data) ``output`` would join, then, with
    ``follow``, those that come after them while the process may still write."""
    code = check_stream(stream)
    lines = check_tail(tail)
    chunks = await reader._read_chunks(process_id, code, lines)
    for chunk in chunks:
        yield chunk
    if follow:
        async for chunk in reader._follow_chunks(process_id, code, chunks[-1][0] if chunks else -1):
            yield chunk
