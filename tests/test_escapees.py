"""Processes that escape a run's session are stopped whenever and however the run ends.

Regression tests for two fault-soak findings: a grandchild that starts its own session
(parent pid 1 once the command exits, the process's tag in its environment) outlived a
command that ended normally; and a cancel that landed just after the command's own process
had exited (while the grandchild still held the output pipe) returned ``cancelled`` with
the grandchild alive. Whatever the phase, every process carrying the run's tag is gone
before the run's end is recorded (and before cancel returns).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from aiobgproc import Command, Manager, Process, Status, Step
from aiobgproc._os.tree import find_pids, find_tree
from helpers.invariants import describe, tagged
from helpers.procs import poll

WAIT = 30.0
GRACE = 0.5  # the escapee ignores SIGTERM: SIGKILL follows after this

# Starts a grandchild in a session of its own that ignores SIGTERM and records its pid in
# "$1", waits for that, then goes on with "$2" (a shell command) and exits.
ESCAPE = (
    'setsid sh -c \'trap "" TERM; echo $$ > "$1"; exec sleep 30\' escapee "$1" {redirect} &'
    ' while [ ! -s "$1" ]; do sleep 0.01; done; {then}'
)


def script(then: str = "echo end", *, keep_pipe: bool = True) -> str:
    return ESCAPE.format(redirect="" if keep_pipe else ">/dev/null 2>&1", then=then)


def escapee(pidfile: Path) -> int:
    return int(pidfile.read_text())


def alive(pid: int) -> bool:
    """Running (a zombie is dead: this machine's PID 1 does not reap orphans)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_none_left(process_id: str) -> None:
    left = tagged([process_id])
    assert not left, f"still running for {process_id}:\n{describe(left)}"


@pytest.fixture
async def manager(store_url: str) -> AsyncIterator[Manager]:
    async with Manager(store_url, concurrency=4, grace_period=GRACE) as opened:
        yield opened


def command(pidfile: Path, then: str = "echo end", *, keep_pipe: bool = True) -> Command:
    return Command(["sh", "-c", script(then, keep_pipe=keep_pipe), "outer", str(pidfile)])


# -- the command ends by itself -----------------------------------------------------------------


@pytest.mark.parametrize("keep_pipe", [True, False], ids=["holds-pipe", "own-output"])
async def test_an_escaped_grandchild_is_stopped_when_the_command_finishes(
    manager: Manager, tmp_path: Path, keep_pipe: bool
) -> None:
    pidfile = tmp_path / "escapee.pid"
    process_id = await manager.start(command(pidfile, keep_pipe=keep_pipe))
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.FINISHED, info.error
    assert not alive(escapee(pidfile)), "the escaped grandchild outlived the command"
    assert_none_left(process_id)
    assert b"end\n" in await manager.output(process_id)


async def test_an_escaped_grandchild_is_stopped_when_the_command_fails(
    manager: Manager, tmp_path: Path
) -> None:
    pidfile = tmp_path / "escapee.pid"
    process_id = await manager.start(command(pidfile, "exit 3"))
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.ERROR
    assert info.exit_code == 3
    assert not alive(escapee(pidfile))
    assert_none_left(process_id)


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold"])
async def test_a_grandchild_that_a_step_left_in_its_own_session_is_stopped(
    store_url: str, tmp_path: Path, warm: bool
) -> None:
    pidfile = tmp_path / "escapee.pid"
    async with Manager(store_url, grace_period=GRACE, warm=warm) as manager:
        process_id = await manager.start(
            Process([Step("stepmods.escaping:leave_escaped_grandchild")]),
            {"script": script(), "pidfile": str(pidfile)},
        )
        info = await manager.wait_for(process_id, timeout=WAIT)
        assert info.status is Status.FINISHED, info.error
        assert info.output is not None
        assert not alive(info.output["grandchild"])
        assert_none_left(process_id)


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold"])
async def test_a_daemon_a_step_forked_without_exec_is_stopped(store_url: str, warm: bool) -> None:
    # Found by review: a forked executor's /proc environ is the warm executor's block, and so
    # is a daemon's it forks without exec'ing: the tag is written into that block.
    async with Manager(store_url, grace_period=GRACE, warm=warm) as manager:
        process_id = await manager.start(Process([Step("stepmods.escaping:leave_daemon")]))
        info = await manager.wait_for(process_id, timeout=WAIT)
        assert info.status is Status.FINISHED, info.error
        assert info.output is not None
        assert not alive(info.output["daemon"]), "the daemon outlived its process"
        assert_none_left(process_id)


def test_an_old_recorded_pid_never_matches_another_programs_session() -> None:
    """A pid recorded long ago may since have led the session of some other program: its
    members are not ours unless they carry our tag (found by review)."""
    leader = subprocess.Popen(
        ["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!; read line"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert leader.stdout is not None
    assert leader.stdin is not None
    member = int(leader.stdout.readline())
    try:
        started = psutil.Process(leader.pid).create_time()
        leader.stdin.close()
        leader.wait(10)
        # Recorded an hour ago (as recovery or a late cancel would pass it): not ours.
        assert member not in find_pids(leader.pid, started - 3600, "no-such-process/1")
        assert member not in find_pids(leader.pid, started, "no-such-process/1")
        # Just reaped by the caller: its session is still its own.
        assert member in find_pids(leader.pid, started, None, just_reaped=True)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, 9)
        leader.stdout.close()


def test_a_tree_is_signalled_parents_first() -> None:
    """The run's own process first, then parents before their children: a shell signalled
    after the child it waits for reports that child's death ("Terminated") into the run's
    log (a flaky CI failure: cancel's output ended with b"Terminated\\n")."""
    leader = subprocess.Popen(
        ["sh", "-c", "sh -c 'sleep 60 & sleep 60 & wait' & sleep 60 & echo go; wait"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert leader.stdout is not None
    try:
        assert leader.stdout.readline() == b"go\n"
        started = psutil.Process(leader.pid).create_time()
        deadline = time.monotonic() + WAIT
        while len(find_pids(leader.pid, started)) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        procs = find_tree(leader.pid, started)
        assert len(procs) == 5
        assert procs[0].pid == leader.pid
        position = {proc.pid: index for index, proc in enumerate(procs)}
        for proc in procs[1:]:
            assert position[proc.ppid()] < position[proc.pid], "a child before its parent"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, 9)
        leader.wait(10)
        leader.stdout.close()


# -- cancel, in each phase of a run -------------------------------------------------------------


async def test_cancel_before_the_pid_is_recorded_stops_everything(
    manager: Manager, tmp_path: Path
) -> None:
    # Cancelled at once, the run is caught before its spawn, between spawn and pid write,
    # or just after: whichever it was, nothing is left when cancel returns.
    for attempt in range(8):
        pidfile = tmp_path / f"escapee-{attempt}.pid"
        process_id = await manager.start(command(pidfile, "sleep 30"))
        info = await manager.cancel(process_id)
        assert info.status is Status.CANCELLED
        assert_none_left(process_id)


async def test_cancel_while_the_command_runs_stops_the_escaped_grandchild(
    manager: Manager, tmp_path: Path
) -> None:
    pidfile = tmp_path / "escapee.pid"
    process_id = await manager.start(command(pidfile, "sleep 30"))
    await poll(lambda: pidfile.exists() and pidfile.stat().st_size > 0, timeout=WAIT, what="it")
    info = await manager.cancel(process_id)
    assert info.status is Status.CANCELLED
    assert not alive(escapee(pidfile))
    assert_none_left(process_id)


async def _outer_exited(manager: Manager, process_id: str) -> None:
    """Wait until the command's own process has exited (its pipe may still be held)."""
    deadline = time.monotonic() + WAIT
    info = await manager.info(process_id)
    while info.os_pid is None:
        assert not info.status.is_terminal, info
        assert time.monotonic() < deadline, "the command's pid was never recorded"
        await asyncio.sleep(0.01)
        info = await manager.info(process_id)
    pid = info.os_pid
    await poll(lambda: not alive(pid), timeout=WAIT, what="the command's own process to exit")


@pytest.mark.parametrize(
    ("then", "keep_pipe"),
    [
        # The grandchild holds the pipe: the run waits for it to close.
        pytest.param("echo end", True, id="pipe-held"),
        # 16 MiB of output, then exit: the cancel lands while the run stores it.
        pytest.param("head -c 16777216 /dev/zero", False, id="output-stored"),
    ],
)
async def test_cancel_after_the_command_exited_stops_the_grandchild(
    manager: Manager, tmp_path: Path, then: str, keep_pipe: bool
) -> None:
    pidfile = tmp_path / "escapee.pid"
    process_id = await manager.start(command(pidfile, then, keep_pipe=keep_pipe))
    await _outer_exited(manager, process_id)
    info = await manager.cancel(process_id)
    # The cancel landed while the run waited for the pipe or stored the output (cancelled),
    # or just after the run recorded its end (finished): either way nothing is left.
    assert info.status in (Status.CANCELLED, Status.FINISHED)
    assert not alive(escapee(pidfile))
    assert_none_left(process_id)


# -- timeouts -------------------------------------------------------------------------------------


async def test_a_timeout_stops_the_escaped_grandchild(manager: Manager, tmp_path: Path) -> None:
    pidfile = tmp_path / "escapee.pid"
    process_id = await manager.start(
        Command(["sh", "-c", script("sleep 30"), "outer", str(pidfile)], timeout=1.0)
    )
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.TIMEOUT
    assert not alive(escapee(pidfile))
    assert_none_left(process_id)


async def test_a_timeout_while_the_pipe_is_held_stops_the_escaped_grandchild(
    manager: Manager, tmp_path: Path
) -> None:
    pidfile = tmp_path / "escapee.pid"
    # The command exits at once; its deadline passes while the grandchild holds the pipe.
    process_id = await manager.start(
        Command(["sh", "-c", script(), "outer", str(pidfile)], timeout=0.3)
    )
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status in (Status.FINISHED, Status.TIMEOUT)
    assert not alive(escapee(pidfile))
    assert_none_left(process_id)
