"""The event log (API.md "Controlling running commands, and their output": events): every
status change and step start of every process on the store, from any OS process, in commit
order, never skipping one; on each store."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from aiobgproc import (
    Command,
    Event,
    InvalidSpecError,
    Manager,
    Process,
    ProcessNotFoundError,
    Status,
    Step,
)
from helpers.procs import TESTS_DIR

POSTGRES_ON_EVERY_LOOP = True  # the store's contract and LISTEN/NOTIFY on each loop
WAIT = 30.0


async def collect(events: AsyncIterator[Event], count: int, timeout: float = WAIT) -> list[Event]:
    found: list[Event] = []
    async with asyncio.timeout(timeout):
        async for event in events:
            found.append(event)
            if len(found) == count:
                break
    return found


async def test_each_change_and_step_start_is_an_event(store_url: str) -> None:
    async with Manager(store_url, concurrency=2) as manager:
        events = manager.events(since=0)
        command = await manager.start(Command(["true"]))
        await manager.wait_for(command, timeout=WAIT)
        steps = await manager.start(
            Process({"one": Step("stepmods.basic:echo"), "two": Step("stepmods.basic:echo")})
        )
        await manager.wait_for(steps, timeout=WAIT)
        found = await collect(events, 8)
    assert [(event.process_id, event.status, event.step) for event in found] == [
        (command, Status.QUEUED, None),
        (command, Status.RUNNING, None),
        (command, Status.FINISHED, None),
        (steps, Status.QUEUED, None),
        (steps, Status.RUNNING, None),
        (steps, Status.RUNNING, "one"),
        (steps, Status.RUNNING, "two"),
        (steps, Status.FINISHED, None),
    ]
    seqs = [event.seq for event in found]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert all(event.at.tzinfo is not None for event in found)


async def test_since_resumes_after_an_event_and_none_means_from_now(store_url: str) -> None:
    async with Manager(store_url, run=False) as client:
        first = await client.start(Command(["true"]))
        await client.cancel(first)
        (created, cancelled) = await collect(client.events(since=0), 2)
        assert (created.status, cancelled.status) == (Status.QUEUED, Status.CANCELLED)
        later = client.events()  # from now on: the two above are not seen
        second = await client.start(Command(["true"]), queue="other")
        (event,) = await collect(later, 1)
        assert (event.process_id, event.status) == (second, Status.QUEUED)
        (resumed,) = await collect(client.events(since=created.seq), 1)
        assert resumed.seq == cancelled.seq
        # Filters.
        mine = client.events(since=0, process_id=second)
        (only,) = await collect(mine, 1)
        assert only.process_id == second
        queue = client.events(since=0, queue="other")
        assert [event.process_id for event in await collect(queue, 1)] == [second]


async def test_events_from_another_os_process_arrive_in_order(
    store_url: str, tmp_path: Any
) -> None:
    async with Manager(store_url, run=False) as client:
        events = client.events()
        script = (
            "import asyncio, sys\n"
            "from aiobgproc import Command, Manager\n"
            "async def main():\n"
            "    async with Manager(sys.argv[1], run=False) as other:\n"
            "        for _ in range(20):\n"
            "            await other.cancel(await other.start(Command(['true'])))\n"
            "asyncio.run(main())\n"
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, store_url, cwd=TESTS_DIR
        )
        found = await collect(events, 40)
        assert await proc.wait() == 0
    assert [event.status for event in found] == [Status.QUEUED, Status.CANCELLED] * 20
    seqs = [event.seq for event in found]
    assert seqs == sorted(seqs)
    assert seqs == list(range(seqs[0], seqs[0] + 40))  # none skipped


async def test_prune_deletes_the_events_of_what_it_prunes(store_url: str) -> None:
    async with Manager(store_url, run=False) as client:
        pruned = await client.start(Command(["true"]))
        await client.cancel(pruned)
        kept = await client.start(Command(["true"]))
        assert await client.prune(timedelta(0)) == 1
        (event,) = await collect(client.events(since=0), 1)
        assert event.process_id == kept
        await client.cancel(kept)


async def test_bad_event_filters(store_url: str) -> None:
    async with Manager(store_url, run=False) as client:
        for options in (
            {"since": -1},
            {"since": "5"},
            {"since": True},
            {"since": 2**63},
            {"queue": "bad name"},
        ):
            with pytest.raises(InvalidSpecError):
                client.events(**options)
        # An unknown process id: ProcessNotFoundError, as everywhere (on the first step: the
        # store is asked then), not a stream that waits forever.
        for unknown in ("0" * 32, "nope"):
            with pytest.raises(ProcessNotFoundError):
                await anext(aiter(client.events(since=0, process_id=unknown)))
