"""Retries and restart (API.md "Retries, restart and schedules"), on each store."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from aiobgproc import (
    Command,
    InvalidSpecError,
    InvalidStateError,
    Manager,
    Process,
    ProcessNotFoundError,
    Retry,
    Status,
    Step,
)
from helpers.procs import start_worker

WAIT = 30.0


def counting_command(counter: Path, succeed_at: int, **options: Any) -> Command:
    """Fails until its ``succeed_at``-th run."""
    script = (
        'n=$(cat "$1" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$1";'
        f' echo "run $n"; [ "$n" -ge {succeed_at} ]'
    )
    return Command(["sh", "-c", script, "sh", str(counter)], **options)


def runs(ledger: Path) -> dict[str, int]:
    found: dict[str, int] = {}
    for line in ledger.read_text().splitlines():
        name = line.split()[0]
        found[name] = found.get(name, 0) + 1
    return found


async def test_a_command_is_retried_until_it_succeeds(store_url: str, tmp_path: Path) -> None:
    async with Manager(store_url, concurrency=2) as manager:
        process_id = await manager.start(
            counting_command(tmp_path / "n", 3, retry=Retry(4, delay=0.2, backoff=2.0))
        )
        info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.FINISHED
    assert info.error is None
    assert info.attempts == 3
    assert [failure["attempt"] for failure in info.failures] == [1, 2]
    assert all(failure["type"] == "CommandError" for failure in info.failures)
    assert all(failure["status"] == "error" for failure in info.failures)
    # The waits: 0.2 s after the first failed run, 0.4 s after the second.
    first, second = (failure["at"].timestamp() for failure in info.failures)
    assert second - first >= 0.2 - 0.01
    assert all(failure["at"].tzinfo is not None for failure in info.failures)
    assert isinstance(info.to_dict()["failures"][0]["at"], str)
    assert info.started_at is not None
    assert info.to_dict()["failures"][0]["message"] == "command exited with code 1"


async def test_while_it_waits_a_retry_is_queued_with_its_error(
    store_url: str, tmp_path: Path
) -> None:
    async with Manager(store_url, concurrency=2) as manager:
        process_id = await manager.start(
            counting_command(tmp_path / "n", 2, retry=Retry(2, delay=30.0))
        )

        async def waiting() -> Any:
            info = await manager.info(process_id)
            return info if info.failures else None

        deadline = time.monotonic() + WAIT
        info = None
        while info is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            info = await waiting()
        assert info is not None
        assert info.status is Status.QUEUED
        assert info.error is not None
        assert info.error.type == "CommandError"
        assert info.run_at is not None
        assert 25 < info.run_at.timestamp() - time.time() <= 30
        # A cancelled process is never retried.
        assert (await manager.cancel(process_id)).status is Status.CANCELLED
        assert (await manager.info(process_id)).attempts == 1


async def test_the_last_failure_ends_the_process(store_url: str) -> None:
    async with Manager(store_url, concurrency=2) as manager:
        failing = await manager.start(
            Command(["sh", "-c", "exit 7"], retry=Retry(3, delay=0.05, backoff=1.0))
        )
        info = await manager.wait_for(failing, timeout=WAIT)
        assert (info.status, info.exit_code, info.attempts) == (Status.ERROR, 7, 3)
        assert info.error is not None
        assert info.error.type == "CommandError"
        assert len(info.failures) == 2
        # Only the failures on= names are retried.
        timing_out = await manager.start(
            Command(["sleep", "30"], timeout=0.2, retry=Retry(3, delay=0, on=["error"]))
        )
        info = await manager.wait_for(timing_out, timeout=WAIT)
        assert (info.status, info.attempts, info.failures) == (Status.TIMEOUT, 1, ())
        retried = await manager.start(
            Command(["sleep", "30"], timeout=0.2, retry=Retry(2, delay=0, on="timeout"))
        )
        info = await manager.wait_for(retried, timeout=WAIT)
        assert (info.status, info.attempts) == (Status.TIMEOUT, 2)
        assert [failure["status"] for failure in info.failures] == ["timeout"]


async def test_a_step_is_retried_alone_with_its_own_budget(store_url: str, tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger")
    steps = {
        "first": Step("stepmods.flaky:ok", ledger, "first"),
        "flaky": Step("stepmods.flaky:fail_first", ledger, "flaky", 2),
        # The process's policy (3 attempts) is its default; this step has its own (2).
        "also": Step("stepmods.flaky:fail_first", ledger, "also", 1, retry=Retry(2, delay=0)),
        "last": Step("stepmods.flaky:ok", ledger, "last"),
    }
    async with Manager(store_url, concurrency=2) as manager:
        process_id = await manager.start(Process(steps, retry=Retry(3, delay=0.05)), data={"in": 1})
        info = await manager.wait_for(process_id, timeout=WAIT)
    assert info.status is Status.FINISHED, info.error
    assert info.output == {"in": 1, "first": True, "flaky": 3, "also": 2, "last": True}
    assert runs(Path(ledger)) == {"first": 1, "flaky": 3, "also": 2, "last": 1}
    assert info.attempts == 4  # each retried run is a run
    assert [failure["step"] for failure in info.failures] == ["flaky", "flaky", "also"]
    assert info.error is None


async def test_a_step_out_of_attempts_ends_the_process_with_its_error(
    store_url: str, tmp_path: Path
) -> None:
    ledger = str(tmp_path / "ledger")
    steps = [
        Step("stepmods.flaky:ok", ledger, "a"),
        Step("stepmods.flaky:fail_first", ledger, "b", 5, retry=Retry(2, delay=0)),
    ]
    async with Manager(store_url, concurrency=2) as manager:
        info = await manager.wait_for(await manager.start(Process(steps)), timeout=WAIT)
    assert info.status is Status.ERROR
    assert info.error is not None
    assert (info.error.type, info.error.step) == ("RuntimeError", "1")
    assert "failing run 2 of 5" in info.error.message
    assert runs(Path(ledger)) == {"a": 1, "b": 2}


async def _kill_a_worker_during_the_first_wait(
    client: Manager, store_url: str, tmp_path: Path, process_id: str
) -> None:
    """A worker runs ``process_id`` until its first failed run waits; then SIGKILL."""
    first = start_worker(store_url, tmp_path, "first", "--concurrency", "2")
    try:
        deadline = time.monotonic() + WAIT
        while not (await client.info(process_id)).failures:
            assert time.monotonic() < deadline, first.stderr()
            await asyncio.sleep(0.01)
        first.signal(signal.SIGKILL)
        await first.wait_exit(WAIT)
    finally:
        first.stop()


async def _run_with_a_worker(
    client: Manager, store_url: str, tmp_path: Path, process_id: str
) -> Any:
    """Another worker, until ``process_id`` ended; its info."""
    second = start_worker(store_url, tmp_path, "second", "--concurrency", "2")
    try:
        return await client.wait_for(process_id, timeout=WAIT)
    finally:
        second.signal(signal.SIGTERM)
        await second.wait_exit(WAIT)
        second.stop()


async def test_a_retry_wait_survives_its_manager(store_url: str, tmp_path: Path) -> None:
    """The wait is stored: a worker killed (SIGKILL) during it loses nothing, and another
    worker runs the retry when it is due."""
    counter = tmp_path / "n"
    async with Manager(store_url, run=False) as client:
        process_id = await client.start(counting_command(counter, 2, retry=Retry(2, delay=1.0)))
        await _kill_a_worker_during_the_first_wait(client, store_url, tmp_path, process_id)
        waiting = await client.info(process_id)
        assert waiting.status is Status.QUEUED
        info = await _run_with_a_worker(client, store_url, tmp_path, process_id)
    assert info.status is Status.FINISHED
    assert info.attempts == 2
    assert info.started_at is not None
    assert waiting.run_at is not None


@pytest.mark.parametrize(
    "retry",
    [
        Retry(0),
        Retry(-1),
        Retry(1.5),  # type: ignore[arg-type]
        Retry(True),
        Retry(3, delay=-1),
        Retry(3, delay=float("nan")),
        Retry(3, delay=float("inf")),
        Retry(3, backoff=0.5),
        Retry(3, max_delay=-1),
        Retry(3, on=("error", "crash")),
        Retry(3, on="never"),
        Retry(3, on=5),  # type: ignore[arg-type]
        Retry(3, on=()),
        "3",
    ],
)
async def test_bad_retries_store_nothing(store_url: str, retry: Any) -> None:
    async with Manager(store_url, run=False) as client:
        for work in (
            Command(["true"], retry=retry),
            Process([Step("stepmods.basic:echo")], retry=retry),
            Process([Step("stepmods.basic:echo", retry=retry)]),
        ):
            with pytest.raises(InvalidSpecError):
                await client.start(work)
        assert await client.list() == []


# -- restart ---------------------------------------------------------------------------------


async def test_restart_runs_the_same_work_again(store_url: str, tmp_path: Path) -> None:
    async with Manager(store_url, concurrency=2) as manager:
        original = await manager.start(
            Process([Step("stepmods.basic:echo")]),
            data={"n": 1},
            label="report",
            meta={"user": "ann"},
            queue="reports",
            priority=3,
        )
        await manager.wait_for(original, timeout=WAIT)
        again = await manager.restart(original)
        replaced = await manager.restart(original, data={"n": 2})
        first = await manager.wait_for(again, timeout=WAIT)
        second = await manager.wait_for(replaced, timeout=WAIT)
        assert first.restarted_from == original
        assert first.output == {"n": 1}
        assert second.output == {"n": 2}
        assert (first.label, first.meta, first.queue, first.priority) == (
            "report",
            {"user": "ann"},
            "reports",
            3,
        )
        assert first.to_dict()["restarted_from"] == original
        with pytest.raises(ProcessNotFoundError):
            await manager.restart("no-such-process")
        running = await manager.start(Command(["sleep", "30"]))
        with pytest.raises(InvalidStateError):
            await manager.restart(running)
        await manager.cancel(running)
        cancelled = await manager.restart(running)  # any ended process
        await manager.cancel(cancelled)
        with pytest.raises(InvalidSpecError):
            await manager.restart(running, from_step="0")
        with pytest.raises(InvalidSpecError):
            await manager.restart(original, data=[1])  # type: ignore[arg-type]


async def test_restart_from_a_step_reuses_what_was_committed(
    store_url: str, tmp_path: Path
) -> None:
    ledger = str(tmp_path / "ledger")
    steps = {
        "fetch": Step("stepmods.flaky:ok", ledger, "fetch"),
        "parse": Step("stepmods.flaky:ok", ledger, "parse"),
        "publish": Step("stepmods.flaky:fail_first", ledger, "publish", 1),
    }
    async with Manager(store_url, concurrency=2) as manager:
        original = await manager.start(Process(steps), data={"url": "u"})
        failed = await manager.wait_for(original, timeout=WAIT)
        assert failed.status is Status.ERROR
        assert failed.steps_done == 2
        with pytest.raises(InvalidSpecError):
            await manager.restart(original, from_step="nope")
        again = await manager.restart(original, from_step="publish", data={"force": True})
        info = await manager.wait_for(again, timeout=WAIT)
        assert info.status is Status.FINISHED, info.error
        assert info.output == {
            "url": "u",
            "fetch": True,
            "parse": True,
            "force": True,
            "publish": 2,
        }
        assert runs(Path(ledger)) == {"fetch": 1, "parse": 1, "publish": 2}
        assert info.restarted_from == original
        # Not committed: the step before "publish" of a process that never got there.
        early = await manager.start(
            Process({"a": Step("stepmods.basic:echo"), "b": Step("stepmods.basic:echo")}),
            delay=3600,
        )
        await manager.cancel(early)
        with pytest.raises(InvalidStateError):
            await manager.restart(early, from_step="b")
        whole = await manager.wait_for(await manager.restart(early, from_step="a"), timeout=WAIT)
        assert whole.status is Status.FINISHED


async def test_no_committed_step_runs_twice_across_a_kill_during_a_retry_wait(
    store_url: str, tmp_path: Path
) -> None:
    """A ledger of every step run: the step before the failing one committed, its worker is
    killed (SIGKILL) while the retry waits, another worker finishes the process."""
    ledger = str(tmp_path / "ledger")
    steps = {
        "a": Step("stepmods.flaky:ok", ledger, "a"),
        "b": Step("stepmods.flaky:fail_first", ledger, "b", 1),
        "c": Step("stepmods.flaky:ok", ledger, "c"),
    }
    async with Manager(store_url, run=False) as client:
        process_id = await client.start(Process(steps, retry=Retry(3, delay=1.0)))
        await _kill_a_worker_during_the_first_wait(client, store_url, tmp_path, process_id)
        info = await _run_with_a_worker(client, store_url, tmp_path, process_id)
    assert info.status is Status.FINISHED, info.error
    assert runs(Path(ledger)) == {"a": 1, "b": 2, "c": 1}
    assert info.output == {"a": True, "b": 2, "c": True}


def test_a_retry_is_a_value_with_the_documented_defaults() -> None:
    retry = Retry()
    assert (retry.attempts, retry.delay, retry.backoff, retry.max_delay, retry.on) == (
        3,
        1.0,
        2.0,
        300.0,
        ("error", "timeout"),
    )
    assert Retry(on="error").on == ("error",)
    assert Retry(2, on=["timeout"]) == Retry(2, on=("timeout",))
    assert hash(Retry()) == hash(Retry())
