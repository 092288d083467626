"""The command line's options for describing, queueing and scheduling, its list filters,
``aiobgproc queue`` and ``worker --queue``: real subprocesses on each store."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from aiobgproc import Command, Manager, Status
from test_cli import StoreLocation, cli, wait_json


def _id(*args: str, store: StoreLocation) -> str:
    result = cli(*args, store=store)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_run_describes_queues_and_delays(store_url: str) -> None:
    first = _id(
        "run",
        "--label",
        "nightly export",
        "--meta",
        '{"user": "ann"}',
        "--key",
        "export:ann",
        "--queue",
        "exports",
        "--priority",
        "5",
        "--delay",
        "2",  # long enough for the next command line to start, under load too
        "--",
        "echo",
        "hi",
        store=store_url,
    )
    again = _id("run", "--key", "export:ann", "--", "echo", "other", store=store_url)
    assert again == first
    info = wait_json(store_url, first, "finished")
    assert info["status"] == "finished"
    assert (info["label"], info["meta"], info["key"], info["queue"], info["priority"]) == (
        "nightly export",
        {"user": "ann"},
        "export:ann",
        "exports",
        5,
    )
    assert info["command"] == ["echo", "hi"]
    assert info["run_at"] is not None
    after = _id(
        "run", "--after", first, "--at", "2020-01-01T00:00:00Z", "--", "true", store=store_url
    )
    assert wait_json(store_url, after, "finished")["after"] == [first]
    shown = cli("info", first, store=store_url)
    assert "nightly export" in shown.stdout
    assert "exports" in shown.stdout
    assert "echo hi" in shown.stdout
    listed = cli("list", store=store_url)
    assert "nightly export" in listed.stdout
    assert "echo hi" in listed.stdout


def test_list_filters(store_url: str) -> None:
    ids = [
        _id(
            "run", "--queue", queue, "--label", label, "--meta", meta, "--", "true", store=store_url
        )
        for queue, label, meta in (
            ("a", "x", '{"n": 1}'),
            ("b", "y", '{"n": 2}'),
            ("a", "y", '{"n": 1}'),
        )
    ]

    def listed(*args: str) -> list[str]:
        result = cli("list", "--json", *args, store=store_url)
        assert result.returncode == 0, result.stderr
        return [item["id"] for item in json.loads(result.stdout)]

    assert listed("--queue", "a") == [ids[2], ids[0]]
    assert listed("--label", "y") == [ids[2], ids[1]]
    assert listed("--meta", '{"n": 1}') == [ids[2], ids[0]]
    assert listed("--before", ids[1]) == [ids[0]]
    assert listed("--key", "none") == []


def test_queue_command(store_url: str, tmp_path: Path) -> None:
    assert cli("queue", "limit", "video", "2", store=store_url).returncode == 0
    assert cli("queue", "pause", "batch", store=store_url).returncode == 0
    held = _id("run", "--queue", "batch", "--", "true", store=store_url)
    listed = cli("queue", "list", "--json", store=store_url)
    assert listed.returncode == 0, listed.stderr
    queues = {item["name"]: item for item in json.loads(listed.stdout)}
    assert queues["video"] == {
        "name": "video",
        "limit": 2,
        "paused": False,
        "queued": 0,
        "running": 0,
    }
    assert queues["batch"]["paused"] is True
    assert queues["batch"]["queued"] == 1
    table = cli("queue", "list", store=store_url)
    assert "video" in table.stdout
    assert "batch" in table.stdout
    # A burst worker leaves a paused queue's processes for later, and exits.
    worker = cli("worker", "--burst", store=store_url, timeout=60)
    assert worker.returncode == 0, worker.stderr
    assert wait_json(store_url, held, "queued")["status"] == "queued"
    assert cli("queue", "resume", "batch", store=store_url).returncode == 0
    assert cli("queue", "limit", "video", "none", "--store", str(store_url)).returncode == 0
    assert cli("worker", "--burst", store=store_url, timeout=60).returncode == 0
    assert wait_json(store_url, held, "finished")["status"] == "finished"
    assert [
        item["name"] for item in json.loads(cli("queue", "list", "--json", store=store_url).stdout)
    ] == []


async def test_a_burst_worker_runs_only_its_queues_and_waits_for_delayed_ones(
    store_url: str,
) -> None:
    # Started by a client (`run` would start a burst worker of its own for every queue).
    async with Manager(store_url, run=False) as client:
        mine = await client.start(Command(["true"]), queue="mine", delay=1.0)
        other = await client.start(Command(["true"]), queue="other")
        started = time.monotonic()
        worker = await asyncio.to_thread(
            cli, "worker", "--burst", "--queue", "mine", store=store_url, timeout=60
        )
        assert worker.returncode == 0, worker.stderr
        assert time.monotonic() - started >= 0.9  # it waited for the delayed one
        assert (await client.info(mine)).status is Status.FINISHED
        assert (await client.info(other)).status is Status.QUEUED
        await client.cancel(other)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "--at", "2030-01-01T00:00:00", "--", "true"), "offset"),
        (("run", "--at", "tomorrow", "--", "true"), "ISO 8601"),
        (("run", "--meta", "[1]", "--", "true"), "JSON object"),
        (("run", "--meta", "{nope", "--", "true"), "not valid JSON"),
        (("run", "--priority", "5000", "--", "true"), "priority"),
        (("run", "--queue", "bad name", "--", "true"), "queue name"),
        (("run", "--delay", "-3", "--", "true"), "duration"),
        (("run", "--delay", "1", "--at", "2030-01-01T00:00:00Z", "--", "true"), "not both"),
        (("run", "--after", "no-such-id", "--", "true"), "no process"),
        (("list", "--meta", "3"), "JSON object"),
        (("list", "--before", "no-such-id"), "no process"),
        (("queue", "limit", "video", "zero"), "whole number"),
        (("queue", "limit", "video", "0"), ">= 1"),
        (("queue", "pause", "a/b"), "queue name"),
        (("worker", "--queue", "a b", "--burst"), "queue name"),
    ],
)
def test_bad_options_are_one_line_and_store_nothing(
    store_url: str, args: tuple[str, ...], message: str
) -> None:
    result = cli(*args, store=store_url)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    listed = cli("list", "--json", store=store_url)
    assert json.loads(listed.stdout) == []


def test_a_value_that_reads_schedule_is_not_the_schedule_command(store_url: str) -> None:
    """Found by review: any "schedule" before "--" was taken for `schedule add`."""
    result = cli("run", "--label", "schedule", "--wait", "--", "echo", "hi", store=store_url)
    assert result.returncode == 0, result.stderr
    assert cli("logs", result.stdout.strip(), store=store_url).stdout == "hi\n"


async def test_run_starts_a_worker_when_the_live_one_runs_other_queues(
    store_url: str, tmp_path: Path
) -> None:
    """Found by review: a live `worker --queue a` counted as running every queue."""
    from helpers.procs import start_worker

    worker = start_worker(store_url, tmp_path, "only-a", "--queue", "a")
    try:
        async with Manager(store_url, run=False) as client:

            async def registered() -> bool:
                return any(m.runs for m in await client.store.list_managers())

            deadline = time.monotonic() + 30
            while not await registered():
                assert time.monotonic() < deadline, worker.stderr()
                await asyncio.sleep(0.02)
            result = await asyncio.to_thread(
                cli, "run", "--queue", "b", "--", "true", store=store_url
            )
            assert result.returncode == 0, result.stderr
            info = await client.wait_for(result.stdout.strip(), timeout=30)
            assert info.status is Status.FINISHED
    finally:
        worker.stop()
