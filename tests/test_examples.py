"""The demo and the examples in examples/ run as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def test_demo_runs_commands_and_a_paused_process_to_the_end(tmp_path: Path) -> None:
    out = _run("demo.py", str(tmp_path / "demo.db"))
    assert "tick 3" in out
    assert "failing: error, command exited with code 3" in out
    assert "review is finished: output {'published': True, 'words': 9}" in out


def test_steps_example_pauses_then_finishes_after_proceed() -> None:
    out = _run("steps_example.py")
    assert "interrupted after step 'review'" in out
    assert "finished: {'published': True, 'channel': 'news'}" in out
    assert "publishing to news" in out
