"""Spare executors (with the warm executor, executors not reused): forked ahead of the claims
that give them to step processes, their pid and first step recorded with the claim. Each run
is still a fresh executor's: its own output, environment, directory and event log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil

from aiobgproc import Manager, Process, Status, Step
from aiobgproc._os.spares import IDLE_SECONDS
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
