"""Start a three-step process, let it pause for review, proceed, print the result.

Run: python examples/steps_example.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from aiobgproc import Manager, Process, Status, Step


async def main(store: Path) -> dict[str, object]:
    async with Manager(store) as manager:
        process_id = await manager.start(
            Process(
                {
                    "fetch": Step("example_steps:fetch", "https://example.org"),
                    "review": Step("example_steps:review"),
                    "publish": Step("example_steps:Publish", channel="news"),
                },
                timeout=60,
            ),
            data={"lang": "en"},
        )
        info = await manager.wait_for(process_id, timeout=30)
        print(f"{info.status} after step {info.step!r}: {info.output}")
        if info.status == Status.INTERRUPTED:
            await manager.proceed(process_id, {"approved": True})
            info = await manager.wait_for(process_id, timeout=30)
        print(f"{info.status}: {info.output}")
        print((await manager.output(process_id)).decode(), end="")
        assert info.output is not None
        return info.output


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(main(Path(directory) / "example.db"))
