"""Which event loop the suite runs on: AIOBGPROC_TEST_LOOP, ``asyncio`` (default) or
``uvloop``; scripts/check runs the whole suite on each."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest

LOOP_VARIABLE = "AIOBGPROC_TEST_LOOP"


def loop_factory() -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    name = os.environ.get(LOOP_VARIABLE) or "asyncio"
    if name == "asyncio":
        return name, asyncio.new_event_loop
    if name == "uvloop":
        import uvloop

        return name, uvloop.new_event_loop
    raise pytest.UsageError(f"{LOOP_VARIABLE} must be 'asyncio' or 'uvloop', not {name!r}")


def runner() -> asyncio.Runner:
    """An asyncio.Runner on the chosen loop, for sync tests (hypothesis) that drive one."""
    return asyncio.Runner(loop_factory=loop_factory()[1])
