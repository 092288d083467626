"""One OS process of the multi-process store test.

Usage: ``python mp_manager.py STORE COUNT TOTAL``. Prints ``ready``, waits for ``go`` on stdin
(so that all processes open the same new store at the same moment), then opens a Manager on
STORE, starts COUNT ``true`` commands and waits for them. It keeps its manager open until the
store holds TOTAL terminal processes: a manager that closes ends the commands it is running
(whoever started them) as ``error``, by contract. Prints one JSON line
``{"ids": [...], "statuses": [...]}`` and exits 0 when its commands all finished.
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import logging
import sys
import time

from aiobgproc import Command, Manager, Status

DEADLINE_S = 30.0


async def main(manager: Manager, count: int, total: int) -> int:
    async with manager:
        ids = [await manager.start(Command(["true"])) for _ in range(count)]
        infos = await asyncio.gather(*(manager.wait_for(pid, timeout=DEADLINE_S) for pid in ids))
        deadline = time.monotonic() + DEADLINE_S
        while True:
            everything = await manager.list(limit=total + 1)
            if len(everything) >= total and all(info.is_terminal for info in everything):
                break
            if time.monotonic() > deadline:
                print("the other processes' commands did not all end", file=sys.stderr)
                break
            await asyncio.sleep(0.02)
    statuses = [str(info.status) for info in infos]
    print(json.dumps({"ids": ids, "statuses": statuses}), flush=True)
    return 0 if all(info.status is Status.FINISHED for info in infos) else 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    faulthandler.dump_traceback_later(45, exit=True)  # a hang shows where it hangs
    store, count, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    # Built (and aiobgproc imported) before "ready": only opening the store waits for "go".
    prepared = Manager(store)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit("expected 'go' on stdin")
    sys.exit(asyncio.run(main(prepared, count, total)))
