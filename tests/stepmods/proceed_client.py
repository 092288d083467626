"""A separate OS process that proceeds a paused process: ``python -m stepmods.proceed_client``.

Arguments: STORE PROCESS_ID GO_FILE WHO. It opens a client manager, prints ``ready``, waits
until GO_FILE exists (so two clients proceed at the same moment), calls ``proceed`` with
``{"who": WHO}`` and prints ``proceeded`` or ``refused``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from aiobgproc import InvalidStateError, Manager


async def _proceed(store: str, process_id: str, go: Path, who: str) -> str:
    async with Manager(store, run=False) as manager:
        print("ready", flush=True)
        deadline = time.monotonic() + 30.0
        while not await asyncio.to_thread(go.exists):
            if time.monotonic() > deadline:
                return "no go"
            await asyncio.sleep(0.001)
        try:
            await manager.proceed(process_id, {"who": who})
        except InvalidStateError:
            return "refused"
        return "proceeded"


def main() -> None:
    store, process_id, go, who = sys.argv[1:5]
    print(asyncio.run(_proceed(store, process_id, Path(go), who)), flush=True)


if __name__ == "__main__":
    main()
