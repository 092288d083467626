"""The examples in docs/ are run (or checked against the files they quote)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def blocks(path: Path, language: str, section: str | None = None) -> list[str]:
    text = path.read_text()
    if section is not None:
        start = text.index(f"## {section}")
        end = text.find("\n## ", start + 1)
        text = text[start : end if end != -1 else None]
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_cli_session_in_the_docs_runs(tmp_path: Path) -> None:
    script = "set -euo pipefail\n" + "\n".join(blocks(DOCS / "cli.md", "sh", "A session"))
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("AIOBGPROC_STORE", None)
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hello\nbye\n" in result.stdout
    assert '"published": true' in result.stdout
    assert "cancelled" in result.stdout
    assert "Traceback" not in result.stderr


def test_testing_guide_example_passes_with_the_plugin(pytester: pytest.Pytester) -> None:
    files = {}
    for block in blocks(DOCS / "testing.md", "python"):
        first, _, body = block.partition("\n")
        name = first.removeprefix("# ").strip()
        if name.endswith(".py"):
            files[name.removesuffix(".py")] = body
    assert set(files) == {"test_reports", "mysteps"}
    pytester.makepyfile(**files)
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_web_guide_quotes_the_example_app_verbatim() -> None:
    app = (ROOT / "examples" / "fastapi_app.py").read_text()
    quoted = blocks(DOCS / "web.md", "python")
    assert len(quoted) == 3  # the mount, the routes, the output stream
    for block in quoted:
        assert block in app, block


def test_queues_and_scheduling_example_runs(tmp_path: Path) -> None:
    (script,) = blocks(DOCS / "index.md", "python", "Queues and scheduling")
    path = tmp_path / "queues_example.py"
    path.write_text(script)
    result = subprocess.run(
        [sys.executable, str(path), str(tmp_path / "jobs.db")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "QueueInfo(name='video', limit=2" in result.stdout
    assert "['export for ann: finished']" in result.stdout


def test_events_example_runs(tmp_path: Path) -> None:
    (code,) = blocks(DOCS / "index.md", "python", "Events")
    script = code + (
        "\nimport sys\n"
        "from aiobgproc import Command\n"
        "async def demo(store: str, bookmark: Path) -> None:\n"
        "    bookmark.write_text('0')  # from the first event: nothing can be missed\n"
        "    watcher = asyncio.ensure_future(watch_failures(store, bookmark))\n"
        "    async with Manager(store) as m:\n"
        "        pid = await m.start(Command(['false']), label='nightly')\n"
        "        await m.wait_for(pid, timeout=30)\n"
        "        while not bookmark.exists() or int(bookmark.read_text()) < 3:\n"
        "            await asyncio.sleep(0.01)\n"
        "    watcher.cancel()\n"
        "asyncio.run(demo(sys.argv[1], Path(sys.argv[2])))\n"
    )
    path = tmp_path / "events_example.py"
    path.write_text(script)
    result = subprocess.run(
        [sys.executable, str(path), str(tmp_path / "jobs.db"), str(tmp_path / "bookmark")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nightly failed: ErrorInfo(type='CommandError'" in result.stdout
