"""The claim and the listings stay cheap at scale (SQLite, counted in VM instructions, which
do not depend on the machine's speed): with 100,000 queued processes over 20 queues and
10,000 delayed ones, a claim and a filtered page cost about what they cost on a small store.

The stores are filled with plain sqlite3 (a million writes through the API would take
minutes); the claim and the listings under test are aiobgproc's own.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from aiobgproc.models import Status
from aiobgproc.store import ListFilter
from aiobgproc.store.sqlite import SQLiteStore

LOOP_INDEPENDENT = "it counts the store's SQLite VM steps: no event loop is measured"
QUEUES = 20
_INSERT = (
    "INSERT INTO processes (id, kind, status, spec, input, steps_total, created_at, label,"
    " meta, process_key, queue, priority, run_at, summary, waiting, ready)"
    " VALUES (?, 'command', ?, '{}', '{}', 0, ?, ?, ?, ?, ?, ?, ?, '[\"true\"]', 0, ?)"
)


async def _filled(path: Path, queued: int, delayed: int, finished: int) -> SQLiteStore:
    store = SQLiteStore(path)
    await store.open()  # creates the schema
    await store.close()
    now = time.time()
    rows: list[tuple[Any, ...]] = []
    metas: list[tuple[Any, ...]] = []
    total = queued + delayed + finished
    for index in range(total):
        process_id = f"p{index:07d}"
        if index < finished:
            status, run_at, ready = Status.FINISHED.value, None, 1
        elif index < finished + delayed:
            status, run_at, ready = Status.QUEUED.value, now + 3600 + index, 0
        else:
            status, run_at, ready = Status.QUEUED.value, None, 1
        created = now - total + index
        user = f'"u{index % 50}"'
        rows.append(
            (
                process_id,
                status,
                created,
                f"label{index % 100}",
                f'{{"user":{user}}}',
                f"key{index}",
                f"q{index % QUEUES:02d}",
                index % 7 - 3,
                run_at,
                ready,
            )
        )
        metas.append((process_id, "user", user, created))
    with closing(sqlite3.connect(path)) as db:
        db.executemany(_INSERT, rows)
        db.executemany(
            "INSERT INTO process_meta (process_id, name, value, created_at) VALUES (?, ?, ?, ?)",
            metas,
        )
        db.commit()
    store = SQLiteStore(path)
    await store.open()
    return store


async def _opcodes(store: SQLiteStore, call: Callable[[], Awaitable[Any]]) -> int:
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    assert store._db is not None
    store._db._conn.set_progress_handler(count, 1)  # called in whichever thread runs SQL
    try:
        await call()
    finally:
        store._db._conn.set_progress_handler(None, 1)
    return steps


async def _costs(store: SQLiteStore, last: str) -> dict[str, int]:
    now = time.time()
    costs = {
        # Its trigger looks for the process's dependents: by id, not among all queued rows
        # (it once did, and a cancel cost O(queue)).
        "cancel": await _opcodes(store, lambda: store.cancel(last, now)),
        "claim 1": await _opcodes(store, lambda: store.claim("m", now, 1)),
        "claim 4": await _opcodes(store, lambda: store.claim("m", now, 4)),
        "claim 1 of q07": await _opcodes(store, lambda: store.claim("m", now, 1, ["q07"])),
        "next run at": await _opcodes(store, store.next_run_at),
    }
    # Pages of two: each filter matches at least two processes of the small store too.
    filters = {
        "all": ListFilter(limit=2),
        "status": ListFilter(statuses=[Status.QUEUED], limit=2),
        "queue": ListFilter(queue="q03", limit=2),
        "label": ListFilter(label="label42", limit=2),
        "key": ListFilter(key="key5", limit=2),
        "meta": ListFilter(meta=(("user", '"u7"'),), limit=2),
    }
    for name, where in filters.items():

        async def listing(where: ListFilter = where) -> None:
            await store.list_processes(where)

        costs[f"list {name}"] = await _opcodes(store, listing)
    return costs


async def test_claims_and_listings_do_not_walk_a_large_store(tmp_path: Path) -> None:
    small = await _filled(tmp_path / "small.db", queued=200, delayed=20, finished=20)
    try:
        small_costs = await _costs(small, f"p{239:07d}")
    finally:
        await small.close()
    large = await _filled(tmp_path / "large.db", queued=100_000, delayed=10_000, finished=1000)
    try:
        large_costs = await _costs(large, f"p{110_999:07d}")
        claimed = await large.claim("m", time.time(), 2)
        # Every queue's best candidate was looked at: the highest priority (3) of them all.
        assert [record.priority for record in claimed] == [3, 3]
    finally:
        await large.close()
    for name, cost in large_costs.items():
        # A B-tree a hundred times larger is a level or two deeper: a few more steps per
        # lookup, never a walk (which would cost ~100,000 steps).
        assert cost < small_costs[name] * 2 + 200, (name, small_costs[name], cost)
