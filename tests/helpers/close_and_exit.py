"""Open a manager, start ``sleep 100``, close the manager, print ``closed`` and return.

Run as a script by test_commands.py: the interpreter must then exit promptly, which it
cannot if a thread (e.g. an unclosed aiosqlite connection) is still alive.
"""

from __future__ import annotations

import asyncio
import sys
import time

from aiobgproc import Command, Manager, Status


async def main(store: str) -> None:
    manager = Manager(store, grace_period=0.5)
    await manager.open()
    try:
        process_id = await manager.start(Command(["sleep", "100"]))
        deadline = time.monotonic() + 10
        while (await manager.info(process_id)).status is not Status.RUNNING:
            if time.monotonic() > deadline:
                raise SystemExit("the command never started running")
            await asyncio.sleep(0.01)
    finally:
        await manager.close()
    print("closed", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
