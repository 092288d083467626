"""Command(stop_signal=): the signal a timeout or cancel sends first, before SIGKILL after
the grace period (API.md "Controlling running commands, and their output")."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from aiobgproc import Command, InvalidSpecError, Manager, Status

WAIT = 30.0
# Says which signal stopped it, then exits at once; ignores SIGTERM.
SCRIPT = (
    "trap 'echo got INT; exit 0' INT; trap 'echo got TERM' TERM; echo ready;"
    " while :; do sleep 0.05; done"
)


async def _ready(manager: Manager, process_id: str) -> None:
    deadline = time.monotonic() + WAIT
    while b"ready" not in await manager.output(process_id):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("how", ["cancel", "timeout"])
async def test_a_stop_signal_is_sent_first(store_url: str, how: str) -> None:
    async with Manager(store_url, concurrency=2, grace_period=10.0) as manager:
        command = Command(
            ["sh", "-c", SCRIPT],
            stop_signal=signal.SIGINT,
            timeout=1.0 if how == "timeout" else None,
        )
        process_id = await manager.start(command)
        await _ready(manager, process_id)
        started = time.monotonic()
        if how == "cancel":
            info = await manager.cancel(process_id)
        else:
            info = await manager.wait_for(process_id, timeout=WAIT)
        # The shell left on SIGINT at once: no wait for the 10 s grace period.
        assert time.monotonic() - started < 5.0
        assert info.status is (Status.CANCELLED if how == "cancel" else Status.TIMEOUT)
        assert b"got INT" in await manager.output(process_id)
        assert b"got TERM" not in await manager.output(process_id)


@pytest.mark.parametrize("value", [0, -1, 99999, "SIGINT", 2.0, True, None])
async def test_a_bad_stop_signal_stores_nothing(store_url: str, value: Any, tmp_path: Path) -> None:
    async with Manager(store_url, run=False) as client:
        with pytest.raises(InvalidSpecError):
            await client.start(Command(["true"], stop_signal=value))
        assert await client.list() == []
