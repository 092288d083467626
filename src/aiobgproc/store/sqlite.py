"""The SQLite store: one file, WAL, shared safely by any number of OS processes.

Its habits (busy timeout first, BEGIN IMMEDIATE writes, WAL retried, compare-and-set) are
described in ``sqlite_file``; how an operation runs (one function call, in the event loop's
thread or the connection thread, grouped into one commit with others) in
``sqlite_connection``. The SQL both stores share is ``sql``'s, run through ``shared``.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final, final

import aiosqlite

from .. import _aiosqlite as _aio
from .._faults import fault
from ..errors import StoreError
from ..models import Status
from . import codec, sql
from .protocol import (
    Claim,
    ManagerRecord,
    NewProcess,
    ProcessRecord,
    ScheduleRecord,
    StoredChunk,
)
from .rows import (
    COLUMNS,
    Dependencies,
    dumps,
    insert_params,
    loads,
    manager_row,
    pending_dependencies,
    record,
)
from .shared import Rollback, SharedOperations, claim_order, in_claim_order
from .sqlite_connection import BUSY_TIMEOUT_MS, Conn, SQLiteConnection
from .sqlite_file import check_path, not_sqlite, one, prepare

_SHORT_WRITE_BYTES: Final = 64 * 1024  # more output than this is written in the thread
_SQL: Final = sql.SQLITE
# The update that follows a recorded step, for each of sql.STEP_ENDS.
_AFTER_STEP: Final = {end: _SQL[sql.update_claimed(end)] for end in sql.STEP_ENDS}


def _all(db: Conn, statement: str, params: Sequence[Any] = ()) -> list[Any]:
    return db.execute(statement, params).fetchall()


@final
class SQLiteStore(SharedOperations, SQLiteConnection):
    """A Store in one SQLite file, created on first use. Safe to share between OS processes."""

    _sql = _SQL
    on_change: Callable[[], None] | None = None  # never called: data_version is polled

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(Path(path))

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    async def open(self) -> None:
        if self._db is not None:
            return
        check_path(self.path)
        try:
            # check_same_thread=False: short operations run in the event loop's thread when
            # the connection thread is idle (see _read and _commit_here); never both at once.
            db = await aiosqlite.connect(
                self.path,
                isolation_level=None,
                timeout=BUSY_TIMEOUT_MS / 1000,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {str(self.path)!r}: {exc}") from None
        try:
            # The whole set-up in one hop to the connection thread.
            self._checkpoint_pages, setting = await _aio.in_thread(
                db, prepare, _aio.raw(db), self.path
            )
            self._output_codec = codec.CODECS.get(setting)
        except BaseException as exc:
            await db.close()
            if not_sqlite(exc):
                raise StoreError(
                    f"{str(self.path)!r} is not an aiobgproc store (not an SQLite file)"
                ) from None
            if isinstance(exc, sqlite3.Error | UnicodeDecodeError):  # the latter: damaged
                raise StoreError(f"cannot open store {str(self.path)!r}: {exc}") from None
            raise
        self._db = db

    # -- the primitives of SharedOperations --------------------------------------------------

    def _change(self, statement: str, params: tuple[Any, ...]) -> Awaitable[int]:
        return self._write(lambda db: db.execute(statement, params).rowcount, 0, single=True)

    def _returned(self, statement: str, params: tuple[Any, ...]) -> Awaitable[list[Any]]:
        empty: list[Any] = []
        return self._write(lambda db: db.execute(statement, params).fetchall(), empty, single=True)

    def _row(self, statement: str, params: tuple[Any, ...]) -> Awaitable[Any]:
        return self._read(one, statement, params)

    def _rows(
        self, statement: str, params: tuple[Any, ...], *, long: bool = False
    ) -> Awaitable[list[Any]]:
        return (self._call if long else self._read)(_all, statement, params)

    # -- processes ---------------------------------------------------------------------------

    def _member(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        return f"{column} IN ({', '.join('?' for _ in values)})", list(values)

    async def insert(self, process: NewProcess) -> str:
        return await self._write(lambda db: _insert(db, process), process.id)

    async def fire_schedule(
        self, schedule: ScheduleRecord, next_run_at: float, now: float, process: NewProcess
    ) -> str | None:
        due = (schedule.name, schedule.next_run_at)

        def body(db: Conn) -> str | None:
            fired = (next_run_at, now, process.id, *due)
            if db.execute(_SQL[sql.FIRE_SCHEDULE], fired).rowcount != 1:
                return None
            stored = _insert(db, process)
            if stored != process.id:  # its key is held: that process is this time's
                db.execute(
                    _SQL[sql.FIRE_SCHEDULE], (next_run_at, now, stored, schedule.name, next_run_at)
                )
            return stored

        return await self._write(body, None)

    async def insert_claimed(self, process: NewProcess, owner: str) -> ProcessRecord | None:
        params = (*insert_params(process, owner), process.queue)

        def body(db: Conn) -> Any:
            row = one(db, _SQL[sql.INSERT_CLAIMED], params)
            if row is not None:
                _insert_extras(db, process, ())
            return row

        row = await self._write(body, None, single=not process.meta_pairs)
        return None if row is None else record(row)

    async def claim(
        self,
        owner: str,
        now: float,
        limit: int,
        queues: Sequence[str] | None = None,
        executors: Sequence[tuple[int, float | None]] = (),
    ) -> list[ProcessRecord]:
        # The same steps as PostgresStore.claim; here BEGIN IMMEDIATE holds the write lock,
        # so nothing is locked row by row.
        def body(db: Conn) -> list[Any]:
            # Now, not when the claim was asked for: a process a dependency's end made
            # claimable meanwhile must not start before that end (started_at).
            at = max(now, time.time())
            db.execute(_SQL[sql.PROMOTE_DUE], (at,))
            candidates: list[tuple[Any, ...]] = []
            for name, max_running, paused in _all(db, _SQL[sql.CLAIMABLE_QUEUES]):
                if paused or (queues is not None and name not in queues):
                    continue
                room = limit
                if max_running is not None:
                    running = one(db, _SQL[sql.RUNNING_IN_QUEUE], (name,))[0]
                    room = min(room, max_running - running)
                if room > 0:
                    candidates += _all(db, _SQL[sql.CANDIDATES], (name, room))
            ids = claim_order(candidates, limit)
            if not ids:
                return []
            marks = ", ".join("?" for _ in ids)
            # "+status": look the ids up by primary key, not every queued row by status.
            statement = sql.CLAIM_SET + f" WHERE id IN ({marks}) AND +status = {{queued}}"
            rows = _all(db, _SQL[statement + " RETURNING {columns}"], (owner, at, *ids))
            return _pin(db, rows, ids, executors)

        empty: list[Any] = []
        rows = await self._write(body, empty)
        return in_claim_order([record(row) for row in rows])

    def _step_and(
        self, claim: Claim, step: tuple[Any, ...], end: str, values: tuple[Any, ...]
    ) -> Awaitable[bool]:
        record_step, update = _SQL[sql.RECORD_STEP], _AFTER_STEP[end]
        claimed = _claim_params(claim)

        def body(db: Conn) -> bool:
            if db.execute(record_step, (*step, *claimed)).rowcount != 1:
                return False
            if db.execute(update, (*values, *claimed)).rowcount != 1:
                raise Rollback
            return True

        return self._write(body, False)

    async def proceed(self, process_id: str, data: dict[str, Any], now: float) -> bool:
        def body(db: Conn) -> bool:
            row = one(db, _SQL[sql.PROCEED_READ], (process_id,))
            if row is None:
                return False
            fault("in_proceed")
            merged = dumps({**(loads(row[0]) or {}), **data})
            if row[1] >= row[2]:  # paused after the last step: proceeding finishes it
                db.execute(_SQL[sql.PROCEED_FINISH], (merged, merged, now, process_id))
            else:
                db.execute(_SQL[sql.PROCEED_QUEUE], (merged, process_id))
            return True

        return await self._write(body, False)

    async def cancel(self, process_id: str, now: float) -> tuple[Status, ProcessRecord] | None:
        def body(db: Conn) -> tuple[str, Any] | None:
            before = one(db, _SQL[sql.CANCEL_READ], (process_id,))
            if before is None or before[0] not in sql.CANCELLABLE:
                return None
            row = one(db, _SQL[sql.CANCEL], (now, process_id, before[0]))
            return None if row is None else (before[0], row)

        result = await self._write(body, None)
        return None if result is None else (Status(result[0]), record(result[1]))

    # -- output ------------------------------------------------------------------------------

    async def append_output(
        self, claim: Claim, stored: Sequence[StoredChunk], output_size: int, truncated: bool
    ) -> bool:

        def body(db: Conn) -> bool:
            cursor = db.execute(
                _SQL[sql.OUTPUT_SIZE], (output_size, int(truncated), *_claim_params(claim))
            )
            if cursor.rowcount != 1:
                raise Rollback
            for seq, stream, how, data in stored:
                db.execute(_SQL[sql.OUTPUT_CHUNK], (claim.process_id, seq, stream, how, data))
            return True

        size = sum(len(chunk[3]) for chunk in stored)
        return await self._write(body, False, long=size > _SHORT_WRITE_BYTES)

    # -- housekeeping ------------------------------------------------------------------------

    async def prune(self, finished_before: float) -> int:
        *others, processes = (_SQL[statement] for statement in sql.PRUNE)

        def body(db: Conn) -> int:
            for statement in others:
                db.execute(statement, (finished_before,))
            return int(db.execute(processes, (finished_before,)).rowcount)

        return await self._write(body, 0, long=True)

    def events_from_now(self) -> Awaitable[int]:
        # Event times have SQLite's millisecond resolution: a time cannot mark the moment.
        # The read is started now; its first step (a read in the loop's thread) runs before
        # anything the caller asks for after this call.
        return asyncio.ensure_future(self.last_event_seq())

    async def clock(self) -> float:
        return time.time()  # one host: its own clock

    async def change_counter(self) -> int:
        row = await self._read(one, "PRAGMA data_version")
        return 0 if row is None else int(row[0])

    def changed(self) -> dict[str, str] | None:
        return None  # data_version says that something changed, not what

    async def register_manager(self, manager: ManagerRecord) -> None:
        statement = (
            "INSERT OR REPLACE INTO {managers} ({manager_columns})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        await self._change(_SQL[statement], manager_row(manager))

    async def heartbeat(self, manager_id: str, now: float, boottime: float) -> bool:
        statement = "UPDATE {managers} SET heartbeat_at = ?, heartbeat_boottime = ? WHERE id = ?"
        return await self._change(_SQL[statement], (now, boottime, manager_id)) == 1

    async def check(self) -> list[str]:
        rows = await self._call(_all, "PRAGMA integrity_check", ())
        problems = [str(row[0]) for row in rows]
        return [] if problems == ["ok"] else problems


def _insert(db: Conn, process: NewProcess) -> str:
    """Store a new process (see Store.insert) in the transaction ``db`` is in."""
    if process.key is not None:
        held = one(db, _SQL[sql.ACTIVE_WITH_KEY], (process.key,))
        if held is not None:  # under the write lock: no one can end it meanwhile
            return str(held[0])
    deps = _dependencies(db, process.after)
    params = insert_params(process, None, len(deps.pending), deps.failed, deps.depth)
    db.execute(_SQL[sql.INSERT], params)
    _insert_extras(db, process, deps.pending)
    return process.id


def _dependencies(db: Conn, after: Sequence[str]) -> Dependencies:
    """What the processes ``after`` names mean for a new process (rows.pending_dependencies)."""
    if not after:
        return Dependencies([], None, 0)
    marks = ", ".join("?" for _ in after)
    rows = _all(db, _SQL[sql.dependencies_query(f"IN ({marks})")], after)
    return pending_dependencies(after, {row[0]: (row[1], row[2]) for row in rows})


def _insert_extras(db: Conn, process: NewProcess, pending: Sequence[str]) -> None:
    """A new process's rows beside its own: its unfinished dependencies, its meta keys, and
    (restarted from a step) the steps it starts after."""
    if process.restarted_from is not None and process.step_index > 0:
        copied = (process.id, process.restarted_from, process.step_index)
        db.execute(_SQL[sql.COPY_STEPS], copied)
    for depends_on in pending:
        db.execute(_SQL[sql.INSERT_DEPENDENCY], (process.id, depends_on))
    for name, value in process.meta_pairs:
        db.execute(_SQL[sql.INSERT_META], (process.id, name, value, process.created_at))


_POSITION: Final = {name.strip(): index for index, name in enumerate(COLUMNS.split(","))}
_ID, _KIND, _SPEC = _POSITION["id"], _POSITION["kind"], _POSITION["spec"]
_STEP, _STEP_INDEX = _POSITION["step"], _POSITION["step_index"]
_PROGRESS, _PROGRESS_MESSAGE = _POSITION["progress"], _POSITION["progress_message"]
_OS_PID, _OS_PID_STARTED = _POSITION["os_pid"], _POSITION["os_pid_started"]


def _pin(
    db: Conn, rows: list[Any], ids: list[str], executors: Sequence[tuple[int, float | None]]
) -> list[Any]:
    """The claimed step processes, in claim order, each given one of ``executors`` as its
    os_pid, with the step it begins at (see Store.claim), in the claim's transaction."""
    if not executors:
        return rows
    claimed = {row[_ID]: tuple(row) for row in rows}
    left = iter(executors)
    pinned: list[Any] = []
    for process_id in ids:
        row = claimed.get(process_id)
        if row is None:
            continue
        step = _first_step(row) if row[_KIND] == "process" else None
        executor = next(left, None) if step is not None else None
        if executor is not None:
            db.execute(_SQL[sql.PIN_EXECUTOR], (*executor, step, process_id))
            changed = list(row)
            changed[_OS_PID], changed[_OS_PID_STARTED] = executor
            changed[_STEP], changed[_PROGRESS], changed[_PROGRESS_MESSAGE] = step, None, None
            row = tuple(changed)
        pinned.append(row)
    return pinned


def _first_step(row: tuple[Any, ...]) -> str | None:
    """The name of the step a claimed step process begins at (None: its spec is damaged;
    it gets no spare, and its run reports what is wrong)."""
    try:
        name = loads(row[_SPEC])["steps"][row[_STEP_INDEX]]["name"]
    except (ValueError, TypeError, KeyError, IndexError):
        return None
    return name if isinstance(name, str) else None


def _claim_params(claim: Claim) -> tuple[str, str, int]:
    return (claim.process_id, claim.owner, claim.token)
