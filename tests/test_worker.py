"""``aiobgproc worker`` as a real OS process: graceful SIGTERM, --burst, --max-jobs, how fast
it picks up work, and control (cancel, proceed) from another OS process; each on SQLite and on
PostgreSQL."""

from __future__ import annotations

import signal
import statistics
import time
from pathlib import Path

import psutil
import pytest

from aiobgproc import Command, Manager, Process, Status, Step
from helpers.invariants import check_store, describe, leftover_executors, tagged
from helpers.procs import Child, is_alive, poll, read_trace, start_worker
from helpers.storedb import query

WAIT = 30.0
REACH_S = 1.5  # the promise is 1 s; the rest is slack for a loaded 2-core machine


@pytest.fixture
def store(store_url: str) -> str:
    """Each scenario on a SQLite file, then on a PostgreSQL schema (when available)."""
    return store_url


async def assert_clean(store: str, ids: list[str]) -> None:
    """No inconsistency in the store, nothing left running (the workers are all gone)."""
    assert check_store(store) == []
    try:
        await poll(lambda: not leftover_executors(ids), timeout=5.0, what="no leftovers")
    except AssertionError:
        raise AssertionError(f"left running:\n{describe(leftover_executors(ids))}") from None


def worker_registered(store: str, worker: Child) -> bool:
    rows = query(store, "SELECT 1 FROM managers WHERE os_pid = ? AND runs = 1", (worker.pid,))
    return bool(rows)


async def run_worker(store: str, workdir: Path, name: str, *args: str) -> Child:
    """A worker that ran to its end by itself; returns it (already reaped)."""
    worker = start_worker(store, workdir, name, *args)
    try:
        code = await worker.wait_exit(WAIT)
        assert code == 0, worker.stderr()
    finally:
        worker.stop()
    return worker


def logged(name: str, *, sleep: float = 0.0, interrupt: bool = False) -> Step:
    return Step("stepmods.durable:logged", name, sleep=sleep, interrupt=interrupt)


# -- graceful SIGTERM -----------------------------------------------------------------------------


async def test_sigterm_lets_a_running_process_finish_within_the_grace(
    store: str, tmp_path: Path
) -> None:
    log = tmp_path / "trace.log"
    async with Manager(store, run=False) as client:
        process_id = await client.start(Process([logged("a", sleep=1.0)]), {"log": str(log)})
        worker = start_worker(store, tmp_path, "worker", "--grace", "5")
        try:
            await poll(lambda: bool(read_trace(log)), timeout=WAIT, what="the step to start")
            worker.signal(signal.SIGTERM)
            code = await worker.wait_exit(WAIT)
        finally:
            worker.stop()
        assert code == 0, worker.stderr()
        info = await client.info(process_id)
    assert info.status is Status.FINISHED, info.error
    assert info.attempts == 1
    assert read_trace(log) == [(process_id, "a", 1)]
    await assert_clean(store, [process_id])


async def test_sigterm_past_the_grace_puts_the_process_back_at_its_current_step(
    store: str,
    tmp_path: Path,
) -> None:
    log, gate = tmp_path / "trace.log", tmp_path / "gate"
    spec = Process({"a": logged("a"), "b": Step("stepmods.durable:gated", "b")})
    async with Manager(store, run=False) as client:
        process_id = await client.start(spec, {"log": str(log), "gate": str(gate)})
        worker = start_worker(store, tmp_path, "worker", "--grace", "0.5")
        try:
            await poll(
                lambda: (process_id, "b", 1) in read_trace(log),
                timeout=WAIT,
                what="step b to start",
            )
            before = await client.info(process_id)
            assert before.status is Status.RUNNING
            assert before.steps_done == 1
            worker.signal(signal.SIGTERM)
            stopped = time.monotonic()
            code = await worker.wait_exit(WAIT)
            took = time.monotonic() - stopped
        finally:
            worker.stop()
        assert code == 0, worker.stderr()
        assert took < 5.0, f"the worker took {took:.1f} s to stop"
        requeued = await client.info(process_id)
        assert requeued.status is Status.QUEUED
        assert requeued.steps_done == 1
        assert requeued.step == "b"
        await assert_clean(store, [process_id])

        gate.touch()  # the step can now finish: a burst worker resumes it at step b
        await run_worker(store, tmp_path, "burst", "--burst")
        info = await client.info(process_id)
    assert info.status is Status.FINISHED, info.error
    assert info.attempts == 2
    assert read_trace(log) == [(process_id, "a", 1), (process_id, "b", 1), (process_id, "b", 2)]
    await assert_clean(store, [process_id])


# -- --burst and --max-jobs -----------------------------------------------------------------------


async def test_burst_runs_the_queue_and_exits(store: str, tmp_path: Path) -> None:
    log = tmp_path / "trace.log"
    async with Manager(store, run=False) as client:
        ids = [await client.start(Process([logged("a")]), {"log": str(log)}) for _ in range(4)]
        ids.append(await client.start(Command(["true"])))
        await run_worker(store, tmp_path, "burst", "--burst")
        infos = [await client.info(process_id) for process_id in ids]
        assert [info.status for info in infos] == [Status.FINISHED] * 5
        # With nothing queued, a burst worker exits at once.
        started = time.monotonic()
        await run_worker(store, tmp_path, "empty", "--burst")
        print(f"\nan idle burst worker ran {time.monotonic() - started:.2f} s")
    assert sorted(pid for pid, _, _ in read_trace(log)) == sorted(ids[:4])
    await assert_clean(store, ids)


async def test_max_jobs_exits_after_that_many_processes(store: str, tmp_path: Path) -> None:
    log = tmp_path / "trace.log"
    async with Manager(store, run=False) as client:
        ids = [await client.start(Process([logged("a")]), {"log": str(log)}) for _ in range(5)]
        await run_worker(store, tmp_path, "worker", "--max-jobs", "2")
        infos = [await client.info(process_id) for process_id in ids]
    assert sorted(str(info.status) for info in infos) == ["finished"] * 2 + ["queued"] * 3
    assert len(read_trace(log)) == 2
    await assert_clean(store, ids)


# -- pick-up delay (measured, not asserted) ----------------------------------------------------


async def test_pickup_delay_of_a_long_running_worker(store: str, tmp_path: Path) -> None:
    """Prints how long a process started from another OS process waits for an idle worker:
    until it is claimed (started_at - created_at), and until the step body runs."""
    claims: list[float] = []
    bodies: list[float] = []
    commands: list[float] = []
    async with Manager(store, run=False) as client:
        worker = start_worker(store, tmp_path, "worker", "--concurrency", "1")
        try:
            await poll(lambda: worker_registered(store, worker), timeout=WAIT, what="the worker")
            for _ in range(5):
                process_id = await client.start(Process([Step("stepmods.durable:stamp")]))
                info = await client.wait_for(process_id, timeout=WAIT)
                assert info.status is Status.FINISHED, info.error
                assert info.output is not None
                assert info.started_at is not None
                claims.append((info.started_at - info.created_at).total_seconds())
                bodies.append(info.output["body_started"] - info.created_at.timestamp())
                command_id = await client.start(Command(["true"]))
                done = await client.wait_for(command_id, timeout=WAIT)
                assert done.started_at is not None
                commands.append((done.started_at - done.created_at).total_seconds())
            worker.signal(signal.SIGTERM)
            assert await worker.wait_exit(WAIT) == 0, worker.stderr()
        finally:
            worker.stop()

    def ms(values: list[float]) -> str:
        return f"median {statistics.median(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms"

    print(f"\npick-up delay, step process claimed: {ms(claims)}")
    print(f"pick-up delay, step body started:   {ms(bodies)}")
    print(f"pick-up delay, command claimed:     {ms(commands)}")
    assert check_store(store) == []


# -- control from another OS process ---------------------------------------------------------------


async def test_cancel_from_another_os_process_reaches_a_worker_within_a_second(
    store: str,
    tmp_path: Path,
) -> None:
    log, gate = tmp_path / "trace.log", tmp_path / "gate"
    async with Manager(store, run=False) as client:
        process_id = await client.start(
            Process([Step("stepmods.durable:gated", "a")]), {"log": str(log), "gate": str(gate)}
        )
        worker = start_worker(store, tmp_path, "worker")
        try:
            await poll(lambda: bool(read_trace(log)), timeout=WAIT, what="the step to start")
            running = await client.info(process_id)
            assert running.os_pid is not None
            executor = psutil.Process(running.os_pid)
            asked = time.monotonic()
            await client.cancel(process_id)
            await poll(
                lambda: not is_alive(executor) and not tagged([process_id]),
                timeout=5.0,
                what="the executor to be gone",
            )
            took = time.monotonic() - asked
            info = await client.info(process_id)
            worker.signal(signal.SIGTERM)
            assert await worker.wait_exit(WAIT) == 0, worker.stderr()
        finally:
            worker.stop()
    print(f"\ncancel reached the worker's executor in {took * 1000:.0f} ms")
    assert info.status is Status.CANCELLED
    assert took < REACH_S, f"cancel took {took:.2f} s"
    await assert_clean(store, [process_id])


async def test_proceed_from_another_os_process_reaches_a_worker_within_a_second(
    store: str,
    tmp_path: Path,
) -> None:
    log = tmp_path / "trace.log"
    spec = Process({"a": logged("a", interrupt=True), "b": logged("b")})
    async with Manager(store, run=False) as client:
        process_id = await client.start(spec, {"log": str(log)})
        worker = start_worker(store, tmp_path, "worker")
        try:
            paused = await client.wait_for(process_id, timeout=WAIT)
            assert paused.status is Status.INTERRUPTED, paused.error
            asked = time.monotonic()
            await client.proceed(process_id, {"go": True})
            await poll(
                lambda: (process_id, "b", 1) in read_trace(log),
                timeout=5.0,
                what="step b to start",
            )
            took = time.monotonic() - asked
            info = await client.wait_for(process_id, timeout=WAIT)
            worker.signal(signal.SIGTERM)
            assert await worker.wait_exit(WAIT) == 0, worker.stderr()
        finally:
            worker.stop()
    print(f"\nproceed reached the worker (next step running) in {took * 1000:.0f} ms")
    assert took < REACH_S, f"proceed took {took:.2f} s"
    assert info.status is Status.FINISHED, info.error
    assert info.output is not None
    assert info.output["go"] is True
    await assert_clean(store, [process_id])


async def test_several_workers_share_a_queue_and_run_each_process_once(
    store: str, tmp_path: Path
) -> None:
    log = tmp_path / "trace.log"
    async with Manager(store, run=False) as client:
        ids = [await client.start(Process([logged("a")]), {"log": str(log)}) for _ in range(12)]
    workers = [start_worker(store, tmp_path, f"w{i}", "--burst") for i in range(3)]
    try:
        for worker in workers:
            assert await worker.wait_exit(WAIT) == 0, worker.stderr()
    finally:
        for worker in workers:
            worker.stop()
    rows = query(store, "SELECT status, attempts FROM processes")
    assert rows == [("finished", 1)] * 12
    assert sorted(pid for pid, _, _ in read_trace(log)) == sorted(ids)
    await assert_clean(store, ids)
