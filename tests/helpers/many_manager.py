"""One of the OS processes of the "8 x 100 on one new store" test.

Usage: ``python many_manager.py STORE LOG COUNT TOTAL``. Prints ``ready``, waits for ``go``
on stdin (so that all of them open the new store at the same moment), opens a running
Manager, starts COUNT commands that append their process id to LOG, and waits for them.
It keeps its manager open until the store holds TOTAL terminal processes, since a manager
that closes ends the commands it is running (whoever started them) as ``error``. Prints one
JSON line ``{"ids": [...], "statuses": [...]}``; exits 0 when its commands all finished.
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import logging
import sys
import time

from aiobgproc import Command, Manager, Status

DEADLINE_S = 60.0
SCRIPT = 'echo "$AIOBGPROC_PROCESS_ID" >> "$1"'


async def main(manager: Manager, log: str, count: int, total: int) -> int:
    async with manager:
        ids = [await manager.start(Command(["sh", "-c", SCRIPT, "sh", log])) for _ in range(count)]
        infos = await asyncio.gather(*(manager.wait_for(pid, timeout=DEADLINE_S) for pid in ids))
        deadline = time.monotonic() + DEADLINE_S
        while True:
            everything = await manager.list(limit=total + 1)
            if len(everything) >= total and all(info.is_terminal for info in everything):
                break
            if time.monotonic() > deadline:
                print("the other processes' commands did not all end", file=sys.stderr)
                break
            await asyncio.sleep(0.05)
    print(json.dumps({"ids": ids, "statuses": [str(info.status) for info in infos]}), flush=True)
    return 0 if all(info.status is Status.FINISHED for info in infos) else 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    faulthandler.dump_traceback_later(90, exit=True)  # a hang shows where it hangs
    store, log, count, total = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    prepared = Manager(store)  # aiobgproc imported before "ready": only opening waits for "go"
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit("expected 'go' on stdin")
    sys.exit(asyncio.run(main(prepared, log, count, total)))
