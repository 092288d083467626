"""Output chunks as stored: as read from the pipe, or compressed with zstandard.

Log text compresses 3.9x (high-entropy application logs) to 9.6x (apt and pytest output)
at zstd level 1, and writing the compressed chunk costs less than writing the raw one:
plain sqlite3 stores such text 1.5-2x faster compressed (docs/benchmarks.md, "Output
compression"). zlib, in the standard library, compresses 3.4-7.9x but at ~110 MB/s on this
machine, below what the store writes raw: it would cost throughput.

Each chunk says how it is stored (``codec``): old chunks, and chunks too small or too random
to gain, stay raw. A store compresses new chunks when its ``output_codec`` setting says
``zstd``: set for every store created at schema version 4 or later (and any store that held
no process when it was migrated); a store that already held processes keeps ``none``, so
that tools reading its chunks directly go on reading them. ``output_size``, offsets and
everything the API returns count the bytes as the process wrote them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Final

import zstandard

from .protocol import Chunk, StoredChunk

RAW: Final = 0
ZSTD: Final = 1
CODECS: Final[dict[str | None, int | None]] = {"none": None, "zstd": ZSTD}
"""The ``output_codec`` setting's values: what new chunks are compressed with."""
MIN_BYTES: Final = 256
"""Smaller chunks stay raw: a frame's header and the call would cost more than they save."""
_IN_THREAD_BYTES: Final = 256 << 10
"""A batch this big is compressed in a thread (zstandard releases the GIL): ~1 ms of the
event loop's time per 256 KiB otherwise."""
_LEVEL: Final = 1

_local = threading.local()
"""Each thread's compressor and decompressor: zstandard's objects are not for two threads at
once (managers on loops of their own, in threads of their own, share this module)."""


def _compressor() -> zstandard.ZstdCompressor:
    compressor: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = zstandard.ZstdCompressor(level=_LEVEL)
    return compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    decompressor: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = _local.decompressor = zstandard.ZstdDecompressor()
    return decompressor


def _compress(data: bytes) -> tuple[int, bytes]:
    if len(data) < MIN_BYTES:
        return RAW, data
    packed = _compressor().compress(data)
    return (ZSTD, packed) if len(packed) < len(data) - len(data) // 16 else (RAW, data)


def _compress_all(chunks: Sequence[Chunk]) -> list[StoredChunk]:
    return [(seq, stream, *_compress(data)) for seq, stream, data in chunks]


async def encode(chunks: Sequence[Chunk], codec: int | None) -> list[StoredChunk]:
    """``chunks`` (seq, stream, data) as they are to be stored: compressed with ``codec``
    (None: raw) where that gains at least 1/16 of a chunk."""
    if codec is None:
        return [(seq, stream, RAW, data) for seq, stream, data in chunks]
    if sum(len(chunk[2]) for chunk in chunks) >= _IN_THREAD_BYTES:
        # (a worker thread: its own compressor, see _local)
        return await asyncio.to_thread(_compress_all, list(chunks))
    return _compress_all(chunks)


def decode(codec: int, data: bytes) -> bytes:
    """A stored chunk's bytes as the process wrote them."""
    if codec == RAW:
        return data
    if codec != ZSTD:
        raise ValueError(f"an output chunk stored with unknown codec {codec}")
    # The frame holds its size (ZstdCompressor writes it): one allocation, no guessing.
    return _decompressor().decompress(data)


async def decode_rows(rows: Sequence[Sequence[object]]) -> list[Chunk]:
    """Rows (seq, stream, data, codec) as chunks (seq, stream, bytes as written); a big page
    is decompressed in a thread."""
    stored = [(int(row[0]), int(row[1]), bytes(row[2]), int(row[3])) for row in rows]  # type: ignore[call-overload]
    if sum(len(data) for _, _, data, codec in stored if codec != RAW) >= _IN_THREAD_BYTES:
        return await asyncio.to_thread(_decode_in_thread, stored)
    return [(seq, stream, decode(codec, data)) for seq, stream, data, codec in stored]


def _decode_in_thread(stored: list[tuple[int, int, bytes, int]]) -> list[Chunk]:
    return [(seq, stream, decode(codec, data)) for seq, stream, data, codec in stored]
