"""A manager in an OS process of its own, for tests that SIGKILL, SIGSTOP or SIGTERM it.

Usage: ``python run_manager.py STORE [--concurrency N] [--lease S] [--grace-period S]
[--max-attempts N]``. Opens a running Manager on STORE, prints ``ready MANAGER_ID`` on stdout
and runs until SIGTERM or SIGINT; then it closes the manager, prints ``closed`` and exits 0.
Logs (warnings and up) go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

# The tests directory, so that executors (which get this sys.path) can import stepmods.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiobgproc import Manager


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--grace-period", type=float, default=1.0)
    parser.add_argument("--max-attempts", type=int, default=3)
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    manager = Manager(
        args.store,
        concurrency=args.concurrency,
        lease=args.lease,
        grace_period=args.grace_period,
        max_attempts=args.max_attempts,
    )
    await manager.open()
    try:
        print(f"ready {manager.id}", flush=True)
        await stop.wait()
    finally:
        await manager.close()
    print("closed", flush=True)
    return 0


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
