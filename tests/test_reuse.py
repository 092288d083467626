"""Reused executors (Manager(reuse_executors=N), worker --reuse-executors N): one executor
forked from the warm executor runs up to N processes one after another, each with its own
output, environment, directory, timeout, cancel and crash semantics."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

import psutil
import pytest

from aiobgproc import (
    InvalidSpecError,
    InvalidStateError,
    Manager,
    Process,
    ProcessInfo,
    Status,
    Step,
)
from helpers.procs import is_alive, start_worker
from helpers.waiting import until, until_status

WAIT = 30.0


def report(**options: Any) -> Process:
    return Process([Step("stepmods.reusing:report")], **options)


def output_of(info: ProcessInfo) -> dict[str, Any]:
    assert info.output is not None, info
    return info.output


async def run_one(manager: Manager, work: Process, data: dict[str, Any] | None = None) -> Any:
    process_id = await manager.start(work, data)
    info = await manager.wait_for(process_id, timeout=WAIT)
    return process_id, info


async def pid_of(manager: Manager) -> int:
    _, info = await run_one(manager, report())
    assert info.status is Status.FINISHED, info
    return int(output_of(info)["os_pid"])


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2", None])
def test_reuse_executors_must_be_a_whole_number_of_at_least_one(bad: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidSpecError, match="reuse_executors"):
        Manager(tmp_path / "jobs.db", reuse_executors=bad)


async def test_an_executor_runs_n_processes_each_with_its_own_output(store_url: str) -> None:
    """reuse_executors=3, one at a time: processes 1-3 share an executor, 4-6 the next, 7 a
    third; each one's output log, environment and attempt are its own."""
    async with Manager(store_url, concurrency=1, reuse_executors=3) as manager:
        runs = [await run_one(manager, report()) for _ in range(7)]
        for process_id, info in runs:
            assert info.status is Status.FINISHED, info
            assert output_of(info)["process"] == process_id
            assert output_of(info)["attempt"] == "1"
            assert (
                await manager.output(process_id, stream="stdout") == f"out {process_id}\n".encode()
            )
            assert (
                await manager.output(process_id, stream="stderr") == f"err {process_id}\n".encode()
            )
        pids = [output_of(info)["os_pid"] for _, info in runs]
        assert pids[0] == pids[1] == pids[2]
        assert pids[3] == pids[4] == pids[5]
        assert len({pids[0], pids[3], pids[6]}) == 3
        # Module state is shared within an executor (documented), not across executors.
        assert [output_of(info)["runs_here"] for _, info in runs] == [1, 2, 3, 1, 2, 3, 1]
        # The executor that ran its 3 processes exited (no zombie, no idle leftover).
        await until(
            lambda: _async(not is_alive_pid(pids[0])), timeout=WAIT, what="a used-up executor"
        )


async def _async(value: bool) -> bool:
    return value


def is_alive_pid(pid: int) -> bool:
    try:
        return is_alive(psutil.Process(pid))
    except psutil.Error:
        return False


async def test_environment_and_directory_do_not_carry_over(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    async with Manager(tmp_path / "jobs.db", concurrency=1, reuse_executors=10) as manager:
        _, first = await run_one(manager, report(env={"REUSE_EXTRA": "yes"}, cwd=elsewhere))
        _, second = await run_one(manager, report())
    assert output_of(first)["os_pid"] == output_of(second)["os_pid"]
    assert (output_of(first)["extra"], output_of(first)["cwd"]) == ("yes", str(elsewhere))
    assert output_of(second)["extra"] is None
    assert output_of(second)["cwd"] == os.getcwd()  # where a fresh executor starts


async def test_what_a_step_does_to_the_environment_is_undone_for_the_next(
    tmp_path: Path,
) -> None:
    """Found by a black-box probe: a variable a step set (or removed) reached the next
    process on the same executor."""
    async with Manager(tmp_path / "jobs.db", concurrency=1, reuse_executors=10) as manager:
        _, mutated = await run_one(manager, Process([Step("stepmods.reusing:mutate_environ")]))
        _, after = await run_one(manager, report())
    assert output_of(after)["os_pid"] == output_of(mutated)["os_pid"]
    assert output_of(after)["extra"] is None
    assert output_of(after)["home"] == os.environ.get("HOME")
    assert output_of(after)["path"] == os.environ.get("PATH")


async def test_a_suspend_that_races_the_end_of_a_run_never_stops_the_next_one(
    tmp_path: Path,
) -> None:
    """Found by a black-box probe (~1 round in 75): suspend() carried out as the run ended
    left its reused executor stopped, and the next process hung on it. Rounds of: A naps,
    B waits behind it, suspend(A) lands around A's end; B must always finish."""
    nap = Process([Step("stepmods.reusing:nap")])
    async with Manager(tmp_path / "jobs.db", concurrency=1, reuse_executors=1000) as manager:
        for round_ in range(40):
            first = await manager.start(nap, {"nap": 0.02})
            second = await manager.start(nap, {"nap": 0.0})
            await until_status(manager, first, Status.RUNNING, timeout=WAIT)
            await asyncio.sleep(0.015 + (round_ % 10) * 0.001)  # around the end of its nap
            with contextlib.suppress(InvalidStateError):
                await manager.suspend(first)
            with contextlib.suppress(InvalidStateError):
                await manager.resume(first)
            finished = await manager.wait_for(second, timeout=WAIT)
            assert finished.status is Status.FINISHED, (round_, finished)


async def test_streams_a_step_replaced_are_put_back_for_the_next_process(tmp_path: Path) -> None:
    async with Manager(tmp_path / "jobs.db", concurrency=1, reuse_executors=10) as manager:
        _, first = await run_one(
            manager,
            Process([Step("stepmods.reusing:redirect_streams")]),
            {"gone": str(tmp_path / "d")},
        )
        assert first.status is Status.FINISHED, first
        process_id, second = await run_one(manager, report())
        assert output_of(second)["os_pid"] == output_of(first)["os_pid"]
        assert output_of(second)["cwd"] == os.getcwd()
        assert await manager.output(process_id) == f"out {process_id}\nerr {process_id}\n".encode()


async def test_a_timeout_ends_that_executor_and_the_next_process_gets_a_fresh_one(
    tmp_path: Path,
) -> None:
    async with Manager(tmp_path / "jobs.db", concurrency=1, reuse_executors=10) as manager:
        before = await pid_of(manager)
        slow = Process([Step("stepmods.basic:gated")], timeout=0.5)
        _, timed_out = await run_one(manager, slow, {"gate": str(tmp_path / "never")})
        assert timed_out.status is Status.TIMEOUT, timed_out
        assert not is_alive_pid(before)
        after = await pid_of(manager)
        assert after != before


async def test_cancel_ends_that_executor(tmp_path: Path) -> None:
    async with Manager(tmp_path / "jobs.db", concurrency=1, reuse_executors=10) as manager:
        before = await pid_of(manager)
        process_id = await manager.start(
            Process([Step("stepmods.basic:gated")]), {"gate": str(tmp_path / "never")}
        )
        await until_status(manager, process_id, Status.RUNNING, timeout=WAIT)
        cancelled = await manager.cancel(process_id)
        assert cancelled.status is Status.CANCELLED
        assert not is_alive_pid(before)
        assert await pid_of(manager) != before


async def test_a_crash_is_that_process_s_error_and_the_next_gets_a_fresh_executor(
    tmp_path: Path,
) -> None:
    async with Manager(tmp_path / "jobs.db", concurrency=1, reuse_executors=10) as manager:
        before = await pid_of(manager)
        _, crashed = await run_one(manager, Process([Step("stepmods.reusing:crash")]))
        assert crashed.status is Status.ERROR
        assert crashed.error is not None
        assert crashed.error.type == "ExecutorDiedError"
        assert await pid_of(manager) != before


async def test_a_failing_step_or_a_pause_keeps_the_executor(tmp_path: Path) -> None:
    async with Manager(tmp_path / "jobs.db", concurrency=1, reuse_executors=10) as manager:
        before = await pid_of(manager)
        _, failed = await run_one(manager, Process([Step("stepmods.reusing:fail")]))
        assert failed.status is Status.ERROR
        assert failed.error is not None
        assert failed.error.type == "ValueError"
        paused_id, paused = await run_one(
            manager,
            Process([Step("stepmods.pausing:pause_if_asked"), Step("stepmods.reusing:report")]),
            {"pause": True},
        )
        assert paused.status is Status.INTERRUPTED, paused
        assert await pid_of(manager) == before
        await manager.proceed(paused_id, {"pause": False})
        resumed = await manager.wait_for(paused_id, timeout=WAIT)
        assert resumed.status is Status.FINISHED, resumed
        assert output_of(resumed)["os_pid"] == before


async def test_what_a_step_leaves_running_is_ended_and_the_executor_kept(tmp_path: Path) -> None:
    async with Manager(tmp_path / "jobs.db", concurrency=1, reuse_executors=10) as manager:
        before = await pid_of(manager)
        left = {}
        for step in ("leave_group_child", "leave_session_child", "leave_daemon"):
            _, info = await run_one(manager, Process([Step(f"stepmods.escaping:{step}")]))
            assert info.status is Status.FINISHED, info
            left[step] = next(iter(info.output.values()))
        for step, pid in left.items():
            assert not is_alive_pid(pid), f"{step} left pid {pid} running"
        assert await pid_of(manager) == before


async def test_a_thread_left_running_retires_the_executor(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    async with Manager(tmp_path / "jobs.db", concurrency=1, reuse_executors=10) as manager:
        _, threaded = await run_one(
            manager, Process([Step("stepmods.reusing:leave_thread")]), {"gate": str(gate)}
        )
        assert threaded.status is Status.FINISHED
        gate.touch()
        assert await pid_of(manager) != output_of(threaded)["os_pid"]


async def test_concurrent_runs_each_keep_their_own_executor(tmp_path: Path) -> None:
    async with Manager(tmp_path / "jobs.db", concurrency=2, reuse_executors=100) as manager:
        ids = [await manager.start(report()) for _ in range(40)]
        infos = [await manager.wait_for(process_id, timeout=WAIT) for process_id in ids]
        for process_id, info in zip(ids, infos, strict=True):
            assert info.status is Status.FINISHED, info
            assert await manager.output(process_id) == (
                f"out {process_id}\nerr {process_id}\n".encode()
            )
        # Never more executors than processes at once; each ran several.
        assert len({output_of(info)["os_pid"] for info in infos}) <= 2


async def test_the_worker_command_reuses_executors(tmp_path: Path) -> None:
    store = tmp_path / "jobs.db"
    async with Manager(store, run=False) as client:
        ids = [await client.start(report()) for _ in range(3)]
    worker = start_worker(
        store, tmp_path, "worker", "--burst", "--concurrency", "1", "--reuse-executors", "2"
    )
    try:
        assert await worker.wait_exit(WAIT) == 0, worker.stderr()
    finally:
        worker.stop()
    async with Manager(store, run=False) as client:
        pids = [output_of(await client.info(process_id))["os_pid"] for process_id in ids]
    assert pids[0] == pids[1] != pids[2]


@pytest.mark.parametrize("reuse", [1, 10])
async def test_a_process_whose_directory_is_gone_fails_saying_so(
    tmp_path: Path, reuse: int
) -> None:
    """Found by a black-box probe: it ended 'the executor exited with code 70'."""
    gone = tmp_path / "gone"
    gone.mkdir()
    store = tmp_path / "jobs.db"
    async with Manager(store, run=False) as client:
        process_id = await client.start(report(cwd=gone))
    gone.rmdir()
    async with Manager(store, concurrency=1, reuse_executors=reuse) as manager:
        failed = await manager.wait_for(process_id, timeout=WAIT)
        assert failed.status is Status.ERROR
        assert failed.error is not None
        assert failed.error.type == "FileNotFoundError"
        assert str(gone) in failed.error.message
        _, after = await run_one(manager, report())
        assert after.status is Status.FINISHED


# -- found by a code review of the change: each a regression test ---------------------------


async def test_what_a_step_left_in_a_replaced_stream_s_buffer_is_its_own_output(
    tmp_path: Path,
) -> None:
    async with Manager(tmp_path / "jobs.db", concurrency=1, reuse_executors=10) as manager:
        first_id, first = await run_one(
            manager, Process([Step("stepmods.reusing:print_then_replace_stdout")])
        )
        second_id, second = await run_one(manager, report())
        assert await manager.output(first_id) == f"unflushed {first_id}".encode()
        assert await manager.output(second_id, stream="stdout") == f"out {second_id}\n".encode()
        assert output_of(second)["os_pid"] == output_of(first)["os_pid"]


async def test_a_step_that_closed_stdout_retires_the_executor(tmp_path: Path) -> None:
    async with Manager(tmp_path / "jobs.db", concurrency=1, reuse_executors=10) as manager:
        _, closed = await run_one(manager, Process([Step("stepmods.reusing:close_stdout")]))
        assert closed.status is Status.FINISHED, closed
        process_id, after = await run_one(manager, report())
        assert after.status is Status.FINISHED, after
        assert output_of(after)["os_pid"] != output_of(closed)["os_pid"]
        assert await manager.output(process_id, stream="stdout") == f"out {process_id}\n".encode()


async def test_a_timer_a_step_left_does_not_reach_the_next_process(tmp_path: Path) -> None:
    async with Manager(tmp_path / "jobs.db", concurrency=1, reuse_executors=10) as manager:
        _, timed = await run_one(
            manager, Process([Step("stepmods.reusing:set_timer")]), {"seconds": 0.05}
        )
        _, napped = await run_one(manager, Process([Step("stepmods.reusing:nap")]), {"nap": 0.3})
        assert napped.status is Status.FINISHED, napped
        assert output_of(napped)["os_pid"] == output_of(timed)["os_pid"]


async def test_children_the_sweep_killed_do_not_stay_zombies(tmp_path: Path) -> None:
    async with Manager(tmp_path / "jobs.db", concurrency=1, reuse_executors=10) as manager:
        for _ in range(3):
            _, left = await run_one(manager, Process([Step("stepmods.escaping:leave_group_child")]))
            assert left.status is Status.FINISHED, left
        _, looked = await run_one(manager, Process([Step("stepmods.reusing:zombies")]))
        assert output_of(looked)["zombies"] == []
