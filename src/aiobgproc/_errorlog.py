"""The optional error log: a block per failed process, appended with aiofiles."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import aiofiles

from .store import Store

log = logging.getLogger(__name__)
TAIL_LINES = 20
_TAIL_BYTES = 64 * 1024


async def append_error_block(path: str, store: Store, process_id: str, message: str | None) -> None:
    """Append: a line with the UTC time, the id and the message, then the output's last lines."""
    try:
        chunks = await store.read_output(process_id)
        tail = b"".join(data for _, data in chunks)[-_TAIL_BYTES:]
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
