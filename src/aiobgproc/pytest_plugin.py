"""A pytest plugin (registered as ``aiobgproc`` under ``pytest11``): fixtures for testing code
that uses aiobgproc. Nothing is autouse; ask for what you need.

- ``aiobgproc_store``: the path of a fresh, empty store in the test's ``tmp_path``.
- ``aiobgproc_manager``: an open :class:`~aiobgproc.Manager` on that store, closed (and its
  processes stopped) after the test. Async: it needs pytest-asyncio.
- ``aiobgproc_wait_for_status``: :func:`wait_for_status`, for tests that prefer a fixture.

::

    async def test_report_is_built(aiobgproc_manager):
        process_id = await aiobgproc_manager.start(Process([Step("myapp.steps:build")]))
        info = await wait_for_status(aiobgproc_manager, process_id, "finished", timeout=30)
        assert info.output["pages"] == 3
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

import aiobgproc

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the manager fixture needs pytest-asyncio
    pytest_asyncio = None  # type: ignore[assignment]


async def wait_for_status(
    manager: aiobgproc.Manager,
    process_id: str,
    status: str | aiobgproc.Status | Iterable[str | aiobgproc.Status],
    *,
    timeout: float = 30.0,
) -> aiobgproc.ProcessInfo:
    """Wait until the process has ``status`` (or one of several); return its info.

    Fails the test with the process's last info when ``timeout`` seconds pass first, or when
    the process reaches another status it can never leave.
    """
    wanted = (
        {aiobgproc.Status(status)}
        if isinstance(status, str)
        else {aiobgproc.Status(item) for item in status}
    )
    deadline = time.monotonic() + timeout
    while True:
        info = await manager.info(process_id)
        if info.status in wanted:
            return info
        if info.status in aiobgproc.TERMINAL_STATUSES:
            pytest.fail(
                f"process {process_id} ended {info.status}, not {_names(wanted)}: {info.error}"
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(
                f"process {process_id} is still {info.status} after {timeout:g} s, "
                f"not {_names(wanted)}"
            )
        try:
            await manager.wait_for(process_id, timeout=min(remaining, 0.25))
        except aiobgproc.WaitTimeoutError:
            pass


def _names(statuses: set[aiobgproc.Status]) -> str:
    return " or ".join(sorted(str(status) for status in statuses))


@pytest.fixture
def aiobgproc_store(tmp_path: Path) -> Path:
    """The path of a fresh store file for this test."""
    return tmp_path / "aiobgproc.db"


@pytest.fixture
def aiobgproc_wait_for_status() -> object:
    """The :func:`wait_for_status` helper."""
    return wait_for_status


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def aiobgproc_manager(aiobgproc_store: Path) -> AsyncIterator[aiobgproc.Manager]:
        """An open Manager on a fresh store; closed after the test."""
        async with aiobgproc.Manager(aiobgproc_store, concurrency=4) as manager:
            yield manager
