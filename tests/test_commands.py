"""Background commands through the Manager: lifecycle, queries, limits, timeouts and cleanup.

Every test runs real OS processes against a real SQLite file under tmp_path; the autouse
leak guard in conftest.py fails any test that leaves a process behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest

from aiobgproc import (
    Command,
    Manager,
    ProcessNotFoundError,
    Status,
    WaitTimeoutError,
)
from helpers.waiting import (
    descendants,
    is_alive,
    until,
    until_output_contains,
    until_running,
    until_status,
    wait_for_file_command,
)

HELPERS = Path(__file__).parent / "helpers"
GRACE_S = 0.5
SLACK_S = 1.5  # scheduling headroom on a loaded machine, on top of timeout + grace
# sh ignores SIGTERM and so does the subshell it forks (ignored signals survive fork and exec).
STUBBORN_TREE = 'trap "" TERM; (trap "" TERM; sleep 600) & echo started; sleep 600'


async def _stubborn_tree(manager: Manager, process_id: str) -> list[psutil.Process]:
    """Wait until the TERM-ignoring tree is complete; return its processes."""
    await until_output_contains(manager, process_id, b"started")
    found: list[psutil.Process] = []

    async def both_sleeps_exist() -> bool:
        info = await manager.info(process_id)
        if info.os_pid is None:
            return False
        found[:] = descendants(info.os_pid)
        sleeps = [proc for proc in found if "sleep" in " ".join(_cmdline(proc))]
        return len(sleeps) >= 2

    await until(both_sleeps_exist, what="the grandchild 'sleep 600'")
    return found


def _real_path(path: Path) -> str:
    return os.path.realpath(path)


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


# -- start, info, wait_for -------------------------------------------------------------------


async def test_start_returns_an_id_at_once_while_the_command_is_still_waiting(
    manager: Manager, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    began = time.monotonic()
    process_id = await manager.start(Command(wait_for_file_command(flag)))
    assert time.monotonic() - began < 1.0
    assert isinstance(process_id, str)
    assert process_id
    assert (await manager.info(process_id)).status in (Status.QUEUED, Status.RUNNING)
    await until_output_contains(manager, process_id, b"first")
    assert (await manager.info(process_id)).status is Status.RUNNING
    flag.touch()
    info = await manager.wait_for(process_id, timeout=10)
    assert info.status is Status.FINISHED
    assert await manager.output(process_id) == b"first\nsecond\n"


async def test_each_start_returns_a_distinct_id(manager: Manager) -> None:
    ids = [await manager.start(Command(["true"])) for _ in range(5)]
    assert len(set(ids)) == 5
    for process_id in ids:
        assert (await manager.wait_for(process_id, timeout=10)).status is Status.FINISHED


async def test_finished_command_info_has_utc_times_exit_code_and_json_ready_dict(
    manager: Manager,
) -> None:
    before = datetime.now(UTC)
    process_id = await manager.start(Command(["sh", "-c", "echo hello"]))
    info = await manager.wait_for(process_id, timeout=10)
    after = datetime.now(UTC)

    assert info.id == process_id
    assert info.status is Status.FINISHED
    assert info.output == {"exit_code": 0}
    assert info.exit_code == 0
    assert info.error is None
    assert info.os_pid is None  # only while it runs
    assert info.attempts == 1
    assert info.started_at is not None
    assert info.finished_at is not None
    for moment in (info.created_at, info.started_at, info.finished_at):
        assert moment.tzinfo is not None
        assert moment.utcoffset() == timedelta(0)
    slack = timedelta(seconds=1)
    assert before - slack <= info.created_at <= info.started_at <= info.finished_at <= after + slack

    as_dict = info.to_dict()
    decoded = json.loads(json.dumps(as_dict))
    assert decoded["id"] == process_id
    assert decoded["status"] == "finished"
    assert decoded["output"] == {"exit_code": 0}
    assert decoded["exit_code"] == 0
    assert decoded["error"] is None
    for name in ("created_at", "started_at", "finished_at"):
        moment = datetime.fromisoformat(decoded[name])
        assert moment == getattr(info, name)
        assert moment.utcoffset() == timedelta(0)


async def test_queued_command_info_has_no_start_or_finish_time(store_path: Path) -> None:
    async with Manager(store_path, run=False) as client:
        process_id = await client.start(Command(["true"]))
        info = await client.info(process_id)
        assert info.status is Status.QUEUED
        assert info.started_at is None
        assert info.finished_at is None
        assert info.created_at.utcoffset() == timedelta(0)
        assert json.loads(json.dumps(info.to_dict()))["started_at"] is None
        await client.cancel(process_id)


async def test_command_runs_in_cwd_with_env_added_to_the_inherited_environment(
    manager: Manager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOBGPROC_TEST_INHERITED", "from-parent")
    script = 'pwd -P; echo "$AIOBGPROC_TEST_ADDED"; echo "$AIOBGPROC_TEST_INHERITED"'
    process_id = await manager.start(
        Command(["sh", "-c", script], cwd=str(tmp_path), env={"AIOBGPROC_TEST_ADDED": "added"})
    )
    assert (await manager.wait_for(process_id, timeout=10)).status is Status.FINISHED
    lines = (await manager.output(process_id)).decode().splitlines()
    assert lines[0] == _real_path(tmp_path)
    assert lines[1:] == ["added", "from-parent"]


async def test_each_command_sees_the_managers_environment_as_it_is_at_its_start(
    manager: Manager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inherited environment is read anew for each run: changes in the manager's process
    between two runs (set, changed, removed) reach the next one."""

    async def seen() -> str:
        process_id = await manager.start(Command(["sh", "-c", 'echo "[$AIOBGPROC_TEST_VAR]"']))
        assert (await manager.wait_for(process_id, timeout=10)).status is Status.FINISHED
        return (await manager.output(process_id)).decode().strip()

    monkeypatch.delenv("AIOBGPROC_TEST_VAR", raising=False)
    assert await seen() == "[]"
    monkeypatch.setenv("AIOBGPROC_TEST_VAR", "one")
    assert await seen() == "[one]"
    monkeypatch.setenv("AIOBGPROC_TEST_VAR", "two")
    assert await seen() == "[two]"
    monkeypatch.delenv("AIOBGPROC_TEST_VAR")
    assert await seen() == "[]"


async def test_non_zero_exit_code_makes_the_command_error_with_exit_code_output(
    manager: Manager,
) -> None:
    process_id = await manager.start(Command(["sh", "-c", "echo failing; exit 3"]))
    info = await manager.wait_for(process_id, timeout=10)
    assert info.status is Status.ERROR
    assert info.output == {"exit_code": 3}
    assert info.exit_code == 3
    assert info.error is not None
    assert info.error.message
    assert info.finished_at is not None
    assert await manager.output(process_id) == b"failing\n"


@pytest.mark.parametrize(
    "program", ["/nonexistent/aiobgproc-no-such-program", "aiobgproc-no-such-program-on-path"]
)
async def test_missing_executable_makes_the_command_error(manager: Manager, program: str) -> None:
    process_id = await manager.start(Command([program, "--flag"]))
    info = await manager.wait_for(process_id, timeout=10)
    assert info.status is Status.ERROR
    assert info.error is not None
    assert program in info.error.message
    assert info.finished_at is not None


# -- list ------------------------------------------------------------------------------------


async def test_list_is_newest_first_and_filters_by_status_and_limit(
    manager: Manager, tmp_path: Path
) -> None:
    finished = []
    for _ in range(3):
        process_id = await manager.start(Command(["true"]))
        await manager.wait_for(process_id, timeout=10)
        finished.append(process_id)
    failed = await manager.start(Command(["false"]))
    await manager.wait_for(failed, timeout=10)
    running = await manager.start(Command(wait_for_file_command(tmp_path / "go")))
    await until_status(manager, running, Status.RUNNING)

    everything = [info.id for info in await manager.list()]
    assert everything == [running, failed, *reversed(finished)]
    assert [info.id for info in await manager.list(limit=2)] == [running, failed]
    assert [info.id for info in await manager.list(status="running")] == [running]
    assert [info.id for info in await manager.list(status=Status.FINISHED)] == finished[::-1]
    assert [info.id for info in await manager.list(status=Status.ERROR)] == [failed]
    assert [info.id for info in await manager.list(status=Status.FINISHED, limit=1)] == [
        finished[-1]
    ]
    assert await manager.list(status=Status.CANCELLED) == []
    listed = {info.id: info for info in await manager.list()}
    assert listed[failed] == await manager.info(failed)

    (tmp_path / "go").touch()
    assert (await manager.wait_for(running, timeout=10)).status is Status.FINISHED


# -- cancel ----------------------------------------------------------------------------------


async def test_cancel_running_command_makes_it_cancelled_and_stops_it(
    manager: Manager, tmp_path: Path
) -> None:
    process_id = await manager.start(Command(wait_for_file_command(tmp_path / "never")))
    running = await until_running(manager, process_id)
    await until_output_contains(manager, process_id, b"first")
    assert running.os_pid is not None
    tree = descendants(running.os_pid)
    assert tree

    info = await manager.cancel(process_id)

    assert info.status is Status.CANCELLED
    assert info.finished_at is not None
    assert not [proc for proc in tree if is_alive(proc)]
    assert (await manager.wait_for(process_id, timeout=5)).status is Status.CANCELLED
    assert (await manager.info(process_id)).status is Status.CANCELLED


async def test_cancel_queued_command_makes_it_cancelled_without_running_it(
    store_path: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    async with Manager(store_path, run=False) as client:
        process_id = await client.start(Command(["touch", str(marker)]))
        assert (await client.info(process_id)).status is Status.QUEUED
        info = await client.cancel(process_id)
        assert info.status is Status.CANCELLED
    async with Manager(store_path) as runner:
        other = await runner.start(Command(["true"]))
        await runner.wait_for(other, timeout=10)  # the queue has been looked at since
        assert (await runner.info(process_id)).status is Status.CANCELLED
    assert not marker.exists()


async def test_cancel_kills_a_term_ignoring_grandchild_within_the_grace_period(
    store_path: Path,
) -> None:
    async with Manager(store_path, grace_period=GRACE_S) as manager:
        process_id = await manager.start(Command(["sh", "-c", STUBBORN_TREE]))
        tree = await _stubborn_tree(manager, process_id)

        began = time.monotonic()
        info = await manager.cancel(process_id)
        elapsed = time.monotonic() - began

        assert info.status is Status.CANCELLED
        assert elapsed < GRACE_S + SLACK_S
        assert not [proc for proc in tree if is_alive(proc)], "cancel returned before the kill"


# -- timeouts --------------------------------------------------------------------------------


async def test_timeout_kills_a_term_ignoring_grandchild_and_sets_status_timeout(
    store_path: Path,
) -> None:
    async with Manager(store_path, grace_period=GRACE_S) as manager:
        began = time.monotonic()
        process_id = await manager.start(Command(["sh", "-c", STUBBORN_TREE]), timeout=1)
        tree = await _stubborn_tree(manager, process_id)

        info = await manager.wait_for(process_id, timeout=10)
        elapsed = time.monotonic() - began

        assert info.status is Status.TIMEOUT
        assert info.error is not None
        assert info.finished_at is not None
        assert info.started_at is not None
        assert info.finished_at - info.started_at >= timedelta(seconds=0.9)
        assert elapsed < 1 + GRACE_S + SLACK_S
        assert not [proc for proc in tree if is_alive(proc)]


async def test_start_timeout_overrides_the_command_timeout(
    store_path: Path, tmp_path: Path
) -> None:
    async with Manager(store_path, grace_period=GRACE_S) as manager:
        command = Command(wait_for_file_command(tmp_path / "never"), timeout=100)
        began = time.monotonic()
        process_id = await manager.start(command, timeout=0.3)
        info = await manager.wait_for(process_id, timeout=10)
        assert info.status is Status.TIMEOUT
        assert time.monotonic() - began < 0.3 + GRACE_S + SLACK_S


async def test_command_timeout_applies_when_start_gives_none(
    store_path: Path, tmp_path: Path
) -> None:
    async with Manager(store_path, grace_period=GRACE_S) as manager:
        command = Command(wait_for_file_command(tmp_path / "never"), timeout=0.3)
        process_id = await manager.start(command)
        info = await manager.wait_for(process_id, timeout=10)
        assert info.status is Status.TIMEOUT


async def test_grandchild_keeping_the_pipe_open_does_not_hang_the_finished_command(
    manager: Manager,
) -> None:
    began = time.monotonic()
    process_id = await manager.start(Command(["sh", "-c", "sleep 60 & echo done"]))
    info = await manager.wait_for(process_id, timeout=15)
    assert info.status is Status.FINISHED
    assert info.output == {"exit_code": 0}
    assert time.monotonic() - began < 5.0
    assert await manager.output(process_id) == b"done\n"


# -- wait_for --------------------------------------------------------------------------------


async def test_wait_for_raises_wait_timeout_error_and_process_keeps_running(
    manager: Manager, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    process_id = await manager.start(Command(wait_for_file_command(flag)))
    running = await until_running(manager, process_id)

    began = time.monotonic()
    with pytest.raises(WaitTimeoutError) as caught:
        await manager.wait_for(process_id, timeout=0.3)
    elapsed = time.monotonic() - began

    assert isinstance(caught.value, TimeoutError)
    assert 0.25 <= elapsed < 2.0
    still = await manager.info(process_id)
    assert still.status is Status.RUNNING
    assert still.os_pid == running.os_pid
    assert still.os_pid is not None
    assert psutil.pid_exists(still.os_pid)

    flag.touch()
    info = await manager.wait_for(process_id, timeout=10)
    assert info.status is Status.FINISHED
    assert await manager.output(process_id) == b"first\nsecond\n"


async def test_wait_for_with_zero_timeout_raises_at_once_for_a_running_process(
    manager: Manager, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    process_id = await manager.start(Command(wait_for_file_command(flag)))
    await until_status(manager, process_id, Status.RUNNING)
    began = time.monotonic()
    with pytest.raises(WaitTimeoutError):
        await manager.wait_for(process_id, timeout=0)
    assert time.monotonic() - began < 1.0
    flag.touch()
    assert (await manager.wait_for(process_id, timeout=10)).status is Status.FINISHED


async def test_wait_for_returns_at_once_for_a_terminal_process(manager: Manager) -> None:
    process_id = await manager.start(Command(["true"]))
    first = await manager.wait_for(process_id, timeout=10)
    again = await manager.wait_for(process_id, timeout=0)
    assert again == first


async def test_wait_for_follows_a_process_that_another_manager_on_the_store_runs(
    manager: Manager, store_url: str, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    async with Manager(store_url, run=False) as client:
        process_id = await client.start(Command(wait_for_file_command(flag)))
        running = await until_running(client, process_id)
        assert running.os_pid is not None

        waiter = asyncio.create_task(client.wait_for(process_id, timeout=15))
        await until_output_contains(client, process_id, b"first")
        assert not waiter.done()
        flag.touch()
        info = await waiter

        assert info.status is Status.FINISHED
        assert info.output == {"exit_code": 0}
        assert await client.output(process_id) == b"first\nsecond\n"
        assert await manager.info(process_id) == info


async def test_cancel_from_another_manager_stops_the_running_command(
    manager: Manager, store_url: str, tmp_path: Path
) -> None:
    process_id = await manager.start(Command(wait_for_file_command(tmp_path / "never")))
    running = await until_running(manager, process_id)
    assert running.os_pid is not None
    tree = descendants(running.os_pid)
    async with Manager(store_url, run=False) as client:
        info = await client.cancel(process_id)
        assert info.status is Status.CANCELLED
    assert (await manager.wait_for(process_id, timeout=10)).status is Status.CANCELLED

    async def tree_gone() -> bool:
        return not [proc for proc in tree if is_alive(proc)]

    await until(tree_gone, timeout=5, what="the cancelled command's processes to end")


# -- prune -----------------------------------------------------------------------------------


async def test_prune_deletes_terminal_processes_finished_before_the_cutoff(
    manager: Manager, tmp_path: Path
) -> None:
    done = await manager.start(Command(["sh", "-c", "echo kept-until-pruned"]))
    failed = await manager.start(Command(["false"]))
    for process_id in (done, failed):
        await manager.wait_for(process_id, timeout=10)
    flag = tmp_path / "go"
    running = await manager.start(Command(wait_for_file_command(flag)))
    await until_status(manager, running, Status.RUNNING)

    assert await manager.prune(timedelta(hours=1)) == 0
    assert {info.id for info in await manager.list()} == {done, failed, running}

    await until(_finished_in_the_past(manager, [done, failed]), what="finish times in the past")
    assert await manager.prune(timedelta(0)) == 2

    assert [info.id for info in await manager.list()] == [running]
    for gone in (done, failed):
        with pytest.raises(ProcessNotFoundError):
            await manager.info(gone)
        with pytest.raises(ProcessNotFoundError):
            await manager.output(gone)
    flag.touch()
    assert (await manager.wait_for(running, timeout=10)).status is Status.FINISHED
    assert await manager.prune(timedelta(hours=1)) == 0


def _finished_in_the_past(manager: Manager, ids: list[str]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        now = datetime.now(UTC)
        for process_id in ids:
            finished_at = (await manager.info(process_id)).finished_at
            if finished_at is None or finished_at >= now:
                return False
        return True

    return check


# -- concurrency -----------------------------------------------------------------------------


async def test_concurrency_limit_keeps_at_most_two_commands_running_and_all_finish(
    store_path: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    script = 'echo "start $1" >> "$2"; sleep 0.3; echo "end $1" >> "$2"'
    async with Manager(store_path, concurrency=2) as manager:
        ids = [
            await manager.start(Command(["sh", "-c", script, "sh", str(index), str(journal)]))
            for index in range(5)
        ]
        deadline = time.monotonic() + 20
        while True:
            # One query is one consistent snapshot; five info() calls would not be.
            running = await manager.list(status=Status.RUNNING)
            assert len(running) <= 2, [info.id for info in running]
            infos = [await manager.info(process_id) for process_id in ids]
            if all(info.is_terminal for info in infos):
                break
            assert time.monotonic() < deadline, "the five commands did not finish"
            await asyncio.sleep(0.01)

    assert [info.status for info in infos] == [Status.FINISHED] * 5
    live = 0
    most_live = 0
    events = journal.read_text().split()
    for word in events[::2]:
        live += 1 if word == "start" else -1
        most_live = max(most_live, live)
        assert live <= 2, events
    assert most_live == 2, "the two slots were never used at once"
    assert sorted(events[1::2]) == sorted([str(index) for index in range(5)] * 2)


# -- closing ---------------------------------------------------------------------------------


async def test_closing_the_manager_stops_a_running_command_and_records_error(
    store_path: Path, tmp_path: Path
) -> None:
    manager = Manager(store_path, grace_period=GRACE_S)
    await manager.open()
    try:
        process_id = await manager.start(Command(wait_for_file_command(tmp_path / "never")))
        running = await until_running(manager, process_id)
        await until_output_contains(manager, process_id, b"first")
        assert running.os_pid is not None
        tree = descendants(running.os_pid)
    finally:
        await manager.close()

    assert not [proc for proc in tree if is_alive(proc)]
    async with Manager(store_path, run=False) as client:
        info = await client.info(process_id)
        assert info.status is Status.ERROR
        assert info.error is not None
        assert info.error.message
        assert info.finished_at is not None
        assert await client.output(process_id) == b"first\n"


def test_interpreter_exits_promptly_after_closing_a_manager_with_a_running_command(
    tmp_path: Path,
) -> None:
    script = HELPERS / "close_and_exit.py"
    with subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "jobs.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            line = child.stdout.readline()  # blocks until the script has closed its manager
            assert line.strip() == "closed"
            began = time.monotonic()
            child.wait(timeout=10)
            exited_after = time.monotonic() - began
            _, stderr = child.communicate()
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert child.returncode == 0, stderr
    assert exited_after < 3.0, f"the interpreter took {exited_after:.1f} s to exit"
    assert "Traceback" not in stderr, stderr
    assert "was destroyed" not in stderr, stderr
