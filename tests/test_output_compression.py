"""Output chunks are stored compressed (zstandard) in a new store, each chunk saying how
(store/codec.py); everything read back is byte for byte what the process wrote, and
output_size counts those bytes. A store that held processes when it was migrated keeps
storing them raw."""

from __future__ import annotations

import asyncio
import sys

from aiobgproc import Command, Manager, Status
from helpers.storedb import is_postgres, query

WAIT = 60.0
# Varied log lines (levels, modules, numbers, hex ids), on both streams, as a program writes.
LOG_LINES = r"""
import random, sys
random.seed(7)
levels = ["DEBUG", "INFO", "INFO", "WARNING", "ERROR"]
words = "request cache miss hit retry pool acquired released rows committed token".split()
for n in range(int(sys.argv[1])):
    line = "2026-12-07T12:%02d:%02d.%03dZ %-7s [app.mod%d] %s id=%08x n=%d\n" % (
        n // 60 % 60, n % 60, random.randrange(1000), random.choice(levels),
        random.randrange(9), " ".join(random.choices(words, k=random.randrange(3, 9))),
        random.getrandbits(32), random.randrange(10**6))
    (sys.stderr if n % 100 == 0 else sys.stdout).write(line)
"""


def _setting(store: str) -> str:
    if is_postgres(store):
        return str(query(store, "SELECT value FROM meta WHERE key = 'output_codec'")[0][0])
    return str(query(store, "SELECT value FROM settings WHERE name = 'output_codec'")[0][0])


def _stored(store: str, process_id: str) -> tuple[int, list[int]]:
    """How many bytes the process's chunks take as stored, and each chunk's codec."""
    rows = query(
        store,
        "SELECT length(data), codec FROM output_chunks WHERE process_id = ? ORDER BY seq",
        (process_id,),
    )
    return sum(int(row[0]) for row in rows), [int(row[1]) for row in rows]


async def test_log_text_is_stored_compressed_and_read_back_exactly(store_url: str) -> None:
    lines = 40_000  # ~4 MB
    expected = _expected(lines)
    async with Manager(store_url, max_output_bytes=None) as manager:
        assert _setting(store_url) == "zstd"
        process_id = await manager.start(Command([sys.executable, "-c", LOG_LINES, str(lines)]))
        info = await manager.wait_for(process_id, timeout=WAIT)
        assert info.status is Status.FINISHED, info
        assert info.output_size == len(expected[0]) + len(expected[1])
        stored, codecs = _stored(store_url, process_id)
        assert 1 in codecs
        assert stored * 3 < info.output_size  # at least 3x less space
        assert await manager.output(process_id, stream="stdout") == expected[0]
        assert await manager.output(process_id, stream="stderr") == expected[1]
        everything = await manager.output(process_id)
        assert len(everything) == info.output_size
        assert sorted(everything.splitlines()) == sorted((expected[0] + expected[1]).splitlines())
        assert await manager.output(process_id, stream="stdout", tail=3) == b"".join(
            expected[0].splitlines(keepends=True)[-3:]
        )
        streamed = b"".join([chunk async for chunk in manager.stream_output(process_id)])
        assert streamed == everything


def _expected(lines: int) -> tuple[bytes, bytes]:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", LOG_LINES, str(lines)], capture_output=True, check=True
    )
    return done.stdout, done.stderr


async def test_random_bytes_and_small_chunks_stay_raw(store_url: str) -> None:
    async with Manager(store_url, max_output_bytes=None) as manager:
        noise = await manager.start(Command(["head", "-c", "3000000", "/dev/urandom"]))
        small = await manager.start(Command(["echo", "hi"]))
        for process_id in (noise, small):
            assert (await manager.wait_for(process_id, timeout=WAIT)).status is Status.FINISHED
        assert set(_stored(store_url, noise)[1]) == {0}
        assert _stored(store_url, noise)[0] == 3_000_000
        assert len(await manager.output(noise)) == 3_000_000
        assert _stored(store_url, small) == (3, [0])
        assert await manager.output(small) == b"hi\n"


def test_compression_is_safe_from_several_threads_at_once() -> None:
    """Found by a code review: one compressor shared by every thread (managers on loops of
    their own) corrupted data, even crashed the interpreter."""
    from concurrent.futures import ThreadPoolExecutor

    from aiobgproc.store import codec

    def round_trips(seed: int) -> bool:
        payload = (f"line {seed} " * 4000).encode()
        for _ in range(200):
            (stored,) = asyncio.run(codec.encode([(0, 1, payload)], codec.ZSTD))
            assert stored[2] == codec.ZSTD
            if codec.decode(stored[2], stored[3]) != payload:
                return False
        return True

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(round_trips, range(8)))
