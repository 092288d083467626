"""One contract, every store: the same behaviour on SQLite and on PostgreSQL.

Each test takes ``store_url`` and runs twice. The PostgreSQL runs need a server
(AIOBGPROC_TEST_POSTGRES); without one they are reported as skipped, with the reason.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

import pytest

from aiobgproc import (
    Command,
    InvalidStateError,
    Manager,
    Process,
    ProcessNotFoundError,
    Status,
    Step,
)

POSTGRES_ON_EVERY_LOOP = True  # the store's contract and LISTEN/NOTIFY on each loop
HELPERS = Path(__file__).resolve().parent / "helpers"
WAIT = 30.0


async def until(predicate: object, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate() if callable(predicate) else predicate
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_commands_run_and_output_is_byte_exact(store_url: str) -> None:
    async with Manager(store_url, concurrency=2) as manager:
        ok = await manager.start(Command(["printf", "a\\377\\000b"]))
        bad = await manager.start(Command(["sh", "-c", "echo oops >&2; exit 3"]))
        ok_info = await manager.wait_for(ok, timeout=WAIT)
        bad_info = await manager.wait_for(bad, timeout=WAIT)
        assert (ok_info.status, ok_info.output) == (Status.FINISHED, {"exit_code": 0})
        assert await manager.output(ok) == b"a\xff\x00b"
        assert (bad_info.status, bad_info.exit_code) == (Status.ERROR, 3)
        assert await manager.output(bad) == b"oops\n"
        with pytest.raises(ProcessNotFoundError):
            await manager.info("nope")


async def test_a_timeout_stops_the_command(store_url: str) -> None:
    async with Manager(store_url, grace_period=0.5) as manager:
        process_id = await manager.start(Command(["sleep", "30"]), timeout=0.3)
        info = await manager.wait_for(process_id, timeout=WAIT)
        assert info.status is Status.TIMEOUT


async def test_steps_pause_proceed_and_exactly_one_concurrent_proceed_wins(
    store_url: str,
) -> None:
    process = Process(
        {
            "tag": Step("stepmods.basic:add", "tagged", interrupt=True),
            "done": Step("stepmods.basic:add", "done"),
        }
    )
    async with Manager(store_url) as manager, Manager(store_url, run=False) as other:
        process_id = await manager.start(process, {"x": 1})
        paused = await manager.wait_for(process_id, timeout=WAIT)
        assert (paused.status, paused.output) == (Status.INTERRUPTED, {"x": 1, "tagged": True})
        results = await asyncio.gather(
            manager.proceed(process_id, {"by": "first"}),
            other.proceed(process_id, {"by": "second"}),
            return_exceptions=True,
        )
        assert sorted(type(result).__name__ for result in results) == [
            "InvalidStateError",
            "str",
        ]
        done = await other.wait_for(process_id, timeout=WAIT)
        assert done.status is Status.FINISHED
        assert done.output is not None
        assert done.output["done"] is True
        assert done.output["by"] in ("first", "second")
        with pytest.raises(InvalidStateError):
            await manager.proceed(process_id)
        assert [name for _, name, _, _ in await manager.store.step_outputs(process_id)] == [
            "tag",
            "done",
        ]


async def test_a_failing_step_is_an_error_with_its_traceback(store_url: str) -> None:
    async with Manager(store_url) as manager:
        process_id = await manager.start(
            Process([Step("stepmods.failing:raise_value_error")]), {"n": 7}
        )
        info = await manager.wait_for(process_id, timeout=WAIT)
        assert info.status is Status.ERROR
        assert info.error is not None
        assert info.error.type == "ValueError"
        assert "bad input: 7" in (info.error.traceback or "")


async def test_cancel_from_another_manager_stops_a_running_process(store_url: str) -> None:
    async with Manager(store_url) as runner, Manager(store_url, run=False) as client:
        process_id = await client.start(Command(["sleep", "30"]))
        await until(lambda: _has_pid(runner, process_id))
        started = time.monotonic()
        info = await client.cancel(process_id)
        assert info.status is Status.CANCELLED
        await until(lambda: _no_pid(runner, process_id), timeout=5)
        assert time.monotonic() - started < 5


async def _has_pid(manager: Manager, process_id: str) -> bool:
    return (await manager.info(process_id)).os_pid is not None


async def _no_pid(manager: Manager, process_id: str) -> bool:
    return (await manager.info(process_id)).os_pid is None


async def test_wait_for_in_a_client_wakes_when_another_manager_finishes(store_url: str) -> None:
    async with Manager(store_url) as runner, Manager(store_url, run=False) as client:
        process_id = await client.start(Command(["true"]))
        info = await client.wait_for(process_id, timeout=WAIT)
        assert info.status is Status.FINISHED
        assert runner.jobs_claimed == 1


async def test_list_filters_orders_and_prune_deletes(store_url: str) -> None:
    async with Manager(store_url) as manager:
        first = await manager.start(Command(["true"]))
        second = await manager.start(Command(["false"]))
        await manager.wait_for(first, timeout=WAIT)
        await manager.wait_for(second, timeout=WAIT)
        assert [info.id for info in await manager.list()] == [second, first]
        assert [info.id for info in await manager.list(status="error")] == [second]
        assert [info.id for info in await manager.list(limit=1)] == [second]
        assert await manager.prune(timedelta(days=1)) == 0
        assert await manager.prune(timedelta(0)) == 2
        assert await manager.list() == []


async def test_three_managers_share_the_queue_and_run_each_process_once(
    store_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "ran.log"
    command = ["sh", "-c", f'echo "$AIOBGPROC_PROCESS_ID" >> "{log}"']
    async with (
        Manager(store_url, concurrency=2) as a,
        Manager(store_url, concurrency=2) as b,
        Manager(store_url, concurrency=2) as c,
    ):
        ids = [await (a, b, c)[i % 3].start(Command(command)) for i in range(30)]
        for process_id in ids:
            assert (await a.wait_for(process_id, timeout=WAIT)).status is Status.FINISHED
        assert a.jobs_claimed + b.jobs_claimed + c.jobs_claimed == 30
    ran = log.read_text().split()
    assert sorted(ran) == sorted(ids)


def _start_runner(store_url: str, tmp_path: Path, name: str, host: str) -> subprocess.Popen[str]:
    env = dict(os.environ, AIOBGPROC_HOSTNAME=host)
    with (tmp_path / f"{name}.stderr").open("w") as stderr:  # the child keeps its own copy
        process = _popen(store_url, stderr, env)
    assert process.stdout is not None
    assert process.stdout.readline().startswith("ready")
    return process


def _popen(store_url: str, stderr: TextIO, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(HELPERS / "run_manager.py"),
            store_url,
            "--lease",
            "1.0",
            "--concurrency",
            "4",
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
    )


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
    if process.stderr is not None:
        process.stderr.close()


@pytest.mark.parametrize("second_host", ["host-b", "host-a"], ids=["other-host", "same-host"])
async def test_a_killed_hosts_processes_are_recovered_by_another_host(
    store_url: str, tmp_path: Path, second_host: str
) -> None:
    """Two workers: SIGKILL one; the other recovers its step processes and finishes them;
    nothing is recorded twice. With different host names ("hosts" simulated on one machine)
    recovery goes by lease alone; on the same host, by the dead worker's pid."""
    log = tmp_path / "trace.log"
    steps = [Step("stepmods.durable:logged", name, sleep=0.3) for name in ("a", "b")]
    async with Manager(store_url, run=False) as client:
        host_a = await asyncio.to_thread(_start_runner, store_url, tmp_path, "a", "host-a")
        try:
            ids = [await client.start(Process(steps), {"log": str(log)}) for _ in range(4)]

            async def all_running() -> bool:
                infos = [await client.info(process_id) for process_id in ids]
                return all(info.status is Status.RUNNING for info in infos)

            await until(all_running)
            host_a.kill()
            await asyncio.to_thread(host_a.wait)
            host_b = await asyncio.to_thread(_start_runner, store_url, tmp_path, "b", second_host)
            try:
                infos = [await client.wait_for(process_id, timeout=WAIT) for process_id in ids]
            finally:
                await asyncio.to_thread(_stop, host_b)
        finally:
            await asyncio.to_thread(_stop, host_a)
    assert {info.status for info in infos} == {Status.FINISHED}
    assert {info.attempts for info in infos} == {2}
    for process_id in ids:
        outputs = await _step_rows(store_url, process_id)
        assert outputs == ["0", "1"]


async def _step_rows(store_url: str, process_id: str) -> list[str]:
    async with Manager(store_url, run=False) as reader:
        return [name for _, name, _, _ in await reader.store.step_outputs(process_id)]


def _cli(*args: str, store_url: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AIOBGPROC_STORE=store_url, PYTHONPATH=str(HELPERS.parent))
    return subprocess.run(
        [sys.executable, "-m", "aiobgproc", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_the_command_line_works_the_same_on_each_store(store_url: str, tmp_path: Path) -> None:
    ran = _cli("run", "--wait", "--", "sh", "-c", "echo on-any-store", store_url=store_url)
    assert ran.returncode == 0, ran.stderr
    process_id = ran.stdout.strip()
    assert _cli("logs", process_id, store_url=store_url).stdout == "on-any-store\n"
    spec = tmp_path / "spec.json"
    spec.write_text(
        '{"steps": {"tag": {"target": "stepmods.basic:add", "args": ["t"], "interrupt": true},'
        ' "done": {"target": "stepmods.basic:add", "args": ["d"]}}}'
    )
    started = _cli("start", str(spec), "--data", '{"x": 1}', store_url=store_url)
    assert started.returncode == 0, started.stderr
    step_process = started.stdout.strip()
    assert _cli("wait", step_process, store_url=store_url).returncode == 5  # paused
    assert _cli("proceed", step_process, store_url=store_url).returncode == 0
    done = _cli("wait", step_process, "--json", store_url=store_url)
    assert done.returncode == 0, done.stderr
    assert '"output": {"x": 1, "t": true, "d": true}' in done.stdout
    listed = _cli("list", "--json", store_url=store_url)
    assert process_id in listed.stdout
    assert step_process in listed.stdout


async def test_the_change_counter_moves_for_other_connections_only(store_url: str) -> None:
    """What wakes a manager's waiters: another connection's commit moves the counter (and,
    where the store can tell, names the process that changed); its own writes do not."""
    from aiobgproc._location import open_store
    from aiobgproc.store import ListFilter, NewProcess

    def new(process_id: str) -> NewProcess:
        spec = {"kind": "command", "argv": ["true"], "cwd": None, "env": None}
        return NewProcess(process_id, "command", spec, {}, None, 0, time.time())

    mine, theirs = open_store(store_url), open_store(store_url)
    await mine.open()
    await theirs.open()
    try:
        await mine.insert(new("own-before"))
        counter = await mine.change_counter()
        mine.changed()
        await mine.insert(new("own"))
        await theirs.insert(new("other"))

        async def moved() -> bool:
            return await mine.change_counter() != counter

        await until(moved)
        changed = mine.changed()
        if store_url.startswith("postgresql://"):
            assert changed == {"other": "queued"}  # never our own "own"
        else:
            assert changed is None  # SQLite's data_version cannot say which
        assert {record.id for record in await theirs.list_processes(ListFilter(limit=10))} == {
            "own-before",
            "own",
            "other",
        }
    finally:
        await mine.close()
        await theirs.close()


def _hold_pid_writes(runner: Manager) -> tuple[asyncio.Event, asyncio.Event]:
    """Make ``runner`` wait before each pid write: the first event is set when one waits,
    the second lets them all go on."""
    reached, gate = asyncio.Event(), asyncio.Event()
    store = runner._store
    record_pid = store.set_os_pid

    async def held_pid_write(*args: object, **kwargs: object) -> bool:
        reached.set()
        await gate.wait()
        return await record_pid(*args, **kwargs)  # type: ignore[arg-type]

    store.set_os_pid = held_pid_write  # type: ignore[method-assign]
    return reached, gate


async def test_a_cancel_landing_before_the_owner_recorded_the_pid_waits_for_the_executor(
    store_url: str,
) -> None:
    """Another OS process's cancel that lands between the owner's claim and its pid write
    returns only once the command it had already spawned is gone."""
    from helpers.invariants import tagged

    async with Manager(store_url) as runner, Manager(store_url, run=False) as client:
        reached, gate = _hold_pid_writes(runner)  # the command runs; its pid is not stored
        try:
            process_id = await client.start(Command(["sleep", "30"]))
            await asyncio.wait_for(reached.wait(), WAIT)
            assert tagged([process_id]), "the command should be running"
            cancelling = asyncio.create_task(client.cancel(process_id))

            async def recorded() -> bool:
                return (await runner.info(process_id)).status is Status.CANCELLED

            await until(recorded)
            assert not cancelling.done(), "cancel returned while the command still ran"
        finally:
            gate.set()
        info = await asyncio.wait_for(cancelling, WAIT)
        assert info.status is Status.CANCELLED
        assert tagged([process_id]) == []


async def test_a_start_with_a_free_slot_and_nothing_queued_runs_at_once_and_in_order(
    store_url: str, tmp_path: Path
) -> None:
    """A manager with a free slot and an empty queue stores a new process already claimed
    (it is running when start() returns); with the slots full, starts queue up and run in
    the order they were started; max_jobs and stop_claiming hold on that path too."""
    log = tmp_path / "order.log"

    def appending(tag: str, seconds: float = 0.0) -> Command:
        script = f'echo {tag} >> "{log}"; sleep {seconds}'
        return Command(["sh", "-c", script])

    async with Manager(store_url, concurrency=1) as manager:
        first = await manager.start(appending("first", 0.5))
        assert (await manager.info(first)).status is Status.RUNNING  # no queued phase
        later = [await manager.start(appending(f"later{index}")) for index in range(3)]
        assert [(await manager.info(pid)).status for pid in later] == [Status.QUEUED] * 3
        for process_id in [first, *later]:
            assert (await manager.wait_for(process_id, timeout=WAIT)).status is Status.FINISHED
        assert log.read_text().split() == ["first", "later0", "later1", "later2"]
        for process_id in [first, *later]:
            assert (await manager.info(process_id)).attempts == 1

        await manager.stop_claiming()
        held = await manager.start(appending("held"))
        assert (await manager.info(held)).status is Status.QUEUED
        await manager.resume_claiming()
        assert (await manager.wait_for(held, timeout=WAIT)).status is Status.FINISHED

    async with Manager(store_url, concurrency=4, max_jobs=1) as limited:
        taken = await limited.start(appending("taken"))
        left = await limited.start(appending("left"))
        assert (await limited.wait_for(taken, timeout=WAIT)).status is Status.FINISHED
        assert (await limited.info(left)).status is Status.QUEUED
        assert limited.exhausted


async def test_closing_while_a_start_claims_its_process_leaves_nothing_running(
    store_url: str,
) -> None:
    """close() waits for a start() that is storing its process already claimed, then stops
    that run like any other: no child left behind, the process closed or back in the queue."""
    manager = Manager(store_url, concurrency=2)
    await manager.open()
    starting = asyncio.create_task(manager.start(Command(["sleep", "30"])))
    await asyncio.sleep(0)  # one turn: start() is now storing it (not waiting for anything)
    await manager.close()
    process_id = await starting
    async with Manager(store_url, run=False) as client:
        info = await client.info(process_id)
    assert info.status in (Status.ERROR, Status.QUEUED), info


async def test_concurrent_starts_never_exceed_concurrency_or_max_jobs(
    store_url: str, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    held = Command(["sh", "-c", f'while [ ! -e "{gate}" ]; do sleep 0.02; done'])
    async with Manager(store_url, concurrency=1) as manager:
        ids = await asyncio.gather(*(manager.start(held) for _ in range(4)))
        statuses = [(await manager.info(pid)).status for pid in ids]
        assert manager.running <= 1
        assert statuses.count(Status.RUNNING) <= 1, statuses
        gate.touch()
        for process_id in ids:
            assert (await manager.wait_for(process_id, timeout=WAIT)).status is Status.FINISHED

    async with Manager(store_url, concurrency=4, max_jobs=1) as limited:
        ids = await asyncio.gather(*(limited.start(Command(["true"])) for _ in range(3)))
        assert limited.jobs_claimed == 1
        infos = [await limited.info(pid) for pid in ids]
        assert sum(info.status is not Status.QUEUED for info in infos) == 1, infos


async def test_a_start_being_stored_claimed_is_not_taken_for_a_stray(
    store_url: str, tmp_path: Path
) -> None:
    """The stray check (a claim in the store that this manager does not run) must not requeue
    a process that start() has stored claimed but not launched yet: it would run twice."""
    log = tmp_path / "ran.log"
    async with Manager(store_url, concurrency=2) as manager:
        stored, go_on = asyncio.Event(), asyncio.Event()
        store = manager._store
        insert_claimed = store.insert_claimed

        async def late_reply(*args: Any, **kwargs: Any) -> Any:
            record = await insert_claimed(*args, **kwargs)
            stored.set()  # committed; the reply has not reached start() yet
            await go_on.wait()
            return record

        store.insert_claimed = late_reply  # type: ignore[method-assign]
        try:
            starting = asyncio.create_task(
                manager.start(Command(["sh", "-c", f'echo "$AIOBGPROC_ATTEMPT" >> "{log}"']))
            )
            await asyncio.wait_for(stored.wait(), WAIT)
            await manager._scheduler.requeue_strays()
        finally:
            go_on.set()
        process_id = await starting
        info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.FINISHED
    assert info.attempts == 1
    assert log.read_text().split() == ["1"]


async def test_a_step_process_cancelled_before_its_pid_is_recorded_never_begins(
    store_url: str, tmp_path: Path
) -> None:
    """The executor begins only once its pid is recorded; when that write finds the process
    cancelled meanwhile, it never begins: the step does not run at all."""
    log = tmp_path / "ran.log"
    async with Manager(store_url) as runner, Manager(store_url, run=False) as client:
        reached, gate = _hold_pid_writes(runner)  # the executor exists; its pid is not stored
        try:
            process_id = await client.start(
                Process([Step("stepmods.basic:record", "ran")]), {"log": str(log)}
            )
            await asyncio.wait_for(reached.wait(), WAIT)
            cancelling = asyncio.create_task(client.cancel(process_id))

            async def recorded() -> bool:
                return (await runner.info(process_id)).status is Status.CANCELLED

            await until(recorded)
        finally:
            gate.set()
        info = await asyncio.wait_for(cancelling, WAIT)
        assert info.status is Status.CANCELLED
        assert not log.exists(), "the step ran although its process was cancelled first"


async def test_a_claim_takes_what_it_is_asked_in_priority_order_within_queue_limits(
    store_url: str,
) -> None:
    """The claim itself (a function of the schema on PostgreSQL, one round trip): never more
    than asked, the highest priority then the oldest across queues, a limited queue's room,
    a paused queue skipped, only the queues named, and a delayed process once due."""
    from aiobgproc._location import open_store
    from aiobgproc.store import NewProcess

    store = open_store(store_url)
    await store.open()
    try:
        now = time.time()
        spec = {"kind": "command", "argv": ["true"], "cwd": None, "env": None}

        async def add(name: str, queue: str, priority: int = 0, **extra: Any) -> None:
            process = NewProcess(
                name,
                "command",
                spec,
                {},
                None,
                0,
                now + len(added) * 0.001,
                queue=queue,
                priority=priority,
                **extra,
            )
            added.append(name)
            assert await store.insert(process) == name

        added: list[str] = []
        await add("a-low", "a")
        await add("b-high", "b", priority=5)
        await add("a-high", "a", priority=5)
        await add("c-1", "c")
        await add("c-2", "c")
        await add("p-1", "p", priority=9)
        await add("later", "a", priority=9, run_at=now + 3600)
        await store.set_queue("c", limit=1)
        await store.set_queue("p", paused=True)

        async def claim(limit: int, queues: list[str] | None = None) -> list[str]:
            return [record.id for record in await store.claim("me", now, limit, queues)]

        assert await claim(1) == ["b-high"]  # the oldest of the highest priority
        assert await claim(1, ["c"]) == ["c-1"]
        assert await claim(5, ["c"]) == []  # c's one slot is taken
        assert await claim(5) == ["a-high", "a-low"]  # p is paused, later not due
        await store.set_queue("p", paused=False)
        assert await claim(1, ["a", "b"]) == []
        assert await claim(3) == ["p-1"]
        assert [record.id for record in await store.claim("me", now + 7200, 3)] == ["later"]
        claimed = await store.get("c-1")
        assert claimed is not None
        assert (claimed.status, claimed.owner) == (Status.RUNNING, "me")
        # Spare executors: the step processes claimed, in claim order, get one each as
        # their os_pid, with the step they begin at; a command gets none.
        await add("z-command", "z", priority=2)
        steps = {"kind": "process", "steps": [{"name": "one"}, {"name": "two"}]}
        for name in ("z-steps-1", "z-steps-2"):
            added.append(name)
            await store.insert(
                NewProcess(name, "process", steps, {}, None, 2, now + len(added), queue="z")
            )
        spares = [(4242, 1.5), (4343, 2.5), (4444, 3.5)]
        records = await store.claim("me", now, 3, ["z"], executors=spares)
        got = [(record.id, record.os_pid, record.os_pid_started, record.step) for record in records]
        assert got == [
            ("z-command", None, None, None),
            ("z-steps-1", 4242, 1.5, "one"),
            ("z-steps-2", 4343, 2.5, "one"),
        ]
        stored = await store.get("z-steps-2")
        assert stored is not None
        assert (stored.os_pid, stored.step) == (4343, "one")
        events = await store.read_events(0, "z-steps-1", None, 10)
        assert [(str(event.status), event.step) for event in events] == [
            ("queued", None),
            ("running", None),
            ("running", "one"),
        ]
    finally:
        await store.close()
