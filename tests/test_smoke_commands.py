from __future__ import annotations

from aiobgproc import Command, Manager, Status


async def test_command_finishes_with_exit_code_zero(manager: Manager) -> None:
    process_id = await manager.start(Command(["sh", "-c", "echo hi"]))
    info = await manager.wait_for(process_id, timeout=10)
    assert info.status is Status.FINISHED
    assert info.output == {"exit_code": 0}
    assert await manager.output(process_id) == b"hi\n"
