"""The library logs through `logging`, with the process id on every record about a process,
and prints nothing itself."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from aiobgproc import Command, Manager, Process, Step


async def test_records_about_a_process_carry_its_id(
    store_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiobgproc")
    async with Manager(store_path) as manager:
        process_id = await manager.start(Command(["sh", "-c", "exit 2"]))
        await manager.wait_for(process_id, timeout=20)
    about = [record for record in caplog.records if getattr(record, "process_id", None)]
    assert {record.process_id for record in about} == {process_id}  # type: ignore[attr-defined]
    messages = [record.getMessage() for record in about]
    # A free slot and an empty queue: the manager took it at once (else: "queued (command)").
    assert f"process {process_id} started (command)" in messages
    assert f"process {process_id} error" in messages
    assert all(process_id in message for message in messages)


async def test_the_library_prints_nothing(
    store_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    async with Manager(store_path) as manager:
        loud = await manager.start(Process([Step("stepmods.noisy:chatter")]))
        failing = await manager.start(Command(["sh", "-c", "echo out; echo err >&2; exit 1"]))
        await manager.wait_for(loud, timeout=20)
        await manager.wait_for(failing, timeout=20)
        await manager.cancel(await manager.start(Command(["sleep", "30"])))
    captured = capfd.readouterr()
    assert (captured.out, captured.err) == ("", "")
