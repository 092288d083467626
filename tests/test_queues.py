"""Describing, queueing and scheduling (API.md "Describing, queueing and scheduling"): label,
meta, key, queue, priority, delay/at, after, list filters, queue limits and pauses.

Every test runs on each store (``store_url``: SQLite, then PostgreSQL when available).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from aiobgproc import (
    Command,
    InvalidSpecError,
    Manager,
    Process,
    ProcessNotFoundError,
    QueueInfo,
    ScheduleNotFoundError,
    Status,
    Step,
)
from aiobgproc.store.rows import MAX_CHAIN
from helpers.procs import TESTS_DIR, start_worker

WAIT = 30.0
HELPERS = TESTS_DIR / "helpers"


def gate_command(flag: Path) -> Command:
    """Runs until ``flag`` exists."""
    return Command(["sh", "-c", 'while [ ! -e "$1" ]; do sleep 0.01; done', "sh", str(flag)])


async def until(predicate: Any, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


# -- describing ------------------------------------------------------------------------------


async def test_info_says_what_a_process_is_and_how_it_was_started(store_url: str) -> None:
    async with Manager(store_url, concurrency=2) as manager:
        command_id = await manager.start(
            Command(["echo", "hi there"]),
            label="greet",
            meta={"user": "ann", "n": 1, "tags": ["a", "b"]},
            queue="mail.out-1",
            priority=7,
        )
        steps_id = await manager.start(
            Process({"first": Step("stepmods.basic:echo"), "second": Step("stepmods.basic:echo")})
        )
        command = await manager.wait_for(command_id, timeout=WAIT)
        steps = await manager.wait_for(steps_id, timeout=WAIT)
    assert command.status is Status.FINISHED
    assert (command.label, command.meta, command.queue, command.priority) == (
        "greet",
        {"user": "ann", "n": 1, "tags": ["a", "b"]},
        "mail.out-1",
        7,
    )
    assert command.command == ("echo", "hi there")
    assert command.steps == ()
    assert (command.key, command.run_at, command.after) == (None, None, ())
    assert steps.command is None
    assert steps.steps == ("first", "second")
    assert (steps.label, steps.meta, steps.queue, steps.priority) == (None, None, "default", 0)
    as_dict = command.to_dict()
    assert as_dict["command"] == ["echo", "hi there"]
    assert as_dict["meta"] == {"user": "ann", "n": 1, "tags": ["a", "b"]}
    assert as_dict["after"] == []
    assert as_dict["steps"] == []
    assert {"label", "key", "queue", "priority", "run_at"} <= as_dict.keys()


# -- keys ------------------------------------------------------------------------------------


async def test_a_key_returns_the_active_process_then_is_free_again(
    store_url: str, tmp_path: Path
) -> None:
    async with Manager(store_url, concurrency=2) as manager:
        first = await manager.start(gate_command(tmp_path / "go"), key="export:ann")
        again = await manager.start(Command(["echo", "other"]), key="export:ann")
        other_key = await manager.start(Command(["true"]), key="export:bob")
        assert again == first
        assert other_key != first
        assert len(await manager.list(key="export:ann")) == 1
        (tmp_path / "go").touch()
        assert (await manager.wait_for(first, timeout=WAIT)).status is Status.FINISHED
        later = await manager.start(Command(["true"]), key="export:ann")
        assert later != first
        assert (await manager.info(later)).key == "export:ann"
        assert [info.id for info in await manager.list(key="export:ann")] == [later, first]
        await manager.wait_for(later, timeout=WAIT)


def _start_with_one_key(store_url: str, count: int) -> set[str]:
    """``count`` OS processes start a command with the same key at the same moment; the ids
    they got."""
    procs = [
        subprocess.Popen(
            [sys.executable, str(HELPERS / "keyed_start.py"), store_url, "nightly"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=TESTS_DIR,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        ids = set()
        for proc in procs:
            out, _ = proc.communicate(timeout=WAIT)
            assert proc.returncode == 0
            ids.add(out.strip())
        return ids
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


async def test_the_same_key_from_eight_os_processes_stores_one_process(store_url: str) -> None:
    ids = await asyncio.to_thread(_start_with_one_key, store_url, 8)
    assert len(ids) == 1
    async with Manager(store_url, run=False) as client:
        stored = await client.list(label="keyed")
        assert [info.id for info in stored] == list(ids)
        await client.cancel(stored[0].id)


# -- order, delays ---------------------------------------------------------------------------


async def test_higher_priority_runs_first_then_start_order(store_url: str, tmp_path: Path) -> None:
    async with Manager(store_url, concurrency=1) as manager:
        blocker = await manager.start(gate_command(tmp_path / "go"))

        async def blocking() -> bool:
            return (await manager.info(blocker)).status is Status.RUNNING

        await until(blocking, "the blocker to hold the one slot")
        names = ["low", "first", "high", "second", "top"]
        priorities = [-5, 0, 5, 0, 1000]
        ids = {
            name: await manager.start(Command(["true"]), priority=priority, label=name)
            for name, priority in zip(names, priorities, strict=True)
        }
        (tmp_path / "go").touch()
        infos = [await manager.wait_for(ids[name], timeout=WAIT) for name in names]
    started = sorted(infos, key=lambda info: info.started_at or datetime.max.replace(tzinfo=UTC))
    assert [info.label for info in started] == ["top", "high", "first", "second", "low"]


async def test_a_delayed_process_waits_and_blocks_nothing_behind_it(store_url: str) -> None:
    async with Manager(store_url, concurrency=1) as manager:
        before = time.time()
        delayed = await manager.start(Command(["true"]), delay=1.0, priority=10)
        later = await manager.start(Command(["true"]), delay=timedelta(hours=1))
        plain = await manager.start(Command(["true"]))
        queued = await manager.info(delayed)
        assert queued.status is Status.QUEUED
        assert queued.run_at is not None
        assert before + 1.0 <= queued.run_at.timestamp() <= time.time() + 1.0
        assert (await manager.wait_for(plain, timeout=WAIT)).status is Status.FINISHED
        done = await manager.wait_for(delayed, timeout=WAIT)
        assert done.status is Status.FINISHED
        assert done.started_at is not None
        assert done.started_at.timestamp() >= queued.run_at.timestamp()
        # Claimed about when it was due (a manager sleeps until the earliest run_at).
        assert done.started_at.timestamp() - queued.run_at.timestamp() < 1.0
        assert (await manager.info(later)).status is Status.QUEUED
        assert (await manager.cancel(later)).status is Status.CANCELLED


async def test_at_takes_an_aware_time(store_url: str) -> None:
    async with Manager(store_url, concurrency=1) as manager:
        when = datetime.now(UTC) + timedelta(seconds=0.5)
        process_id = await manager.start(Command(["true"]), at=when)
        info = await manager.info(process_id)
        assert info.run_at is not None
        assert abs(info.run_at.timestamp() - when.timestamp()) < 0.001
        assert info.run_at.tzinfo is not None
        done = await manager.wait_for(process_id, timeout=WAIT)
        assert done.started_at is not None
        assert done.started_at >= when
        past = await manager.start(Command(["true"]), at=when - timedelta(days=1))
        assert (await manager.wait_for(past, timeout=WAIT)).status is Status.FINISHED


# -- dependencies ----------------------------------------------------------------------------


async def test_after_waits_for_every_dependency_across_managers(
    store_url: str, tmp_path: Path
) -> None:
    async with (
        Manager(store_url, run=False) as client,
        Manager(store_url, concurrency=4) as runner,
    ):
        gates = [tmp_path / f"gate{index}" for index in range(10)]
        deps = [await client.start(gate_command(gate)) for gate in gates]
        fan_in = await client.start(Command(["true"]), after=deps, label="fan-in")
        chained = await client.start(Command(["true"]), after=[fan_in])
        assert (await client.info(fan_in)).after == tuple(deps)
        for gate in gates[:-1]:
            gate.touch()
        for dep in deps[:-1]:
            assert (await client.wait_for(dep, timeout=WAIT)).status is Status.FINISHED
        assert (await client.info(fan_in)).status is Status.QUEUED
        gates[-1].touch()
        assert (await client.wait_for(chained, timeout=WAIT)).status is Status.FINISHED
        first, last = await client.info(fan_in), await client.info(deps[-1])
        assert first.started_at is not None
        assert last.finished_at is not None
        assert first.started_at >= last.finished_at
        assert runner.runs_processes


async def test_a_failed_dependency_ends_its_dependents_transitively(store_url: str) -> None:
    async with Manager(store_url, concurrency=2) as manager:
        failing = await manager.start(Command(["sh", "-c", "exit 3"]), delay=0.3)
        child = await manager.start(Command(["true"]), after=[failing])
        grandchild = await manager.start(Command(["true"]), after=[child])
        other = await manager.start(Command(["true"]))
        assert (await manager.wait_for(failing, timeout=WAIT)).status is Status.ERROR
        ended = await manager.wait_for(child, timeout=WAIT)
        assert ended.status is Status.ERROR
        assert ended.error is not None
        assert ended.error.type == "DependencyError"
        assert failing in ended.error.message
        assert ended.started_at is None
        assert ended.attempts == 0
        last = await manager.wait_for(grandchild, timeout=WAIT)
        assert last.status is Status.ERROR
        assert last.error is not None
        assert child in last.error.message
        # Started after its dependency failed: ends at once.
        late = await manager.start(Command(["true"]), after=[failing])
        info = await manager.info(late)
        assert info.status is Status.ERROR
        assert info.error is not None
        assert info.error.type == "DependencyError"
        assert (await manager.wait_for(other, timeout=WAIT)).status is Status.FINISHED


async def test_cancelled_dependency_and_cancel_of_a_waiting_dependent(
    store_url: str, tmp_path: Path
) -> None:
    async with Manager(store_url, concurrency=2) as manager:
        dep = await manager.start(gate_command(tmp_path / "never"))
        waiting = await manager.start(Command(["true"]), after=[dep])
        started = time.monotonic()
        assert (await manager.cancel(waiting)).status is Status.CANCELLED
        assert time.monotonic() - started < 5.0
        dependent = await manager.start(Command(["true"]), after=[dep])
        await manager.cancel(dep)
        info = await manager.wait_for(dependent, timeout=WAIT)
        assert info.status is Status.ERROR
        assert info.error is not None
        assert "cancelled" in info.error.message


async def test_an_interrupted_dependency_keeps_its_dependent_waiting(store_url: str) -> None:
    async with Manager(store_url, concurrency=2) as manager:
        paused = await manager.start(
            Process({"ask": Step("stepmods.basic:echo", interrupt=True)}), data={"a": 1}
        )
        dependent = await manager.start(Command(["true"]), after=[paused])
        assert (await manager.wait_for(paused, timeout=WAIT)).status is Status.INTERRUPTED
        assert (await manager.info(dependent)).status is Status.QUEUED
        await manager.proceed(paused, {"b": 2})
        assert (await manager.wait_for(dependent, timeout=WAIT)).status is Status.FINISHED


async def test_after_an_unknown_id_stores_nothing(store_url: str) -> None:
    async with Manager(store_url, run=False) as client:
        known = await client.start(Command(["true"]))
        with pytest.raises(ProcessNotFoundError):
            await client.start(Command(["true"]), after=[known, "no-such-process"])
        with pytest.raises(ProcessNotFoundError):
            await client.start(Command(["true"]), after=[""])
        assert [info.id for info in await client.list()] == [known]


# -- queues ----------------------------------------------------------------------------------


async def test_a_paused_queue_blocks_nothing_else_and_resumes(
    store_url: str, tmp_path: Path
) -> None:
    async with Manager(store_url, concurrency=2) as manager:
        await manager.pause_queue("reports")
        held = await manager.start(Command(["true"]), queue="reports", priority=1000)
        free = await manager.start(Command(["true"]), queue="mail")
        assert (await manager.wait_for(free, timeout=WAIT)).status is Status.FINISHED
        assert (await manager.info(held)).status is Status.QUEUED
        queues = {queue.name: queue for queue in await manager.queues()}
        assert queues["reports"] == QueueInfo("reports", None, True, 1, 0)
        await manager.resume_queue("reports")
        assert (await manager.wait_for(held, timeout=WAIT)).status is Status.FINISHED
        # No setting and nothing queued or running: no longer listed.
        assert "reports" not in {queue.name for queue in await manager.queues()}


async def test_a_manager_runs_only_its_queues(store_url: str) -> None:
    async with (
        Manager(store_url, run=False) as client,
        Manager(store_url, concurrency=2, queues=["video"]) as video_only,
    ):
        mail = await client.start(Command(["true"]), queue="mail")
        video = await client.start(Command(["true"]), queue="video")
        assert (await client.wait_for(video, timeout=WAIT)).status is Status.FINISHED
        assert (await client.info(mail)).status is Status.QUEUED
        direct = await video_only.start(Command(["true"]), queue="mail")
        assert (await client.info(direct)).status is Status.QUEUED
        async with Manager(store_url, concurrency=2) as everything:
            assert (await everything.wait_for(mail, timeout=WAIT)).status is Status.FINISHED
            assert (await everything.wait_for(direct, timeout=WAIT)).status is Status.FINISHED


async def test_a_queue_limit_holds_across_three_workers(store_url: str, tmp_path: Path) -> None:
    """Eight commands of a queue limited to two, run by three worker processes (each with
    room for four): the commands' own timestamps never show three at once."""
    log = tmp_path / "times.log"
    script = 'echo "start $(date +%s.%N)" >> "$1"; sleep 0.3; echo "end $(date +%s.%N)" >> "$1"'
    async with Manager(store_url, run=False) as client:
        await client.set_queue_limit("encode", 2)
        ids = [
            await client.start(Command(["sh", "-c", script, "sh", str(log)]), queue="encode")
            for _ in range(8)
        ]
        workers = [
            start_worker(store_url, tmp_path, f"w{index}", "--concurrency", "4", "--burst")
            for index in range(3)
        ]
        try:
            infos = [await client.wait_for(pid, timeout=WAIT) for pid in ids]
            for worker in workers:
                assert await worker.wait_exit(WAIT) == 0, worker.stderr()
        finally:
            for worker in workers:
                worker.stop()
        assert all(info.status is Status.FINISHED for info in infos)
        owners = {info.id: info for info in infos}
        assert len(owners) == 8
    events = []
    for line in log.read_text().splitlines():
        kind, stamp = line.split()
        events.append((float(stamp), 1 if kind == "start" else -1))
    running = peak = 0
    for _, change in sorted(events, key=lambda event: (event[0], event[1])):
        running += change
        peak = max(peak, running)
    assert peak == 2, events


async def test_queue_settings_are_shown_and_cleared(store_url: str) -> None:
    async with Manager(store_url, run=False) as client:
        assert await client.queues() == []
        await client.set_queue_limit("video", 2)
        await client.pause_queue("batch")
        await client.start(Command(["true"]), queue="mail")
        assert await client.queues() == [
            QueueInfo("batch", None, True, 0, 0),
            QueueInfo("mail", None, False, 1, 0),
            QueueInfo("video", 2, False, 0, 0),
        ]
        await client.set_queue_limit("video", None)
        await client.resume_queue("batch")
        assert [queue.name for queue in await client.queues()] == ["mail"]
        assert (await client.queues())[0].to_dict() == {
            "name": "mail",
            "limit": None,
            "paused": False,
            "queued": 1,
            "running": 0,
        }


# -- listing ---------------------------------------------------------------------------------


async def test_list_filters_and_pages(store_url: str) -> None:
    async with Manager(store_url, run=False) as client:
        ids = []
        for index in range(7):
            ids.append(
                await client.start(
                    Command(["true"]),
                    label="even" if index % 2 == 0 else "odd",
                    queue="a" if index < 4 else "b",
                    meta={"user": f"u{index % 3}", "n": index, "team": "x"},
                )
            )
        newest_first = list(reversed(ids))
        assert [info.id for info in await client.list()] == newest_first
        assert [info.id for info in await client.list(label="odd")] == [ids[5], ids[3], ids[1]]
        assert [info.id for info in await client.list(queue="b")] == [ids[6], ids[5], ids[4]]
        assert [info.id for info in await client.list(meta={"user": "u1"})] == [ids[4], ids[1]]
        both = await client.list(meta={"user": "u0", "team": "x"}, label="even")
        assert [info.id for info in both] == [ids[6], ids[0]]
        assert [info.id for info in await client.list(meta={"n": 2.0})] == [ids[2]]
        assert await client.list(meta={"n": True}) == []
        assert await client.list(meta={"user": "u1"}, queue="a", status="running") == []
        assert len(await client.list(meta={})) == 7
        page = await client.list(limit=3)
        pages = [page]
        while page:
            page = await client.list(limit=3, before=page[-1].id)
            pages.append(page)
        assert [info.id for chunk in pages for info in chunk] == newest_first
        assert [len(chunk) for chunk in pages] == [3, 3, 1, 0]
        filtered = await client.list(queue="a", limit=2, before=ids[3])
        assert [info.id for info in filtered] == [ids[2], ids[1]]
        with pytest.raises(ProcessNotFoundError):
            await client.list(before="no-such-process")
        for bad in (
            {"queue": "no spaces"},
            {"meta": ["user"]},
            {"meta": "user=u1"},
            {"label": ""},
            {"label": "x" * 201},
            {"before": 5},
            {"status": "sleeping"},
        ):
            with pytest.raises(InvalidSpecError):
                await client.list(**bad)


# -- bad input -------------------------------------------------------------------------------


NOT_TIMEZONE_AWARE = datetime(2030, 1, 1)


@pytest.mark.parametrize(
    "options",
    [
        {"label": ""},
        {"label": "x" * 201},
        {"label": 5},
        {"label": "a\x00b"},
        {"label": "\ud800"},
        {"meta": [1, 2]},
        {"meta": {"a": float("nan")}},
        {"meta": {1: "a"}},
        {"meta": {"a": object()}},
        {"key": ""},
        {"key": "k" * 201},
        {"key": 12},
        {"queue": ""},
        {"queue": "q" * 65},
        {"queue": "has space"},
        {"queue": "slash/no"},
        {"queue": None},
        {"priority": 1001},
        {"priority": -1001},
        {"priority": 1.5},
        {"priority": True},
        {"priority": "5"},
        {"delay": -1},
        {"delay": float("nan")},
        {"delay": float("inf")},
        {"delay": "5"},
        {"delay": timedelta(seconds=-1)},
        {"delay": 1e12},
        {"delay": 10**400},
        {"at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=23)))},
        {"at": NOT_TIMEZONE_AWARE},
        {"at": "2030-01-01T00:00:00Z"},
        {"at": 1234.5},
        {"delay": 1, "at": datetime(2030, 1, 1, tzinfo=UTC)},
        {"after": 5},
        {"after": [5]},
        {"after": {"id": 1}},
    ],
)
async def test_bad_start_options_store_nothing(store_url: str, options: dict[str, Any]) -> None:
    async with Manager(store_url, run=False) as client:
        with pytest.raises(InvalidSpecError):
            await client.start(Command(["true"]), **options)
        assert await client.list() == []


async def test_bad_queue_settings_and_manager_queues(store_url: str) -> None:
    async with Manager(store_url, run=False) as client:
        for limit in (0, -1, 1.5, True, "2", 2**40):
            with pytest.raises(InvalidSpecError):
                await client.set_queue_limit("video", limit)  # type: ignore[arg-type]
        for name in ("", "a b", None, 5):
            with pytest.raises(InvalidSpecError):
                await client.pause_queue(name)  # type: ignore[arg-type]
            with pytest.raises(InvalidSpecError):
                await client.resume_queue(name)  # type: ignore[arg-type]
        assert await client.queues() == []
    for queues in ([], ["bad name"], [5], 5):
        with pytest.raises(InvalidSpecError):
            Manager(store_url, queues=queues)  # type: ignore[arg-type]


async def test_long_meta_values_and_keys_are_found(store_url: str) -> None:
    """A meta value or key too long for an index entry is indexed by its digest."""
    long_value = {"text": "x" * 10_000, "n": list(range(500))}
    long_key = "k" * 5000
    async with Manager(store_url, run=False) as client:
        process_id = await client.start(
            Command(["true"]), meta={"doc": long_value, long_key: 1, "short": "y"}
        )
        await client.start(Command(["true"]), meta={"doc": {"text": "other"}})
        assert [info.id for info in await client.list(meta={"doc": long_value})] == [process_id]
        assert [info.id for info in await client.list(meta={long_key: 1.0})] == [process_id]
        assert (await client.info(process_id)).meta == {
            "doc": long_value,
            long_key: 1,
            "short": "y",
        }


async def test_ids_that_cannot_be_stored_name_nothing(store_url: str) -> None:
    """Found by review: a lone surrogate in an id reached a UnicodeEncodeError."""
    async with Manager(store_url, run=False) as client:
        for call in (
            lambda: client.start(Command(["true"]), after=["\ud800"]),
            lambda: client.list(before="\ud800"),
            lambda: client.restart("\ud800"),
            lambda: client.info("\ud800"),
            lambda: client.cancel("a\x00b"),
        ):
            with pytest.raises(ProcessNotFoundError):
                await call()
        with pytest.raises(ScheduleNotFoundError):
            await client.unschedule("\ud800")
        assert await client.list() == []


async def test_a_chain_of_waiting_processes_is_bounded(store_url: str) -> None:
    """Found by review: a failure at the head of a chain ends it by triggers firing
    triggers, which the databases allow only so deep; a longer chain is refused at start."""
    async with Manager(store_url, run=False) as client:
        head = previous = await client.start(Command(["true"]))
        for _ in range(MAX_CHAIN):
            previous = await client.start(Command(["true"]), after=[previous])
        with pytest.raises(InvalidSpecError):
            await client.start(Command(["true"]), after=[previous])
        await client.cancel(head)
        tail = await client.info(previous)
        assert tail.status is Status.ERROR
        assert tail.error is not None
        assert tail.error.type == "DependencyError"


async def test_a_burst_worker_does_not_wait_for_a_dependency_it_cannot_run(
    store_url: str,
) -> None:
    """Found by review: a process waiting on a dependency in a paused queue kept a burst
    worker from ever exiting."""
    async with Manager(store_url, run=False) as client:
        await client.pause_queue("held")
        held = await client.start(Command(["true"]), queue="held")
        waiting = await client.start(Command(["true"]), after=[held])
        async with Manager(store_url, concurrency=2) as worker:
            await asyncio.wait_for(worker.wait_idle(burst=True), WAIT)
        assert (await client.info(waiting)).status is Status.QUEUED
        await client.cancel(held)
