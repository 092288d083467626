"""Pausing a process (interrupt=True, InterruptingStep, Interrupt(data)) and proceed()."""

from __future__ import annotations

import asyncio
import os
import sys
import time
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
    ProcessNotFoundError,
    Status,
    Step,
)

WAIT = 30.0
TESTS_DIR = Path(__file__).parent


def _alive(os_pid: int) -> bool:
    try:
        return psutil.Process(os_pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def assert_gone(os_pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _alive(os_pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert not _alive(os_pid), f"executor {os_pid} still runs while the process is paused"


async def wait_paused(manager: Manager, process_id: str) -> ProcessInfo:
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.INTERRUPTED, info.error
    return info


async def read_lines(path: Path) -> list[str]:
    return (await asyncio.to_thread(path.read_text)).splitlines()


PAUSING_STEPS = {
    "interrupt-flag": Step("stepmods.basic:whoami", interrupt=True),
    "interrupting-step": Step("stepmods.pausing:Review", "check the numbers"),
    "returned-interrupt": Step("stepmods.pausing:pause_if_asked"),
}


@pytest.mark.parametrize("kind", list(PAUSING_STEPS))
async def test_pausing_step_interrupts_with_its_output_and_holds_no_os_process(
    manager: Manager, kind: str
) -> None:
    process_id = await manager.start(
        Process({"pause": PAUSING_STEPS[kind], "next": Step("stepmods.basic:seen")}),
        {"pause": True, "n": 1},
    )
    info = await wait_paused(manager, process_id)
    assert info.os_pid is None
    assert info.step == "pause"
    assert info.steps_done == 1
    assert info.steps_total == 2
    assert info.finished_at is None
    assert info.output is not None
    executor = info.output["os_pid"]
    assert executor != os.getpid()
    expected: dict[str, Any] = {"pause": True, "n": 1, "os_pid": executor}
    if kind == "interrupting-step":
        expected["note"] = "check the numbers"
    if kind == "returned-interrupt":
        expected["paused"] = True
    assert info.output == expected
    await assert_gone(executor)
    assert (await manager.info(process_id)).status is Status.INTERRUPTED

    assert await manager.proceed(process_id, {"approved": True}) == process_id
    done = await manager.wait_for(process_id, timeout=WAIT)
    assert done.status is Status.FINISHED, done.error
    assert done.output == {"seen": {**expected, "approved": True}}


async def test_async_interrupting_step_pauses(manager: Manager) -> None:
    process_id = await manager.start(
        Process(
            {"review": Step("stepmods.pausing:AsyncReview"), "next": Step("stepmods.basic:echo")}
        )
    )
    info = await wait_paused(manager, process_id)
    assert info.output == {"note": "async review"}
    await manager.cancel(process_id)


async def test_returning_interrupt_only_pauses_when_the_step_decides_so(manager: Manager) -> None:
    process_id = await manager.start(
        Process([Step("stepmods.pausing:pause_if_asked"), Step("stepmods.basic:add", "end")]),
        {"pause": False},
    )
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.FINISHED, info.error
    assert info.output == {"pause": False, "paused": False, "end": True}


async def test_proceed_merges_data_over_paused_output_for_next_step(manager: Manager) -> None:
    process_id = await manager.start(
        Process(
            {
                "draft": Step("stepmods.basic:add", "shared", "from-draft", interrupt=True),
                "publish": Step("stepmods.basic:seen"),
            }
        ),
        {"title": "t"},
    )
    paused = await wait_paused(manager, process_id)
    assert paused.output == {"title": "t", "shared": "from-draft"}
    await manager.proceed(process_id, {"shared": "from-proceed", "extra": 2})
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.FINISHED, info.error
    assert info.output == {"seen": {"title": "t", "shared": "from-proceed", "extra": 2}}


async def test_proceed_without_data_continues_with_paused_output(manager: Manager) -> None:
    process_id = await manager.start(
        Process([Step("stepmods.basic:add", "a", interrupt=True), Step("stepmods.basic:seen")])
    )
    await wait_paused(manager, process_id)
    assert await manager.proceed(process_id) == process_id
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.FINISHED, info.error
    assert info.output == {"seen": {"a": True}}


async def test_completed_steps_are_not_run_again_after_proceed(
    manager: Manager, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    process_id = await manager.start(
        Process(
            {
                "a": Step("stepmods.basic:record", "a"),
                "b": Step("stepmods.basic:record", "b", interrupt=True),
                "c": Step("stepmods.basic:record", "c"),
                "d": Step("stepmods.basic:record", "d", interrupt=True),
                "e": Step("stepmods.basic:record", "e"),
            }
        ),
        {"log": str(log)},
    )
    await wait_paused(manager, process_id)
    assert await read_lines(log) == ["a", "b"]
    await manager.proceed(process_id, {"first": 1})
    paused_again = await wait_paused(manager, process_id)
    assert paused_again.step == "d"
    assert paused_again.steps_done == 4
    assert await read_lines(log) == ["a", "b", "c", "d"]
    await manager.proceed(process_id, {"second": 2})
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.FINISHED, info.error
    assert await read_lines(log) == ["a", "b", "c", "d", "e"]
    assert info.output == {"log": str(log), "first": 1, "second": 2}
    assert info.steps_done == 5


@pytest.mark.parametrize(
    "last",
    [
        Step("stepmods.basic:add", "last", interrupt=True),
        Step("stepmods.pausing:Review"),
        Step("stepmods.pausing:pause_if_asked"),
    ],
    ids=["interrupt-flag", "interrupting-step", "returned-interrupt"],
)
async def test_proceeding_a_paused_last_step_finishes_with_merged_data(
    manager: Manager, last: Step
) -> None:
    process_id = await manager.start(
        Process({"first": Step("stepmods.basic:add", "first"), "last": last}),
        {"in": 0, "pause": True},
    )
    paused = await wait_paused(manager, process_id)
    assert paused.output is not None
    assert paused.output["first"] is True
    await manager.proceed(process_id, {"approved": "yes", "in": 1})
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.FINISHED, info.error
    assert info.output == {**paused.output, "approved": "yes", "in": 1}
    assert info.finished_at is not None
    assert info.error is None


async def test_cancel_of_paused_process_makes_it_cancelled(manager: Manager) -> None:
    process_id = await manager.start(
        Process([Step("stepmods.pausing:Review"), Step("stepmods.basic:echo")])
    )
    await wait_paused(manager, process_id)
    cancelled = await manager.cancel(process_id)
    assert cancelled.status is Status.CANCELLED
    assert (await manager.info(process_id)).status is Status.CANCELLED
    with pytest.raises(InvalidStateError):
        await manager.proceed(process_id, {})
    assert (await manager.info(process_id)).status is Status.CANCELLED


# -- proceed refused -------------------------------------------------------------------------


async def test_proceed_on_queued_process_raises_invalid_state(store_path: Path) -> None:
    async with Manager(store_path, run=False) as client:  # nobody runs it: it stays queued
        process_id = await client.start(Process([Step("stepmods.basic:echo")]))
        with pytest.raises(InvalidStateError):
            await client.proceed(process_id, {"x": 1})
        assert (await client.info(process_id)).status is Status.QUEUED
        await client.cancel(process_id)


async def test_proceed_on_running_process_raises_invalid_state(
    manager: Manager, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    process_id = await manager.start(Process([Step("stepmods.basic:gated")]), {"gate": str(gate)})
    deadline = time.monotonic() + WAIT
    while (await manager.info(process_id)).status is not Status.RUNNING:
        assert time.monotonic() < deadline, "the process never started running"
        await asyncio.sleep(0.01)
    with pytest.raises(InvalidStateError):
        await manager.proceed(process_id, {"x": 1})
    gate.touch()
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.FINISHED, info.error
    assert info.output is not None
    assert "x" not in info.output


@pytest.mark.parametrize(
    ("steps", "status"),
    [
        ([Step("stepmods.basic:echo")], Status.FINISHED),
        ([Step("stepmods.failing:raise_value_error")], Status.ERROR),
    ],
)
async def test_proceed_on_terminal_process_raises_invalid_state(
    manager: Manager, steps: list[Step], status: Status
) -> None:
    process_id = await manager.start(Process(steps))
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is status
    with pytest.raises(InvalidStateError):
        await manager.proceed(process_id, {"x": 1})
    assert await manager.info(process_id) == info


async def test_proceed_on_cancelled_process_raises_invalid_state(store_path: Path) -> None:
    async with Manager(store_path, run=False) as client:
        process_id = await client.start(Process([Step("stepmods.basic:echo")]))
        await client.cancel(process_id)
        with pytest.raises(InvalidStateError):
            await client.proceed(process_id)
        assert (await client.info(process_id)).status is Status.CANCELLED


async def test_proceed_on_unknown_process_raises_not_found(manager: Manager) -> None:
    with pytest.raises(ProcessNotFoundError):
        await manager.proceed("no-such-process", {})


async def test_proceed_with_unserialisable_data_is_refused_and_stays_paused(
    manager: Manager,
) -> None:
    process_id = await manager.start(
        Process([Step("stepmods.pausing:Review"), Step("stepmods.basic:echo")])
    )
    paused = await wait_paused(manager, process_id)
    with pytest.raises(InvalidSpecError):
        await manager.proceed(process_id, {"x": float("nan")})
    assert await manager.info(process_id) == paused
    await manager.cancel(process_id)


# -- concurrent proceeds ---------------------------------------------------------------------


async def test_of_two_concurrent_proceeds_exactly_one_succeeds(manager: Manager) -> None:
    process_id = await manager.start(
        Process([Step("stepmods.pausing:Review"), Step("stepmods.basic:seen")])
    )
    await wait_paused(manager, process_id)
    results = await asyncio.gather(
        manager.proceed(process_id, {"who": "first"}),
        manager.proceed(process_id, {"who": "second"}),
        return_exceptions=True,
    )
    winners = [index for index, result in enumerate(results) if result == process_id]
    losers = [result for result in results if isinstance(result, InvalidStateError)]
    assert len(winners) == 1, results
    assert len(losers) == 1, results
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.FINISHED, info.error
    assert info.output is not None
    assert info.output["seen"]["who"] == ["first", "second"][winners[0]]


async def _start_client(
    store: Path | str, process_id: str, go: Path, who: str
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stepmods.proceed_client",
        str(store),
        process_id,
        str(go),
        who,
        cwd=TESTS_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_of_two_proceeds_from_two_os_processes_exactly_one_succeeds(
    manager: Manager, store_url: str, tmp_path: Path
) -> None:
    process_id = await manager.start(
        Process([Step("stepmods.pausing:Review"), Step("stepmods.basic:seen")])
    )
    await wait_paused(manager, process_id)
    go = tmp_path / "go"
    clients = [await _start_client(store_url, process_id, go, who) for who in ("a", "b")]
    try:
        for client in clients:
            assert client.stdout is not None
            ready = await asyncio.wait_for(client.stdout.readline(), WAIT)
            assert ready == b"ready\n", await client.communicate()
        go.touch()  # both wait on this file: their proceeds race
        outputs = [await asyncio.wait_for(client.communicate(), WAIT) for client in clients]
    finally:
        for client in clients:
            if client.returncode is None:
                client.kill()
                await client.wait()
    results = [out.decode().strip() for out, _ in outputs]
    assert sorted(results) == ["proceeded", "refused"], outputs
    assert all(client.returncode == 0 for client in clients)
    info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.FINISHED, info.error
    assert info.output is not None
    assert info.output["seen"]["who"] == "ab"[results.index("proceeded")]
