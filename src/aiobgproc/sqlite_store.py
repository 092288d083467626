"""The SQLite store: one file, WAL, shared safely by any number of OS processes.

Habits that keep "database is locked" away (see docs/design.md):
- ``busy_timeout`` is the first statement on a connection;
- autocommit mode, and every write is one ``BEGIN IMMEDIATE`` transaction, so the write lock
  is taken (waiting politely) before anything is read, never upgraded from a read;
- switching to WAL is retried, since SQLite does not apply the busy handler to it;
- every state change is a compare-and-set on the state it expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final, final

import aiosqlite

from . import _clock
from ._faults import fault
from .errors import StoreError
from .models import Status
from .store import Claim, ManagerRecord, NewProcess, ProcessRecord

APPLICATION_ID: Final = 0x61626770  # "abgp": marks a file as ours
SCHEMA_VERSION: Final = 1
BUSY_TIMEOUT_MS: Final = 200  # per attempt: short, so a cancelled caller is never stuck
LOCK_WAIT_S: Final = 30.0  # how long a write keeps retrying for the lock in all
_SQLITE_HEADER: Final = b"SQLite format 3\x00"

_SCHEMA_V1: Final = """
CREATE TABLE processes (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    spec TEXT NOT NULL,
    input TEXT,
    output TEXT,
    error TEXT,
    step TEXT,
    step_index INTEGER NOT NULL DEFAULT 0,
    steps_total INTEGER NOT NULL DEFAULT 0,
    progress REAL,
    progress_message TEXT,
    exit_code INTEGER,
    os_pid INTEGER,
    os_pid_started REAL,
    owner TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    timeout REAL,
    output_size INTEGER NOT NULL DEFAULT 0,
    output_truncated INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    claim_token INTEGER NOT NULL DEFAULT 0,
    continuing INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX processes_by_status ON processes (status, created_at);
CREATE INDEX processes_by_created ON processes (created_at);
CREATE INDEX processes_by_owner ON processes (owner) WHERE owner IS NOT NULL;
CREATE TABLE output_chunks (
    process_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (process_id, seq)
) WITHOUT ROWID;
CREATE TABLE step_outputs (
    process_id TEXT NOT NULL,
    step_index INTEGER NOT NULL,
    step_name TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    output TEXT NOT NULL,
    committed_at REAL NOT NULL,
    PRIMARY KEY (process_id, step_index)
) WITHOUT ROWID;
CREATE TABLE managers (
    id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    boot_id TEXT NOT NULL,
    os_pid INTEGER NOT NULL,
    os_pid_started REAL,
    runs INTEGER NOT NULL,
    lease REAL NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    heartbeat_boottime REAL NOT NULL
);
"""

# Migrations from version N to N+1, run in one transaction each; index 0 creates version 1.
_MIGRATIONS: Final[tuple[str, ...]] = (_SCHEMA_V1,)

_COLUMNS: Final = (
    "id, kind, status, spec, input, output, error, step, step_index, steps_total, progress, "
    "progress_message, exit_code, os_pid, os_pid_started, owner, attempts, timeout, "
    "output_size, output_truncated, cancel_requested, claim_token, created_at, started_at,"
    " finished_at"
)
_CLAIMED: Final = "id = ? AND status = 'running' AND owner = ? AND claim_token = ?"
_ACTIVE: Final = ("queued", "running", "interrupted")


class _Rollback(Exception):
    """Raised inside a write transaction to undo it when a compare-and-set fails."""


def _claim_params(claim: Claim) -> tuple[str, str, int]:
    return (claim.process_id, claim.owner, claim.token)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), allow_nan=False)


def _record(row: sqlite3.Row | tuple[Any, ...]) -> ProcessRecord:
    return ProcessRecord(
        id=row[0],
        kind=row[1],
        status=Status(row[2]),
        spec=json.loads(row[3]),
        input=_loads(row[4]),
        output=_loads(row[5]),
        error=_loads(row[6]),
        step=row[7],
        step_index=row[8],
        steps_total=row[9],
        progress=row[10],
        progress_message=row[11],
        exit_code=row[12],
        os_pid=row[13],
        os_pid_started=row[14],
        owner=row[15],
        attempts=row[16],
        timeout=row[17],
        output_size=row[18],
        output_truncated=bool(row[19]),
        cancel_requested=bool(row[20]),
        claim_token=row[21],
        created_at=row[22],
        started_at=row[23],
        finished_at=row[24],
    )


def _check_path(path: Path) -> None:
    """Refuse, before SQLite touches it, a path that is not (or cannot become) our store."""
    if path.is_dir():
        raise StoreError(f"store path {str(path)!r} is a directory, not a file")
    if path.exists():
        try:
            with path.open("rb") as handle:
                header = handle.read(len(_SQLITE_HEADER))
        except OSError as exc:
            raise StoreError(f"cannot read store {str(path)!r}: {exc.strerror}") from None
        if header and header != _SQLITE_HEADER:
            raise StoreError(f"{str(path)!r} is not an aiobgproc store (not an SQLite file)")
        return
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the directory of store {str(path)!r}: {exc}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreError(f"cannot create store {str(path)!r}: directory is not writable")


@final
class SQLiteStore:
    """A Store in one SQLite file, created on first use. Safe to share between OS processes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        # One connection serves every coroutine of this process; the lock keeps one
        # coroutine's statements out of another's transaction.
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- opening ---------------------------------------------------------------------------

    async def open(self) -> None:
        if self._db is not None:
            return
        _check_path(self.path)
        try:
            db = await aiosqlite.connect(
                self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {str(self.path)!r}: {exc}") from None
        try:
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await self._prepare(db)
        except BaseException as exc:
            await db.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot open store {str(self.path)!r}: {exc}") from None
            raise
        self._db = db

    async def _prepare(self, db: aiosqlite.Connection) -> None:
        await db.execute("PRAGMA synchronous = NORMAL")
        await db.execute("PRAGMA journal_size_limit = 67108864")
        await self._initialise(db)
        await self._enable_wal(db)

    async def _initialise(self, db: aiosqlite.Connection) -> None:
        """Create or migrate the schema, in one write transaction (another process may race)."""
        await self._begin(db)
        try:
            app_id = await self._pragma(db, "application_id")
            version = await self._pragma(db, "user_version")
            if app_id == 0 and version == 0:
                async with db.execute("SELECT count(*) FROM sqlite_master") as cursor:
                    row = await cursor.fetchone()
                if row is not None and row[0] > 0:
                    raise StoreError(
                        f"{str(self.path)!r} is an SQLite database of something else, "
                        "not an aiobgproc store"
                    )
                await db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            elif app_id != APPLICATION_ID:
                raise StoreError(f"{str(self.path)!r} is not an aiobgproc store")
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"store {str(self.path)!r} has schema version {version}, newer than this "
                    f"aiobgproc understands ({SCHEMA_VERSION}); upgrade aiobgproc"
                )
            for step in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[step].split(";"):
                    if statement.strip():
                        await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {step + 1}")
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise

    async def _enable_wal(self, db: aiosqlite.Connection) -> None:
        # SQLite does not call the busy handler while changing the journal mode: retry.
        for attempt in range(200):
            try:
                async with db.execute("PRAGMA journal_mode = WAL") as cursor:
                    row = await cursor.fetchone()
                if row is not None and str(row[0]).lower() == "wal":
                    return
                raise StoreError(f"store {str(self.path)!r} cannot use WAL mode (got {row})")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                await asyncio.sleep(min(0.002 * (attempt + 1), 0.05))
        raise StoreError(f"store {str(self.path)!r} stayed locked while switching to WAL")

    @staticmethod
    async def _pragma(db: aiosqlite.Connection, name: str) -> int:
        async with db.execute(f"PRAGMA {name}") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row is not None else 0

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            async with self._lock:
                await db.close()

    # -- plumbing ----------------------------------------------------------------------------

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            try:
                yield self._conn()
            except sqlite3.Error as exc:
                raise StoreError(f"store {str(self.path)!r}: {exc}") from exc

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One short write transaction; the write lock is taken first (BEGIN IMMEDIATE).

        Cancellation cannot leave it open: BEGIN and COMMIT run to completion in
        aiosqlite's thread whatever happens to the caller, so they are awaited under a
        shield and an interrupted transaction is always rolled back.
        """
        async with self._lock:
            db = self._conn()
            await self._begin(db)
            try:
                yield db
            except _Rollback:
                await self._settle(db.execute("ROLLBACK"), db, started=False)
                return  # the compare-and-set failed: undone, and reported by the caller
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error, StoreError):
                    await self._settle(db.execute("ROLLBACK"), db, started=False)
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"store {str(self.path)!r}: {exc}") from exc
                raise
            await self._settle(db.execute("COMMIT"), db, started=True)

    async def _begin(self, db: aiosqlite.Connection) -> None:
        """BEGIN IMMEDIATE, retried while another connection holds the write lock. Each try
        waits at most BUSY_TIMEOUT_MS inside SQLite, so cancellation takes effect quickly."""
        deadline = _clock.monotonic() + LOCK_WAIT_S
        delay = 0.001
        while True:
            try:
                await self._settle(db.execute("BEGIN IMMEDIATE"), db, started=False)
                return
            except StoreError as exc:
                busy = isinstance(exc.__cause__, sqlite3.OperationalError) and (
                    "locked" in str(exc) or "busy" in str(exc)
                )
                if not busy or _clock.monotonic() >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _settle(self, statement: Any, db: aiosqlite.Connection, *, started: bool) -> None:
        """Await a transaction-control statement to its end even if we are cancelled
        meanwhile; if it was BEGIN (or COMMIT failed), roll back before re-raising."""
        task = asyncio.ensure_future(statement)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await task
                if not started:
                    await db.execute("ROLLBACK")
            raise
        except sqlite3.Error as exc:
            if started:
                with contextlib.suppress(sqlite3.Error):
                    await db.execute("ROLLBACK")
            raise StoreError(f"store {str(self.path)!r}: {exc}") from exc

    @staticmethod
    async def _fetch_one(
        db: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()
    ) -> sqlite3.Row | None:
        rows = await db.execute_fetchall(sql, params)
        for row in rows:
            return row
        return None

    # -- processes ---------------------------------------------------------------------------

    async def insert(self, process: NewProcess) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT INTO processes (id, kind, status, spec, input, timeout, steps_total,"
                " created_at) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?)",
                (
                    process.id,
                    process.kind,
                    process.spec_json(),
                    _dumps(process.input),
                    process.timeout,
                    process.steps_total,
                    process.created_at,
                ),
            )

    async def get(self, process_id: str) -> ProcessRecord | None:
        async with self._read() as db:
            row = await self._fetch_one(
                db, f"SELECT {_COLUMNS} FROM processes WHERE id = ?", (process_id,)
            )
        return None if row is None else _record(row)

    async def list_processes(
        self, statuses: Sequence[Status] | None, limit: int
    ) -> list[ProcessRecord]:
        if statuses is None:
            sql = f"SELECT {_COLUMNS} FROM processes ORDER BY created_at DESC, id DESC LIMIT ?"
            params: tuple[Any, ...] = (limit,)
        else:
            marks = ", ".join("?" for _ in statuses)
            sql = (
                f"SELECT {_COLUMNS} FROM processes WHERE status IN ({marks})"
                " ORDER BY created_at DESC, id DESC LIMIT ?"
            )
            params = (*(str(status) for status in statuses), limit)
        async with self._read() as db:
            rows = await db.execute_fetchall(sql, params)
        return [_record(row) for row in rows]

    async def claim_next(self, owner: str, now: float) -> ProcessRecord | None:
        async with self._write() as db:
            row = await self._fetch_one(
                db,
                "UPDATE processes SET status = 'running', owner = ?, claim_token = claim_token + 1,"
                " attempts = attempts + 1 - continuing, continuing = 0,"
                " started_at = coalesce(started_at, ?), os_pid = NULL, os_pid_started = NULL"
                " WHERE id = (SELECT id FROM processes WHERE status = 'queued'"
                " ORDER BY created_at, id LIMIT 1) AND status = 'queued'"
                f" RETURNING {_COLUMNS}",
                (owner, now),
            )
        return None if row is None else _record(row)

    async def set_os_pid(self, claim: Claim, os_pid: int | None, started: float | None) -> bool:
        async with self._write() as db:
            cursor = await db.execute(
                f"UPDATE processes SET os_pid = ?, os_pid_started = ? WHERE {_CLAIMED}",
                (os_pid, started, *_claim_params(claim)),
            )
            return cursor.rowcount == 1

    async def set_progress(self, claim: Claim, progress: float, message: str | None) -> bool:
        async with self._write() as db:
            cursor = await db.execute(
                f"UPDATE processes SET progress = ?, progress_message = ? WHERE {_CLAIMED}",
                (progress, message, *_claim_params(claim)),
            )
            return cursor.rowcount == 1

    async def finish(
        self,
        claim: Claim,
        status: Status,
        now: float,
        *,
        output: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        exit_code: int | None = None,
    ) -> bool:
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE processes SET status = ?, output = ?, error = ?, exit_code = ?,"
                " finished_at = ?, os_pid = NULL, os_pid_started = NULL"
                f" WHERE {_CLAIMED}",
                (
                    str(status),
                    _dumps(output),
                    _dumps(error),
                    exit_code,
                    now,
                    *_claim_params(claim),
                ),
            )
            return cursor.rowcount == 1

    async def requeue(self, claim: Claim) -> bool:
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE processes SET status = 'queued', owner = NULL, os_pid = NULL,"
                f" os_pid_started = NULL WHERE {_CLAIMED}",
                _claim_params(claim),
            )
            return cursor.rowcount == 1

    async def release(self, claim: Claim) -> None:
        """Forget the OS process of a claim that ended otherwise (e.g. cancelled)."""
        async with self._write() as db:
            await db.execute(
                "UPDATE processes SET os_pid = NULL, os_pid_started = NULL"
                " WHERE id = ? AND owner = ? AND claim_token = ?",
                _claim_params(claim),
            )

    async def start_step(self, claim: Claim, index: int, name: str) -> bool:
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE processes SET step = ?, step_index = ?, progress = NULL,"
                f" progress_message = NULL WHERE {_CLAIMED}",
                (name, index, *_claim_params(claim)),
            )
            return cursor.rowcount == 1

    async def _record_step(
        self, db: aiosqlite.Connection, claim: Claim, index: int, name: str, output: str, now: float
    ) -> bool:
        # A step's output is recorded once: the primary key refuses a second row.
        cursor = await db.execute(
            "INSERT INTO step_outputs (process_id, step_index, step_name, attempt, output,"
            " committed_at) SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM processes"
            f" WHERE {_CLAIMED}) ON CONFLICT DO NOTHING",
            (claim.process_id, index, name, claim.attempt, output, now, *_claim_params(claim)),
        )
        return cursor.rowcount == 1

    async def commit_step(
        self,
        claim: Claim,
        index: int,
        name: str,
        output: dict[str, Any],
        now: float,
        *,
        final: bool,
    ) -> bool:
        text = _dumps(output)
        assert text is not None
        async with self._write() as db:
            if not await self._record_step(db, claim, index, name, text, now):
                return False
            if final:
                sql = (
                    "UPDATE processes SET step_index = ?, input = ?, output = ?, status ="
                    " 'finished', finished_at = ?, os_pid = NULL, os_pid_started = NULL,"
                    f" progress = NULL, progress_message = NULL WHERE {_CLAIMED}"
                )
                params: tuple[Any, ...] = (index + 1, text, text, now, *_claim_params(claim))
            else:
                sql = f"UPDATE processes SET step_index = ?, input = ? WHERE {_CLAIMED}"
                params = (index + 1, text, *_claim_params(claim))
            cursor = await db.execute(sql, params)
            if cursor.rowcount != 1:
                raise _Rollback
            return True
        return False

    async def interrupt(
        self, claim: Claim, index: int, name: str, output: dict[str, Any], now: float
    ) -> bool:
        text = _dumps(output)
        assert text is not None
        async with self._write() as db:
            if not await self._record_step(db, claim, index, name, text, now):
                return False
            cursor = await db.execute(
                "UPDATE processes SET status = 'interrupted', step_index = ?, input = ?,"
                " output = ?, owner = NULL, os_pid = NULL, os_pid_started = NULL,"
                f" progress = NULL, progress_message = NULL WHERE {_CLAIMED}",
                (index + 1, text, text, *_claim_params(claim)),
            )
            if cursor.rowcount != 1:
                raise _Rollback
            return True
        return False

    async def proceed(self, process_id: str, data: dict[str, Any], now: float) -> bool:
        async with self._write() as db:
            row = await self._fetch_one(
                db,
                "SELECT output, step_index, steps_total FROM processes"
                " WHERE id = ? AND status = 'interrupted'",
                (process_id,),
            )
            if row is None:
                return False
            fault("in_proceed")
            merged = _dumps({**(_loads(row[0]) or {}), **data})
            if row[1] >= row[2]:  # paused after the last step: proceeding finishes it
                await db.execute(
                    "UPDATE processes SET status = 'finished', output = ?, input = ?,"
                    " finished_at = ? WHERE id = ? AND status = 'interrupted'",
                    (merged, merged, now, process_id),
                )
            else:
                await db.execute(
                    "UPDATE processes SET status = 'queued', input = ?, output = NULL,"
                    " continuing = 1 WHERE id = ? AND status = 'interrupted'",
                    (merged, process_id),
                )
            return True

    async def step_outputs(self, process_id: str) -> list[tuple[int, str, int, dict[str, Any]]]:
        async with self._read() as db:
            rows = await db.execute_fetchall(
                "SELECT step_index, step_name, attempt, output FROM step_outputs"
                " WHERE process_id = ? ORDER BY step_index",
                (process_id,),
            )
        return [(int(row[0]), str(row[1]), int(row[2]), json.loads(row[3])) for row in rows]

    async def cancel(self, process_id: str, now: float) -> tuple[Status, ProcessRecord] | None:
        async with self._write() as db:
            before = await self._fetch_one(
                db, "SELECT status FROM processes WHERE id = ?", (process_id,)
            )
            if before is None or before[0] not in _ACTIVE:
                return None
            row = await self._fetch_one(
                db,
                "UPDATE processes SET status = 'cancelled', finished_at = ?,"
                " cancel_requested = 1, error = ? WHERE id = ? AND status = ?"
                f" RETURNING {_COLUMNS}",
                (
                    now,
                    _dumps({"type": "Cancelled", "message": "cancelled", "traceback": None}),
                    process_id,
                    before[0],
                ),
            )
        return None if row is None else (Status(before[0]), _record(row))

    # -- output ------------------------------------------------------------------------------

    async def append_output(
        self, claim: Claim, seq: int, data: bytes, output_size: int, truncated: bool
    ) -> bool:
        # Owner and token, not status: output that arrives after a cancel is still kept, but a
        # manager that lost the process (recovered, taken over) writes nothing more.
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE processes SET output_size = ?, output_truncated = ?"
                " WHERE id = ? AND owner = ? AND claim_token = ?",
                (output_size, int(truncated), *_claim_params(claim)),
            )
            if cursor.rowcount != 1:
                raise _Rollback
            if data:
                await db.execute(
                    "INSERT INTO output_chunks (process_id, seq, data) VALUES (?, ?, ?)",
                    (claim.process_id, seq, data),
                )
            return True
        return False

    async def read_output(self, process_id: str, after_seq: int = -1) -> list[tuple[int, bytes]]:
        async with self._read() as db:
            rows = await db.execute_fetchall(
                "SELECT seq, data FROM output_chunks WHERE process_id = ? AND seq > ? ORDER BY seq",
                (process_id, after_seq),
            )
        return [(int(row[0]), bytes(row[1])) for row in rows]

    async def last_output_seq(self, process_id: str) -> int:
        async with self._read() as db:
            row = await self._fetch_one(
                db,
                "SELECT coalesce(max(seq), -1) FROM output_chunks WHERE process_id = ?",
                (process_id,),
            )
        return -1 if row is None else int(row[0])

    # -- housekeeping ------------------------------------------------------------------------

    async def prune(self, finished_before: float) -> int:
        terminal = ", ".join(
            f"'{status}'" for status in ("finished", "error", "cancelled", "timeout")
        )
        doomed = f"SELECT id FROM processes WHERE status IN ({terminal}) AND finished_at < ?"
        async with self._write() as db:
            await db.execute(
                f"DELETE FROM output_chunks WHERE process_id IN ({doomed})", (finished_before,)
            )
            await db.execute(
                f"DELETE FROM step_outputs WHERE process_id IN ({doomed})", (finished_before,)
            )
            cursor = await db.execute(
                f"DELETE FROM processes WHERE status IN ({terminal}) AND finished_at < ?",
                (finished_before,),
            )
            return cursor.rowcount

    async def running_owned_by(self, owner: str) -> set[str]:
        async with self._read() as db:
            rows = await db.execute_fetchall(
                "SELECT id FROM processes WHERE owner = ? AND status = 'running'", (owner,)
            )
        return {str(row[0]) for row in rows}

    async def change_counter(self) -> int:
        async with self._read() as db:
            row = await self._fetch_one(db, "PRAGMA data_version")
        return 0 if row is None else int(row[0])

    async def register_manager(self, manager: ManagerRecord) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT OR REPLACE INTO managers (id, hostname, boot_id, os_pid, os_pid_started,"
                " runs, lease, started_at, heartbeat_at, heartbeat_boottime)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    manager.id,
                    manager.hostname,
                    manager.boot_id,
                    manager.os_pid,
                    manager.os_pid_started,
                    int(manager.runs),
                    manager.lease,
                    manager.started_at,
                    manager.heartbeat_at,
                    manager.heartbeat_boottime,
                ),
            )

    async def heartbeat(self, manager_id: str, now: float, boottime: float) -> bool:
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE managers SET heartbeat_at = ?, heartbeat_boottime = ? WHERE id = ?",
                (now, boottime, manager_id),
            )
            return cursor.rowcount == 1

    async def unregister_manager(self, manager_id: str) -> None:
        async with self._write() as db:
            await db.execute("DELETE FROM managers WHERE id = ?", (manager_id,))

    async def list_managers(self) -> list[ManagerRecord]:
        async with self._read() as db:
            rows = await db.execute_fetchall(
                "SELECT id, hostname, boot_id, os_pid, os_pid_started, runs, lease, started_at,"
                " heartbeat_at, heartbeat_boottime FROM managers"
            )
        return [
            ManagerRecord(
                id=row[0],
                hostname=row[1],
                boot_id=row[2],
                os_pid=row[3],
                os_pid_started=row[4],
                runs=bool(row[5]),
                lease=row[6],
                started_at=row[7],
                heartbeat_at=row[8],
                heartbeat_boottime=row[9],
            )
            for row in rows
        ]

    async def running_not_owned_by(self, owner: str) -> list[ProcessRecord]:
        async with self._read() as db:
            rows = await db.execute_fetchall(
                f"SELECT {_COLUMNS} FROM processes WHERE status = 'running'"
                " AND (owner IS NULL OR owner != ?)",
                (owner,),
            )
        return [_record(row) for row in rows]

    async def check(self) -> list[str]:
        async with self._read() as db:
            rows = await db.execute_fetchall("PRAGMA integrity_check")
        problems = [str(row[0]) for row in rows]
        return [] if problems == ["ok"] else problems
