"""One of the OS processes of the "same key from 8 processes at once" test.

Usage: ``python keyed_start.py STORE KEY``. Opens a client on STORE, prints ``ready``, waits
for ``go`` on stdin (so that all of them start at the same moment), starts a command with
KEY and prints the id it got.
"""

from __future__ import annotations

import asyncio
import sys

from aiobgproc import Command, Manager


async def main(store: str, key: str) -> None:
    async with Manager(store, run=False) as client:
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            sys.exit("expected 'go' on stdin")
        process_id = await client.start(Command(["sleep", "30"]), key=key, label="keyed")
        print(process_id, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
