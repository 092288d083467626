"""What every benchmark of benchmarks/run.py shares: the sizes of each mode, the event loop
chosen with ``--loop``, figures from samples, the CPU interference meter, the subprocesses
this script owns, and the few calls through aiobgproc's public API that several benchmarks
time.

A benchmark is a module ``benchmarks/bN_<name>.py`` with a ``BENCHMARK``: its name, the
figures it must report, its targets and a ``run(context)`` that returns its figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import psutil

from aiobgproc import Command, Manager, Process, Status, Step

if TYPE_CHECKING:
    from benchmarks.stores import AnyStores

T = TypeVar("T")

ROOT: Final = Path(__file__).resolve().parent.parent
TRIVIAL_STEP: Final = "benchmarks.trivial_steps:noop"
TRIVIAL_MODULE: Final = TRIVIAL_STEP.split(":")[0]
MIB: Final = 1 << 20
INTERFERENCE_WARN_PCT: Final = 10.0


@dataclass(frozen=True, slots=True)
class Sizes:
    reps: int  # repetitions of the throughput figures (B1, B3); the median is reported
    b1_n: int
    b2_n: int
    b2_cold_n: int
    b3_n: int
    b4_bytes: int
    b5_rows: int  # processes stored in all
    b5_run: int  # of which run for real (the newest); the others are queued, most cancelled
    b5_calls: int
    b6_n: int
    b10_fires: int  # due times of B10's every=1 schedule
    b13_bytes: int  # the log B13 reads the last lines of


SIZES: Final = {
    "full": Sizes(5, 500, 200, 200, 1000, 1024 * MIB, 100_000, 20_000, 1000, 20, 30, 200_000_000),
    "quick": Sizes(3, 300, 100, 100, 300, 256 * MIB, 100_000, 5_000, 300, 10, 10, 200_000_000),
    "smoke": Sizes(1, 20, 5, 3, 20, 16 * MIB, 2_000, 300, 20, 2, 2, 8_000_000),
}


class BenchError(Exception):
    """A benchmark could not produce its figure (a process failed, a peer did not start)."""


class PartialFigures(Exception):
    """A benchmark failed after measuring some of its figures (e.g. its peers): those."""

    def __init__(self, figures: dict[str, Any], cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.figures = figures


@dataclass(frozen=True, slots=True)
class Context:
    """What a benchmark runs with: the mode's sizes, the store locations, the subprocesses
    this script owns, and a scratch directory (deleted at the end)."""

    sizes: Sizes
    stores: AnyStores
    children: Children
    scratch: Path


@dataclass(frozen=True, slots=True)
class Benchmark:
    name: str
    run: Callable[[Context], dict[str, Any]]
    keys: tuple[str, ...]
    """The figures it must report (more may follow them)."""
    postgres_keys: tuple[str, ...] = ()
    """The figures it adds when the store is PostgreSQL."""
    targets: Mapping[str, tuple[str, float, str]] = field(default_factory=dict)
    """key -> (comparison, threshold, note): the targets of issue 6."""


def say(message: str) -> None:
    """Progress and warnings: always stderr, so that --json keeps stdout to itself."""
    print(message, file=sys.stderr, flush=True)


# -- the event loop -----------------------------------------------------------------------------

LOOPS: Final = ("asyncio", "uvloop")
_loop_choice = ["asyncio"]  # set by --loop


def set_loop(name: str) -> None:
    if name not in LOOPS:
        raise ValueError(name)
    _loop_choice[0] = name


def loop_name() -> str:
    return _loop_choice[0]


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    if _loop_choice[0] == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the event loop chosen with --loop (asyncio's own, or uvloop)."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(coro)


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


# -- figures ------------------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or not theirs:
        return None
    return round(ours / theirs, 3)


def rounded(value: float | None) -> float | None:
    """A rate for the report (None stays None: a figure that could not be measured)."""
    return None if value is None else round(value, 1)


# -- timed calls through the public API --------------------------------------------------------


async def gather_limited(count: int, limit: int, one: Callable[[int], Awaitable[Any]]) -> float:
    """Run ``one(index)`` for each index below ``count``, at most ``limit`` at once; the
    elapsed seconds."""
    semaphore = asyncio.Semaphore(limit)

    async def guarded(index: int) -> None:
        async with semaphore:
            await one(index)

    started = time.perf_counter()
    await asyncio.gather(*(guarded(index) for index in range(count)))
    return time.perf_counter() - started


async def check_ended(
    manager: Manager,
    process_id: str,
    timeout: float = 60.0,
    expected: Status = Status.FINISHED,
) -> None:
    """Wait for the process; BenchError unless it ended ``expected``."""
    info = await manager.wait_for(process_id, timeout=timeout)
    if info.status != expected:
        raise BenchError(f"process {process_id} ended {info.status}: {info.error}")


async def run_command(manager: Manager, argv: list[str], expected: Status = Status.FINISHED) -> str:
    """Start a command and wait until it ended as ``expected``; its process id."""
    process_id = await manager.start(Command(argv))
    await check_ended(manager, process_id, expected=expected)
    return process_id


async def one_step(manager: Manager) -> float:
    """Seconds from start to finished of a one-step process with the trivial step."""
    started = time.perf_counter()
    process_id = await manager.start(Process([Step(TRIVIAL_STEP)]), {"x": 1})
    await check_ended(manager, process_id)
    return time.perf_counter() - started


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


# -- processes we own: cleaned up whatever happens ----------------------------------------------


def child_env() -> dict[str, str]:
    """This environment, with the project on PYTHONPATH: a child imports ``benchmarks.*``."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


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


CLEANING: Final = threading.Event()
"""Set once the run cleans up: from then on nothing interrupts it."""
SIGTERM_GRACE_S: Final = 30.0


def interrupt_on_sigterm() -> None:
    """SIGTERM takes the Ctrl-C path: asyncio cancels the running benchmark, whose managers
    close, and the finally blocks stop every subprocess and delete the files."""

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
