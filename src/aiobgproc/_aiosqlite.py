"""The one place that reaches into aiosqlite's internals (``Connection._execute`` and
``Connection._conn``, both there since aiosqlite 0.11).

The SQLite store runs a whole transaction as one function call in aiosqlite's connection
thread (so that cancelling a caller can never leave a transaction open), and runs short
operations on the same ``sqlite3.Connection`` in the event loop's thread when that thread
is idle. aiosqlite's public API offers neither. pyproject.toml bounds aiosqlite's version,
and tests/test_store.py fails with a clear message if a release drops either member.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import aiosqlite

T = TypeVar("T")


def raw(db: aiosqlite.Connection) -> sqlite3.Connection:
    """The sqlite3 connection under ``db`` (for the loop's thread; never at the same time
    as the connection thread uses it)."""
    return db._conn


def in_thread(db: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
    """``fn(*args)`` in ``db``'s connection thread, in order with its other work."""
    return cast(Awaitable[T], db._execute(fn, *args))  # type: ignore[no-untyped-call]


def missing() -> list[str]:
    """The internals this module needs that the installed aiosqlite lacks."""
    return [name for name in ("_execute", "_conn") if not hasattr(aiosqlite.Connection, name)]
