"""Errors the Manager raises: bad specs (nothing stored), unknown ids and invalid states."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest

from aiobgproc import (
    AiobgprocError,
    Command,
    InvalidSpecError,
    InvalidStateError,
    Manager,
    ProcessNotFoundError,
    Status,
)
from helpers.waiting import until_running, wait_for_file_command

UNKNOWN_ID = "0000000000000000000000000000dead"

StartCall = Callable[[Manager], Awaitable[str]]


def _start(work: object, data: object = None, timeout: object = None) -> StartCall:
    async def call(manager: Manager) -> str:
        return await manager.start(work, cast(Any, data), timeout=cast(Any, timeout))

    return call


def _command(argv: object, **options: Any) -> Command:
    return Command(cast(Any, argv), **options)


INVALID_STARTS = [
    pytest.param(_start(_command(["echo", 1])), id="argv-item-not-a-string"),
    pytest.param(_start(_command(42)), id="argv-not-a-list"),
    pytest.param(_start(_command(b"ls")), id="argv-bytes"),
    pytest.param(_start(_command("echo hi")), id="plain-string-without-shell"),
    pytest.param(_start(_command([])), id="empty-argv"),
    pytest.param(_start(_command([""])), id="empty-program"),
    pytest.param(_start(_command(["echo", "a\x00b"])), id="nul-byte-in-argument"),
    pytest.param(_start(_command(["ec\x00ho"])), id="nul-byte-in-program"),
    pytest.param(_start(_command("echo a\x00b", shell=True)), id="nul-byte-in-shell-string"),
    pytest.param(_start(_command(["true"]), timeout=-1), id="negative-start-timeout"),
    pytest.param(_start(_command(["true"], timeout=-0.5)), id="negative-command-timeout"),
    pytest.param(_start(_command(["true"]), timeout=float("nan")), id="nan-timeout"),
    pytest.param(_start(_command(["true"]), timeout="10"), id="timeout-not-a-number"),
    pytest.param(_start(_command(["true"]), data={"x": object()}), id="data-not-serialisable"),
    pytest.param(_start(_command(["true"]), data={"x": float("nan")}), id="nan-in-data"),
    pytest.param(_start(_command(["true"]), data={"x": [float("inf")]}), id="inf-in-data"),
    pytest.param(_start(_command(["true"]), data={1: "x"}), id="data-key-not-a-string"),
    pytest.param(_start(_command(["true"]), data=["x"]), id="data-not-a-dict"),
    pytest.param(_start(_command(["true"], env={"A": 1})), id="env-value-not-a-string"),
    pytest.param(_start(["true"]), id="work-not-a-command"),
]


@pytest.mark.parametrize("start", INVALID_STARTS)
async def test_start_raises_invalid_spec_error_and_stores_nothing(
    manager: Manager, start: StartCall
) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        await start(manager)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, AiobgprocError)
    assert str(caught.value)
    assert await manager.list() == []


async def test_shell_true_runs_a_string_through_the_shell(manager: Manager) -> None:
    process_id = await manager.start(Command("echo $((1 + 2)) | tr 3 x", shell=True))
    info = await manager.wait_for(process_id, timeout=10)
    assert info.status is Status.FINISHED
    assert await manager.output(process_id) == b"x\n"


async def test_shell_true_with_a_failing_string_is_an_error_with_its_exit_code(
    manager: Manager,
) -> None:
    process_id = await manager.start(Command("exit 7", shell=True))
    info = await manager.wait_for(process_id, timeout=10)
    assert info.status is Status.ERROR
    assert info.output == {"exit_code": 7}


UNKNOWN_ID_CALLS: list[Any] = [
    pytest.param(lambda m: m.info(UNKNOWN_ID), id="info"),
    pytest.param(lambda m: m.wait_for(UNKNOWN_ID, timeout=1), id="wait_for"),
    pytest.param(lambda m: m.cancel(UNKNOWN_ID), id="cancel"),
    pytest.param(lambda m: m.output(UNKNOWN_ID), id="output"),
    pytest.param(lambda m: m.proceed(UNKNOWN_ID), id="proceed"),
    pytest.param(lambda m: m.proceed(UNKNOWN_ID, {"ok": True}), id="proceed-with-data"),
]


@pytest.mark.parametrize("call", UNKNOWN_ID_CALLS)
async def test_unknown_id_raises_process_not_found_error(
    manager: Manager, call: Callable[[Manager], Awaitable[object]]
) -> None:
    await manager.start(Command(["true"]))  # the store is not empty
    with pytest.raises(ProcessNotFoundError) as caught:
        await call(manager)
    assert isinstance(caught.value, LookupError)
    assert isinstance(caught.value, AiobgprocError)
    assert UNKNOWN_ID in str(caught.value)


async def test_stream_output_of_unknown_id_raises_process_not_found_error(
    manager: Manager,
) -> None:
    with pytest.raises(ProcessNotFoundError):
        async for _ in manager.stream_output(UNKNOWN_ID):
            pass


@pytest.mark.parametrize(
    ("argv", "status"),
    [(["true"], Status.FINISHED), (["false"], Status.ERROR)],
)
async def test_cancel_on_a_terminal_process_changes_nothing(
    manager: Manager, argv: list[str], status: Status
) -> None:
    process_id = await manager.start(Command(argv))
    before = await manager.wait_for(process_id, timeout=10)
    assert before.status is status

    returned = await manager.cancel(process_id)

    assert returned == before
    assert await manager.info(process_id) == before


async def test_cancel_twice_keeps_the_first_cancellation(manager: Manager, tmp_path: Path) -> None:
    process_id = await manager.start(Command(wait_for_file_command(tmp_path / "never")))
    await until_running(manager, process_id)
    first = await manager.cancel(process_id)
    assert first.status is Status.CANCELLED
    assert await manager.cancel(process_id) == first
    assert await manager.info(process_id) == first


async def test_proceed_on_a_finished_process_raises_invalid_state_error(
    manager: Manager,
) -> None:
    process_id = await manager.start(Command(["true"]))
    before = await manager.wait_for(process_id, timeout=10)
    with pytest.raises(InvalidStateError) as caught:
        await manager.proceed(process_id, {"approved": True})
    assert isinstance(caught.value, AiobgprocError)
    assert await manager.info(process_id) == before


async def test_proceed_on_a_running_process_raises_invalid_state_error(
    manager: Manager, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    process_id = await manager.start(Command(wait_for_file_command(flag)))
    await until_running(manager, process_id)
    with pytest.raises(InvalidStateError):
        await manager.proceed(process_id)
    assert (await manager.info(process_id)).status is Status.RUNNING
    flag.touch()
    assert (await manager.wait_for(process_id, timeout=10)).status is Status.FINISHED


async def test_proceed_on_a_queued_process_raises_invalid_state_error(store_path: Path) -> None:
    async with Manager(store_path, run=False) as client:
        process_id = await client.start(Command(["true"]))
        with pytest.raises(InvalidStateError):
            await client.proceed(process_id)
        assert (await client.info(process_id)).status is Status.QUEUED
        await client.cancel(process_id)


async def test_wait_for_with_negative_timeout_raises_invalid_spec_error(
    manager: Manager,
) -> None:
    process_id = await manager.start(Command(["true"]))
    with pytest.raises(InvalidSpecError):
        await manager.wait_for(process_id, timeout=-1)
    await manager.wait_for(process_id, timeout=10)
