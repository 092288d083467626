"""The optional error log: a block per failed process, appended with aiofiles."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import aiofiles

from .store import Store

log = logging.getLogger(__name__)
TAIL_LINES = 20
_TAIL_BYTES = 64 * 1024
_PAGE = 4


async def append_error_block(path: str, store: Store, process_id: str, message: str | None) -> None:
    """Append: a line with the UTC time, the id and the message, then the output's last lines."""
    try:
        # Read from the end, a few chunks at a time: never the whole log of a failed process.
        pieces: list[bytes] = []
        before = None
        while sum(map(len, pieces)) < _TAIL_BYTES:
            page = await store.read_output_before(process_id, before, None, _PAGE)
            pieces += [data for _, _, data in page]
            if len(page) < _PAGE:
                break
            before = page[-1][0]
        tail = b"".join(reversed(pieces))[-_TAIL_BYTES:]
        lines = tail.decode("utf-8", "backslashreplace").splitlines()[-TAIL_LINES:]
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        block = f"{stamp}\t{process_id}\t{message or 'failed'}\n"
        block += "".join(f"    {line}\n" for line in lines)
        async with aiofiles.open(path, "a", encoding="utf-8") as handle:
            await handle.write(block)
    except Exception:
        # The error log is a convenience: failing to write it must not fail the manager.
        log.exception(
            "process %s: could not append to the error log %s",
            process_id,
            path,
            extra={"process_id": process_id},
        )
