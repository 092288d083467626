"""The command line's retries, ``aiobgproc restart`` and ``aiobgproc schedule``: real
subprocesses on each store."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from helpers.procs import start_worker
from test_cli import cli, wait_json

WAIT = 30.0


def test_run_retries_then_restart(store_url: str) -> None:
    result = cli(
        "run",
        "--retries",
        "2",
        "--retry-delay",
        "0.05",
        "--retry-backoff",
        "1",
        "--",
        "false",
        store=store_url,
    )
    assert result.returncode == 0, result.stderr
    process_id = result.stdout.strip()
    info = wait_json(store_url, process_id, "error")
    assert (info["status"], info["attempts"]) == ("error", 3)
    failures = info["failures"]
    assert isinstance(failures, list)
    assert len(failures) == 2
    again = cli("restart", process_id, store=store_url)
    assert again.returncode == 0, again.stderr
    new_id = again.stdout.strip()
    assert new_id != process_id
    restarted = wait_json(store_url, new_id, "error")
    assert restarted["restarted_from"] == process_id
    assert restarted["command"] == ["false"]
    refused = cli("restart", process_id, "--from-step", "x", store=store_url)
    assert refused.returncode == 2
    assert "command restarts whole" in refused.stderr
    unknown = cli("restart", "no-such-process", store=store_url)
    assert unknown.returncode == 2
    assert "no process" in unknown.stderr


def test_restart_from_a_step_with_data(store_url: str, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {"steps": {"a": "stepmods.basic:echo", "b": "stepmods.failing:raise_value_error"}}
        )
    )
    started = cli("start", str(spec), "--data", '{"n": 1}', store=store_url)
    assert started.returncode == 0, started.stderr
    process_id = started.stdout.strip()
    assert wait_json(store_url, process_id, "error")["status"] == "error"
    again = cli("restart", process_id, "--from-step", "b", "--data", '{"m": 2}', store=store_url)
    assert again.returncode == 0, again.stderr
    info = wait_json(store_url, again.stdout.strip(), "error")
    assert info["status"] == "error"
    assert info["steps_done"] == 1  # "a" was not run again: its output was reused


def test_schedule_add_list_and_remove(store_url: str, tmp_path: Path) -> None:
    added = cli(
        "schedule",
        "add",
        "tick",
        "--every",
        "0.5",
        "--label",
        "ticking",
        "--",
        "echo",
        "tick",
        store=store_url,
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip().endswith("+00:00")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"steps": ["stepmods.basic:echo"]}))
    nightly = cli(
        "schedule",
        "add",
        "nightly",
        "--cron",
        "0 3 * * *",
        "--spec",
        str(spec),
        "--data",
        '{"x": 1}',
        "--queue",
        "batch",
        store=store_url,
    )
    assert nightly.returncode == 0, nightly.stderr
    listed = cli("schedule", "list", "--json", store=store_url)
    schedules = {item["name"]: item for item in json.loads(listed.stdout)}
    assert schedules["tick"]["every"] == 0.5
    assert schedules["nightly"]["cron"] == "0 3 * * *"
    table = cli("schedule", "list", store=store_url)
    assert "every 0.5 s" in table.stdout
    assert "0 3 * * *" in table.stdout
    worker = start_worker(store_url, tmp_path, "worker", "--concurrency", "2")
    try:
        deadline = time.monotonic() + WAIT
        while True:
            ran = json.loads(cli("list", "--label", "ticking", "--json", store=store_url).stdout)
            if len([item for item in ran if item["status"] == "finished"]) >= 2:
                break
            assert time.monotonic() < deadline, worker.stderr()
            time.sleep(0.1)
    finally:
        assert cli("schedule", "rm", "tick", store=store_url).returncode == 0
        worker.signal(signal.SIGTERM)
        worker.popen.wait(WAIT)
        worker.stop()
    logs = cli("logs", ran[0]["id"], store=store_url)
    assert logs.stdout == "tick\n"
    remaining = json.loads(cli("schedule", "list", "--json", store=store_url).stdout)
    assert [item["name"] for item in remaining] == ["nightly"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("schedule", "add", "s", "--cron", "61 * * * *", "--", "true"), "outside"),
        (("schedule", "add", "s", "--every", "0", "--", "true"), "every"),
        (("schedule", "add", "s", "--every", "5"), "give the work"),
        (("schedule", "add", "s", "--", "true"), "--cron --every"),
        (
            ("schedule", "add", "s", "--every", "1", "--cron", "* * * * *", "--", "true"),
            "not allowed",
        ),
        (("schedule", "rm", "nope"), "no schedule"),
        (("run", "--retries", "-1", "--", "true"), ">= 0"),
        (("run", "--retries", "2", "--retry-backoff", "0.5", "--", "true"), "backoff"),
        (("run", "--retries", "2", "--retry-delay", "-1", "--", "true"), "delay"),
    ],
)
def test_bad_input_is_one_line(store_url: str, args: tuple[str, ...], message: str) -> None:
    result = cli(*args, store=store_url)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert json.loads(cli("list", "--json", store=store_url).stdout) == []
    assert json.loads(cli("schedule", "list", "--json", store=store_url).stdout) == []


def test_schedule_add_takes_a_spec_whose_steps_are_in_the_working_directory(
    store_url: str, tmp_path: Path
) -> None:
    """As `start` does (found by an outside probe): the working directory is on the path."""
    (tmp_path / "localsteps.py").write_text("def double(data):\n    return {'n': 2}\n")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"steps": ["localsteps:double"]}))
    added = cli(
        "schedule",
        "add",
        "local",
        "--every",
        "60",
        "--spec",
        "spec.json",
        store=store_url,
        cwd=tmp_path,
    )
    assert added.returncode == 0, added.stderr
    assert [
        item["name"]
        for item in json.loads(cli("schedule", "list", "--json", store=store_url).stdout)
    ] == ["local"]
