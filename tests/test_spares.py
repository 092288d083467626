"""Spare executors (with the warm executor, executors not reused): forked ahead of the claims
that give them to step processes, their pid and first step recorded with the claim. Each run
is still a fresh executor's: its own output, environment, directory and event log."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psutil

from aiobgproc import Manager, Process, Status, Step
from aiobgproc._os.spares import IDLE_SECONDS
from aiobgproc._steps_runner import StepsRunner
from helpers.waiting import until

WAIT = 30.0
REPORT = "stepmods.reusing:report"


def _zygote_children(manager: Manager) -> list[psutil.Process]:
    zygote = manager._scheduler.context.zygote
    assert zygote is not None
    assert zygote.os_pid is not None
    return psutil.Process(zygote.os_pid).children()


async def test_spares_run_step_processes_as_fresh_executors(store_url: str, tmp_path: Path) -> None:
    work = Process([Step(REPORT)], cwd=str(tmp_path), env={"REUSE_EXTRA": "mine"})
    async with Manager(store_url, concurrency=2) as manager:
        ids = [await manager.start(work, {"n": index}) for index in range(12)]
        infos = [await manager.wait_for(process_id, timeout=WAIT) for process_id in ids]
        spares = manager._scheduler.spares
        assert spares is not None
        assert spares.pinned > 0  # the claims gave spares to these processes
        pids: set[Any] = set()
        for process_id, info in zip(ids, infos, strict=True):
            assert info.status is Status.FINISHED
            assert info.output is not None
            assert info.output["process"] == process_id
            assert (info.output["extra"], info.output["cwd"]) == ("mine", str(tmp_path))
            assert info.output["runs_here"] == 1  # a fresh executor each
            assert await manager.output(process_id) == (
                f"out {process_id}\nerr {process_id}\n".encode()
            )
            pids.add(info.output["os_pid"])
        assert len(pids) == len(ids)
        # The step's start is in the event log after the claim, as without a spare.
        seen = []
        async for event in manager.events(since=0, process_id=ids[-1]):
            seen.append((str(event.status), event.step))
            if str(event.status) == "finished":
                break
        assert seen == [("queued", None), ("running", None), ("running", "0"), ("finished", None)]


async def test_an_idle_manager_keeps_no_spare_and_closing_ends_them(tmp_path: Path) -> None:
    async with Manager(tmp_path / "jobs.db", concurrency=2) as manager:
        work = Process([Step(REPORT)])
        ids = [await manager.start(work) for _ in range(6)]
        for process_id in ids:
            await manager.wait_for(process_id, timeout=WAIT)

        async def none_left() -> bool:
            return not _zygote_children(manager)

        await until(none_left, timeout=IDLE_SECONDS + 10, what="the spares to expire")
        # Work again: spares come back; closing ends them with the warm executor.
        more = [await manager.start(work) for _ in range(4)]
        for process_id in more:
            await manager.wait_for(process_id, timeout=WAIT)
        children = _zygote_children(manager)
    for child in children:
        try:
            child.wait(timeout=10)
        except psutil.NoSuchProcess:
            pass
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


async def test_a_process_cancelled_before_its_spare_begins_never_runs(tmp_path: Path) -> None:
    """The claim recorded the spare's pid; a cancel the runner notices before the spare
    begins keeps the step from running at all (a fresh executor's pid write would have)."""
    log = tmp_path / "ran.log"
    record = Process([Step("stepmods.basic:record", "ran")])
    store = tmp_path / "jobs.db"
    async with Manager(store, concurrency=2) as manager, Manager(store, run=False) as client:
        # Started by a client, claimed by the manager (a start of its own with a free slot
        # would store its process claimed, without a spare).
        for process_id in [await client.start(Process([Step(REPORT)])) for _ in range(3)]:
            await manager.wait_for(process_id, timeout=WAIT)
        spares = manager._scheduler.spares
        assert spares is not None

        async def spare_ready() -> bool:
            return bool(spares._ready)

        await until(spare_ready, timeout=WAIT, what="a spare")
        taken = asyncio.Event()
        original, begin = StepsRunner._start_executor, StepsRunner._begin
        begun: list[str] = []

        async def held(self: StepsRunner, recorder: Any) -> Any:
            started = await original(self, recorder)
            if self._on_spare:
                taken.set()
                await self.stop  # until the runner saw the cancel
            return started

        async def counted(self: StepsRunner, *args: Any) -> None:
            begun.append(self.record.id)  # the job is sent: the step would run
            await begin(self, *args)

        StepsRunner._start_executor = held  # type: ignore[method-assign]
        StepsRunner._begin = counted  # type: ignore[method-assign, assignment]
        try:
            process_id = await client.start(record, {"log": str(log)})
            await asyncio.wait_for(taken.wait(), WAIT)
            info = await client.cancel(process_id)
        finally:
            StepsRunner._start_executor = original  # type: ignore[method-assign]
            StepsRunner._begin = begin  # type: ignore[method-assign]
        assert info.status is Status.CANCELLED
        await until(lambda: _settled(manager, process_id), timeout=WAIT, what="the run's end")
    assert process_id not in begun, "the executor was given the job of a cancelled process"
    assert not log.exists(), "the step ran although its process was cancelled first"


async def _settled(manager: Manager, process_id: str) -> bool:
    return process_id not in manager._scheduler.runs
