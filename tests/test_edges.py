"""Edges found in review: the CLI in-process, timeouts naming their step, how specs read."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aiobgproc import Command, Manager, Process, Status, Step, cli


def test_cli_main_writes_to_the_current_stdout_and_leaves_no_zombie(
    store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["run", "--store", str(store_path), "--", "true"])
    out = capsys.readouterr().out
    assert code == 0
    process_id = out.strip()
    assert len(process_id) == 32
    # The detached burst worker is not our child (the leak guard checks for zombies), and it
    # runs the process to the end.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert cli.main(["info", process_id, "--store", str(store_path), "--json"]) == 0
        if '"status": "finished"' in capsys.readouterr().out:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the burst worker did not run the process")


def test_prune_without_an_age_deletes_what_ended_over_a_week_ago(
    store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run", "--wait", "--store", str(store_path), "--", "true"]) == 0
    capsys.readouterr()
    assert cli.main(["prune", "--store", str(store_path)]) == 0
    assert capsys.readouterr().out == "0\n"
    assert cli.main(["prune", "0s", "--store", str(store_path)]) == 0
    assert capsys.readouterr().out == "1\n"


def test_an_absurd_duration_is_one_line_not_a_traceback(
    store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["prune", "--older-than", "99999999999d", "--store", str(store_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "aiobgproc: duration '99999999999d' is too long"


def test_run_never_strands_a_process_while_a_burst_worker_winds_down(store_path: Path) -> None:
    env = dict(os.environ, AIOBGPROC_STORE=str(store_path))
    ids = []
    for delay in (0.0, 0.005, 0.01, 0.02, 0.04, 0.08) * 2:
        first = subprocess.run(
            [sys.executable, "-m", "aiobgproc", "run", "--wait", "--", "true"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        ids.append(first.stdout.strip())
        time.sleep(delay)  # land in the gap while the burst worker is finishing
        second = subprocess.run(
            [sys.executable, "-m", "aiobgproc", "run", "--", "true"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        ids.append(second.stdout.strip())
    for process_id in ids:
        waited = subprocess.run(
            [sys.executable, "-m", "aiobgproc", "wait", process_id, "--timeout", "30"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert waited.returncode == 0, (process_id, waited.stdout, waited.stderr)


async def test_a_timeout_names_the_step_it_stopped(manager: Manager, tmp_path: Path) -> None:
    process_id = await manager.start(
        Process({"quick": Step("stepmods.basic:echo"), "slow": Step("stepmods.basic:gated")}),
        {"gate": str(tmp_path / "never")},
        timeout=1.0,
    )
    info = await manager.wait_for(process_id, timeout=30)
    assert info.status is Status.TIMEOUT
    assert info.error is not None
    assert (info.step, info.error.step) == ("slow", "slow")


def test_specs_read_the_way_they_are_written() -> None:
    from stepmods import basic

    assert Step(basic.add, "n").target == "stepmods.basic:add"
    assert Step(basic.Scale).target == "stepmods.basic:Scale"
    process = Process([Step("stepmods.basic:echo"), Step("stepmods.basic:seen")])
    assert list(process.steps) == ["0", "1"]
    assert process.steps["1"] == Step("stepmods.basic:seen")


async def test_a_cancelled_process_has_no_error(manager: Manager) -> None:
    process_id = await manager.start(Command(["sleep", "30"]))
    info = await manager.cancel(process_id)
    assert info.status is Status.CANCELLED
    assert info.error is None


async def test_a_worker_elsewhere_finds_steps_where_start_found_them(
    store_path: Path, tmp_path: Path
) -> None:
    home = tmp_path / "app"
    home.mkdir()
    (home / "elsewhere_steps.py").write_text("def mark(data):\n    return {'marked': True}\n")
    sys.path.insert(0, str(home))
    try:
        async with Manager(store_path, run=False) as client:
            process_id = await client.start(Process([Step("elsewhere_steps:mark")]))
            worker = await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    "-m",
                    "aiobgproc",
                    "worker",
                    "--burst",
                    "--store",
                    str(store_path),
                ],
                cwd="/",
                env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert worker.returncode == 0, worker.stderr
            info = await client.info(process_id)
    finally:
        sys.path.remove(str(home))
    assert info.status is Status.FINISHED, info.error
    assert info.output == {"marked": True}
