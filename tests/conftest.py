"""Shared fixtures: a manager on a fresh store, and a guard against leaked OS processes."""

from __future__ import annotations

import asyncio
import inspect
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path

import psutil
import pytest

from aiobgproc import Manager
from helpers.invariants import describe
from helpers.loops import LOOP_VARIABLE, loop_factory

TAG = "AIOBGPROC_PROCESS_ID"
# Inherited by every child of this test run, so the leak guard only blames processes that
# this run started (another run may be going on at the same time on this machine).
RUN_MARK = "AIOBGPROC_TEST_RUN"
os.environ[RUN_MARK] = str(os.getpid())


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The whole suite runs on one loop, chosen by AIOBGPROC_TEST_LOOP (scripts/check runs
    it on both)."""
    name, factory = loop_factory()
    return {name: factory}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On uvloop, only the tests that run on the chosen loop: coroutines, and the sync tests
    of a module that drives helpers.loops.runner() (``DRIVES_THE_TEST_LOOP``). Any other sync
    test runs nothing on it (its subprocesses and asyncio.run() use asyncio's own loop): it
    ran in the asyncio pass already, and would only run again unchanged. So do the modules
    that say ``LOOP_INDEPENDENT`` (why, in its value): what they test runs elsewhere.

    And the PostgreSQL variants of the store-parametrised tests, but for the modules that
    say ``POSTGRES_ON_EVERY_LOOP`` (the store contract and the event log: asyncpg's
    connections, LISTEN/NOTIFY and the listener on this loop): what the others check of the
    PostgreSQL store does not depend on the loop, and each ran in the asyncio pass."""
    if loop_factory()[0] == "asyncio":
        return
    kept: list[pytest.Item] = []
    left_out: list[pytest.Item] = []
    for item in items:
        function = getattr(item, "function", None)
        module = getattr(item, "module", None)
        callspec = getattr(item, "callspec", None)
        postgres_again = (
            callspec is not None
            and "postgres" in callspec.params.values()
            and not getattr(module, "POSTGRES_ON_EVERY_LOOP", False)
        )
        on_the_loop = (
            not getattr(module, "LOOP_INDEPENDENT", "")
            and not postgres_again
            and (
                function is None
                or inspect.iscoroutinefunction(function)
                or getattr(module, "DRIVES_THE_TEST_LOOP", False)
            )
        )
        (kept if on_the_loop else left_out).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


def pytest_report_header(config: pytest.Config) -> str:
    return f"event loop: {loop_factory()[0]} ({LOOP_VARIABLE})"


def _leftovers(baseline: set[int]) -> list[psutil.Process]:
    """Our descendants (alive or zombie) that were not there before the test, plus any
    process still carrying an aiobgproc tag."""
    me = psutil.Process()
    found: dict[int, psutil.Process] = {}
    for child in me.children(recursive=True):
        if child.pid not in baseline:
            found[child.pid] = child
    for proc in psutil.process_iter():
        if proc.pid in found or proc.pid == me.pid:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue  # orphans reparented to PID 1 (which does not reap here)
            environ = proc.environ()
            if environ.get(TAG) and environ.get(RUN_MARK) == os.environ[RUN_MARK]:
                found[proc.pid] = proc
        except psutil.Error:
            continue
    return list(found.values())


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    """Fail any test that leaves a child process, a zombie or a tagged process behind."""
    baseline = {child.pid for child in psutil.Process().children(recursive=True)}
    yield
    deadline = time.monotonic() + 5.0
    left = _leftovers(baseline)
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = _leftovers(baseline)
    if left:
        report = describe(left)
        for proc in left:
            try:
                proc.kill()
            except psutil.Error:
                pass
        for proc in left:  # reap our own zombies so the next test starts clean
            try:
                os.waitpid(proc.pid, os.WNOHANG)
            except ChildProcessError:
                pass
        pytest.fail(f"test left processes behind:\n{report}")


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "jobs.db"


POSTGRES_VARIABLE = "AIOBGPROC_TEST_POSTGRES"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL store URL with a schema of its own, dropped after the test. Skipped (and
    reported as skipped, with the reason) when AIOBGPROC_TEST_POSTGRES is not set."""
    base = os.environ.get(POSTGRES_VARIABLE)
    if not base:
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_VARIABLE} to a postgresql:// URL")
    asyncpg = pytest.importorskip("asyncpg", reason="asyncpg is not installed")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    separator = "&" if "?" in base else "?"
    yield f"{base}{separator}schema={schema}"

    async def drop() -> None:
        connection = await asyncpg.connect(base)
        try:
            await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await connection.close()

    asyncio.run(drop())


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on each store: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "jobs.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def manager(store_url: str) -> AsyncIterator[Manager]:
    """An open Manager, on each store in turn (SQLite, then PostgreSQL when available)."""
    async with Manager(store_url, concurrency=4) as opened:
        yield opened
