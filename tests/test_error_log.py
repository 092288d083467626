"""Manager(error_log=...): a block per failed or timed-out process, appended asynchronously."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from aiobgproc import Command, Manager, Process, Status, Step


async def test_failed_and_timed_out_processes_append_a_block(
    store_path: Path, tmp_path: Path
) -> None:
    log = tmp_path / "errors.log"
    lines = "; ".join(f"echo line{index}" for index in range(30))
    async with Manager(store_path, error_log=log, grace_period=0.5) as manager:
        failed = await manager.start(Command(f"{lines}; exit 4", shell=True))
        slow = await manager.start(Command(["sleep", "30"]), timeout=0.2)
        fine = await manager.start(Command(["true"]))
        step = await manager.start(Process([Step("stepmods.failing:raise_value_error")]), {"n": 1})
        infos = [await manager.wait_for(pid, timeout=30) for pid in (failed, slow, fine, step)]
    assert [info.status for info in infos] == [
        Status.ERROR,
        Status.TIMEOUT,
        Status.FINISHED,
        Status.ERROR,
    ]
    text = log.read_text()
    headers = [line for line in text.splitlines() if not line.startswith("    ")]
    assert len(headers) == 3  # nothing for the process that finished
    by_id = {line.split("\t")[1]: line for line in headers}
    assert set(by_id) == {failed, slow, step}
    stamp, _, message = by_id[failed].split("\t")
    assert datetime.fromisoformat(stamp).tzinfo is not None  # UTC time first
    assert message == "command exited with code 4"
    assert "timed out after 0.2 s" in by_id[slow]
    assert "ValueError" in by_id[step]
    # The failed command's block ends with the last lines of its output.
    block = text.split(by_id[failed])[1].split("\n\n")[0]
    tail = re.findall(r"^    (line\d+)$", block, flags=re.MULTILINE)
    assert tail[-1] == "line29"
    assert "line0" not in tail
