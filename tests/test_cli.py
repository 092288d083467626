"""The aiobgproc command line, run as a user would: real subprocesses on a real store, each
test on a SQLite file and on a PostgreSQL schema (when a server is available)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
StoreLocation = Path | str  # a SQLite file or a postgresql:// URL


@pytest.fixture
def store_path(store_url: str) -> StoreLocation:
    """Here, the store of each test is a SQLite file, then a PostgreSQL schema."""
    return store_url


def cli(
    *args: str, store: StoreLocation | None = None, timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("AIOBGPROC_STORE", None)
    if store is not None:
        env["AIOBGPROC_STORE"] = str(store)
    env["PYTHONPATH"] = str(TESTS)
    return subprocess.run(
        [sys.executable, "-m", "aiobgproc", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
        check=False,
    )


def wait_json(
    store: StoreLocation, process_id: str, status: str, timeout: float = 30
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        result = cli("info", process_id, "--json", store=store)
        assert result.returncode == 0, result.stderr
        info: dict[str, object] = json.loads(result.stdout)
        if info["status"] == status or time.monotonic() > deadline:
            return info
        time.sleep(0.05)


def test_run_prints_the_id_alone_and_a_burst_worker_runs_it(store_path: StoreLocation) -> None:
    started = time.monotonic()
    result = cli("run", "--", "sh", "-c", "echo from-cli", store=store_path)
    assert result.returncode == 0, result.stderr
    process_id = result.stdout.strip()
    assert result.stdout == process_id + "\n"
    assert len(process_id) == 32
    assert time.monotonic() - started < 10  # returns at once; no waiting for the command
    info = wait_json(store_path, process_id, "finished")
    assert info["status"] == "finished"
    assert info["output"] == {"exit_code": 0}
    logs = cli("logs", process_id, store=store_path)
    assert logs.stdout == "from-cli\n"


def test_store_option_is_accepted_after_the_subcommand(tmp_path: Path) -> None:
    store = tmp_path / "after.db"
    result = cli("run", "--store", str(store), "--wait", "--", "true")
    assert result.returncode == 0, result.stderr
    process_id = result.stdout.strip()
    info = cli("info", process_id, "--store", str(store), "--json")
    assert json.loads(info.stdout)["status"] == "finished"
    before = cli("--store", str(store), "list", "--json")
    assert [item["id"] for item in json.loads(before.stdout)] == [process_id]


def test_wait_exit_code_reflects_the_final_status(store_path: StoreLocation) -> None:
    ok = cli("run", "--wait", "--", "true", store=store_path)
    failed = cli("run", "--wait", "--", "sh", "-c", "exit 3", store=store_path)
    slow = cli("run", "--timeout", "0.2", "--wait", "--", "sleep", "30", store=store_path)
    assert (ok.returncode, failed.returncode, slow.returncode) == (0, 1, 3)
    waited = cli("wait", failed.stdout.strip(), store=store_path)
    assert waited.returncode == 1
    assert waited.stdout.startswith("error: command exited with code 3")


def test_wait_timeout_exits_124_and_cancel_stops_the_process(store_path: StoreLocation) -> None:
    process_id = cli("run", "--", "sleep", "30", store=store_path).stdout.strip()
    wait_json(store_path, process_id, "running")
    waited = cli("wait", process_id, "--timeout", "0.3", store=store_path)
    assert waited.returncode == 124
    assert "did not stop running within 0.3 s" in waited.stderr
    cancelled = cli("cancel", process_id, store=store_path)
    assert (cancelled.returncode, cancelled.stdout) == (0, "cancelled\n")
    assert cli("wait", process_id, store=store_path).returncode == 4


def test_start_a_spec_file_pause_and_proceed_with_data(
    tmp_path: Path, store_path: StoreLocation
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "steps": {
                    "tag": {"target": "stepmods.basic:add", "args": ["tagged"], "interrupt": True},
                    "done": {"target": "stepmods.basic:add", "args": ["done"]},
                }
            }
        )
    )
    started = cli("start", str(spec), "--data", '{"x": 1}', store=store_path)
    assert started.returncode == 0, started.stderr
    process_id = started.stdout.strip()
    paused = cli("wait", process_id, "--json", store=store_path)
    assert paused.returncode == 5
    assert json.loads(paused.stdout)["output"] == {"x": 1, "tagged": True}
    proceeded = cli("proceed", process_id, "--data", '{"y": 2}', store=store_path)
    assert (proceeded.returncode, proceeded.stdout.strip()) == (0, process_id)
    done = cli("wait", process_id, "--json", store=store_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == {"x": 1, "tagged": True, "y": 2, "done": True}


def test_logs_tail_then_follow_streams_until_the_process_stops(
    store_path: StoreLocation, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    script = f'echo zero; echo one; while [ ! -e "{gate}" ]; do sleep 0.02; done; echo two'
    process_id = cli("run", "--", "sh", "-c", script, store=store_path).stdout.strip()
    deadline = time.monotonic() + 30
    while cli("logs", process_id, store=store_path).stdout != "zero\none\n":
        assert time.monotonic() < deadline, "the command's first lines never came"
        time.sleep(0.05)
    env = dict(os.environ, AIOBGPROC_STORE=str(store_path))
    follower = subprocess.Popen(
        [sys.executable, "-m", "aiobgproc", "logs", "--tail", "1", "-f", process_id],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == b"one\n"  # live, while the command still runs
        gate.touch()
        assert follower.stdout.read() == b"two\n"
        assert follower.wait(timeout=30) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
        if follower.stdout is not None:
            follower.stdout.close()


def test_logs_of_one_stream_its_last_lines_and_as_json(store_path: StoreLocation) -> None:
    script = "printf 'o1\\no2\\no3\\n'; printf 'e1\\ne2\\n\\377' >&2"
    process_id = cli("run", "--wait", "--", "sh", "-c", script, store=store_path).stdout.strip()
    last_two = cli("logs", process_id, "--stream", "stdout", "--tail", "2", store=store_path)
    assert last_two.stdout == "o2\no3\n"
    as_json = cli("logs", process_id, "--json", store=store_path)
    assert as_json.returncode == 0, as_json.stderr
    chunks = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert {tuple(chunk) for chunk in chunks} == {("seq", "stream", "data")}
    assert [chunk["seq"] for chunk in chunks] == sorted(chunk["seq"] for chunk in chunks)
    for stream, text in (("stdout", "o1\no2\no3\n"), ("stderr", "e1\ne2\n\ufffd")):
        assert "".join(chunk["data"] for chunk in chunks if chunk["stream"] == stream) == text
    last = cli("logs", process_id, "--stream", "stderr", "--tail", "1", "--json", store=store_path)
    assert [json.loads(line)["data"] for line in last.stdout.splitlines()] == ["\ufffd"]


def test_list_is_a_plain_table_when_piped_and_json_on_request(store_path: StoreLocation) -> None:
    first = cli("run", "--wait", "--", "true", store=store_path).stdout.strip()
    second = cli("run", "--wait", "--", "false", store=store_path).stdout.strip()
    table = cli("list", store=store_path)
    lines = table.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [second, first]  # newest first, no header
    assert "\x1b[" not in table.stdout
    only_errors = json.loads(cli("list", "--status", "error", "--json", store=store_path).stdout)
    assert [item["id"] for item in only_errors] == [second]
    assert json.loads(cli("list", "--limit", "1", "--json", store=store_path).stdout)[0]["id"] == (
        second
    )


def test_prune_deletes_old_terminal_processes(store_path: StoreLocation) -> None:
    cli("run", "--wait", "--", "true", store=store_path)
    assert cli("prune", "--older-than", "7d", store=store_path).stdout == "0\n"
    assert cli("prune", "--older-than", "0s", store=store_path).stdout == "1\n"
    assert json.loads(cli("list", "--json", store=store_path).stdout) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("info", "no-such-id"), "no process with id 'no-such-id'"),
        (("proceed", "no-such-id"), "no process with id"),
        (("run", "--"), "nothing to run"),
        (("prune", "--older-than", "soon"), "not a duration"),
        (("proceed", "x", "--data", "{oops"), "--data is not valid JSON"),
        (("start", "/no/such/spec.json"), "cannot read /no/such/spec.json"),
        (("list", "--status", "sleeping"), "invalid choice"),
        (("logs", "x", "--stream", "both"), "invalid choice"),
        (("logs", "x", "--tail", "0"), "--tail takes a number of lines >= 1, not 0"),
        (("logs", "x", "--tail", "many"), "invalid int value"),
    ],
)
def test_errors_are_one_line_on_stderr_never_a_traceback(
    store_path: StoreLocation, args: tuple[str, ...], message: str
) -> None:
    result = cli(*args, store=store_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_store_that_is_a_directory_is_one_clear_error(tmp_path: Path) -> None:
    result = cli("list", store=tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"aiobgproc: store path {str(tmp_path)!r} is a directory, not a file"
    )


def test_run_works_through_the_console_script(store_path: StoreLocation) -> None:
    script = Path(sys.executable).parent / "aiobgproc"
    env = dict(os.environ, AIOBGPROC_STORE=str(store_path))
    result = subprocess.run(
        [str(script), "run", "--wait", "--", "true"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
