"""Command(stop_signal=): the signal a timeout or cancel sends first, before SIGKILL after
the grace period (API.md "Controlling running commands, and their output")."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

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


_IGNORING: Final = """
import asyncio, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job of a script has it
from aiobgproc import Command, Manager
async def main(store, script):
    async with Manager(store, grace_period=10.0) as manager:
        process_id = await manager.start(Command(["sh", "-c", script], stop_signal=signal.SIGINT))
        while b"ready" not in await manager.output(process_id):
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await manager.cancel(process_id)
        print(round(time.monotonic() - started, 1), (await manager.output(process_id)).decode())
asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_a_stop_signal_the_manager_ignores_still_reaches_the_command(
    store_path: Path,
) -> None:
    # A signal ignored by the manager is ignored by its children from birth (a shell cannot
    # even trap it): the command gets it back to its default first.
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _IGNORING, str(store_path), SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seconds, output = done.stdout.split(" ", 1)
    assert "got INT" in output
    assert float(seconds) < 5.0  # not the 10 s grace period
