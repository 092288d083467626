"""B3's peers, each run as its own users run it and timed end to end like ours: huey
(SqliteHuey, a ``huey_consumer`` subprocess; tasks in benchmarks/huey_tasks.py) and, on
PostgreSQL, procrastinate (a worker subprocess, in a database of its own on the same server;
tasks in benchmarks/procrastinate_tasks.py).

Each gives the median rates of two tasks over the mode's repetitions: one that spawns
``/bin/true`` (a fresh OS process per unit of work, as aiobgproc gives every process) and a
no-op run inside the peer's warm worker. A peer that is not installed gives None for both,
with the reason on stderr.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final

from benchmarks.harness import ROOT, BenchError, Context, blocking, child_env, say
from benchmarks.stores import PostgresStores

HUEY_DB_VARIABLE: Final = "AIOBGPROC_BENCH_HUEY_DB"  # as in benchmarks/huey_tasks.py
# as in benchmarks/procrastinate_tasks.py
PROCRASTINATE_URL_VARIABLE: Final = "AIOBGPROC_BENCH_PROCRASTINATE_URL"
PROCRASTINATE_POLL_S: Final = 0.01  # --fetch-job-polling-interval (LISTEN/NOTIFY wakes it first)

Rates = tuple[float | None, float | None]
"""The medians of (the spawning task's rates, the no-op task's rates), per second."""


def _medians(spawn_rates: list[float], noop_rates: list[float]) -> Rates:
    return statistics.median(spawn_rates), statistics.median(noop_rates)


# -- huey -----------------------------------------------------------------------------------------


def _huey_consumer_argv() -> list[str]:
    script = Path(sys.executable).with_name("huey_consumer")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "huey.bin.huey_consumer"]
    tight = ["-k", "process", "-w", "2", "-d", "0.001", "-m", "0.01", "-C", "-n", "-q"]
    return [*command, "benchmarks.huey_tasks.huey", *tight]


def _huey_wait(results: list[Any], consumer: subprocess.Popen[bytes], timeout: float) -> None:
    """Read every result back, in order, polling each with 2 ms sleeps (as in PERF.md)."""
    deadline = time.monotonic() + timeout
    for result in results:
        while result.get() is None:
            if consumer.poll() is not None:
                raise BenchError(f"the huey consumer exited with code {consumer.returncode}")
            if time.monotonic() > deadline:
                raise BenchError("huey did not finish its tasks in time")
            time.sleep(0.002)


def _huey_e2e(
    enqueue: Callable[[int], Any], count: int, consumer: subprocess.Popen[bytes]
) -> float:
    started = time.perf_counter()
    results = [enqueue(index) for index in range(count)]
    _huey_wait(results, consumer, 300.0)
    return count / (time.perf_counter() - started)


class HueyPeer:
    """huey, measured one repetition at a time (its consumer started for each and stopped
    after, so that it polls only while it is measured): B3 interleaves it with ours."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.tasks: Any = None
        if importlib.util.find_spec("huey") is None:
            say("  b3: huey is not importable: its figures and the ratios are null")
            return
        database = context.scratch / "huey.db"
        if "benchmarks.huey_tasks" not in sys.modules:
            # A fresh database; a second peer (B7 after B3) goes on with the first one's,
            # which the tasks module (imported once) holds open.
            for suffix in ("", "-wal", "-shm"):
                Path(f"{database}{suffix}").unlink(missing_ok=True)
        os.environ[HUEY_DB_VARIABLE] = str(database)  # read by huey_tasks, here and there
        self.tasks = importlib.import_module("benchmarks.huey_tasks")
        if Path(self.tasks.huey.storage.filename) != database:
            raise BenchError("benchmarks.huey_tasks was imported before its database was chosen")

    def measure(self, *, spawn: bool = True) -> Rates:
        """One repetition: (the spawning task's rate, the no-op task's), or Nones (the
        spawning task's is None without ``spawn``)."""
        tasks, context = self.tasks, self.context
        if tasks is None:
            return None, None
        log = (context.scratch / "huey-consumer.log").open("wb")
        consumer = context.children.start(
            _huey_consumer_argv(), cwd=ROOT, env=child_env(), stdout=log, stderr=log
        )
        count = context.sizes.b3_n
        try:
            # Warm it: the consumer and both workers are up, and both tasks have run once.
            _huey_wait([tasks.noop(0), tasks.spawn_true()], consumer, 60.0)
            _huey_wait([tasks.noop(index) for index in range(8)], consumer, 60.0)
            spawn_rate = _huey_e2e(lambda _: tasks.spawn_true(), count, consumer) if spawn else None
            noop = _huey_e2e(tasks.noop, count, consumer)
        except BenchError:
            say((context.scratch / "huey-consumer.log").read_text(errors="replace")[-2000:])
            raise
        finally:
            context.children.stop(consumer)
            log.close()
        return spawn_rate, noop


# -- procrastinate (PostgreSQL) -------------------------------------------------------------------


def _procrastinate_worker_argv() -> list[str]:
    script = Path(sys.executable).with_name("procrastinate")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "procrastinate"]
    worker = [
        "worker",
        "--concurrency",
        str(os.cpu_count() or 1),
        "--fetch-job-polling-interval",
        str(PROCRASTINATE_POLL_S),
    ]
    return [*command, "--app", "benchmarks.procrastinate_tasks.app", *worker]


async def _procrastinate_wait(
    conn: Any, ids: list[int], worker: subprocess.Popen[bytes], timeout: float
) -> None:
    """Wait until every job succeeded, in order, polling each with 2 ms sleeps (as for
    huey)."""
    deadline = time.monotonic() + timeout
    for job_id in ids:
        while True:
            status = await conn.fetchval(
                "SELECT status::text FROM procrastinate_jobs WHERE id = $1", job_id
            )
            if status == "succeeded":
                break
            if status not in ("todo", "doing"):
                raise BenchError(f"procrastinate job {job_id} ended {status}")
            if worker.poll() is not None:
                raise BenchError(f"the procrastinate worker exited with code {worker.returncode}")
            if time.monotonic() > deadline:
                raise BenchError("procrastinate did not finish its jobs in time")
            await asyncio.sleep(0.002)


async def _procrastinate_e2e(
    defer: Callable[[int], Coroutine[Any, Any, int]],
    count: int,
    conn: Any,
    worker: subprocess.Popen[bytes],
) -> float:
    started = time.perf_counter()
    ids = [await defer(index) for index in range(count)]
    await _procrastinate_wait(conn, ids, worker, 300.0)
    return count / (time.perf_counter() - started)


async def _procrastinate_reps(
    tasks: Any, context: Context, stores: PostgresStores, url: str, worker: subprocess.Popen[bytes]
) -> Rates:
    sizes = context.sizes
    spawn_rates: list[float] = []
    noop_rates: list[float] = []
    conn = await stores.connect(url)
    try:
        async with tasks.app.open_async():
            # Warm it: the worker is up, and both tasks have run once.
            ids = [await tasks.noop.defer_async(x=0), await tasks.spawn_true.defer_async()]
            await _procrastinate_wait(conn, ids, worker, 60.0)
            ids = [await tasks.noop.defer_async(x=index) for index in range(8)]
            await _procrastinate_wait(conn, ids, worker, 60.0)
            for rep in range(sizes.reps):
                spawn_rates.append(
                    await _procrastinate_e2e(
                        lambda _: tasks.spawn_true.defer_async(), sizes.b3_n, conn, worker
                    )
                )
                noop_rates.append(
                    await _procrastinate_e2e(
                        lambda index: tasks.noop.defer_async(x=index), sizes.b3_n, conn, worker
                    )
                )
                say(
                    f"  b3 rep {rep + 1}: procrastinate spawn {spawn_rates[-1]:.0f}/s,"
                    f" in-process {noop_rates[-1]:.0f}/s"
                )
    finally:
        await conn.close()
    return _medians(spawn_rates, noop_rates)


async def _procrastinate_schema(tasks: Any) -> None:
    async with tasks.app.open_async():
        await tasks.app.schema_manager.apply_schema_async()


def _procrastinate_figures(context: Context, stores: PostgresStores) -> Rates:
    """procrastinate's rates, in a database of its own."""
    database = blocking(stores.create_database)
    try:
        url = stores.database_url(database)
        os.environ[PROCRASTINATE_URL_VARIABLE] = url  # read by the tasks, here and in the worker
        tasks = importlib.import_module("benchmarks.procrastinate_tasks")
        if url != tasks.DATABASE_URL:
            raise BenchError(
                "benchmarks.procrastinate_tasks was imported before its database was chosen"
            )
        blocking(lambda: _procrastinate_schema(tasks))
        log_path = context.scratch / "procrastinate-worker.log"
        with log_path.open("wb") as log:
            worker = context.children.start(
                _procrastinate_worker_argv(), cwd=ROOT, env=child_env(), stdout=log, stderr=log
            )
            try:
                return blocking(lambda: _procrastinate_reps(tasks, context, stores, url, worker))
            except BenchError:
                say(log_path.read_text(errors="replace")[-2000:])
                raise
            finally:
                context.children.stop(worker)
    finally:
        try:
            blocking(lambda: stores.drop_database(database))
        except Exception as exc:  # remove() tries again at the end
            say(f"  b3: could not drop database {database} yet: {exc}")


def postgres_peers(context: Context, stores: PostgresStores) -> Rates:
    """procrastinate's rates on the same server; None for both, with the reason on stderr,
    when procrastinate is not installed or does not run."""
    if importlib.util.find_spec("procrastinate") is None:
        say(
            "  b3: procrastinate is not importable (pip install procrastinate):"
            " its figures and the ratios are null"
        )
        return None, None
    try:
        return _procrastinate_figures(context, stores)
    except Exception as exc:
        say(
            f"  b3: procrastinate did not run ({type(exc).__name__}: {exc}):"
            " its figures and the ratios are null"
        )
        return None, None
