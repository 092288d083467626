"""Persistence: the Store protocol and its records (here), one schema (``schema``), the SQL
both stores share (``sql``, ``shared``), and the stores (``sqlite``, ``postgres``).

Only this package knows SQL. Importing it imports neither store: ``_location`` picks one,
so the manager never loads aiosqlite or asyncpg through it (see docs/design.md).
"""

from __future__ import annotations

from .protocol import (
    Chunk,
    Claim,
    ListFilter,
    ManagerRecord,
    NewProcess,
    ProcessRecord,
    QueueRecord,
    ScheduleRecord,
    Store,
    StoredChunk,
)

__all__ = [
    "Chunk",
    "Claim",
    "ListFilter",
    "ManagerRecord",
    "NewProcess",
    "ProcessRecord",
    "QueueRecord",
    "ScheduleRecord",
    "Store",
    "StoredChunk",
]
