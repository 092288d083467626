"""Captured output: byte-exact, interleaved, followed live, capped with bounded memory."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import psutil
import pytest

from aiobgproc import Command, Manager, Status
from helpers.waiting import until_output_contains, until_status, wait_for_file_command

NOT_UTF8 = b"\xff\xfe\x00\xed\xa0\x80"
BIG_BYTES = 50_000_000
# 500 blocks of 100,000 bytes with a pattern that is not periodic in the block size, so a
# dropped, repeated or reordered chunk shows up as a difference.
BIG_WRITER = (
    "import sys\n"
    "block = bytes(i % 251 for i in range(100_000))\n"
    "for _ in range(500):\n"
    "    sys.stdout.buffer.write(block)\n"
)
BIG_EXPECTED = bytes(i % 251 for i in range(100_000)) * 500


async def _collect(manager: Manager, process_id: str) -> list[bytes]:
    async with asyncio.timeout(30):
        return [chunk async for chunk in manager.stream_output(process_id)]


async def test_output_returns_what_the_command_printed(manager: Manager) -> None:
    process_id = await manager.start(Command(["sh", "-c", "echo one; echo two"]))
    await manager.wait_for(process_id, timeout=10)
    assert await manager.output(process_id) == b"one\ntwo\n"


async def test_output_of_a_silent_command_is_empty(manager: Manager) -> None:
    process_id = await manager.start(Command(["true"]))
    await manager.wait_for(process_id, timeout=10)
    assert await manager.output(process_id) == b""
    assert await _collect(manager, process_id) == []
    assert (await manager.info(process_id)).output_size == 0


# Writes out1, waits for $1; err1, waits for $2; then out2, and out3 err2 out4 in a burst.
STEPPED_WRITER = (
    "printf 'out1\\n'; while [ ! -e \"$1\" ]; do sleep 0.01; done;"
    " printf 'err1\\n' >&2; while [ ! -e \"$2\" ]; do sleep 0.01; done;"
    " printf 'out2\\n'; printf 'out3\\n'; printf 'err2\\n' >&2; printf 'out4\\n'"
)


def _interleaves(merged: bytes, first: bytes, second: bytes) -> bool:
    """Whether ``merged`` is ``first`` and ``second`` interleaved, each in its own order."""
    if len(merged) != len(first) + len(second):
        return False
    reachable = {0}  # after each prefix of merged: how many bytes of first it may have taken
    for read, byte in enumerate(merged):
        reachable = {
            used + took
            for used in reachable
            for took in (0, 1)
            if (took and used < len(first) and first[used] == byte)
            or (not took and read - used < len(second) and second[read - used] == byte)
        }
    return len(first) in reachable


async def test_each_stream_keeps_its_order_and_the_log_interleaves_both_as_read(
    manager: Manager, tmp_path: Path
) -> None:
    """Two pipes: across them, the order is the order reads happened. Where the command
    waits for its line to be read before it writes on the other stream, that order is exact;
    a burst on both may be read in either order, each stream's own bytes in order."""
    flags = [tmp_path / "one", tmp_path / "two"]
    argv = ["sh", "-c", STEPPED_WRITER, "sh", *map(str, flags)]
    process_id = await manager.start(Command(argv))
    await until_output_contains(manager, process_id, b"out1\n")
    flags[0].touch()
    await until_output_contains(manager, process_id, b"err1\n")
    flags[1].touch()
    assert (await manager.wait_for(process_id, timeout=10)).status is Status.FINISHED

    stdout, stderr = b"out1\nout2\nout3\nout4\n", b"err1\nerr2\n"
    assert await manager.output(process_id, stream="stdout") == stdout
    assert await manager.output(process_id, stream="stderr") == stderr
    merged = await manager.output(process_id)
    assert merged.startswith(b"out1\nerr1\nout2\n"), merged
    assert _interleaves(merged, stdout, stderr), merged
    assert b"".join(await _collect(manager, process_id)) == merged
    async with asyncio.timeout(30):
        only_stderr = [chunk async for chunk in manager.stream_output(process_id, stream="stderr")]
    assert b"".join(only_stderr) == stderr


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["printf", r"\377\376\000\355\240\200"], id="printf-octal"),
        pytest.param(
            [sys.executable, "-c", f"import sys; sys.stdout.buffer.write({NOT_UTF8!r})"],
            id="python-buffer",
        ),
    ],
)
async def test_non_utf8_output_round_trips_byte_exact(manager: Manager, argv: list[str]) -> None:
    process_id = await manager.start(Command(argv))
    info = await manager.wait_for(process_id, timeout=10)
    assert info.status is Status.FINISHED
    assert await manager.output(process_id) == NOT_UTF8
    assert b"".join(await _collect(manager, process_id)) == NOT_UTF8
    assert info.output_size == len(NOT_UTF8)
    assert not info.output_truncated


async def test_stream_output_follows_live_output_until_the_command_ends(
    manager: Manager, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    process_id = await manager.start(Command(wait_for_file_command(flag)))
    received: list[bytes] = []
    async with asyncio.timeout(15):
        async for chunk in manager.stream_output(process_id):
            received.append(chunk)
            if not flag.exists():
                # The command is blocked until the flag exists: this chunk came live.
                assert b"".join(received) == b"first\n"
                assert (await manager.info(process_id)).status is Status.RUNNING
                flag.touch()
    assert b"".join(received) == b"first\nsecond\n"
    assert flag.exists()
    assert (await manager.info(process_id)).status is Status.FINISHED


async def test_stream_output_from_a_client_manager_follows_another_managers_command(
    manager: Manager, store_url: str, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    async with Manager(store_url, run=False) as client:
        process_id = await client.start(Command(wait_for_file_command(flag)))
        received: list[bytes] = []
        async with asyncio.timeout(15):
            async for chunk in client.stream_output(process_id):
                received.append(chunk)
                if not flag.exists():
                    assert b"".join(received) == b"first\n"
                    flag.touch()
        assert b"".join(received) == b"first\nsecond\n"
        assert (await client.info(process_id)).status is Status.FINISHED


async def test_stream_output_ends_when_the_command_is_cancelled(
    manager: Manager, tmp_path: Path
) -> None:
    process_id = await manager.start(Command(wait_for_file_command(tmp_path / "never")))
    received: list[bytes] = []
    async with asyncio.timeout(15):
        async for chunk in manager.stream_output(process_id):
            received.append(chunk)
            if b"first" in b"".join(received):
                assert (await manager.cancel(process_id)).status is Status.CANCELLED
    assert b"".join(received) == b"first\n"


async def test_fifty_megabytes_of_output_are_stored_byte_exact(manager: Manager) -> None:
    process_id = await manager.start(Command([sys.executable, "-c", BIG_WRITER]))
    info = await manager.wait_for(process_id, timeout=30)
    assert info.status is Status.FINISHED
    assert info.output_size == BIG_BYTES
    assert not info.output_truncated
    stored = await manager.output(process_id)
    assert len(stored) == BIG_BYTES
    assert stored == BIG_EXPECTED
    del stored
    streamed = b"".join(await _collect(manager, process_id))
    assert streamed == BIG_EXPECTED


async def test_output_beyond_max_output_bytes_is_dropped_with_bounded_memory(
    store_path: Path,
) -> None:
    me = psutil.Process()
    async with Manager(store_path, max_output_bytes=1_000_000) as manager:
        rss_before = me.memory_info().rss
        process_id = await manager.start(Command(["head", "-c", str(BIG_BYTES), "/dev/zero"]))
        info = await manager.wait_for(process_id, timeout=30)
        rss_growth = me.memory_info().rss - rss_before

        assert info.status is Status.FINISHED
        assert info.output == {"exit_code": 0}
        assert info.output_truncated is True
        assert info.output_size == BIG_BYTES
        stored = await manager.output(process_id)
        assert len(stored) == 1_000_000
        assert stored == bytes(1_000_000)
        assert b"".join(await _collect(manager, process_id)) == stored
        assert rss_growth < 40_000_000, f"RSS grew by {rss_growth / 1e6:.1f} MB"


async def test_max_output_bytes_zero_stores_nothing_but_counts_the_size(
    store_path: Path,
) -> None:
    async with Manager(store_path, max_output_bytes=0) as manager:
        process_id = await manager.start(Command(["sh", "-c", "echo hidden"]))
        info = await manager.wait_for(process_id, timeout=10)
        assert info.status is Status.FINISHED
        assert await manager.output(process_id) == b""
        assert info.output_size == len(b"hidden\n")
        assert info.output_truncated is True


async def test_output_so_far_is_readable_while_the_command_runs(
    manager: Manager, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    process_id = await manager.start(Command(wait_for_file_command(flag)))
    await until_status(manager, process_id, Status.RUNNING)
    async with asyncio.timeout(10):
        while await manager.output(process_id) != b"first\n":
            await asyncio.sleep(0.01)
    assert (await manager.info(process_id)).status is Status.RUNNING
    flag.touch()
    await manager.wait_for(process_id, timeout=10)
    assert await manager.output(process_id) == b"first\nsecond\n"
