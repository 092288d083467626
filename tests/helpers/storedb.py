"""Read a store from a test, bypassing aiobgproc: plain ``sqlite3`` for a SQLite file, a
short-lived asyncpg connection (in a thread of its own, so it works inside a running event
loop) for a ``postgresql://...?schema=NAME`` URL.

SQL is written once, with ``?`` placeholders (numbered for PostgreSQL by the store's own
``store.sql.numbered``) and plain table names (the PostgreSQL connection's search path is
the store's schema); both stores have the same tables and columns.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Sequence
from contextlib import closing
from typing import Any

from aiobgproc.store.postgres_schema import split_url
from aiobgproc.store.sql import numbered

Row = tuple[Any, ...]


def is_postgres(store: str | os.PathLike[str]) -> bool:
    return os.fspath(store).startswith(("postgresql://", "postgres://"))


def _postgres(url: str, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[list[Row]]:
    import asyncpg

    base, schema = split_url(url)

    async def run() -> list[list[Row]]:
        connection = await asyncpg.connect(base, server_settings={"search_path": schema})
        try:
            results = []
            for sql, params in statements:
                records = await connection.fetch(numbered(sql), *params)
                results.append([tuple(record) for record in records])
            return results
        finally:
            await connection.close()

    outcome: dict[str, Any] = {}

    def in_thread() -> None:
        try:
            outcome["rows"] = asyncio.run(run())
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    rows: list[list[Row]] = outcome["rows"]
    return rows


def query_many(
    store: str | os.PathLike[str], statements: Sequence[tuple[str, Sequence[Any]]]
) -> list[list[Row]]:
    """Run ``statements`` (sql, params) in one connection; the rows of each."""
    if is_postgres(store):
        return _postgres(os.fspath(store), statements)
    with closing(sqlite3.connect(os.fspath(store), timeout=30.0)) as db:
        return [list(db.execute(sql, params)) for sql, params in statements]


def query(store: str | os.PathLike[str], sql: str, params: Sequence[Any] = ()) -> list[Row]:
    return query_many(store, [(sql, params)])[0]


def execute(store: str | os.PathLike[str], sql: str, params: Sequence[Any] = ()) -> None:
    """Run one writing statement and commit it (to set up a store as some other version of
    aiobgproc would have left it)."""
    if is_postgres(store):
        _postgres(os.fspath(store), [(sql, params)])
        return
    with closing(sqlite3.connect(os.fspath(store), timeout=30.0)) as db:
        db.execute(sql, params)
        db.commit()
