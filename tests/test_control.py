"""Talking to a running command (API.md "Controlling running commands, and their output"):
stdin, signals, suspend and resume, from this OS process, another one, and the CLI."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from aiobgproc import (
    PIPE,
    Command,
    InvalidSpecError,
    InvalidStateError,
    Manager,
    Process,
    Status,
    Step,
)
from helpers.procs import Child, poll, start_manager
from helpers.waiting import descendants, is_alive, until, until_output_contains, until_status

WAIT = 30.0
# A shell with a child (sleep): a tree of two, which prints a tick every 50 ms.
TICKER = "echo ready; while :; do echo tick; sleep 0.05; done"


def _cli(store: str, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "aiobgproc", "--store", store, *args],
        input=data,
        capture_output=True,
        timeout=WAIT,
        check=False,
    )


def _stopped(os_pid: int) -> list[bool]:
    """For each process of the tree: is it stopped (SIGSTOP)?"""
    found = []
    for proc in descendants(os_pid):
        try:
            found.append(proc.status() == psutil.STATUS_STOPPED)
        except psutil.Error:
            continue
    return found


async def test_input_reaches_stdin_in_order_from_here_and_the_cli(store_url: str) -> None:
    async with Manager(store_url) as manager:
        process_id = await manager.start(Command(["cat"], stdin=PIPE))
        await manager.send_input(process_id, b"one\n")
        await until_output_contains(manager, process_id, b"one\n")
        # From another OS process: the CLI, on the same store.
        result = await asyncio.to_thread(_cli, store_url, "input", process_id, "--data", "two\n")
        assert result.returncode == 0, result.stderr
        await manager.send_input(process_id, bytearray(b"three\n"))
        result = await asyncio.to_thread(_cli, store_url, "input", process_id, "--close")
        assert result.returncode == 0, result.stderr
        info = await manager.wait_for(process_id, timeout=WAIT)
        assert info.status is Status.FINISHED
        assert await manager.output(process_id) == b"one\ntwo\nthree\n"
        with pytest.raises(InvalidStateError):
            await manager.send_input(process_id, b"late")


async def test_input_sent_while_queued_is_written_when_it_runs(store_url: str) -> None:
    async with Manager(store_url, run=False) as client:
        process_id = await client.start(Command(["cat"], stdin=PIPE))
        await client.send_input(process_id, b"early\n")
        await client.close_input(process_id)
        with pytest.raises(InvalidStateError, match="closed"):
            await client.send_input(process_id, b"after the close")
        async with Manager(store_url) as worker:
            info = await worker.wait_for(process_id, timeout=WAIT)
            assert info.status is Status.FINISHED
            assert await worker.output(process_id) == b"early\n"


async def test_stdin_bytes_and_devnull(manager: Manager) -> None:
    given = await manager.start(Command(["cat"], stdin=b"\x00bytes\xff"))
    # A big input: more than a pipe holds, written as the command reads it.
    big = await manager.start(Command(["wc", "-c"], stdin=b"x" * (3 << 20)))
    nothing = await manager.start(Command(["cat"]))
    for process_id in (given, big, nothing):
        assert (await manager.wait_for(process_id, timeout=WAIT)).status is Status.FINISHED
    assert await manager.output(given) == b"\x00bytes\xff"
    assert (await manager.output(big)).strip() == str(3 << 20).encode()
    assert await manager.output(nothing) == b""
    # Input goes only to a command started with stdin=PIPE.
    with pytest.raises(InvalidStateError, match="PIPE"):
        await manager.send_input(nothing, b"x")


@pytest.mark.parametrize("stdin", ["text", 0, 1.5, True, [b"x"]])
async def test_a_bad_stdin_stores_nothing(store_url: str, stdin: Any) -> None:
    async with Manager(store_url, run=False) as client:
        with pytest.raises(InvalidSpecError):
            await client.start(Command(["cat"], stdin=stdin))
        assert await client.list() == []


async def test_signal_the_command_or_its_tree(manager: Manager) -> None:
    # The shell reports USR1; its child (a python) reports it too, to its own file.
    script = (
        "trap 'echo shell got USR1' USR1; "
        "python3 -c 'import signal,sys,time; signal.signal(signal.SIGUSR1, lambda *a:"
        ' print("child got USR1", flush=True)); print("ready", flush=True); time.sleep(60)\' &'
        " wait; wait; wait"
    )
    process_id = await manager.start(Command(["sh", "-c", script]))
    await until_output_contains(manager, process_id, b"ready")
    await manager.signal(process_id, signal.SIGUSR1)
    await until_output_contains(manager, process_id, b"shell got USR1")
    assert b"child got USR1" not in await manager.output(process_id)
    await manager.signal(process_id, signal.SIGUSR1, tree=True)
    await until_output_contains(manager, process_id, b"child got USR1")
    with pytest.raises(InvalidSpecError):
        await manager.signal(process_id, 99999)
    for stop_or_continue in (signal.SIGSTOP, signal.SIGCONT):  # suspend() and resume() do
        with pytest.raises(InvalidSpecError, match="suspend"):
            await manager.signal(process_id, stop_or_continue)
    with pytest.raises(InvalidSpecError):
        await manager.signal(process_id, signal.SIGUSR1, tree="yes")  # type: ignore[arg-type]
    await manager.cancel(process_id)
    with pytest.raises(InvalidStateError):
        await manager.signal(process_id, signal.SIGUSR1)


async def test_suspend_stops_the_tree_and_its_timeout_clock(manager: Manager) -> None:
    timeout = 1.5
    process_id = await manager.start(Command(["sh", "-c", TICKER], timeout=timeout))
    await until_output_contains(manager, process_id, b"ready")
    started = time.monotonic()
    await manager.suspend(process_id)
    info = await manager.info(process_id)
    assert info.status is Status.SUSPENDED
    assert info.os_pid is not None
    stopped = _stopped(info.os_pid)
    assert stopped
    assert all(stopped)
    with pytest.raises(InvalidStateError):
        await manager.suspend(process_id)
    # wait_for does not return for a suspended process.
    with pytest.raises(TimeoutError):
        await manager.wait_for(process_id, timeout=0.2)
    # Suspended past its whole timeout: it does not count.
    await asyncio.sleep(max(0.0, started + timeout + 0.3 - time.monotonic()))
    assert (await manager.info(process_id)).status is Status.SUSPENDED
    await manager.resume(process_id)
    assert (await manager.info(process_id)).status is Status.RUNNING
    assert not any(_stopped(info.os_pid))
    with pytest.raises(InvalidStateError):
        await manager.resume(process_id)
    # The clock runs again: the timeout still comes, later than without the suspension.
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.TIMEOUT
    assert time.monotonic() - started > timeout + 0.3


async def test_cancel_of_a_suspended_process_stops_its_tree(manager: Manager) -> None:
    process_id = await manager.start(Command(["sh", "-c", TICKER]))
    await until_output_contains(manager, process_id, b"ready")
    await manager.suspend(process_id)
    os_pid = (await manager.info(process_id)).os_pid
    assert os_pid is not None
    tree = descendants(os_pid)
    info = await manager.cancel(process_id)
    assert info.status is Status.CANCELLED
    assert not [proc for proc in tree if is_alive(proc)]
    with pytest.raises(InvalidStateError):
        await manager.resume(process_id)


async def test_a_step_process_is_suspended_and_resumed(manager: Manager, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    process_id = await manager.start(
        Process({"wait": Step("stepmods.basic:gated")}), {"gate": str(gate)}
    )
    await until(
        lambda: _progress(manager, process_id), timeout=WAIT, what="the step to report progress"
    )
    await manager.suspend(process_id)
    os_pid = (await manager.info(process_id)).os_pid
    assert os_pid is not None
    assert all(_stopped(os_pid))
    await manager.resume(process_id)
    gate.touch()
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.FINISHED
    statuses = []
    async for event in manager.events(since=0, process_id=process_id):
        statuses.append(event.status)
        if event.status.is_terminal:
            break
    assert statuses[-3:] == [Status.SUSPENDED, Status.RUNNING, Status.FINISHED]


async def _progress(manager: Manager, process_id: str) -> bool:
    return (await manager.info(process_id)).progress is not None


async def test_not_running_processes_refuse_controls(manager: Manager) -> None:
    process_id = await manager.start(Command(["true"]))
    await manager.wait_for(process_id, timeout=WAIT)
    for call in (
        manager.suspend(process_id),
        manager.resume(process_id),
        manager.signal(process_id, signal.SIGTERM),
    ):
        with pytest.raises(InvalidStateError):
            await call
    with pytest.raises(InvalidSpecError):
        await manager.send_input(process_id, "text")  # type: ignore[arg-type]


async def test_cli_controls(store_url: str, tmp_path: Path) -> None:
    data = tmp_path / "input.txt"
    data.write_bytes(b"from a file\n")
    async with Manager(store_url) as manager:
        result = await asyncio.to_thread(
            _cli, store_url, "run", "--stdin", "-", "--", "cat", data=b"piped\n"
        )
        assert result.returncode == 0, result.stderr
        piped = result.stdout.decode().strip()
        result = await asyncio.to_thread(_cli, store_url, "run", "--stdin-pipe", "--", "cat")
        open_id = result.stdout.decode().strip()
        result = await asyncio.to_thread(_cli, store_url, "input", open_id, "--file", str(data))
        assert result.returncode == 0, result.stderr
        await manager.close_input(open_id)
        for process_id, expected in ((piped, b"piped\n"), (open_id, b"from a file\n")):
            assert (await manager.wait_for(process_id, timeout=WAIT)).status is Status.FINISHED
            assert await manager.output(process_id) == expected
        ticker = await manager.start(Command(["sh", "-c", TICKER]))
        await until_output_contains(manager, ticker, b"ready")
        for args in (("suspend", ticker), ("resume", ticker), ("signal", ticker, "USR2")):
            result = await asyncio.to_thread(_cli, store_url, *args)
            assert result.returncode == 0, (args, result.stderr)
        info = await manager.wait_for(ticker, timeout=WAIT)
        assert info.status is Status.ERROR
        assert info.exit_code == -signal.SIGUSR2
        # Bad input: one line, the usage exit code, nothing changed.
        for args in (
            ("signal", ticker, "999"),
            ("signal", ticker, "SIGNOPE"),
            ("suspend", ticker),
            ("input", piped, "--close"),
        ):
            result = await asyncio.to_thread(_cli, store_url, *args)
            assert result.returncode == 2, args
            assert len(result.stderr.decode().strip().splitlines()) == 1, result.stderr


async def test_a_manager_killed_while_suspended_leaves_no_stopped_tree(
    store_url: str, tmp_path: Path
) -> None:
    owner: Child = start_manager(store_url, tmp_path, "owner", lease=1.0)
    try:
        owner.wait_ready()
        async with Manager(store_url, run=False) as client:
            process_id = await client.start(Command(["sh", "-c", TICKER]))
            await until_status(client, process_id, Status.RUNNING, timeout=WAIT)
            await until_output_contains(client, process_id, b"ready", timeout=WAIT)
            await client.suspend(process_id)  # across OS processes, through the store
            os_pid = (await client.info(process_id)).os_pid
            assert os_pid is not None
            tree = descendants(os_pid)
            assert tree
            assert all(_stopped(os_pid))
            owner.kill()
            await poll(
                lambda: not [proc for proc in tree if is_alive(proc)],
                timeout=10.0,
                what="the suspended tree to be gone",
            )
    finally:
        owner.stop()


async def test_a_signal_that_ends_the_command_is_still_answered(manager: Manager) -> None:
    # The owner answers a request before it records the end the request caused: the call
    # returns (it was done), it does not report the process as ended.
    for tree in (False, True, False):
        process_id = await manager.start(Command(["sh", "-c", "echo ready; exec sleep 30"]))
        await until_output_contains(manager, process_id, b"ready")
        await manager.signal(process_id, signal.SIGTERM, tree=tree)
        info = await manager.wait_for(process_id, timeout=WAIT)
        assert info.exit_code == -signal.SIGTERM
