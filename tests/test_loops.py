"""The suite runs on the event loop AIOBGPROC_TEST_LOOP names (scripts/check: both)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from aiobgproc import Command, Manager, Process, Status, Step


async def test_the_suite_runs_on_the_loop_it_was_asked_for() -> None:
    loop = asyncio.get_running_loop()
    if os.environ.get("AIOBGPROC_TEST_LOOP") == "uvloop":
        import uvloop

        assert isinstance(loop, uvloop.Loop), type(loop)
    else:
        assert type(loop).__module__.startswith("asyncio"), type(loop)


async def test_output_steps_and_many_commands_work_on_this_loop(store_path: Path) -> None:
    # What broke on uvloop (its read-pipe transport is no asyncio.ReadTransport subclass):
    # output was lost, steps failed, and every command logged an AssertionError.
    async with Manager(store_path, concurrency=8) as manager:
        echo = await manager.start(Command(["echo", "hi"]))
        assert (await manager.wait_for(echo, timeout=30)).status is Status.FINISHED
        assert await manager.output(echo) == b"hi\n"
        step = await manager.start(Process([Step("stepmods.basic:echo")]), {"x": 1})
        info = await manager.wait_for(step, timeout=30)
        assert info.status is Status.FINISHED, info.error
        assert info.output == {"x": 1}
        ids = [await manager.start(Command(["true"])) for _ in range(100)]
        for process_id in ids:
            assert (await manager.wait_for(process_id, timeout=30)).status is Status.FINISHED
