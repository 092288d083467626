"""A store made by the previous release (schema version 1) opens and is migrated in place, on
both stores: its processes keep everything, get the queue "default" and priority 0, say what
they are (command line, step names), and go on running; the new features work on it.

``tests/data/store_v1.db`` was made by aiobgproc at schema version 1 (commit 081ca15): a
finished command, a failed command, a step process interrupted after its second step, and
a queued command. The PostgreSQL test builds version 1's tables (as that release created
them) in a schema of its own and copies those rows into it.
"""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from aiobgproc import Command, Manager, Status
from aiobgproc.store import schema
from helpers.storedb import is_postgres, query

V1_STORE = Path(__file__).resolve().parent / "data" / "store_v1.db"
FINISHED, FAILED, INTERRUPTED, QUEUED = (
    "01a24f50298588f77f52bdf549c3be5b",
    "01a24f502989454d8187883c402d8a14",
    "01a24f50298ce3651dccd0f746c6894e",
    "01a24f5029d680ece181c80f41d7b8c3",
)
WAIT = 30.0


def _v1_rows() -> dict[str, list[tuple[object, ...]]]:
    with closing(sqlite3.connect(f"file:{V1_STORE}?mode=ro", uri=True)) as db:
        return {
            table.name: db.execute(f"SELECT * FROM {table.name}").fetchall()
            for table in schema.TABLES_V1
        }


async def _copy_v1_into_postgres(url: str) -> None:
    asyncpg = pytest.importorskip("asyncpg")
    parts = urlsplit(url)
    target = dict(parse_qsl(parts.query))["schema"]
    base = parts._replace(query="").geturl()
    conn = await asyncpg.connect(base)
    try:
        async with conn.transaction():
            await conn.execute(f"CREATE SCHEMA {target}")
            await conn.execute(
                f"CREATE TABLE {target}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            await conn.execute(f"INSERT INTO {target}.meta VALUES ('schema_version', '1')")
            for statement in schema.create_v1("postgres", target):
                await conn.execute(statement)
            for table, rows in _v1_rows().items():
                if rows:
                    marks = ", ".join(f"${index}" for index in range(1, len(rows[0]) + 1))
                    await conn.executemany(f"INSERT INTO {target}.{table} VALUES ({marks})", rows)
    finally:
        await conn.close()


@pytest.fixture
async def v1_store(store_url: str, tmp_path: Path) -> str:
    if store_url.startswith("postgresql://"):
        await _copy_v1_into_postgres(store_url)
        return store_url
    copy = tmp_path / "store_v1.db"
    shutil.copyfile(V1_STORE, copy)
    return str(copy)


async def test_a_version_1_store_is_migrated_in_place(v1_store: str) -> None:
    async with Manager(v1_store, run=False) as client:
        finished = await client.info(FINISHED)
        failed = await client.info(FAILED)
        paused = await client.info(INTERRUPTED)
        queued = await client.info(QUEUED)
        assert [info.status for info in (finished, failed, paused, queued)] == [
            Status.FINISHED,
            Status.ERROR,
            Status.INTERRUPTED,
            Status.QUEUED,
        ]
        for info in (finished, failed, paused, queued):
            assert (info.queue, info.priority, info.label, info.meta, info.key) == (
                "default",
                0,
                None,
                None,
                None,
            )
            assert (info.run_at, info.after) == (None, ())
        assert finished.command == ("echo", "hello from v1")
        assert failed.command == ("sh", "-c", "echo oops >&2; exit 3")
        assert paused.command is None
        assert paused.steps == ("a", "b", "c")
        assert paused.output == {"v": 1, "a": True, "b": True}
        assert await client.output(FINISHED) == b"hello from v1\n"
        assert await client.output(FAILED) == b"oops\n"
        # One pipe carried both streams before version 3: its chunks count as stdout.
        assert await client.output(FAILED, stream="stdout", tail=1) == b"oops\n"
        assert await client.output(FAILED, stream="stderr") == b""
        assert [queue.name for queue in await client.queues()] == ["default"]
        await client.proceed(INTERRUPTED, {"human": "yes"})
    async with Manager(v1_store, concurrency=2) as manager:
        done = await manager.wait_for(INTERRUPTED, timeout=WAIT)
        assert done.status is Status.FINISHED
        assert done.output == {"v": 1, "a": True, "b": True, "human": "yes", "c": True}
        assert (await manager.wait_for(QUEUED, timeout=WAIT)).status is Status.FINISHED
        assert await manager.output(QUEUED) == b"queued in v1\n"
        # What version 2 adds works on the migrated store.
        keyed = await manager.start(Command(["true"]), key="k", meta={"from": "v2"})
        after = await manager.start(Command(["true"]), after=[keyed], queue="later")
        assert (await manager.wait_for(after, timeout=WAIT)).status is Status.FINISHED
        assert [info.id for info in await manager.list(meta={"from": "v2"})] == [keyed]
        assert await manager.store.check() == []
    if not v1_store.startswith("postgresql://"):
        with closing(sqlite3.connect(v1_store)) as db:
            assert db.execute("PRAGMA user_version").fetchone() == (schema.VERSION,)
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_a_migrated_store_that_held_processes_keeps_its_output_raw(v1_store: str) -> None:
    """Tools that read its chunks directly go on reading them (store/codec.py)."""
    async with Manager(v1_store) as manager:
        process_id = await manager.start(Command(["seq", "100000"]))
        assert (await manager.wait_for(process_id, timeout=WAIT)).status is Status.FINISHED
        expected = "".join(f"{n}\n" for n in range(1, 100_001)).encode()
        assert await manager.output(process_id) == expected
    setting = (
        "SELECT value FROM meta WHERE key = 'output_codec'"
        if is_postgres(v1_store)
        else "SELECT value FROM settings WHERE name = 'output_codec'"
    )
    assert query(v1_store, setting) == [("none",)]
    rows = query(
        v1_store,
        "SELECT length(data), codec FROM output_chunks WHERE process_id = ?",
        (process_id,),
    )
    assert {row[1] for row in rows} == {0}
    assert sum(row[0] for row in rows) == len(expected)
