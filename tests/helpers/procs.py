"""OS-process helpers for the durability and worker tests.

- ``Child``: a subprocess whose stdout is read line by line with a deadline, whose stderr
  goes to a file, and that is always killed and reaped by ``stop()`` (use it in ``finally``);
- ``poll``: wait for a plain predicate with a deadline (never a fixed sleep);
- readers of the store (helpers.storedb: SQLite or PostgreSQL) and of the step trace log
  of stepmods.durable.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import psutil

from helpers.storedb import query

TESTS_DIR = Path(__file__).resolve().parent.parent
RUN_MANAGER = TESTS_DIR / "helpers" / "run_manager.py"
POLL_S = 0.01
StoreLocation = Path | str  # a SQLite file or a postgresql:// URL


async def poll(predicate: Callable[[], bool], *, timeout: float, what: str) -> float:
    """Poll ``predicate`` until it is true and return how long that took; fail the test
    when ``timeout`` seconds pass first."""
    started = time.monotonic()
    deadline = started + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(POLL_S)
    return time.monotonic() - started


class Child:
    """A subprocess run by a test. ``stop()`` kills and reaps it, whatever state it is in."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        stderr_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path = TESTS_DIR,
    ) -> None:
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.stderr_path = stderr_path
        self._stderr: IO[bytes] = stderr_path.open("wb")
        self._buffer = b""
        self._eof = False
        try:
            self.popen: subprocess.Popen[bytes] = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                cwd=cwd,
                env=full_env,
                bufsize=0,
            )
        except BaseException:
            self._stderr.close()
            raise

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def _read_more(self, timeout: float) -> None:
        stdout = self.popen.stdout
        assert stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            if selector.select(timeout):
                chunk = os.read(stdout.fileno(), 4096)
                if chunk:
                    self._buffer += chunk
                else:
                    self._eof = True

    def readline(self, timeout: float = 15.0) -> str:
        """The next stdout line (without its newline); '' at end of file; fails on timeout."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer and not self._eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no line from pid {self.pid} within {timeout:g} s\n{self.stderr()}"
                )
            self._read_more(min(remaining, 0.1))
        line, newline, rest = self._buffer.partition(b"\n")
        self._buffer = rest
        return line.decode() if newline or line else ""

    def wait_ready(self, timeout: float = 15.0) -> str:
        """Wait for ``ready ...`` (run_manager.py) and return the rest of that line."""
        line = self.readline(timeout)
        assert line.startswith("ready"), f"expected 'ready', got {line!r}\n{self.stderr()}"
        return line.removeprefix("ready").strip()

    async def wait_exit(self, timeout: float) -> int:
        """Poll (without blocking the event loop) until the child exits; its return code."""
        await poll(
            lambda: self.popen.poll() is not None,
            timeout=timeout,
            what=f"pid {self.pid} to exit; its stderr:\n{self.stderr()}",
        )
        assert self.popen.returncode is not None
        return self.popen.returncode

    def signal(self, sig: signal.Signals) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)

    def stop(self) -> None:
        """Kill (if still running) and reap; close the pipes. Safe to call twice."""
        try:
            if self.popen.poll() is None:
                self.popen.kill()
            self.popen.wait(10)
        finally:
            if self.popen.stdout is not None:
                self.popen.stdout.close()
            self._stderr.close()


def start_manager(
    store: StoreLocation,
    workdir: Path,
    name: str,
    *,
    env: Mapping[str, str] | None = None,
    **options: Any,
) -> Child:
    """run_manager.py on ``store``; ``options`` become ``--option value`` arguments."""
    argv = [sys.executable, str(RUN_MANAGER), str(store)]
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return Child(argv, stderr_path=workdir / f"{name}.stderr", env=env)


def start_worker(store: StoreLocation, workdir: Path, name: str, *args: str) -> Child:
    """``python -m aiobgproc worker --store STORE ARGS`` (from the tests directory, so that
    stepmods can be imported)."""
    argv = [sys.executable, "-m", "aiobgproc", "worker", "--store", str(store), *args]
    return Child(argv, stderr_path=workdir / f"{name}.stderr")


def guards_of(os_pid: int) -> list[psutil.Process]:
    """The guard watchdog processes that the OS process ``os_pid`` started."""
    found = []
    try:
        for child in psutil.Process(os_pid).children():
            try:
                if "aiobgproc._child.guard" in " ".join(child.cmdline()):
                    found.append(child)
            except psutil.Error:
                continue
    except psutil.Error:
        pass
    return found


def is_alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# -- reading the store and the trace log -------------------------------------------------------


def step_rows(store: StoreLocation) -> dict[tuple[str, int], tuple[int, float]]:
    """Committed step outputs: (process id, step index) -> (attempt, committed_at)."""
    rows = query(store, "SELECT process_id, step_index, attempt, committed_at FROM step_outputs")
    return {(pid, index): (attempt, at) for pid, index, attempt, at in rows}


def statuses(store: StoreLocation) -> dict[str, str]:
    return {pid: status for pid, status in query(store, "SELECT id, status FROM processes")}


def manager_pids(store: StoreLocation) -> set[int]:
    """The OS pids of the managers registered in the store."""
    return {row[0] for row in query(store, "SELECT os_pid FROM managers")}


def heartbeat_of(store: StoreLocation, os_pid: int) -> float | None:
    """The last heartbeat of the manager registered with OS pid ``os_pid``, if any."""
    rows = query(store, "SELECT heartbeat_boottime FROM managers WHERE os_pid = ?", (os_pid,))
    return rows[0][0] if rows else None


def read_trace(log: Path) -> list[tuple[str, str, int]]:
    """The lines of a stepmods.durable trace: (process id, step, attempt)."""
    if not log.exists():
        return []
    entries = []
    for line in log.read_text().splitlines():
        process_id, step, attempt = line.split(":")
        entries.append((process_id, step, int(attempt)))
    return entries


def descendants(os_pid: int) -> list[psutil.Process]:
    """The live descendants of ``os_pid`` (children, grandchildren, ...)."""
    try:
        return [proc for proc in psutil.Process(os_pid).children(recursive=True) if is_alive(proc)]
    except psutil.Error:
        return []


def is_guard(proc: psutil.Process) -> bool:
    try:
        return "aiobgproc._child.guard" in " ".join(proc.cmdline())
    except psutil.Error:
        return False
