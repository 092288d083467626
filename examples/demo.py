"""A tour of aiobgproc: background commands and a paused step process, shown live.

Run: python examples/demo.py   (uses a temporary store; pass a path to keep it)
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from aiobgproc import Command, Manager, Process, ProcessInfo, Status, Step


def line(info: ProcessInfo, label: str) -> str:
    progress = ""
    if info.progress is not None:
        progress = f" {info.progress:4.0%} {info.progress_message or ''}"
    step = f" step={info.step}" if info.step else ""
    code = f" exit={info.exit_code}" if info.exit_code is not None else ""
    return f"  {label:<10} {info.status:<12}{step}{code}{progress}"


async def show_until_stopped(manager: Manager, labels: dict[str, str]) -> None:
    """Print a status table every 0.3 s until every process is terminal or paused."""
    while True:
        infos = {pid: await manager.info(pid) for pid in labels}
        print("\n".join(line(info, labels[pid]) for pid, info in infos.items()))
        if all(info.status not in (Status.QUEUED, Status.RUNNING) for info in infos.values()):
            return
        print()
        await asyncio.sleep(0.3)


async def main(store: Path) -> None:
    async with Manager(store, concurrency=4) as manager:
        print(f"store: {store}\n")
        labels = {
            await manager.start(Command(["ls", "-l", "/"])): "ls",
            await manager.start(
                Command("for i in 1 2 3; do echo tick $i; sleep 0.4; done", shell=True)
            ): "ticker",
            await manager.start(Command(["sh", "-c", "echo oops >&2; exit 3"])): "failing",
            await manager.start(Command(["sleep", "30"]), timeout=1): "too-slow",
        }
        review = await manager.start(
            Process(
                {
                    "count": Step("demo_steps:count_words"),
                    "review": Step("demo_steps:Review"),
                    "publish": Step("demo_steps:publish"),
                }
            ),
            data={"text": "the quick brown fox jumps over the lazy dog"},
        )
        labels[review] = "review"
        await show_until_stopped(manager, labels)

        print("\nlive output of the ticker, streamed from the store:")
        ticker = next(pid for pid, label in labels.items() if label == "ticker")
        async for chunk in manager.stream_output(ticker):
            for text in chunk.decode(errors="replace").splitlines():
                print(f"  | {text}")
        failing = next(pid for pid, label in labels.items() if label == "failing")
        info = await manager.info(failing)
        print(f"\nfailing: {info.status}, {info.error.message if info.error else ''}")

        info = await manager.info(review)
        print(f"\nreview is {info.status} with {info.output}; proceeding with approval")
        await manager.proceed(review, {"approved": True})
        info = await manager.wait_for(review, timeout=30)
        print(f"review is {info.status}: output {info.output}")
        print((await manager.output(review)).decode().rstrip())


if __name__ == "__main__":
    if len(sys.argv) > 1:
        asyncio.run(main(Path(sys.argv[1])))
    else:
        with tempfile.TemporaryDirectory() as directory:
            asyncio.run(main(Path(directory) / "demo.db"))
