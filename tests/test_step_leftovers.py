"""Processes a step leaves running are stopped when its process finishes."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from aiobgproc import Manager, Process, Status, Step


def _gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold"])
@pytest.mark.parametrize("target", ["leave_session_child", "leave_group_child"])
async def test_children_left_by_a_step_are_stopped_when_the_process_finishes(
    store_path: Path, target: str, warm: bool
) -> None:
    async with Manager(store_path, warm=warm) as manager:
        process_id = await manager.start(Process([Step(f"stepmods.escaping:{target}")]))
        info = await manager.wait_for(process_id, timeout=20)
        assert info.status is Status.FINISHED
        assert info.output is not None
        assert _gone(info.output["child"])
