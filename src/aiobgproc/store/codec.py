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

_compressor: list[zstandard.ZstdCompressor] = []
_decompressor: list[zstandard.ZstdDecompressor] = []


def _compress(data: bytes) -> tuple[int, bytes]:
    if len(data) < MIN_BYTES:
        return RAW, data
    if not _compressor:
        _compressor.append(zstandard.ZstdCompressor(level=_LEVEL))
    packed = _compressor[0].compress(data)
    return (ZSTD, packed) if len(packed) < len(data) - len(data) // 16 else (RAW, data)


def _compress_all(chunks: Sequence[Chunk]) -> list[StoredChunk]:
    return [(seq, stream, *_compress(data)) for seq, stream, data in chunks]


async def encode(chunks: Sequence[Chunk], codec: int | None) -> list[StoredChunk]:
    """``chunks`` (seq, stream, data) as they are to be stored: compressed with ``codec``
    (None: raw) where that gains at least 1/16 of a chunk."""
    if codec is None:
        return [(seq, stream, RAW, data) for seq, stream, data in chunks]
    if sum(len(chunk[2]) for chunk in chunks) >= _IN_THREAD_BYTES:
        # A compressor object is not for two threads at once: this one is the thread's own.
        return await asyncio.to_thread(_compress_in_thread, list(chunks))
    return _compress_all(chunks)


def _compress_in_thread(chunks: list[Chunk]) -> list[StoredChunk]:
    compressor = zstandard.ZstdCompressor(level=_LEVEL)
    stored: list[StoredChunk] = []
    for seq, stream, data in chunks:
        if len(data) >= MIN_BYTES:
            packed = compressor.compress(data)
            if len(packed) < len(data) - len(data) // 16:
                stored.append((seq, stream, ZSTD, packed))
                continue
        stored.append((seq, stream, RAW, data))
    return stored


def decode(codec: int, data: bytes) -> bytes:
    """A stored chunk's bytes as the process wrote them."""
    if codec == RAW:
        return data
    if codec != ZSTD:
        raise ValueError(f"an output chunk stored with unknown codec {codec}")
    if not _decompressor:
        _decompressor.append(zstandard.ZstdDecompressor())
    # The frame holds its size (ZstdCompressor writes it): one allocation, no guessing.
    return _decompressor[0].decompress(data)


async def decode_rows(rows: Sequence[Sequence[object]]) -> list[Chunk]:
    """Rows (seq, stream, data, codec) as chunks (seq, stream, bytes as written); a big page
    is decompressed in a thread."""
    stored = [(int(row[0]), int(row[1]), bytes(row[2]), int(row[3])) for row in rows]  # type: ignore[call-overload]
    if sum(len(data) for _, _, data, codec in stored if codec != RAW) >= _IN_THREAD_BYTES:
        return await asyncio.to_thread(_decode_in_thread, stored)
    return [(seq, stream, decode(codec, data)) for seq, stream, data, codec in stored]


def _decode_in_thread(stored: list[tuple[int, int, bytes, int]]) -> list[Chunk]:
    decompressor = zstandard.ZstdDecompressor()
    return [
        (seq, stream, decompressor.decompress(data) if codec == ZSTD else decode(codec, data))
        for seq, stream, data, codec in stored
    ]
