"""Durability with real OS processes: managers SIGKILLed at any moment, frozen past their
lease, and many of them sharing one store; each on SQLite and on PostgreSQL. After every
scenario the store passes the invariant checker and no executor is left running
(docs/guarantees.md, issues 4 and 7)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from aiobgproc import Command, Manager, Process, Status, Step
from helpers.invariants import (
    aiobgproc_processes,
    check_store,
    describe,
    leftover_executors,
    tagged,
)
from helpers.procs import (
    TESTS_DIR,
    Child,
    descendants,
    guards_of,
    heartbeat_of,
    is_alive,
    is_guard,
    manager_pids,
    poll,
    read_trace,
    start_manager,
    statuses,
    step_rows,
)
from helpers.storedb import is_postgres, query

LEASE = 1.0
WAIT = 30.0
EXECUTORS_GONE_S = 2.0  # the promise: a killed manager's executors are gone within 2 s
STEPS = ("a", "b", "c")


@pytest.fixture
def store(store_url: str) -> str:
    """Every scenario runs on a SQLite file, then on a PostgreSQL schema (when available)."""
    return store_url


async def assert_clean(store: str, ids: list[str]) -> None:
    """The invariants every scenario ends with (its managers all gone or closed by now; a
    guard of a killed manager may need a moment to finish and exit)."""
    assert check_store(store) == []
    try:
        await poll(lambda: not leftover_executors(ids), timeout=5.0, what="no leftovers")
    except AssertionError:
        raise AssertionError(f"left running:\n{describe(leftover_executors(ids))}") from None


def executors_alive(ids: list[str], snapshot: list[psutil.Process]) -> list[psutil.Process]:
    """What still runs of a dead manager's executors: its descendants from ``snapshot`` and
    the aiobgproc processes of this test run (guards excepted: they outlive the kill by up to
    their SIGTERM grace), and anything tagged with one of the ids."""
    alive = [proc for proc in snapshot if is_alive(proc) and not is_guard(proc)]
    alive += [proc for proc in aiobgproc_processes() if not is_guard(proc)]
    return alive + tagged(ids)


async def assert_executors_gone(
    ids: list[str], since: float, snapshot: list[psutil.Process] | None = None
) -> float:
    """Wait until a dead manager's executors and their children are gone; fail unless that
    happened within EXECUTORS_GONE_S of ``since``. Returns the seconds it took."""
    procs = snapshot or []
    try:
        await poll(lambda: not executors_alive(ids, procs), timeout=5.0, what="executors gone")
    except AssertionError:
        raise AssertionError(f"still running:\n{describe(executors_alive(ids, procs))}") from None
    elapsed = time.monotonic() - since
    assert elapsed < EXECUTORS_GONE_S, f"executors outlived their manager by {elapsed:.2f} s"
    return elapsed


# -- 1. SIGKILL a manager in the middle of 20 processes -------------------------------------------


async def test_sigkilled_manager_is_resumed_by_another_without_rerunning_committed_steps(
    store: str,
    tmp_path: Path,
) -> None:
    log = tmp_path / "trace.log"
    three_steps = Process(
        {name: Step("stepmods.durable:logged", name, sleep=0.3, child=True) for name in STEPS}
    )
    async with Manager(store, run=False) as client:
        ids = [await client.start(three_steps, {"log": str(log)}) for _ in range(20)]
        first = start_manager(store, tmp_path, "first", concurrency=10, lease=LEASE)
        second: Child | None = None
        try:
            first.wait_ready()
            await poll(lambda: len(step_rows(store)) >= 10, timeout=WAIT, what="10 commits")
            guards = guards_of(first.pid)
            assert len(guards) == 1
            snapshot = descendants(first.pid)  # guard, warm executor, executors, their children
            assert len(snapshot) > 2, describe(snapshot)
            first.kill()
            killed_at = time.monotonic()
            gone_after = await assert_executors_gone(ids, killed_at, snapshot)
            # The guard did its job and went away too.
            await poll(lambda: not is_alive(guards[0]), timeout=5.0, what="the guard to exit")

            committed = step_rows(store)
            at_kill = statuses(store)
            recovered = {pid for pid, status in at_kill.items() if status == "running"}
            assert recovered, "the kill should have caught processes running"
            assert len(committed) < 60

            second = start_manager(store, tmp_path, "second", concurrency=10, lease=LEASE)
            second.wait_ready()
            infos = await asyncio.gather(*(client.wait_for(pid, timeout=WAIT) for pid in ids))
            second.signal(signal.SIGTERM)
            assert await second.wait_exit(15.0) == 0, second.stderr()
        finally:
            first.stop()
            if second is not None:
                second.stop()

    print(f"\nexecutors gone {gone_after:.3f} s after SIGKILL; {len(recovered)} recovered")
    assert [info.status for info in infos] == [Status.FINISHED] * 20, [i.error for i in infos]
    for info in infos:
        assert info.attempts == (2 if info.id in recovered else 1), info
        assert info.output is not None
        assert {info.output[f"{name}_attempt"] for name in STEPS} <= {1, info.attempts}

    trace = read_trace(log)
    runs = Counter((pid, step) for pid, step, _ in trace)
    after = step_rows(store)
    for pid in ids:
        for index, name in enumerate(STEPS):
            key = (pid, index)
            attempts = sorted(attempt for p, step, attempt in trace if (p, step) == (pid, name))
            assert (pid, index) in after
            if key in committed:
                # Committed before the kill: never run again, its record untouched.
                assert attempts == [1], (pid, name, attempts)
                assert after[key] == committed[key]
            elif pid in recovered:
                # At most twice: perhaps cut short in attempt 1, then once in attempt 2.
                assert attempts in ([2], [1, 2]), (pid, name, attempts)
                assert after[key][0] == 2
            else:
                assert attempts == [1], (pid, name, attempts)
            assert runs[(pid, name)] <= 2
    await assert_clean(store, ids)


# -- 2. SIGKILL at each named fault point -------------------------------------------------------

# (fault point, steps in the process, attempts in which step "a" is expected to start):
# after_claim and after_spawn die before the executor is given its job; before_step_commit
# dies after step "a" ran, before its output is committed (mid-process, or as the last step).
FAULTS = [
    pytest.param("after_claim", 2, [2], id="after_claim"),
    pytest.param("after_spawn", 2, [2], id="after_spawn"),
    pytest.param("before_step_commit", 2, [1, 2], id="before_step_commit"),
    pytest.param("before_step_commit", 1, [1, 2], id="before_last_step_commit"),
]


@pytest.mark.parametrize(("point", "steps", "a_runs"), FAULTS)
async def test_manager_killed_at_a_fault_point_is_recovered(
    store: str, tmp_path: Path, point: str, steps: int, a_runs: list[int]
) -> None:
    log = tmp_path / "trace.log"
    names = ["a", "b"][:steps]
    spec = Process(
        {
            "a": Step("stepmods.durable:logged", "a", sleep=0.2, child=True),
            "b": Step("stepmods.durable:logged", "b"),
        }
        if steps == 2
        else {"a": Step("stepmods.durable:logged", "a", sleep=0.2, child=True)}
    )
    async with Manager(store, run=False) as client:
        process_id = await client.start(spec, {"log": str(log)})
        crashing = start_manager(
            store, tmp_path, "crashing", env={"AIOBGPROC_FAULT": point}, concurrency=1
        )
        try:
            code = await crashing.wait_exit(WAIT)
            died_at = time.monotonic()
            assert code == -signal.SIGKILL, crashing.stderr()
            await assert_executors_gone([process_id], died_at)
        finally:
            crashing.stop()
        crashed = await client.info(process_id)
        assert crashed.status is Status.RUNNING
        assert crashed.steps_done == 0
        assert step_rows(store) == {}

    async with Manager(store, lease=LEASE, concurrency=1, grace_period=1.0) as recoverer:
        info = await recoverer.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.FINISHED, info.error
    assert info.attempts == 2
    trace = read_trace(log)
    assert sorted(a for _, step, a in trace if step == "a") == a_runs, trace
    if steps == 2:
        assert [a for _, step, a in trace if step == "b"] == [2], trace
    rows = step_rows(store)
    assert sorted(rows) == [(process_id, index) for index in range(len(names))]
    assert {attempt for attempt, _ in rows.values()} == {2}
    await assert_clean(store, [process_id])


async def test_a_lost_command_and_a_process_past_max_attempts_become_errors(
    store: str,
    tmp_path: Path,
) -> None:
    """A command cannot resume; a step process that used up max_attempts is given up."""
    log, gate = tmp_path / "trace.log", tmp_path / "gate"
    async with Manager(store, run=False) as client:
        command_id = await client.start(Command(["sleep", "30"]))
        process_id = await client.start(
            Process([Step("stepmods.durable:gated", "a")]), {"log": str(log), "gate": str(gate)}
        )
        ids = [command_id, process_id]
        first = start_manager(store, tmp_path, "first", concurrency=2, lease=LEASE)
        try:
            first.wait_ready()

            def both_running() -> bool:
                rows = query(store, "SELECT status, os_pid FROM processes")
                started = bool(read_trace(log))  # the step body itself is running
                return started and all(status == "running" and pid for status, pid in rows)

            await poll(both_running, timeout=WAIT, what="both to run")
            snapshot = descendants(first.pid)
            first.kill()
            await assert_executors_gone(ids, time.monotonic(), snapshot)
        finally:
            first.stop()
        async with Manager(store, lease=LEASE, concurrency=2, max_attempts=1) as recoverer:
            command = await recoverer.wait_for(command_id, timeout=WAIT)
            process = await recoverer.wait_for(process_id, timeout=WAIT)
    assert command.status is Status.ERROR
    assert command.error is not None
    assert command.error.type == "ManagerLostError"
    assert "cannot resume" in command.error.message
    assert process.status is Status.ERROR
    assert process.error is not None
    assert process.error.type == "ManagerLostError"
    assert "1 attempt" in process.error.message
    assert read_trace(log) == [(process_id, "a", 1)]
    await assert_clean(store, ids)


async def test_manager_killed_inside_proceed_leaves_the_process_paused(
    store: str, tmp_path: Path
) -> None:
    log, go = tmp_path / "trace.log", tmp_path / "go"
    spec = Process(
        {
            "a": Step("stepmods.durable:logged", "a", interrupt=True),
            "b": Step("stepmods.durable:logged", "b"),
        }
    )
    async with Manager(store, lease=LEASE, concurrency=1, grace_period=1.0) as manager:
        process_id = await manager.start(spec, {"log": str(log)})
        paused = await manager.wait_for(process_id, timeout=WAIT)
        assert paused.status is Status.INTERRUPTED, paused.error
        rows = step_rows(store)
        go.touch()  # proceed_client proceeds at once
        proceeder = Child(
            [
                sys.executable,
                "-m",
                "stepmods.proceed_client",
                str(store),
                process_id,
                str(go),
                "crasher",
            ],
            stderr_path=tmp_path / "proceeder.stderr",
            env={"AIOBGPROC_FAULT": "in_proceed"},
        )
        try:
            assert proceeder.readline() == "ready"
            code = await proceeder.wait_exit(WAIT)
            assert code == -signal.SIGKILL, proceeder.stderr()
        finally:
            proceeder.stop()

        after = await manager.info(process_id)
        assert after.status is Status.INTERRUPTED
        assert after.output == paused.output
        assert after.steps_done == paused.steps_done == 1
        assert step_rows(store) == rows
        assert check_store(store) == []

        # The crash released the write lock: a normal proceed works and the process ends.
        await manager.proceed(process_id, {"who": "survivor"})
        info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.FINISHED, info.error
    assert info.output is not None
    assert info.output["who"] == "survivor"
    assert info.attempts == 1
    assert read_trace(log) == [(process_id, "a", 1), (process_id, "b", 1)]
    await assert_clean(store, [process_id])


# -- 3. Fencing: a manager frozen past its lease cannot commit over the new owner ---------------


@pytest.mark.parametrize("frozen", ["mid_step", "with_result_pending"])
async def test_frozen_manager_cannot_record_over_the_new_owner(
    store: str, tmp_path: Path, frozen: str
) -> None:
    """A is SIGSTOPped while step "b" runs (``mid_step``), or after the executor finished "b"
    and sent its result, which A has not read yet (``with_result_pending``). B takes the
    process over once A's lease has passed and finishes it. Then A is SIGCONTed."""
    log = tmp_path / "trace.log"
    gate, ends = tmp_path / "gate", tmp_path / "ends.log"
    spec = Process(
        {
            "a": Step("stepmods.durable:logged", "a"),
            "b": Step("stepmods.durable:gated", "b", say_in_attempt=1),
        }
    )
    data = {"log": str(log), "gate": str(gate), "ends": str(ends)}

    def started(step: str, attempt: int) -> bool:
        return (process_id, step, attempt) in read_trace(log)

    async with Manager(store, run=False) as client:
        process_id = await client.start(spec, data)
        a = start_manager(store, tmp_path, "A", concurrency=1, lease=LEASE)
        b: Child | None = None
        try:
            a.wait_ready()
            await poll(lambda: started("b", 1), timeout=WAIT, what="step b in A")
            running = await client.info(process_id)
            assert running.os_pid is not None
            a_executors = [psutil.Process(running.os_pid), *descendants(running.os_pid)]
            a.signal(signal.SIGSTOP)
            stopped_at = time.monotonic()
            if frozen == "with_result_pending":
                gate.touch()
                await poll(
                    lambda: f"{process_id}:b:1" in ends.read_text() if ends.exists() else False,
                    timeout=WAIT,
                    what="A's executor to finish step b",
                )
            b = start_manager(store, tmp_path, "B", concurrency=1, lease=LEASE)
            b.wait_ready()
            await poll(lambda: started("b", 2), timeout=WAIT, what="B to run step b")
            taken_after = time.monotonic() - stopped_at
            # A's lease had to pass first; and the old executor is gone before B's runs.
            assert taken_after > LEASE / 2, taken_after
            assert not any(is_alive(proc) for proc in a_executors)
            assert a.pid not in manager_pids(store), "B should have unregistered A"
            gate.touch()
            info = await client.wait_for(process_id, timeout=WAIT)
            assert info.status is Status.FINISHED, info.error
            assert info.output is not None
            # B ran it: the executor's parent was B or B's warm executor.
            assert info.output["parent_pid"] in {b.pid, *(p.pid for p in descendants(b.pid))}
            assert info.output["b_attempt"] == 2
            rows = step_rows(store)
            log_of_b = await client.output(process_id)

            a.signal(signal.SIGCONT)
            # A wakes up: it handles its old executor's end (and, with_result_pending, the
            # result it sent), notices it was presumed dead and registers again. Once its
            # heartbeat has also ticked twice more, it has long acted on all of that; none of
            # it may change what B recorded.
            await poll(lambda: a.pid in manager_pids(store), timeout=WAIT, what="A to re-register")
            ticks: list[float] = []

            def ticked_twice() -> bool:
                beat = heartbeat_of(store, a.pid)
                if beat is not None and (not ticks or beat != ticks[-1]):
                    ticks.append(beat)
                return len(ticks) >= 3

            await poll(ticked_twice, timeout=WAIT, what="A's heartbeat to tick twice")
            final = await client.info(process_id)
            assert final.status is Status.FINISHED
            assert final.output == info.output
            assert final.attempts == 2
            assert step_rows(store) == rows
            assert sorted(rows) == [(process_id, 0), (process_id, 1)]
            assert (rows[(process_id, 0)][0], rows[(process_id, 1)][0]) == (1, 2)
            assert check_store(store) == []
            final_log = await client.output(process_id)

            a.signal(signal.SIGTERM)
            assert await a.wait_exit(15.0) == 0, a.stderr()
            b.signal(signal.SIGTERM)
            assert await b.wait_exit(15.0) == 0, b.stderr()
        finally:
            a.stop()
            if b is not None:
                b.stop()
    print(f"\nB took over {taken_after:.2f} s after A froze (lease {LEASE} s)")
    assert "Traceback" not in a.stderr(), a.stderr()
    assert read_trace(log).count((process_id, "a", 1)) == 1
    await assert_clean(store, [process_id])
    # Not even the output log may change: what A's old executor printed (in attempt 1,
    # while A was frozen) is not part of the process B finished.
    assert final_log == log_of_b
    assert final.output_size == info.output_size


async def test_a_late_guard_does_not_touch_the_next_attempt(store: str, tmp_path: Path) -> None:
    """The guard of a SIGKILLed manager may get to its sweep late (here: it is SIGSTOPped
    until another manager has resumed the process). It must stop only what its own manager
    started, never the executor or step children of the next attempt, which carry the same
    process-id tag."""
    log = tmp_path / "trace.log"
    spec = Process({"a": Step("stepmods.durable:logged", "a", sleep=2.0, child=True)})
    guard: psutil.Process | None = None
    async with Manager(store, run=False) as client:
        process_id = await client.start(spec, {"log": str(log)})
        first = start_manager(store, tmp_path, "first", concurrency=1, lease=LEASE)
        try:
            first.wait_ready()
            await poll(lambda: bool(read_trace(log)), timeout=WAIT, what="step a to start")
            (guard,) = guards_of(first.pid)
            guard.suspend()
            first.kill()
            async with Manager(store, lease=LEASE, concurrency=1, grace_period=1.0) as second:
                await poll(
                    lambda: (process_id, "a", 2) in read_trace(log),
                    timeout=WAIT,
                    what="the second attempt to start",
                )
                guard.resume()  # the old guard now reads EOF and sweeps
                await poll(lambda: not is_alive(guard), timeout=10.0, what="the guard to exit")
                info = await second.wait_for(process_id, timeout=WAIT)
        finally:
            if guard is not None and is_alive(guard):
                guard.resume()
                guard.kill()
            first.stop()
    assert info.status is Status.FINISHED, info.error
    assert info.attempts == 2
    await assert_clean(store, [process_id])


# -- 6. Eight OS processes x 100 processes on one new store --------------------------------------

MANY_HELPER = TESTS_DIR / "helpers" / "many_manager.py"
OS_PROCESSES = 8
EACH = 100
TOTAL = OS_PROCESSES * EACH


def _run_many(store: str, log: Path) -> list[tuple[int, str, str]]:
    argv = [sys.executable, str(MANY_HELPER), store, str(log), str(EACH), str(TOTAL)]
    children: list[subprocess.Popen[str]] = []
    results: list[tuple[int, str, str]] = []
    try:
        for _ in range(OS_PROCESSES):
            children.append(
                subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:  # release them together
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        deadline = time.monotonic() + 90
        for child in children:
            try:
                stdout, stderr = child.communicate(timeout=max(deadline - time.monotonic(), 0))
            except subprocess.TimeoutExpired:
                child.kill()
                stdout, stderr = child.communicate()
                stderr += "\n[killed: still running after 90 s]"
            results.append((child.returncode, stdout, stderr))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            child.wait()
    return results


async def test_eight_os_processes_share_a_new_store_and_run_each_process_once(
    store: str,
    tmp_path: Path,
) -> None:
    log = tmp_path / "ran.log"
    assert is_postgres(store) or not await asyncio.to_thread(Path(store).exists)
    started = time.monotonic()
    results = await asyncio.to_thread(_run_many, store, log)
    elapsed = time.monotonic() - started

    ids: list[str] = []
    for code, stdout, stderr in results:
        assert "database is locked" not in stderr.lower(), stderr
        assert "Traceback" not in stderr, stderr
        assert code == 0, f"exit code {code}\n{stdout}\n{stderr}"
        report = json.loads(stdout)
        assert report["statuses"] == ["finished"] * EACH
        ids += report["ids"]
    assert len(set(ids)) == TOTAL

    rows = query(store, "SELECT id, status, attempts FROM processes")
    assert len(rows) == TOTAL
    assert {row[0] for row in rows} == set(ids)
    assert {(status, attempts) for _, status, attempts in rows} == {("finished", 1)}
    ran = Counter(log.read_text().split())
    assert set(ran) == set(ids)
    assert set(ran.values()) == {1}, [pid for pid, n in ran.items() if n != 1]
    print(f"\n{TOTAL} processes by {OS_PROCESSES} OS processes in {elapsed:.1f} s")
    await assert_clean(store, ids)
