"""Schedules (API.md "Retries, restart and schedules"), on each store."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aiobgproc import (
    Command,
    InvalidSpecError,
    Manager,
    Process,
    ScheduleInfo,
    ScheduleNotFoundError,
    Status,
    Step,
)
from helpers.procs import start_worker

WAIT = 30.0


async def fired(client: Manager, name: str) -> list[Any]:
    """The processes schedule ``name`` started, oldest first."""
    return list(reversed(await client.list(meta={"schedule": name}, limit=1000)))


async def until(predicate: Any, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_an_every_schedule_starts_its_work_at_each_interval(store_url: str) -> None:
    async with Manager(store_url, concurrency=4) as manager:
        before = time.time()
        info = await manager.schedule(
            "tick", Command(["echo", "tick"]), every=timedelta(seconds=0.4), data=None
        )
        assert isinstance(info, ScheduleInfo)
        assert (info.name, info.cron, info.every) == ("tick", None, 0.4)
        assert before + 0.4 <= info.next_run_at.timestamp() <= time.time() + 0.4
        assert (info.last_run_at, info.last_process_id) == (None, None)

        async def three() -> bool:
            return len(await fired(manager, "tick")) >= 3

        await until(three, "three runs")
        processes = await fired(manager, "tick")
        assert all(process.label == "tick" for process in processes)
        assert all(process.meta == {"schedule": "tick"} for process in processes)
        (listed,) = await manager.schedules()
        assert listed.last_process_id in {process.id for process in processes}
        assert listed.last_run_at is not None
        await manager.unschedule("tick")
        assert await manager.schedules() == []
        for process in processes:
            assert (await manager.wait_for(process.id, timeout=WAIT)).status is Status.FINISHED
        # One interval apart, each (a due time starts one process, not a burst).
        starts = [process.created_at.timestamp() for process in processes]
        assert all(0.2 < later - earlier < 1.5 for earlier, later in itertools.pairwise(starts))


async def test_each_due_time_fires_once_with_three_workers(store_url: str, tmp_path: Path) -> None:
    async with Manager(store_url, run=False) as client:
        await client.schedule("beat", Command(["true"]), every=0.5, queue="beats")
        workers = [
            start_worker(store_url, tmp_path, f"w{index}", "--concurrency", "2")
            for index in range(3)
        ]
        try:
            started = time.monotonic()

            async def enough() -> bool:
                return len(await fired(client, "beat")) >= 6

            await until(enough, "six runs")
            await client.unschedule("beat")
            elapsed = time.monotonic() - started
            processes = await fired(client, "beat")
            for process in processes:
                await client.wait_for(process.id, timeout=WAIT)
        finally:
            for worker in workers:
                worker.signal(signal.SIGTERM)
            for worker in workers:
                await worker.wait_exit(WAIT)
                worker.stop()
    starts = [process.created_at.timestamp() for process in processes]
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    # Never two processes for one due time (they would be milliseconds apart); a fire made
    # late by a busy machine shortens the gap after it, hence not half the interval.
    assert all(gap > 0.1 for gap in gaps), gaps
    assert len(processes) <= elapsed / 0.5 + 2
    assert all(process.queue == "beats" for process in processes)


async def test_missed_times_give_one_run_not_a_burst(store_url: str) -> None:
    async with Manager(store_url, run=False) as client:
        await client.schedule("catch-up", Command(["true"]), every=1.0)
        # Clients never fire: nothing runs while no manager that runs processes is open.
        await asyncio.sleep(3.5)
        assert await fired(client, "catch-up") == []
        async with Manager(store_url, concurrency=2) as manager:

            async def one() -> bool:
                return len(await fired(client, "catch-up")) >= 1

            await until(one, "the missed run")
            assert len(await fired(client, "catch-up")) == 1
            (info,) = await manager.schedules()
            # The next due time keeps the cadence: within one interval from now.
            assert time.time() < info.next_run_at.timestamp() <= time.time() + 1.0
            await manager.unschedule("catch-up")
            for process in await fired(client, "catch-up"):
                await manager.wait_for(process.id, timeout=WAIT)


async def test_work_still_running_at_the_next_time_does_not_stop_another(
    store_url: str, tmp_path: Path
) -> None:
    """Documented choice: each due time starts its process, whatever the last one does
    (a queue with a limit of 1 serialises them instead)."""
    flag = tmp_path / "go"
    script = 'while [ ! -e "$1" ]; do sleep 0.01; done'
    async with Manager(store_url, concurrency=4) as manager:
        await manager.schedule("overlap", Command(["sh", "-c", script, "sh", str(flag)]), every=0.3)

        async def two_running() -> bool:
            processes = await fired(manager, "overlap")
            return sum(process.status is Status.RUNNING for process in processes) >= 2

        await until(two_running, "two runs at once")
        await manager.unschedule("overlap")
        flag.touch()
        for process in await fired(manager, "overlap"):
            assert (await manager.wait_for(process.id, timeout=WAIT)).status is Status.FINISHED


async def test_cron_schedules_replace_and_options(store_url: str) -> None:
    async with Manager(store_url, run=False) as client:
        info = await client.schedule(
            "nightly",
            Process([Step("stepmods.basic:echo")]),
            cron="30 2 * * *",
            data={"report": "sales"},
            label="sales report",
            meta={"team": "x"},
            queue="reports",
            priority=5,
            timeout=600,
        )
        now = datetime.now(UTC)
        assert (info.cron, info.every) == ("30 2 * * *", None)
        assert info.next_run_at > now
        assert (info.next_run_at.hour, info.next_run_at.minute) == (2, 30)
        assert info.next_run_at - now <= timedelta(days=1)
        replaced = await client.schedule("nightly", Command(["true"]), every=3600)
        (listed,) = await client.schedules()
        assert listed == replaced
        assert listed.every == 3600.0
        assert listed.cron is None
        assert listed.to_dict()["next_run_at"] == listed.next_run_at.isoformat()
        with pytest.raises(ScheduleNotFoundError):
            await client.unschedule("no-such-schedule")
        with pytest.raises(LookupError):
            await client.unschedule("no-such-schedule")


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"cron": "* * * * *", "every": 5},
        {"cron": "61 * * * *"},
        {"cron": "* * *"},
        {"cron": 5},
        {"every": 0},
        {"every": -1},
        {"every": float("nan")},
        {"every": "5"},
        {"every": timedelta(0)},
        {"every": 1e-9},
        {"cron": "\u00b2 * * * *"},
        {"cron": "*/\u00b2 * * * *"},
        {"every": 5, "delay": 3},
        {"every": 5, "after": ["x"]},
        {"every": 5, "queue": "bad name"},
        {"every": 5, "priority": 5000},
        {"every": 5, "meta": [1]},
        {"every": 5, "timeout": -1},
        {"every": 5, "data": [1]},
    ],
)
async def test_bad_schedules_store_nothing(store_url: str, options: dict[str, Any]) -> None:
    async with Manager(store_url, run=False) as client:
        with pytest.raises(InvalidSpecError):
            await client.schedule("s", Command(["true"]), **options)
        for name in ("", "x" * 201, 5):
            with pytest.raises(InvalidSpecError):
                await client.schedule(name, Command(["true"]), every=5)  # type: ignore[arg-type]
        with pytest.raises(InvalidSpecError):
            await client.schedule("s", "not work", every=5)
        assert await client.schedules() == []
