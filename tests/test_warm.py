"""The warm executor: if it dies it is restarted, and nothing is lost."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from aiobgproc import Manager, Process, Status, Step
from helpers.waiting import until

WAIT = 30.0


def _is_zygote(proc: psutil.Process) -> bool:
    try:
        return "aiobgproc._child.zygote" in " ".join(proc.cmdline()) and proc.status() != "zombie"
    except psutil.Error:
        return False


def _zygote() -> psutil.Process:
    """This test's warm executor: the one child of this process that is one."""
    found = [child for child in psutil.Process().children() if _is_zygote(child)]
    assert len(found) == 1, found
    return found[0]


def _zygote_of(executor_pid: int) -> psutil.Process:
    """The warm executor that forked this (running) executor: its parent."""
    parent = psutil.Process(executor_pid).parent()
    assert parent is not None
    assert _is_zygote(parent)
    assert parent.ppid() == os.getpid()
    return parent


async def _kill(proc: psutil.Process) -> None:
    """SIGKILL it and wait until it is dead; reaping it is the manager's business."""
    proc.send_signal(signal.SIGKILL)

    async def dead() -> bool:
        return not _is_zygote(proc)

    await until(dead, timeout=WAIT, what=f"warm executor {proc.pid} to die")


async def _executor_pid(manager: Manager) -> int:
    """Run a one-step process; the OS pid of the executor that ran it."""
    process_id = await manager.start(Process([Step("stepmods.basic:whoami")]))
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.FINISHED, info
    assert info.output is not None
    return int(info.output["os_pid"])


async def test_a_killed_warm_executor_is_restarted_for_the_next_run(
    store_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with Manager(store_path) as manager:
        assert manager.warm
        await _executor_pid(manager)
        first = _zygote()
        await _kill(first)
        # Idle meanwhile: the next run starts a new one and runs there.
        await _executor_pid(manager)
        second = _zygote()
        assert second.pid != first.pid
        assert second.is_running()
    # The run after the death was forked by the new one, not spawned cold.
    assert "warm executor unavailable" not in caplog.text


async def test_a_step_running_when_the_warm_executor_dies_finishes(
    store_path: Path, tmp_path: Path
) -> None:
    """The executors it forked are not its to stop: they run on, their output is kept and
    their result recorded, and the next run gets a new warm executor."""
    gate = tmp_path / "gate"
    async with Manager(store_path) as manager:
        process_id = await manager.start(
            Process([Step("stepmods.basic:gated"), Step("stepmods.basic:add", "after")]),
            {"gate": str(gate)},
        )

        async def has_pid() -> bool:
            return (await manager.info(process_id)).os_pid is not None

        await until(has_pid, timeout=WAIT, what="the executor to start")
        executor = (await manager.info(process_id)).os_pid
        assert executor is not None
        zygote = _zygote_of(executor)
        await _kill(zygote)
        gate.touch()
        info = await manager.wait_for(process_id, timeout=WAIT)
        assert info.status is Status.FINISHED, info
        assert info.output is not None
        assert info.output["os_pid"] == executor
        assert info.output["after"] is True  # the second step ran after the first's commit
        assert not psutil.pid_exists(executor) or psutil.Process(executor).status() in (
            psutil.STATUS_ZOMBIE,
            psutil.STATUS_DEAD,
        )
        await _executor_pid(manager)
        assert _zygote().pid != zygote.pid


async def test_repeated_deaths_lose_no_run_and_leave_no_warm_executor(store_path: Path) -> None:
    async with Manager(store_path) as manager:
        for _ in range(3):
            await _executor_pid(manager)
            await _kill(_zygote())
        await _executor_pid(manager)
        assert len(await manager.list(status="finished")) == 4
    assert not [child for child in psutil.Process().children() if _is_zygote(child)]


async def test_a_run_too_big_for_a_fork_request_is_still_forked_and_harms_no_other(
    store_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An environment and input of hundreds of KiB do not fit one control message: the
    child gets them on its channel. The zygote is not taken for dead (restarting it would
    stop the executors it runs), and the run is not spawned cold."""
    gate = tmp_path / "gate"
    big = {"AIOBGPROC_TEST_BIG1": "x" * 120_000, "AIOBGPROC_TEST_BIG2": "y" * 120_000}
    async with Manager(store_path, concurrency=2) as manager:
        running = await manager.start(Process([Step("stepmods.basic:gated")]), {"gate": str(gate)})

        async def started() -> bool:
            return (await manager.info(running)).os_pid is not None

        await until(started, timeout=WAIT, what="the first executor to start")
        zygote = _zygote_of((await manager.info(running)).os_pid or 0)
        names = [*big, "AIOBGPROC_ATTEMPT"]
        huge = await manager.start(
            Process([Step("stepmods.basic:environ")], env=big),
            {"names": names, "ballast": "z" * 300_000},
        )
        info = await manager.wait_for(huge, timeout=WAIT)
        assert info.status is Status.FINISHED, info
        assert info.output == {**big, "AIOBGPROC_ATTEMPT": "1"}
        gate.touch()
        first = await manager.wait_for(running, timeout=WAIT)
        assert first.status is Status.FINISHED, first
        assert _zygote().pid == zygote.pid  # the same one all along
    assert "warm executor unavailable" not in caplog.text
