"""The aiobgproc benchmark suite (issue 6): each figure next to a baseline measured by this
script, in the same run, on the same machine.

    python benchmarks/run.py            # full mode (a few minutes)
    python benchmarks/run.py --quick    # under 2 minutes on a 2-core machine
    python benchmarks/run.py --quick --json      # one JSON object on stdout, nothing else
    python benchmarks/run.py --only b1,b3        # a subset, for development
    python benchmarks/run.py --smoke --json      # a few seconds: the test suite's check

B1 commands     ``/bin/true`` through start + wait_for at concurrency 32, processes/s, vs raw
                ``asyncio.create_subprocess_exec`` + wait (stdout piped and read) under a
                semaphore of 32.
B2 latency      a one-step process with a trivial step, start -> wait_for, sequential, p50/p95,
                with the warm executor and with ``warm=False``; baseline: spawning and
                awaiting ``python -I -S -c pass``.
B3 throughput   one-step processes at concurrency = CPU count (start all, then wait for all,
                in order), vs huey (SqliteHuey, ``huey_consumer -k process -w 2`` at its
                tightest polling), end to end from the first enqueue until every result was
                read back: (a) tasks that each spawn ``/bin/true``, (b) a no-op task run in
                huey's warm workers.
B4 output       ``head -c N /dev/zero`` through a Manager with ``max_output_bytes=None``, MB/s
                into the store vs a raw asyncio pipe read, and the peak RSS growth of the
                manager's process (run in a fresh subprocess of this script).
B5 store scale  info(random id) and list(status="finished", limit=100), p50/p99, with that
                many processes inserted straight into the store.
B6 notice       a worker subprocess runs ``true``; a ``Manager(run=False)`` here waits for it;
                delay = when wait_for returned - the recorded finished_at (each start at a
                random moment, 0-100 ms after the previous wait_for returned).

MB means MiB (2**20 bytes) throughout; 1 GB of output is 1 GiB. Throughputs (B1, B3) are
the median of the repetitions. Other workloads on the machine skew the figures: every
benchmark meters the CPU used outside this script's process tree while it runs
(``interference_pct``, share of all CPUs), and a warning goes to stderr above 10 %.

``--store PATH_OR_URL`` names the store file the benchmarks use (default: a file in a
temporary directory). It must not exist: it is created afresh for each benchmark and
deleted at the end.

``--store postgresql://...`` runs them on the PostgreSQL store (asyncpg): each benchmark
gets a schema of its own (``?schema=bench_<random>``, dropped when it ends); B5 COPYs its
rows into that schema's ``processes`` table. B3 then also compares with procrastinate (its
tasks in benchmarks/procrastinate_tasks.py) on the same server, in a database of its own
(``bench_procrastinate_<random>``, dropped at the end), its worker a subprocess with
concurrency = CPU count: ``b3_pg_ours_per_s`` vs ``b3_procrastinate_spawn_per_s`` (a task
that runs ``/bin/true``) and ``b3_procrastinate_inproc_per_s`` (a no-op task in the warm
worker), end to end from the first defer until every job succeeded. The PostgreSQL
server's CPU time (postmaster and backends, when it runs on this machine) counts as this
script's in ``interference_pct``; ``postgres_cpu_pct`` reports it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import json
import math
import os
import platform
import random
import re
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import psutil

ROOT: Final = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiobgproc import Command, Manager, Process, Step  # noqa: E402
from aiobgproc._location import open_store  # noqa: E402
from aiobgproc.sqlite_store import SQLiteStore  # noqa: E402

T = TypeVar("T")

TRIVIAL_STEP: Final = "benchmarks.trivial_steps:noop"
HUEY_DB_VARIABLE: Final = "AIOBGPROC_BENCH_HUEY_DB"  # as in benchmarks/huey_tasks.py
# as in benchmarks/procrastinate_tasks.py
PROCRASTINATE_URL_VARIABLE: Final = "AIOBGPROC_BENCH_PROCRASTINATE_URL"
PROCRASTINATE_POLL_S: Final = 0.01  # --fetch-job-polling-interval (LISTEN/NOTIFY wakes it first)
MIB: Final = 1 << 20
BENCHMARKS: Final = ("b1", "b2", "b3", "b4", "b5", "b6")
INTERFERENCE_WARN_PCT: Final = 10.0

KEYS: Final[dict[str, tuple[str, ...]]] = {
    "b1": ("b1_ratio", "b1_ours_per_s", "b1_raw_per_s"),
    "b2": ("b2_p50_ms", "b2_p95_ms", "b2_cold_p50_ms", "b2_raw_python_p50_ms"),
    "b3": (
        "b3_ratio_vs_huey",
        "b3_ratio_vs_huey_inproc",
        "b3_ours_per_s",
        "b3_huey_spawn_per_s",
        "b3_huey_inproc_per_s",
    ),
    "b4": ("b4_ratio", "b4_ours_mb_s", "b4_raw_mb_s", "b4_rss_growth_mb"),
    "b5": ("b5_info_p50_ms", "b5_info_p99_ms", "b5_list_p50_ms", "b5_list_p99_ms", "b5_rows"),
    "b6": ("b6_median_ms", "b6_p95_ms"),
}
"""The figures each benchmark must report (more may follow them)."""

POSTGRES_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "b3": (
        "b3_pg_ours_per_s",
        "b3_procrastinate_spawn_per_s",
        "b3_procrastinate_inproc_per_s",
        "b3_ratio_vs_procrastinate",
        "b3_ratio_vs_procrastinate_inproc",
    ),
}
"""The figures a benchmark adds when the store is PostgreSQL."""

# key -> (comparison, threshold, note); the targets of issue 6.
TARGETS: Final[dict[str, tuple[str, float, str]]] = {
    "b1_ratio": (">=", 0.8, ""),
    "b2_p50_ms": ("<", 5.0, ""),
    "b3_ratio_vs_huey": (">=", 1.0, ""),
    "b3_ratio_vs_huey_inproc": (">=", 0.6, "stretch"),
    "b4_ratio": (">=", 0.5, ""),
    "b4_rss_growth_mb": ("<", 50.0, ""),
    "b5_info_p99_ms": ("<", 2.0, ""),
    "b6_median_ms": ("<", 50.0, ""),
}


@dataclass(frozen=True, slots=True)
class Sizes:
    reps: int  # repetitions of the throughput figures (B1, B3); the median is reported
    b1_n: int
    b2_n: int
    b2_cold_n: int
    b3_n: int
    b4_bytes: int
    b5_rows: int
    b5_calls: int
    b6_n: int


SIZES: Final = {
    "full": Sizes(5, 500, 200, 200, 1000, 1024 * MIB, 100_000, 1000, 20),
    "quick": Sizes(3, 300, 100, 100, 300, 256 * MIB, 100_000, 300, 10),
    "smoke": Sizes(1, 20, 5, 3, 20, 16 * MIB, 2_000, 20, 2),
}


class BenchError(Exception):
    """A benchmark could not produce its figure (a process failed, a peer did not start)."""


class PartialFigures(Exception):
    """A benchmark failed after measuring some of its figures (e.g. its peers): those."""

    def __init__(self, figures: dict[str, Any], cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.figures = figures


LOOPS = ("asyncio", "uvloop")
_loop_choice = ["asyncio"]  # set by --loop


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    if _loop_choice[0] == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the event loop chosen with --loop (asyncio's own, or uvloop)."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)


def say(message: str) -> None:
    """Progress and warnings: always stderr, so that --json keeps stdout to itself."""
    print(message, file=sys.stderr, flush=True)


# -- figures ------------------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1)


def ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or not theirs:
        return None
    return round(ours / theirs, 3)


# -- the machine --------------------------------------------------------------------------------


def _busy_cpu_seconds() -> float:
    times = psutil.cpu_times()
    return float(
        times.user
        + times.nice
        + times.system
        + getattr(times, "irq", 0.0)
        + getattr(times, "softirq", 0.0)
    )


def _own_cpu_seconds() -> float:
    # This process and every descendant it has reaped (they reap theirs): at the end of a
    # benchmark every child is gone, so this is the whole tree's CPU time.
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _server_cpu_seconds(server: psutil.Process | None) -> float:
    """The CPU time of a local database server: its postmaster, the backends it has reaped
    and the ones alive now (0 when there is none to see)."""
    if server is None:
        return 0.0
    total = 0.0
    with contextlib.suppress(psutil.Error):
        times = server.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in server.children():
            with contextlib.suppress(psutil.Error):
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
    return total


class Interference:
    """CPU used outside this script's process tree while a benchmark runs, in % of all CPUs.

    ``server``, the postmaster of a PostgreSQL server on this machine that the benchmarks
    use: its CPU time counts as this script's (and ``server_percent`` reports it)."""

    def __init__(self, server: psutil.Process | None = None) -> None:
        self._serverproc = server
        self._wall = time.monotonic()
        self._busy = _busy_cpu_seconds()
        self._own = _own_cpu_seconds()
        self._server = _server_cpu_seconds(server)

    def _share(self, seconds: float) -> float:
        wall = time.monotonic() - self._wall
        return round(max(seconds, 0.0) / (wall * (os.cpu_count() or 1)) * 100, 1)

    def server_percent(self) -> float:
        return self._share(_server_cpu_seconds(self._serverproc) - self._server)

    def percent(self) -> float:
        other = (
            (_busy_cpu_seconds() - self._busy)
            - (_own_cpu_seconds() - self._own)
            - (_server_cpu_seconds(self._serverproc) - self._server)
        )
        return self._share(other)


def wait_quiet(limit: float) -> float:
    """Wait up to ``limit`` seconds for the machine to be quiet (others use under 10 % of the
    CPUs over 2 s); returns the last reading."""
    deadline = time.monotonic() + limit
    while True:
        busy = float(psutil.cpu_percent(interval=2.0))
        if busy < INTERFERENCE_WARN_PCT or time.monotonic() >= deadline:
            return busy
        say(f"waiting for a quiet machine: others use {busy:.0f} % of the CPUs")


def source() -> dict[str, Any]:
    """The commit measured, and whether the working tree differed from it (best effort)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    status = git("status", "--porcelain", "--untracked-files=no", "--", "src")
    return {
        "commit": git("rev-parse", "HEAD"),
        "src_dirty": None if status is None else bool(status),
    }


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
    }


def postgres_versions(stores: PostgresStores) -> dict[str, Any]:
    """The server's version and the client libraries' (None: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, Any] = {"postgresql": stores.server_version}
    for package in ("asyncpg", "procrastinate", "psycopg"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    if found["psycopg"] is not None:
        try:  # not imported by name: psycopg is not a dependency of ours
            found["psycopg_impl"] = importlib.import_module("psycopg").pq.__impl__
        except ImportError as exc:  # e.g. no libpq
            found["psycopg_impl"] = f"unavailable: {exc}"
    if stores.server is None:
        say("  the PostgreSQL server is not on this machine: its CPU is not metered")
    return found


# -- processes and files we own: cleaned up whatever happens ------------------------------------


class Children:
    """Every long-lived subprocess this script starts, each in a session of its own so its
    whole group can be stopped; ``close`` stops whatever is left (also on error or Ctrl-C)."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], **options: Any) -> subprocess.Popen[bytes]:
        proc: subprocess.Popen[bytes] = subprocess.Popen(
            argv, start_new_session=True, stdin=subprocess.DEVNULL, **options
        )
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], *, grace: float = 10.0) -> None:
        """SIGTERM the child, give it ``grace`` seconds, then SIGKILL its group (whatever of
        it is left: e.g. workers of a consumer that died first)."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc in self._procs:
            self._procs.remove(proc)

    def close(self) -> None:
        for proc in list(self._procs):
            self.stop(proc, grace=5.0)


class Stores:
    """The store location each benchmark uses: created afresh for each, deleted at the end."""

    def __init__(self, location: str | None, scratch: Path) -> None:
        self.location = location or str(scratch / "bench.db")
        store = open_store(self.location)
        if not isinstance(store, SQLiteStore):
            raise BenchError(f"--store {self.location!r}: only SQLite stores can be benchmarked")
        self.path = store.path
        if location is not None and self.path.exists():
            raise BenchError(
                f"--store {location!r} exists: the benchmarks create (and delete) their store"
            )

    def _files(self) -> Iterator[Path]:
        for suffix in ("", "-wal", "-shm", "-journal"):
            yield self.path.with_name(self.path.name + suffix)

    def remove(self) -> None:
        for file in self._files():
            file.unlink(missing_ok=True)

    def fresh(self) -> str:
        self.remove()
        return self.location


def blocking(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to its end from synchronous code, whether or not this thread runs an
    event loop (then in a thread of its own)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run_loop(make())
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(run_loop(make()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]


def with_query(url: str, **params: str) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


class PostgresStores:
    """PostgreSQL schemas for the benchmarks: a fresh one (``bench_<random>``) for each
    ``fresh()``, all dropped by ``remove()`` (after each benchmark and at the end); and the
    databases made for peers (``create_database``), dropped by ``remove()`` at the end
    (``drop_database`` drops one sooner)."""

    def __init__(self, url: str) -> None:
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            raise BenchError(
                f"--store {url!r}: the PostgreSQL store needs asyncpg:"
                " pip install 'aiobgproc[postgres]'"
            ) from None
        from aiobgproc.postgres_store import split_url

        self.url, given = split_url(url)
        if "schema=" in urlsplit(url).query:
            say(f"--store: schema {given!r} ignored: each benchmark uses a fresh schema")
        self.display = re.sub(r"//[^@/]*@", "//", self.url)
        self.schema = ""
        self._schemas: list[str] = []
        self._databases: list[str] = []
        self.server_version, self.server = blocking(self._ping)

    async def connect(self, url: str | None = None) -> Any:
        import asyncpg

        try:
            return await asyncpg.connect(url or self.url, timeout=30)
        except (OSError, asyncpg.PostgresError) as exc:
            raise BenchError(f"cannot connect to {self.display}: {exc}") from None

    async def _ping(self) -> tuple[str, psutil.Process | None]:
        """The server's version, and its postmaster when it runs on this machine."""
        conn = await self.connect()
        try:
            version = await conn.fetchval("SHOW server_version")
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            return str(version), self._local_postmaster(int(backend))  # while it is alive
        finally:
            await conn.close()

    def _local_postmaster(self, backend: int) -> psutil.Process | None:
        """The server's postmaster, when it runs on this machine and we can see it."""
        host = urlsplit(self.url).hostname or "localhost"
        if host not in ("localhost", "127.0.0.1", "::1") and not host.startswith("/"):
            return None
        try:
            parent = psutil.Process(backend).parent()
        except psutil.Error:
            return None
        if parent is None or "postgres" not in parent.name():
            return None
        return parent

    def fresh(self) -> str:
        self.schema = f"bench_{secrets.token_hex(6)}"
        self._schemas.append(self.schema)
        return with_query(self.url, schema=self.schema)

    async def output_bytes(self) -> int:
        """The on-disk size of the current schema's output chunks (with TOAST and indexes)."""
        conn = await self.connect()
        try:
            size = await conn.fetchval(
                "SELECT pg_total_relation_size($1::regclass)", f"{self.schema}.output_chunks"
            )
        finally:
            await conn.close()
        return int(size)

    def database_url(self, database: str) -> str:
        return urlsplit(self.url)._replace(path=f"/{database}").geturl()

    async def create_database(self) -> str:
        """A new, empty database (``bench_procrastinate_<random>``): its name."""
        database = f"bench_procrastinate_{secrets.token_hex(6)}"
        conn = await self.connect()
        try:
            self._databases.append(database)
            await conn.execute(f"CREATE DATABASE {database}")
        finally:
            await conn.close()
        return database

    async def _drop(self, schemas: list[str], databases: list[str]) -> None:
        conn = await self.connect()
        try:
            await conn.execute("SET lock_timeout = '60s'")
            for schema in schemas:
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            for database in databases:
                # FORCE: whatever still holds a connection to it (a killed worker's backend
                # that has not noticed yet) is disconnected.
                await conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        finally:
            await conn.close()

    async def drop_database(self, database: str) -> None:
        await self._drop([], [database])
        self._databases.remove(database)

    def remove(self) -> None:
        schemas, self._schemas = self._schemas, []
        dropped, self._databases = self._databases, []
        if not schemas and not dropped:
            return
        try:
            blocking(lambda: self._drop(schemas, dropped))
        except Exception as exc:
            say(f"warning: could not drop {', '.join(schemas + dropped)}: {exc}")


AnyStores = Stores | PostgresStores


def make_stores(location: str | None, scratch: Path) -> AnyStores:
    if location is not None and urlsplit(location).scheme.lower() in ("postgresql", "postgres"):
        return PostgresStores(location)
    return Stores(location, scratch)


# -- B1: commands --------------------------------------------------------------------------------


async def _gather_limited(count: int, limit: int, one: Callable[[], Any]) -> float:
    """Run ``one()`` ``count`` times, at most ``limit`` at once; the elapsed seconds."""
    semaphore = asyncio.Semaphore(limit)

    async def guarded() -> None:
        async with semaphore:
            await one()

    started = time.perf_counter()
    await asyncio.gather(*(guarded() for _ in range(count)))
    return time.perf_counter() - started


async def _raw_true() -> None:
    proc = await asyncio.create_subprocess_exec(
        "/bin/true", stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE
    )
    await proc.communicate()


async def _check_finished(manager: Manager, process_id: str, timeout: float = 60.0) -> None:
    info = await manager.wait_for(process_id, timeout=timeout)
    if info.status != "finished":
        raise BenchError(f"process {process_id} ended {info.status}: {info.error}")


async def _ours_true(manager: Manager) -> None:
    await _check_finished(manager, await manager.start(Command(["/bin/true"])))


async def bench_b1(sizes: Sizes, stores: AnyStores) -> dict[str, Any]:
    concurrency = 32
    ours: list[float] = []
    raw: list[float] = []
    await _gather_limited(concurrency, concurrency, _raw_true)  # warm the page cache
    for rep in range(sizes.reps):
        raw.append(sizes.b1_n / await _gather_limited(sizes.b1_n, concurrency, _raw_true))
        # A manager polls its store while open: open it only for its own measurement.
        async with Manager(stores.fresh(), concurrency=concurrency) as manager:
            await _gather_limited(concurrency, concurrency, lambda: _ours_true(manager))
            elapsed = await _gather_limited(sizes.b1_n, concurrency, lambda: _ours_true(manager))
        ours.append(sizes.b1_n / elapsed)
        say(f"  b1 rep {rep + 1}: ours {ours[-1]:.0f}/s, raw {raw[-1]:.0f}/s")
    ours_rate, raw_rate = statistics.median(ours), statistics.median(raw)
    return {
        "b1_ratio": ratio(ours_rate, raw_rate),
        "b1_ours_per_s": round(ours_rate, 1),
        "b1_raw_per_s": round(raw_rate, 1),
    }


# -- B2: step latency -----------------------------------------------------------------------------


async def _spawn_and_wait(argv: list[str]) -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE
    )
    await proc.communicate()
    return time.perf_counter() - started


async def _one_step(manager: Manager) -> float:
    started = time.perf_counter()
    process_id = await manager.start(Process([Step(TRIVIAL_STEP)]), {"x": 1})
    await _check_finished(manager, process_id)
    return time.perf_counter() - started


async def _step_latencies(stores: AnyStores, count: int, *, warm: bool) -> tuple[list[float], bool]:
    preload = [TRIVIAL_STEP.split(":")[0]] if warm else []
    async with Manager(stores.fresh(), warm=warm, preload=preload) as manager:
        for _ in range(3):
            await _one_step(manager)
        return [await _one_step(manager) for _ in range(count)], manager.warm


async def bench_b2(sizes: Sizes, stores: AnyStores) -> dict[str, Any]:
    bare = [sys.executable, "-I", "-S", "-c", "pass"]
    for _ in range(3):
        await _spawn_and_wait(bare)
    raw = [await _spawn_and_wait(bare) for _ in range(sizes.b2_n)]
    warm, warm_active = await _step_latencies(stores, sizes.b2_n, warm=True)
    if not warm_active:
        say("  b2: the warm executor is not available here: both figures are cold spawns")
    cold, _ = await _step_latencies(stores, sizes.b2_cold_n, warm=False)
    return {
        "b2_p50_ms": ms(statistics.median(warm)),
        "b2_p95_ms": ms(percentile(warm, 95)),
        "b2_cold_p50_ms": ms(statistics.median(cold)),
        "b2_raw_python_p50_ms": ms(statistics.median(raw)),
        "b2_cold_p95_ms": ms(percentile(cold, 95)),
        "b2_raw_python_p95_ms": ms(percentile(raw, 95)),
        "b2_warm": warm_active,
    }


# -- B3: step throughput vs huey ------------------------------------------------------------------


async def _step_throughput(stores: AnyStores, count: int) -> float:
    # preload: the steps' module is imported once, in the warm executor, as huey's workers
    # import their tasks once (docs/steps.md).
    async with Manager(
        stores.fresh(), concurrency=os.cpu_count() or 1, preload=[TRIVIAL_STEP.split(":")[0]]
    ) as manager:
        for _ in range(2):
            await _one_step(manager)
        work = Process([Step(TRIVIAL_STEP)])
        started = time.perf_counter()
        ids = [await manager.start(work, {"x": index}) for index in range(count)]
        # On PostgreSQL a process that never finishes (a lost run) shows sooner.
        timeout = 60.0 if isinstance(stores, PostgresStores) else 300.0
        for process_id in ids:
            await _check_finished(manager, process_id, timeout=timeout)
        return count / (time.perf_counter() - started)


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


def huey_figures(
    sizes: Sizes, children: Children, scratch: Path
) -> tuple[list[float], list[float]] | None:
    """(spawn_true rates, noop rates) of huey's reps, or None when huey is not installed."""
    if importlib.util.find_spec("huey") is None:
        say("  b3: huey is not importable: its figures and the ratios are null")
        return None
    database = scratch / "huey.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    os.environ[HUEY_DB_VARIABLE] = str(database)  # read by huey_tasks, here and in the consumer
    tasks = importlib.import_module("benchmarks.huey_tasks")
    if Path(tasks.huey.storage.filename) != database:
        raise BenchError("benchmarks.huey_tasks was imported before its database was chosen")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    log = (scratch / "huey-consumer.log").open("wb")
    consumer = children.start(_huey_consumer_argv(), cwd=ROOT, env=env, stdout=log, stderr=log)
    spawn_rates: list[float] = []
    noop_rates: list[float] = []
    try:
        # Warm it: the consumer and both workers are up, and both tasks have run once.
        _huey_wait([tasks.noop(0), tasks.spawn_true()], consumer, 60.0)
        _huey_wait([tasks.noop(index) for index in range(8)], consumer, 60.0)
        for rep in range(sizes.reps):
            spawn_rates.append(_huey_e2e(lambda _: tasks.spawn_true(), sizes.b3_n, consumer))
            noop_rates.append(_huey_e2e(tasks.noop, sizes.b3_n, consumer))
            say(
                f"  b3 rep {rep + 1}: huey spawn {spawn_rates[-1]:.0f}/s,"
                f" in-process {noop_rates[-1]:.0f}/s"
            )
    except BenchError:
        say((scratch / "huey-consumer.log").read_text(errors="replace")[-2000:])
        raise
    finally:
        children.stop(consumer)
        log.close()
    return spawn_rates, noop_rates


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
    tasks: Any, sizes: Sizes, stores: PostgresStores, url: str, worker: subprocess.Popen[bytes]
) -> tuple[list[float], list[float]]:
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
    return spawn_rates, noop_rates


async def _procrastinate_schema(tasks: Any) -> None:
    async with tasks.app.open_async():
        await tasks.app.schema_manager.apply_schema_async()


def procrastinate_figures(
    sizes: Sizes, stores: PostgresStores, children: Children, scratch: Path
) -> tuple[list[float], list[float]]:
    """(spawn_true rates, noop rates) of procrastinate's reps, in a database of its own."""
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
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        log_path = scratch / "procrastinate-worker.log"
        with log_path.open("wb") as log:
            worker = children.start(
                _procrastinate_worker_argv(), cwd=ROOT, env=env, stdout=log, stderr=log
            )
            try:
                return blocking(lambda: _procrastinate_reps(tasks, sizes, stores, url, worker))
            except BenchError:
                say(log_path.read_text(errors="replace")[-2000:])
                raise
            finally:
                children.stop(worker)
    finally:
        try:
            blocking(lambda: stores.drop_database(database))
        except Exception as exc:  # remove() tries again at the end
            say(f"  b3: could not drop database {database} yet: {exc}")


def bench_b3(sizes: Sizes, stores: AnyStores, children: Children, scratch: Path) -> dict[str, Any]:
    ours: list[float] = []
    ours_rate: float | None = None
    failure: Exception | None = None
    try:
        for rep in range(sizes.reps):
            ours.append(run_loop(_step_throughput(stores, sizes.b3_n)))
            say(f"  b3 rep {rep + 1}: ours {ours[-1]:.0f}/s")
        ours_rate = statistics.median(ours)
    except Exception as exc:
        if not isinstance(stores, PostgresStores):
            raise
        # On PostgreSQL the peers' figures are worth having all the same.
        failure = exc
        say(f"  b3: ours failed ({type(exc).__name__}: {exc}); the peers are measured anyway")
    peers = huey_figures(sizes, children, scratch)
    spawn_rate = None if peers is None else statistics.median(peers[0])
    noop_rate = None if peers is None else statistics.median(peers[1])
    figures = {
        "b3_ratio_vs_huey": ratio(ours_rate, spawn_rate),
        "b3_ratio_vs_huey_inproc": ratio(ours_rate, noop_rate),
        "b3_ours_per_s": None if ours_rate is None else round(ours_rate, 1),
        "b3_huey_spawn_per_s": None if spawn_rate is None else round(spawn_rate, 1),
        "b3_huey_inproc_per_s": None if noop_rate is None else round(noop_rate, 1),
    }
    if isinstance(stores, PostgresStores):
        figures.update(postgres_b3(sizes, stores, children, scratch, ours_rate))
    if failure is not None:
        raise PartialFigures(figures, failure)
    return figures


def postgres_b3(
    sizes: Sizes,
    stores: PostgresStores,
    children: Children,
    scratch: Path,
    ours_rate: float | None,
) -> dict[str, Any]:
    """B3 on PostgreSQL: ours (measured above) vs procrastinate on the same server; nulls,
    with the reason on stderr, when procrastinate is not installed or does not run."""
    spawn_rate: float | None = None
    noop_rate: float | None = None
    if importlib.util.find_spec("procrastinate") is None:
        say(
            "  b3: procrastinate is not importable (pip install procrastinate):"
            " its figures and the ratios are null"
        )
    else:
        try:
            spawn_rates, noop_rates = procrastinate_figures(sizes, stores, children, scratch)
        except Exception as exc:
            say(
                f"  b3: procrastinate did not run ({type(exc).__name__}: {exc}):"
                " its figures and the ratios are null"
            )
        else:
            spawn_rate = statistics.median(spawn_rates)
            noop_rate = statistics.median(noop_rates)
    return {
        "b3_pg_ours_per_s": None if ours_rate is None else round(ours_rate, 1),
        "b3_procrastinate_spawn_per_s": None if spawn_rate is None else round(spawn_rate, 1),
        "b3_procrastinate_inproc_per_s": None if noop_rate is None else round(noop_rate, 1),
        "b3_ratio_vs_procrastinate": ratio(ours_rate, spawn_rate),
        "b3_ratio_vs_procrastinate_inproc": ratio(ours_rate, noop_rate),
    }


# -- B4: output (in a fresh subprocess: the RSS is its own) ---------------------------------------


class RssSampler:
    """Samples this process's RSS every ``interval`` seconds, in a thread, and keeps the peak."""

    def __init__(self, interval: float = 0.01) -> None:
        self._interval = interval
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak = 0

    def rss(self) -> int:
        return int(self._process.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


async def _raw_pipe(nbytes: int) -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        "head",
        "-c",
        str(nbytes),
        "/dev/zero",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    received = 0
    while chunk := await proc.stdout.read(1 << 20):
        received += len(chunk)
    await proc.wait()
    elapsed = time.perf_counter() - started
    if received != nbytes:
        raise BenchError(f"raw pipe: read {received} bytes, expected {nbytes}")
    return elapsed


def _sqlite_ceiling(nbytes: int, directory: Path) -> float:
    """Seconds plain sqlite3 takes to store ``nbytes`` as 1 MiB BLOB rows, one transaction
    each, in a new file with the store's settings (4 KiB pages, WAL, synchronous=NORMAL, a
    checkpoint every 16 MiB): what any design that keeps output in SQLite pays at least."""
    path = directory / f"ceiling-{secrets.token_hex(4)}.db"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA page_size = 4096")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA wal_autocheckpoint = 4096")
        db.execute("CREATE TABLE chunks (process_id TEXT, seq INTEGER, data BLOB)")
        blob = bytes(MIB)
        started = time.perf_counter()
        for seq in range(max(nbytes // MIB, 1)):
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO chunks VALUES ('p', ?, ?)", (seq, blob))
            db.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        db.close()
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)


async def b4_child(nbytes: int, store: str) -> dict[str, Any]:
    """Runs in ``run.py --b4-child``: the manager's figures first (on a clean heap), then the
    raw pipe read of the same command."""
    async with Manager(store, concurrency=1, max_output_bytes=None) as manager:
        warm_up = await manager.start(Command(["head", "-c", str(MIB), "/dev/zero"]))
        await _check_finished(manager, warm_up)
        command = Command(["head", "-c", str(nbytes), "/dev/zero"])
        with RssSampler() as sampler:
            before = sampler.peak
            started = time.perf_counter()
            process_id = await manager.start(command)
            info = await manager.wait_for(process_id, timeout=900)
            elapsed = time.perf_counter() - started
        if info.status != "finished" or info.output_size != nbytes:
            raise BenchError(f"b4: {info.status}, {info.output_size} of {nbytes} bytes")
        stored = len(await manager.output(process_id)) if nbytes <= 64 * MIB else None
        if stored is not None and stored != nbytes:
            raise BenchError(f"b4: {stored} bytes in the store, expected {nbytes}")
    await _raw_pipe(MIB)
    raw = await _raw_pipe(nbytes)
    figures = {
        "ours_mb_s": nbytes / MIB / elapsed,
        "raw_mb_s": nbytes / MIB / raw,
        "rss_growth_mb": (sampler.peak - before) / MIB,
    }
    if not store.startswith(("postgresql://", "postgres://")):
        directory = Path(store.removeprefix("sqlite:///")).parent
        figures["sqlite_mb_s"] = nbytes / MIB / _sqlite_ceiling(nbytes, directory)
    return figures


def bench_b4(sizes: Sizes, stores: AnyStores, children: Children) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--b4-child", str(sizes.b4_bytes)]
    argv += ["--loop", _loop_choice[0]]
    proc = children.start([*argv, "--store", stores.fresh()], stdout=subprocess.PIPE)
    try:
        out, _ = proc.communicate(timeout=1800)
    finally:
        children.stop(proc)
    if proc.returncode != 0:
        raise BenchError(f"the B4 subprocess exited with code {proc.returncode}")
    figures = json.loads(out)
    result = {
        "b4_ratio": ratio(figures["ours_mb_s"], figures["raw_mb_s"]),
        "b4_ours_mb_s": round(figures["ours_mb_s"], 1),
        "b4_raw_mb_s": round(figures["raw_mb_s"], 1),
        "b4_rss_growth_mb": round(figures["rss_growth_mb"], 1),
        "b4_mb": sizes.b4_bytes // MIB,
    }
    if "sqlite_mb_s" in figures:
        result["b4_sqlite_ceiling_mb_s"] = round(figures["sqlite_mb_s"], 1)
        result["b4_ratio_vs_sqlite_ceiling"] = ratio(figures["ours_mb_s"], figures["sqlite_mb_s"])
    if isinstance(stores, PostgresStores):
        # What the output takes on disk: PostgreSQL compresses the zeros (TOAST), SQLite
        # stores every byte.
        result["b4_pg_stored_mb"] = round(blocking(stores.output_bytes) / MIB, 1)
    return result


# -- B5: store scale -------------------------------------------------------------------------------

# (status, share) of the inserted processes: mostly history, a few live ones.
_MIX: Final = (
    ("finished", 0.80),
    ("error", 0.08),
    ("cancelled", 0.04),
    ("timeout", 0.02),
    ("interrupted", 0.02),
    ("queued", 0.02),
    ("running", 0.02),
)


def _rows(count: int, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    """``processes`` rows shaped like the ones Manager.start and the runners write."""
    command = json.dumps(
        {"kind": "command", "argv": ["/bin/true"], "cwd": None, "env": None},
        separators=(",", ":"),
    )
    steps = json.dumps(
        {
            "kind": "process",
            "steps": [
                {"name": name, "target": TRIVIAL_STEP, "args": [], "kwargs": {}, "interrupt": False}
                for name in ("fetch", "review", "publish")
            ],
            "cwd": None,
            "env": None,
        },
        separators=(",", ":"),
    )
    statuses = [status for status, _ in _MIX]
    weights = [share for _, share in _MIX]
    error = json.dumps(
        {"type": "CommandError", "message": "command exited with code 1", "traceback": None}
    )
    start = time.time() - 30 * 86400
    for index in range(count):
        created = start + index * (30 * 86400 / count) + rng.random() * 0.001
        status = rng.choices(statuses, weights)[0]
        is_command = index % 2 == 0
        ended = status in ("finished", "error", "cancelled", "timeout")
        started = None if status == "queued" else created + 0.01
        output: str | None = None
        if status in ("finished", "interrupted"):
            output = '{"exit_code":0}' if is_command else '{"x":1,"lang":"en"}'
        yield (
            f"{int(created * 1000):012x}{rng.getrandbits(80):020x}",
            "command" if is_command else "process",
            status,
            command if is_command else steps,
            "{}" if is_command else '{"x":1}',
            output,
            error if status == "error" else None,
            None if is_command else "publish",
            0 if is_command else (3 if ended else 1),
            0 if is_command else 3,
            (0 if status == "finished" else 1) if is_command and ended else None,
            "0" * 32 if status == "running" else None,
            0 if status == "queued" else 1,
            created,
            started,
            created + 0.05 if ended else None,
        )


def _insert_rows(path: Path, count: int) -> list[str]:
    rng = random.Random(6)
    rows = list(_rows(count, rng))
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA busy_timeout = 5000")
        with db:
            db.executemany(
                "INSERT INTO processes (id, kind, status, spec, input, output, error, step,"
                " step_index, steps_total, exit_code, owner, attempts, created_at, started_at,"
                " finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        db.execute("ANALYZE")
    return [row[0] for row in rows]


_PG_COLUMNS: Final = (
    "id",
    "kind",
    "status",
    "spec",
    "input",
    "output",
    "error",
    "step",
    "step_index",
    "steps_total",
    "exit_code",
    "owner",
    "attempts",
    "created_at",
    "started_at",
    "finished_at",
)
"""The columns of ``_rows``, in order."""


async def _insert_rows_postgres(stores: PostgresStores, count: int) -> list[str]:
    """COPY the rows into the current schema's ``processes`` table (one statement)."""
    rng = random.Random(6)
    rows = list(_rows(count, rng))
    conn = await stores.connect()
    try:
        await conn.copy_records_to_table(
            "processes", records=rows, columns=_PG_COLUMNS, schema_name=stores.schema
        )
        await conn.execute(f"ANALYZE {stores.schema}.processes")
    finally:
        await conn.close()
    return [row[0] for row in rows]


async def bench_b5(sizes: Sizes, stores: AnyStores) -> dict[str, Any]:
    location = stores.fresh()
    async with Manager(location, run=False):
        pass  # creates the store and its schema
    started = time.perf_counter()
    if isinstance(stores, PostgresStores):
        ids = await _insert_rows_postgres(stores, sizes.b5_rows)
    else:
        ids = _insert_rows(stores.path, sizes.b5_rows)
    say(f"  b5: {len(ids)} rows inserted in {time.perf_counter() - started:.1f} s")
    rng = random.Random(5)
    info_s: list[float] = []
    list_s: list[float] = []
    # run=False: nothing here claims the queued rows; no worker is on this store.
    async with Manager(location, run=False) as manager:
        for _ in range(20):  # warm the page cache and the connection
            await manager.info(rng.choice(ids))
            await manager.list(status="finished", limit=100)
        for _ in range(sizes.b5_calls):
            process_id = rng.choice(ids)
            began = time.perf_counter()
            await manager.info(process_id)
            info_s.append(time.perf_counter() - began)
        for _ in range(sizes.b5_calls):
            began = time.perf_counter()
            found = await manager.list(status="finished", limit=100)
            list_s.append(time.perf_counter() - began)
        if len(found) != 100 or any(item.status != "finished" for item in found):
            raise BenchError("b5: list(status='finished', limit=100) returned the wrong rows")
    return {
        "b5_info_p50_ms": ms(statistics.median(info_s)),
        "b5_info_p99_ms": ms(percentile(info_s, 99)),
        "b5_list_p50_ms": ms(statistics.median(list_s)),
        "b5_list_p99_ms": ms(percentile(list_s, 99)),
        "b5_rows": len(ids),
    }


# -- B6: cross-process notice ----------------------------------------------------------------------


async def bench_b6(
    sizes: Sizes, stores: AnyStores, children: Children, scratch: Path
) -> dict[str, Any]:
    location = stores.fresh()
    async with Manager(location, run=False):
        pass  # the store exists before the worker and this manager race to create it
    log = (scratch / "worker.log").open("wb")
    worker = children.start(
        [sys.executable, "-m", "aiobgproc", "worker", "--store", location],
        stdout=log,
        stderr=log,
    )
    delays: list[float] = []
    try:
        async with Manager(location, run=False) as manager:
            # The first one waits for the worker to come up.
            await _check_finished(manager, await manager.start(Command(["true"])))
            rng = random.Random(6)
            for _ in range(sizes.b6_n):
                # Start at a random moment: otherwise each start falls at the same point of
                # the notice's polling cycle (right after the previous wait_for returned).
                await asyncio.sleep(rng.uniform(0.0, 0.1))
                process_id = await manager.start(Command(["true"]))
                info = await manager.wait_for(process_id, timeout=60)
                returned = time.time()
                if info.status != "finished" or info.finished_at is None:
                    raise BenchError(f"b6: process {process_id} ended {info.status}")
                delays.append(returned - info.finished_at.timestamp())
    finally:
        await asyncio.to_thread(children.stop, worker)
        log.close()
    return {
        "b6_median_ms": ms(statistics.median(delays)),
        "b6_p95_ms": ms(percentile(delays, 95)),
    }


# -- the run -------------------------------------------------------------------------------------


def run_one(
    name: str, sizes: Sizes, stores: AnyStores, children: Children, scratch: Path
) -> dict[str, Any]:
    if name == "b1":
        return run_loop(bench_b1(sizes, stores))
    if name == "b2":
        return run_loop(bench_b2(sizes, stores))
    if name == "b3":
        return bench_b3(sizes, stores, children, scratch)
    if name == "b4":
        return bench_b4(sizes, stores, children)
    if name == "b5":
        return run_loop(bench_b5(sizes, stores))
    if name == "b6":
        return run_loop(bench_b6(sizes, stores, children, scratch))
    raise ValueError(name)


def run_all(options: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """The figures, and whether every benchmark ran."""
    mode = "smoke" if options.smoke else "quick" if options.quick else "full"
    sizes = SIZES[mode]
    figures: dict[str, Any] = {
        "mode": mode,
        "loop": _loop_choice[0],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "source": source(),
    }
    interference: dict[str, float] = {}
    server_cpu: dict[str, float] = {}
    if options.wait_quiet > 0:
        figures["busy_before_pct"] = wait_quiet(options.wait_quiet)
    children = Children()
    scratch = Path(tempfile.mkdtemp(prefix="aiobgproc-bench-"))
    stores: AnyStores | None = None
    complete = True
    try:
        stores = make_stores(options.store, scratch)
        postgres = isinstance(stores, PostgresStores)
        if isinstance(stores, PostgresStores):
            figures["store"] = "postgresql"
            figures["machine"].update(postgres_versions(stores))
        for name in options.only:
            say(f"{name} ...")
            keys = KEYS[name] + (POSTGRES_KEYS.get(name, ()) if postgres else ())
            meter = Interference(stores.server if isinstance(stores, PostgresStores) else None)
            began = time.monotonic()
            try:
                figures.update(run_one(name, sizes, stores, children, scratch))
            except PartialFigures as exc:
                complete = False
                say(f"{name} failed: {exc}")
                figures.update(dict.fromkeys(keys))
                figures.update(exc.figures)
            except BenchError as exc:
                complete = False
                say(f"{name} failed: {exc}")
                figures.update(dict.fromkeys(keys))
            except Exception:
                complete = False
                say(f"{name} failed:\n{traceback.format_exc()}")
                figures.update(dict.fromkeys(keys))
            interference[name] = meter.percent()
            if postgres:
                server_cpu[name] = meter.server_percent()
            stores.remove()  # each benchmark's store (file or schemas) goes when it ends
            say(f"{name} done in {time.monotonic() - began:.1f} s")
            if interference[name] > INTERFERENCE_WARN_PCT:
                say(
                    f"  warning: other processes used {interference[name]} % of the CPUs"
                    f" during {name}: its figures are skewed"
                )
    finally:
        CLEANING.set()
        children.close()
        if stores is not None:
            stores.remove()
        shutil.rmtree(scratch, ignore_errors=True)
    figures["interference_pct"] = interference
    if server_cpu:
        figures["postgres_cpu_pct"] = server_cpu
    figures["targets_missed"] = [
        key for key in TARGETS if key in figures and verdict(key, figures[key]) == "MISS"
    ]
    return figures, complete


def verdict(key: str, value: Any) -> str:
    if key not in TARGETS:
        return ""
    if value is None:
        return "n/a"
    comparison, threshold, _ = TARGETS[key]
    met = value >= threshold if comparison == ">=" else value < threshold
    return "pass" if met else "MISS"


def table(figures: dict[str, Any]) -> str:
    width = max([26, *(len(key) for key in figures if key[:1] == "b" and key[1:2].isdigit())])
    lines = [
        f"aiobgproc benchmarks, {figures['mode']} mode, {figures['date']}",
        "machine: " + ", ".join(f"{key} {value}" for key, value in figures["machine"].items()),
        f"source: commit {figures['source']['commit']}"
        + (" with uncommitted changes in src/" if figures["source"]["src_dirty"] else ""),
        "",
        f"{'figure':{width}} {'value':>12}  {'target':18} result",
    ]
    for name in BENCHMARKS:
        keys = [key for key in figures if key.startswith(f"{name}_")]
        for key in keys:
            value = figures[key]
            shown = (
                "null"
                if value is None
                else f"{value:,}"
                if not isinstance(value, bool)
                else str(value)
            )
            target = ""
            if key in TARGETS:
                comparison, threshold, note = TARGETS[key]
                target = f"{comparison} {threshold:g}" + (f" ({note})" if note else "")
            lines.append(f"{key:{width}} {shown:>12}  {target:18} {verdict(key, value)}".rstrip())
        if name in figures["interference_pct"]:
            lines.append(
                f"{'  (interference % CPU)':{width}} {figures['interference_pct'][name]:>12}"
            )
        if name in figures.get("postgres_cpu_pct", {}):
            lines.append(
                f"{'  (PostgreSQL % CPU)':{width}} {figures['postgres_cpu_pct'][name]:>12}"
            )
    missed = [
        key + (f" ({TARGETS[key][2]})" if TARGETS[key][2] else "")
        for key in figures["targets_missed"]
    ]
    lines += ["", "targets missed: " + (", ".join(missed) if missed else "none")]
    return "\n".join(lines)


CLEANING: Final = threading.Event()
"""Set once run_all cleans up: from then on nothing interrupts it."""
SIGTERM_GRACE_S: Final = 30.0


def _interrupt_on_sigterm() -> None:
    # SIGTERM takes the Ctrl-C path: asyncio cancels the running benchmark, whose managers
    # close, and the finally blocks stop every subprocess and delete the files.
    def again() -> None:
        # A manager whose close() hangs must not keep us (and what we made) forever: a
        # second SIGINT raises KeyboardInterrupt at once; the finally blocks still run.
        if not CLEANING.is_set():
            say(f"still running {SIGTERM_GRACE_S:g} s after SIGTERM: interrupting again")
            os.kill(os.getpid(), signal.SIGINT)

    def handler(signum: int, frame: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        timer = threading.Timer(SIGTERM_GRACE_S, again)
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, handler)
    # A shell starts background jobs with SIGINT ignored: then SIGTERM would do nothing.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller runs: under 2 minutes")
    size.add_argument("--smoke", action="store_true", help="tiny runs: a few seconds (tests)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument(
        "--store",
        help="store path or sqlite:/// URL (must not exist), or a postgresql:// URL (each"
        " benchmark then uses a fresh schema in that database)",
    )
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="e.g. b1,b3")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to this long for other processes to use under 10%% of the CPUs",
    )
    parser.add_argument(
        "--loop", choices=LOOPS, default="asyncio", help="the event loop to run on (B1-B6)"
    )
    parser.add_argument("--b4-child", type=int, metavar="BYTES", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    _loop_choice[0] = options.loop
    only = [name.strip().lower() for name in options.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(BENCHMARKS))
    if unknown or not only:
        parser.error(f"--only takes some of {','.join(BENCHMARKS)}, not {options.only!r}")
    options.only = [name for name in BENCHMARKS if name in only]
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    _interrupt_on_sigterm()
    if options.b4_child is not None:
        print(json.dumps(run_loop(b4_child(options.b4_child, options.store))), flush=True)
        return 0
    # Only the result may reach stdout: until then, whatever writes to fd 1 (this process
    # or a child that inherits it) goes to stderr.
    sys.stdout.flush()
    stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        figures, complete = run_all(options)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except BenchError as exc:
        say(f"error: {exc}")
        return 2
    finally:
        sys.stdout.flush()
        os.dup2(stdout, 1)
        os.close(stdout)
    print(json.dumps(figures) if options.json else table(figures), flush=True)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
