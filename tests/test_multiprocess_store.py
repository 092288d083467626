"""Several OS processes, each with its own Manager, sharing one new SQLite store at once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from aiobgproc import Manager, ProcessInfo, Status

HELPER = Path(__file__).parent / "helpers" / "mp_manager.py"
PROCESSES = 4
COMMANDS_EACH = 50
TOTAL = PROCESSES * COMMANDS_EACH


def _run_helpers(store_path: Path) -> list[tuple[int, str, str]]:
    """Start the helpers, release them at the same moment, and collect (code, stdout, stderr)."""
    argv = [sys.executable, str(HELPER), str(store_path), str(COMMANDS_EACH), str(TOTAL)]
    children: list[subprocess.Popen[str]] = []
    results: list[tuple[int, str, str]] = []
    try:
        for _ in range(PROCESSES):
            children.append(
                subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        for child in children:  # each has imported aiobgproc and built its Manager
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:  # release them together
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        deadline = time.monotonic() + 60
        for child in children:
            try:
                stdout, stderr = child.communicate(timeout=max(deadline - time.monotonic(), 0))
            except subprocess.TimeoutExpired:
                child.kill()
                stdout, stderr = child.communicate()
                stderr += "\n[killed: still running after 60 s]"
            results.append((child.returncode, stdout, stderr))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    return results


async def _everything(store_path: Path) -> list[ProcessInfo]:
    async with Manager(store_path, run=False) as client:
        return await client.list(limit=TOTAL + 100)


def test_four_processes_share_a_new_store_without_database_is_locked(
    store_path: Path,
) -> None:
    assert not store_path.exists()

    results = _run_helpers(store_path)

    started: set[str] = set()
    for returncode, stdout, stderr in results:
        assert "locked" not in stderr.lower(), stderr
        assert "Traceback" not in stderr, stderr
        assert returncode == 0, f"exit code {returncode}\n{stdout}\n{stderr}"
        report = json.loads(stdout)
        assert report["statuses"] == ["finished"] * COMMANDS_EACH
        started.update(report["ids"])
    assert len(started) == TOTAL

    infos = asyncio.run(_everything(store_path))
    assert len(infos) == TOTAL
    assert {info.id for info in infos} == started
    assert all(info.status is Status.FINISHED for info in infos)
    assert all(info.output == {"exit_code": 0} and info.attempts == 1 for info in infos)
