"""The store's own ceiling for B3/B7's one-step processes: the writes and reads one process
costs the manager's store (insert, claim, pid and first step, the step's output and the
finish, one read of the result), with no executor, no pipe and no event loop work beyond
the store's, at concurrency = CPU count, in this process. No manager running its processes
in one event loop can go faster than this on the same store: it bounds what a target
stated against a peer's multi-process workers can ask of B3 and B7.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

from aiobgproc._location import open_store
from aiobgproc.store import NewProcess
from benchmarks.harness import TRIVIAL_STEP

_SPEC = {"kind": "process", "steps": [{"name": TRIVIAL_STEP}], "cwd": None, "env": None}


async def store_ceiling(location: str, count: int) -> float:
    """One-step processes per second through the store alone (see the module)."""
    store = open_store(location)
    await store.open()
    lanes = os.cpu_count() or 1
    owner = f"ceiling-{uuid.uuid4().hex[:8]}"

    async def lane(first: int) -> None:
        for index in range(first, count, lanes):
            process_id = uuid.uuid4().hex
            new = NewProcess(process_id, "process", _SPEC, {"x": index}, None, 1, time.time())
            await store.insert(new)
            for record in await store.claim(owner, time.time(), 1):
                claim = record.claim(owner)
                await store.set_os_pid(claim, os.getpid(), None, (0, TRIVIAL_STEP))
                await store.commit_step(
                    claim, 0, TRIVIAL_STEP, {"x": index}, time.time(), final=True
                )
            await store.get(process_id)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(lane(first) for first in range(lanes)))
        return count / (time.perf_counter() - started)
    finally:
        await store.close()
