"""What identifies a running child in the store (its pid and create time) is what psutil
sees: recovery and the tree kill tell a child from a later process with the same pid by it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from aiobgproc import Command, Manager, Process, Status, Step
from helpers.storedb import query
from helpers.waiting import until, wait_for_file_command

WAIT = 30.0


async def _check_identities(
    manager: Manager, store_path: Path, ids: list[str], release: Callable[[], None]
) -> None:
    """Check each child's recorded identity while it runs, then let them all finish."""
    try:
        await _compare(manager, store_path, ids)
    finally:
        release()
    for process_id in ids:
        assert (await manager.wait_for(process_id, timeout=WAIT)).status is Status.FINISHED


async def _compare(manager: Manager, store_path: Path, ids: list[str]) -> None:
    async def all_have_pids() -> bool:
        infos = [await manager.info(process_id) for process_id in ids]
        return all(info.os_pid is not None for info in infos)

    await until(all_have_pids, timeout=WAIT, what="every child to start")
    for process_id in ids:
        [(os_pid, started)] = query(
            store_path, "SELECT os_pid, os_pid_started FROM processes WHERE id = ?", (process_id,)
        )
        assert started == psutil.Process(os_pid).create_time(), process_id


async def test_recorded_create_times_of_commands_are_psutils(
    store_path: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    async with Manager(store_path, concurrency=24) as manager:
        ids = [await manager.start(Command(wait_for_file_command(gate))) for _ in range(24)]
        await _check_identities(manager, store_path, ids, gate.touch)


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold"])
async def test_recorded_create_times_of_executors_are_psutils(
    store_path: Path, tmp_path: Path, warm: bool
) -> None:
    gate = tmp_path / "gate"
    async with Manager(store_path, concurrency=8, warm=warm) as manager:
        work = Process([Step("stepmods.basic:gated")])
        ids = [await manager.start(work, {"gate": str(gate)}) for _ in range(8)]
        await _check_identities(manager, store_path, ids, gate.touch)
