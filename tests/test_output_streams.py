"""Reading the output back: one stream or both (``stream=``), the last lines (``tail=``)."""

from __future__ import annotations

import re
import sys
import tracemalloc
from typing import Any

import pytest

from aiobgproc import (
    Command,
    InvalidSpecError,
    Manager,
    ProcessNotFoundError,
    Status,
)

UNKNOWN_ID = "0" * 32
_LINES = re.compile(rb"[^\n]*\n|[^\n]+\Z")


def last_lines(data: bytes, count: int) -> bytes:
    """The contract, written plainly: a line ends after b"\\n", a last line without one counts."""
    return b"".join(_LINES.findall(data)[-count:])


async def test_tail_returns_the_last_lines_of_one_stream_or_both(manager: Manager) -> None:
    # stdout's last line has no newline, stderr's has one.
    script = "printf 'a\\nb\\nc'; printf 'x\\ny\\n' >&2"
    process_id = await manager.start(Command(["sh", "-c", script]))
    assert (await manager.wait_for(process_id, timeout=10)).status is Status.FINISHED

    assert await manager.output(process_id, stream="stdout") == b"a\nb\nc"
    assert await manager.output(process_id, stream="stdout", tail=1) == b"c"
    assert await manager.output(process_id, stream="stdout", tail=2) == b"b\nc"
    assert await manager.output(process_id, stream="stdout", tail=100) == b"a\nb\nc"
    assert await manager.output(process_id, stream="stderr") == b"x\ny\n"
    assert await manager.output(process_id, stream="stderr", tail=1) == b"y\n"
    assert await manager.output(process_id, stream="stderr", tail=3) == b"x\ny\n"
    # Across the streams the order is the reads' ("c" and "x\n" may well be one line here).
    merged = await manager.output(process_id)
    for count in (1, 2, 4, 5, 6):
        assert await manager.output(process_id, tail=count) == last_lines(merged, count)


async def test_bad_stream_or_tail_raises_invalid_spec_error_before_any_lookup(
    manager: Manager,
) -> None:
    bad: list[dict[str, Any]] = [
        {"stream": "STDOUT"},
        {"stream": "both"},
        {"stream": 1},
        {"stream": b"stderr"},
        {"tail": 0},
        {"tail": -1},
        {"tail": 1.0},
        {"tail": "3"},
        {"tail": True},
    ]
    for arguments in bad:
        with pytest.raises(InvalidSpecError):
            await manager.output(UNKNOWN_ID, **arguments)
        if "stream" in arguments:
            with pytest.raises(InvalidSpecError):
                manager.stream_output(UNKNOWN_ID, **arguments)
    with pytest.raises(ProcessNotFoundError):
        await manager.output(UNKNOWN_ID, stream="stderr", tail=1)


# -- a 200 MB log -----------------------------------------------------------------------------

BLOCKS = 200
LINES_A_BLOCK = 10_000  # 100-byte lines: a block is 1,000,000 bytes
# Line k of block i is "iii-kkkkk" and padding; every 20th block is followed by a line on
# stderr; stdout ends with two lines, the last one without a newline.
BIG_WRITER = (
    "import sys\n"
    "template = b''.join(b'BLK-%05d ' % k + b'.' * 89 + b'\\n' for k in range(10_000))\n"
    "for i in range(200):\n"
    "    sys.stdout.buffer.write(template.replace(b'BLK', b'%03d' % i))\n"
    "    if i % 20 == 19:\n"
    "        sys.stderr.buffer.write(b'err %03d\\n' % i)\n"
    "        sys.stderr.buffer.flush()\n"
    "sys.stdout.buffer.write(b'final-a\\nfinal-b')\n"
    "sys.stdout.buffer.flush()\n"
    "sys.stderr.buffer.write(b'err end\\n')\n"
)


def _stdout_tail(count: int) -> list[bytes]:
    lines = [b"final-a\n", b"final-b"]
    block, k = BLOCKS - 1, LINES_A_BLOCK - 1
    while len(lines) < count:
        lines.insert(0, b"%03d-%05d " % (block, k) + b"." * 89 + b"\n")
        block, k = (block - 1, LINES_A_BLOCK - 1) if k == 0 else (block, k - 1)
    return lines[len(lines) - count :]


STDERR_LINES = [b"err %03d\n" % i for i in range(19, BLOCKS, 20)] + [b"err end\n"]


async def _measured(manager: Manager, process_id: str, **arguments: Any) -> bytes:
    tracemalloc.start()
    try:
        result = await manager.output(process_id, **arguments)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000 + len(result), f"{arguments}: peak {peak / 1e6:.1f} MB"
    return result


async def test_tail_of_a_200_mb_log_reads_only_its_end(store_url: str) -> None:
    async with Manager(store_url, max_output_bytes=None) as manager:
        process_id = await manager.start(Command([sys.executable, "-c", BIG_WRITER]))
        info = await manager.wait_for(process_id, timeout=120)
        assert info.status is Status.FINISHED, info.error
        assert info.output_size == BLOCKS * LINES_A_BLOCK * 100 + 15 + 8 * len(STDERR_LINES)

        # 25,000 lines: 2.5 MB, over the last three chunks of stdout at least.
        for count in (1, 2, 3, 25_000):
            tail = await _measured(manager, process_id, stream="stdout", tail=count)
            assert tail == b"".join(_stdout_tail(count))
        for count in (1, 5, 25_000):
            tail = await _measured(manager, process_id, stream="stderr", tail=count)
            assert tail == b"".join(STDERR_LINES[-count:])
        # Both streams: the last lines of the log as it was read (its last 5 MB, here).
        end = await _log_end(manager, process_id, 5_000_000)
        for count in (1, 25_000):
            assert await _measured(manager, process_id, tail=count) == last_lines(end, count)


async def _log_end(manager: Manager, process_id: str, size: int) -> bytes:
    pieces: list[bytes] = []
    before = None
    while sum(map(len, pieces)) < size:
        page = await manager.store.read_output_before(process_id, before, None, 16)
        pieces += [data for _, _, data in page]
        assert len(page) == 16
        before = page[-1][0]
    return b"".join(reversed(pieces))


async def test_stream_output_reads_a_long_log_a_page_at_a_time(manager: Manager) -> None:
    # ~40 chunks (each at most 1 MiB): more than one page of the follower; all of it, once,
    # in order, on each stream and both.
    script = "head -c 20000000 /dev/zero | tr '\\0' o; head -c 20000000 /dev/zero | tr '\\0' e >&2"
    process_id = await manager.start(Command(["sh", "-c", script]))
    await manager.wait_for(process_id, timeout=60)
    for stream, size in ((None, 40_000_000), ("stdout", 20_000_000), ("stderr", 20_000_000)):
        followed = [chunk async for chunk in manager.stream_output(process_id, stream=stream)]
        assert len(followed) > 16
        assert sum(len(chunk) for chunk in followed) == size
        assert b"".join(followed) == await manager.output(process_id, stream=stream)
