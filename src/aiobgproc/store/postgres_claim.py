"""PostgresStore's claim: the same steps as SQLiteStore.claim, with rows locked one by one
(claimable ones with SKIP LOCKED, so that claims never wait for each other; a limited queue's
settings row FOR UPDATE, so that its claims count its running processes one at a time)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from . import sql
from .shared import claim_order

# sql.CANDIDATES for several queues (names, rooms) at once.
_CANDIDATES_OF_QUEUES: Final = (
    "SELECT c.id, c.priority, c.created_at FROM unnest(?::text[], ?::int[]) AS q(name, room)"
    " CROSS JOIN LATERAL (SELECT id, priority, created_at FROM {processes}"
    " WHERE status = {queued} AND ready = 1 AND queue = q.name"
    " ORDER BY priority DESC, created_at, id LIMIT q.room FOR UPDATE SKIP LOCKED) c"
)
_CLAIM_IDS: Final = (
    sql.CLAIM_SET + " WHERE id = ANY(?::text[]) AND status = {queued} RETURNING {columns}"
)


async def claim_rows(
    conn: Any, q: sql.Dialect, owner: str, now: float, limit: int, queues: Sequence[str] | None
) -> list[Any]:
    """The rows claimed for ``owner``, in the transaction ``conn`` is in."""
    await conn.execute(q[sql.PROMOTE_DUE], now)
    candidates: list[tuple[Any, ...]] = []
    names: list[str] = []
    rooms: list[int] = []
    for name, seen_limit, seen_paused in await conn.fetch(q[sql.CLAIMABLE_QUEUES]):
        if queues is not None and name not in queues:
            continue
        max_running, paused = seen_limit, seen_paused
        if max_running is not None:  # read again, locked
            settings = await conn.fetchrow(q[sql.QUEUE_LOCKED], name)
            max_running, paused = settings if settings is not None else (None, 0)
        if paused:
            continue
        room = limit
        if max_running is not None:
            running = await conn.fetchval(q[sql.RUNNING_IN_QUEUE], name)
            room = min(room, max_running - running)
        if room > 0:
            names.append(name)
            rooms.append(room)
    if names:  # every queue's candidates in one round trip
        rows = await conn.fetch(q[_CANDIDATES_OF_QUEUES], names, rooms)
        candidates += [tuple(row) for row in rows]
    ids = claim_order(candidates, limit)
    if not ids:
        return []
    return list(await conn.fetch(q[_CLAIM_IDS], owner, now, ids))
