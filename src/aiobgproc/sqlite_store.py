"""The SQLite store: one file, WAL, shared safely by any number of OS processes.

Habits that keep "database is locked" away (see docs/design.md):
- ``busy_timeout`` is the first statement on a connection;
- autocommit mode, and every write is one ``BEGIN IMMEDIATE`` transaction, so the write lock
  is taken (waiting politely) before anything is read, never upgraded from a read;
- switching to WAL is retried, since SQLite does not apply the busy handler to it;
- every state change is a compare-and-set on the state it expects.

Each operation — a whole transaction included — runs as one function call (not one per
statement), so a transaction always runs to its end, commit or rollback, whatever happens to
the coroutine that asked for it: cancelling the caller can never leave a transaction open.
Short operations run right in the event loop's thread when aiosqlite's connection thread is
idle and the write lock is free (a thread hop costs ~45 us of CPU, a short read ~5 us): the
connection's busy timeout is 0 there, so one that would wait for a lock goes to the
connection thread instead and waits there. Long ones (big output chunks, prune, integrity
checks, reading a whole output log) and WAL checkpoints always run in the thread.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar, final

import aiosqlite

from . import _aiosqlite as _aio
from ._faults import fault
from ._rows import COLUMNS as _COLUMNS
from ._rows import MANAGER_COLUMNS as _MANAGER_COLUMNS
from ._rows import ClaimedUpdates
from ._rows import dumps as _dumps
from ._rows import insert as _insert
from ._rows import loads as _loads
from ._rows import manager_record as _manager_record
from ._rows import record as _record
from .errors import StoreError
from .models import Status
from .store import Claim, ManagerRecord, NewProcess, ProcessRecord
from .store import schema as _schema

APPLICATION_ID: Final = 0x61626770  # "abgp": marks a file as ours
SCHEMA_VERSION: Final = _schema.VERSION
PAGE_SIZE: Final = 4096
CACHE_KIB: Final = 8192
CHECKPOINT_BYTES: Final = 16 << 20
_MIN_DATABASE_BYTES: Final = 512  # the smallest SQLite page: a database is at least one
BUSY_TIMEOUT_MS: Final = 30_000  # how long a write waits for another connection's lock

# Migrations from version N to N+1, run in one transaction each; index 0 creates version 1.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (tuple(_schema.create("sqlite")),)

_SHORT_WRITE_BYTES: Final = 64 * 1024  # more output than this is written in the thread
_SHORT_LIST: Final = 1000  # rows a listing may read in the event loop's thread
_CHECKPOINT_EVERY: Final = 256  # commits in the loop's thread between checkpoints
_CHECKPOINT_WAIT_MS: Final = 20  # a checkpoint gives up (till the next) after this wait
_CHECKPOINT_PASSES: Final = 4  # PASSIVE passes before FULL, while each copies more
_CLAIMED: Final = "id = ? AND status = 'running' AND owner = ? AND claim_token = ?"
_ACTIVE: Final = ("queued", "running", "interrupted")


class _Rollback(Exception):
    """Raised inside a write transaction to undo it when a compare-and-set fails."""


def _claim_params(claim: Claim) -> tuple[str, str, int]:
    return (claim.process_id, claim.owner, claim.token)


def _check_path(path: Path) -> None:
    """_check_location, with what the OS says about an unusable path as StoreError."""
    text = str(path)
    if "\x00" in text:
        raise StoreError(f"store path {text!r} contains a NUL byte")
    try:
        os.fsencode(text)
        _check_location(path)
    except UnicodeError:
        raise StoreError(f"store path {text!r} is not a valid file name") from None
    except OSError as exc:  # e.g. a directory on the way that cannot be searched
        raise StoreError(f"cannot use store path {text!r}: {exc.strerror or exc}") from None


def _check_location(path: Path) -> None:
    """Refuse, before SQLite touches it, a path that cannot be our store; create a new store
    file private to its owner (0600: it holds commands' environments and output).

    An existing file is never opened here: on Linux, closing *any* descriptor of a file
    drops every POSIX lock this process holds on it, including the locks of SQLite
    connections other managers of this process have open, and another process could then
    checkpoint and delete the WAL under them (SQLite's "How To Corrupt An SQLite Database
    File", 2.2). SQLite itself checks the header (see _not_sqlite)."""
    if path.is_dir():
        raise StoreError(f"store path {str(path)!r} is a directory, not a file")
    if path.exists():
        if not os.access(path, os.R_OK):
            raise StoreError(f"cannot read store {str(path)!r}: permission denied")
        if 0 < path.stat().st_size < _MIN_DATABASE_BYTES:
            # SQLite would take a file of a few bytes for an empty one and overwrite it.
            raise StoreError(f"{str(path)!r} is not an aiobgproc store (not an SQLite file)")
        return
    _make_private_dirs(path.parent)
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise StoreError(f"cannot create store {str(path)!r}: directory is not writable")
    try:
        # SQLite creates the file 0644 (less the umask) and gives -wal and -shm the mode of
        # the database file: created first, 0600, they all are private. The file did not
        # exist, so no connection of this process can hold a lock on it yet.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        pass  # another process (or manager) was first: it is theirs to create
    except OSError as exc:
        raise StoreError(f"cannot create store {str(path)!r}: {exc.strerror}") from None


def _make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents, each 0700 (Path.mkdir(parents=True)
    would give the parents the umask's mode)."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        if directory.parent == directory:
            break
        directory = directory.parent
    for new in reversed(missing):
        try:
            new.mkdir(mode=0o700)
        except FileExistsError:
            continue
        except OSError as exc:
            raise StoreError(
                f"cannot create the directory of the store {str(new)!r}: {exc}"
            ) from None


def _not_sqlite(exc: BaseException) -> bool:
    """Whether SQLite refused the file as not an SQLite database at all."""
    return isinstance(exc, sqlite3.DatabaseError) and "file is not a database" in str(exc)


T = TypeVar("T")
Conn = sqlite3.Connection


def _one(db: Conn, sql: str, params: Sequence[Any] = ()) -> Any:
    return db.execute(sql, params).fetchone()


def _begin_immediate(db: Conn) -> None:
    # busy_timeout makes SQLite wait for the lock; "locked" can still come back at once in a
    # few cases (e.g. while another connection switches the journal mode): retry those.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.001
    while True:
        try:
            db.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _transaction(db: Conn, body: Callable[[Conn], T], on_rollback: T) -> T:
    """Run ``body`` in one BEGIN IMMEDIATE transaction (in the connection's thread).
    ``body`` raises _Rollback when its compare-and-set fails: undone, ``on_rollback`` returned."""
    _begin_immediate(db)
    try:
        result = body(db)
    except _Rollback:
        db.execute("ROLLBACK")
        return on_rollback
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return result


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _waiting(db: Conn, checkpoint_pages: int, fn: Callable[..., T], *args: Any) -> T:
    """``fn(db, *args)`` in the connection thread, where it may wait for locks and
    checkpoint the WAL as it commits; both are off again afterwards (see _prepare)."""
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db.execute(f"PRAGMA wal_autocheckpoint = {checkpoint_pages}")
    try:
        return fn(db, *args)
    finally:
        db.execute("PRAGMA wal_autocheckpoint = 0")
        db.execute("PRAGMA busy_timeout = 0")


Write = tuple[Callable[[Conn], Any], Any, bool]
"""A write for _group_commit: its body, its value when it rolls back, whether it is a single
statement (atomic by itself: it needs no savepoint)."""


def _group_commit(db: Conn, writes: list[Write], *, begun: bool = False) -> list[Any]:
    """Several writes in one BEGIN IMMEDIATE transaction, each in a savepoint of its own
    (a single statement is its own): one whose compare-and-set fails (_Rollback) or that
    raises is undone alone. Returns each write's result, its ``on_rollback`` value, or the
    exception it raised."""
    if not begun:
        _begin_immediate(db)
    alone = len(writes) == 1  # the transaction is the write's own: no savepoint needed
    results: list[Any] = []
    try:
        for body, on_rollback, single in writes:
            if alone or single:
                try:
                    results.append(body(db))
                except _Rollback:
                    if alone:
                        db.execute("ROLLBACK")
                        return [on_rollback]
                    results.append(on_rollback)  # a lone statement that changed nothing
                except Exception as exc:
                    if not db.in_transaction:  # an error that ended the transaction
                        raise
                    if alone:
                        db.execute("ROLLBACK")
                        return [exc]
                    results.append(exc)  # SQLite undid the failed statement
                continue
            db.execute("SAVEPOINT write")
            try:
                results.append(body(db))
            except _Rollback:
                db.execute("ROLLBACK TO write")
                results.append(on_rollback)
            except Exception as exc:
                db.execute("ROLLBACK TO write")
                results.append(exc)
            db.execute("RELEASE write")
        db.execute("COMMIT")  # inside: a COMMIT that fails (disk full, I/O) is rolled back
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return results


@final
class SQLiteStore(ClaimedUpdates):
    """A Store in one SQLite file, created on first use. Safe to share between OS processes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        self._pending: list[tuple[Write, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._flush_scheduled = False
        self._pending_long = False  # a pending write may take long: commit it in the thread
        self._threaded = 0  # operations in (or queued for) the connection thread
        self._commits = 0
        self._checkpointer: asyncio.Task[None] | None = None
        self._checkpoint_db: sqlite3.Connection | None = None  # used by _checkpoint_aside
        self._checkpoint_pages = 4096  # set from the page size when opened

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- opening ---------------------------------------------------------------------------

    async def open(self) -> None:
        if self._db is not None:
            return
        _check_path(self.path)
        try:
            # check_same_thread=False: short operations run in the event loop's thread when
            # the connection thread is idle (see _direct); never both at once.
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
            await _aio.in_thread(db, self._prepare, _aio.raw(db))
        except BaseException as exc:
            await db.close()
            if _not_sqlite(exc):
                raise StoreError(
                    f"{str(self.path)!r} is not an aiobgproc store (not an SQLite file)"
                ) from None
            if isinstance(exc, sqlite3.Error | UnicodeDecodeError):  # the latter: damaged
                raise StoreError(f"cannot open store {str(self.path)!r}: {exc}") from None
            raise
        self._db = db

    def _prepare(self, db: Conn) -> None:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA journal_size_limit = 67108864")
        # 4 KiB pages for a new store (an existing one keeps its own). 64 KiB pages store
        # bulk output 1.6-2.2x faster (a 1 MiB chunk spans 16 overflow pages, not 256), but
        # every small commit then writes 64 KiB per page it touches to the WAL: one-step
        # processes ran at 180/s instead of 300/s. Small commits are what a manager does.
        db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        _transaction(db, self._initialise, None)
        self._enable_wal(db)
        # Checkpoint every ~16 MiB of WAL (in fewer, larger strides than the default 4 MiB:
        # bulk output is written once to the WAL and once to the file either way).
        self._checkpoint_pages = max(CHECKPOINT_BYTES // int(_one(db, "PRAGMA page_size")[0]), 64)
        # From here on the connection does not wait for locks by itself: an operation in the
        # event loop's thread must never block it. The connection thread sets the timeout
        # around each operation it runs (_waiting). Checkpoints run there too (_checkpoint),
        # never inside a commit made in the loop's thread.
        db.execute("PRAGMA wal_autocheckpoint = 0")
        db.execute("PRAGMA busy_timeout = 0")

    def _initialise(self, db: Conn) -> None:
        """Create or migrate the schema, in one write transaction (another process may race)."""
        app_id = int(_one(db, "PRAGMA application_id")[0])
        version = int(_one(db, "PRAGMA user_version")[0])
        if app_id == 0 and version == 0:
            if _one(db, "SELECT count(*) FROM sqlite_master")[0] > 0:
                raise StoreError(
                    f"{str(self.path)!r} is an SQLite database of something else, "
                    "not an aiobgproc store"
                )
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        elif app_id != APPLICATION_ID:
            raise StoreError(f"{str(self.path)!r} is not an aiobgproc store")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {str(self.path)!r} has schema version {version}, newer than this "
                f"aiobgproc understands ({SCHEMA_VERSION}); upgrade aiobgproc"
            )
        for step in range(version, SCHEMA_VERSION):
            for statement in _MIGRATIONS[step]:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {step + 1}")

    def _enable_wal(self, db: Conn) -> None:
        # SQLite does not call the busy handler while changing the journal mode: retry.
        for attempt in range(200):
            try:
                row = _one(db, "PRAGMA journal_mode = WAL")
                if row is not None and str(row[0]).lower() == "wal":
                    return
                raise StoreError(f"store {str(self.path)!r} cannot use WAL mode (got {row})")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                time.sleep(min(0.002 * (attempt + 1), 0.05))
        raise StoreError(f"store {str(self.path)!r} stayed locked while switching to WAL")

    async def close(self) -> None:
        db, self._db = self._db, None
        checkpointer, self._checkpointer = self._checkpointer, None
        try:
            if checkpointer is not None and not checkpointer.done():
                await asyncio.wait({checkpointer})  # its thread uses the connection below
            checkpoint_db, self._checkpoint_db = self._checkpoint_db, None
            if checkpoint_db is not None:
                checkpoint_db.close()
        finally:
            if db is not None:
                await db.close()

    # -- plumbing ----------------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` in the connection's thread: one hop, waiting for
        locks as long as BUSY_TIMEOUT_MS. For long operations, and whatever found the
        database busy in the loop's thread."""
        db = self._db
        if db is None:
            raise StoreError("the store is not open")
        # Counted until the thread has run it, not until the caller stops waiting: a caller
        # cancelled meanwhile must not let the loop's thread use the connection alongside.
        self._threaded += 1
        job: asyncio.Future[T] = asyncio.ensure_future(
            _aio.in_thread(db, _waiting, _aio.raw(db), self._checkpoint_pages, fn, *args)
        )
        job.add_done_callback(self._thread_done)
        try:
            return await asyncio.shield(job)
        except sqlite3.Error as exc:
            raise StoreError(f"store {str(self.path)!r}: {exc}") from exc
        except ValueError as exc:  # aiosqlite: "Connection closed"
            raise StoreError(f"store {str(self.path)!r}: {exc}") from exc

    def _thread_done(self, job: asyncio.Future[Any]) -> None:
        self._threaded -= 1
        if not job.cancelled():
            job.exception()  # retrieved: a caller that was cancelled no longer will

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """A short read: in the loop's thread when the connection thread is idle (a thread
        hop costs ~45 us of CPU, the read itself ~5 us); in the thread if it would wait."""
        db = self._db
        if db is not None and not self._threaded:
            try:
                return fn(_aio.raw(db), *args)
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    raise StoreError(f"store {str(self.path)!r}: {exc}") from exc
            except (sqlite3.Error, UnicodeDecodeError) as exc:  # the latter: damaged text
                raise StoreError(f"store {str(self.path)!r}: {exc}") from exc
        return await self._call(fn, *args)

    async def _write(
        self,
        body: Callable[[Conn], T],
        on_rollback: T,
        *,
        long: bool = False,
        single: bool = False,
    ) -> T:
        """``body`` as an atomic write (see _group_commit).

        Writes asked for while a transaction is in flight are grouped into the next one
        (group commit): under load many writes share one BEGIN IMMEDIATE ... COMMIT and one
        thread hop, each still all-or-nothing inside its own savepoint.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(((body, on_rollback, single), future))
        self._pending_long = self._pending_long or long
        if not self._flush_scheduled and (self._flusher is None or self._flusher.done()):
            # A callback, not a task: most batches commit right there, in the loop's thread.
            # Writes asked for before it runs join the batch.
            self._flush_scheduled = True
            loop.call_soon(self._flush_soon)
        result: T = await future
        return result

    def _flush_soon(self) -> None:
        self._flush_scheduled = False
        if not self._pending or (self._flusher is not None and not self._flusher.done()):
            return  # the flusher takes them
        if not self._pending_long:
            batch = self._pending
            try:
                results = self._commit_here([write for write, _ in batch])
            except sqlite3.Error as exc:
                self._pending = []
                self._settle(batch, StoreError(f"store {str(self.path)!r}: {exc}"))
                return
            if results is not None:
                self._pending = []
                self._settle(batch, results)
                return
        # Long, or the database is busy: the connection thread commits (and waits).
        self._flusher = asyncio.get_running_loop().create_task(self._flush_writes())

    def _commit_here(self, writes: list[Write]) -> list[Any] | None:
        """_group_commit in the loop's thread, if the write lock is free right now (None if
        not: the caller goes to the connection thread, which waits for it)."""
        db = self._db
        if db is None or self._threaded:
            return None
        try:
            _aio.raw(db).execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                return None
            raise
        results = _group_commit(_aio.raw(db), writes, begun=True)
        self._commits += 1
        if self._commits % _CHECKPOINT_EVERY == 0 and (
            self._checkpointer is None or self._checkpointer.done()
        ):
            # What wal_autocheckpoint did inside commits.
            self._checkpointer = asyncio.get_running_loop().create_task(self._checkpoint())
        return results

    async def _checkpoint(self) -> None:
        # In a thread of its own, on a connection of its own: a checkpoint copies the WAL's
        # pages into the file and syncs it (~15 ms); on the store's connection every write
        # would wait for all of it.
        try:
            await asyncio.to_thread(self._checkpoint_aside)
        except sqlite3.Error:
            pass  # another connection's checkpoint, or the next one, does it

    def _checkpoint_aside(self) -> None:
        db = self._checkpoint_db
        if db is None:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute(f"PRAGMA busy_timeout = {_CHECKPOINT_WAIT_MS}")
            self._checkpoint_db = db
        # Most pages while writers go on; then the few they added meanwhile, holding new
        # writers back for that moment (they wait in the connection thread), so that the
        # WAL is all copied once and the next write starts it afresh. Without the second
        # pass, writes that never pause would let the WAL grow without end. It is skipped
        # when a reader keeps an older snapshot (the passes cannot copy all the WAL has):
        # FULL would wait for that reader, holding every writer back meanwhile. Writers
        # that went on during a pass leave it short too: a further pass copies what they
        # added (far less), until one copies everything or gets no further.
        copied_before = -1
        for _ in range(_CHECKPOINT_PASSES):
            _, logged, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if copied == logged:
                db.execute("PRAGMA wal_checkpoint(FULL)").fetchall()
                return
            if copied <= copied_before:
                return  # a reader pins the WAL: the next checkpoint tries again
            copied_before = copied

    async def _flush_writes(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            long, self._pending_long = self._pending_long, False
            writes = [write for write, _ in batch]
            try:
                try:
                    here = None if long else self._commit_here(writes)
                except sqlite3.Error as exc:
                    raise StoreError(f"store {str(self.path)!r}: {exc}") from exc
                results = here if here is not None else await self._call(_group_commit, writes)
            except BaseException as exc:
                self._settle(batch, exc if isinstance(exc, Exception) else StoreError(str(exc)))
                if not isinstance(exc, Exception):
                    raise
                continue
            self._settle(batch, results)

    def _settle(
        self, batch: list[tuple[Write, asyncio.Future[Any]]], results: list[Any] | Exception
    ) -> None:
        """Hand each write of a batch its result, or the error that failed them all."""
        for index, (_, future) in enumerate(batch):
            if future.done():
                continue
            result = results if isinstance(results, Exception) else results[index]
            if isinstance(result, sqlite3.Error):
                future.set_exception(StoreError(f"store {str(self.path)!r}: {result}"))
            elif isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    # -- processes ---------------------------------------------------------------------------

    async def insert(
        self, process: NewProcess, *, owner: str | None = None
    ) -> ProcessRecord | None:
        sql, params = _insert(process, owner)

        def body(db: Conn) -> Any:
            return _one(db, sql, params) if owner is not None else db.execute(sql, params)

        row = await self._write(body, None, single=True)
        return _record(row) if owner is not None else None

    async def get(self, process_id: str, *, full: bool = True) -> ProcessRecord | None:
        row = await self._read(
            _one, f"SELECT {_COLUMNS} FROM processes WHERE id = ?", (process_id,)
        )
        return None if row is None else _record(row, full=full)

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
        # One index range, a page of rows: short. Several statuses (a sort) or a long page may
        # take milliseconds: not in the event loop's thread.
        short = limit <= _SHORT_LIST and (statuses is None or len(statuses) <= 1)
        rows = await (self._read if short else self._call)(_all, sql, params)
        return [_record(row, full=False) for row in rows]

    async def claim(self, owner: str, now: float, limit: int) -> list[ProcessRecord]:
        def body(db: Conn) -> list[Any]:
            return db.execute(
                "UPDATE processes SET status = 'running', owner = ?, claim_token = claim_token + 1,"
                " attempts = attempts + 1 - continuing, continuing = 0,"
                " started_at = coalesce(started_at, ?), os_pid = NULL, os_pid_started = NULL"
                " WHERE id IN (SELECT id FROM processes WHERE status = 'queued'"
                # "+": look the claimed ids up by primary key. A plain status test here
                # makes SQLite walk every queued row's index entry (O(queue) per claim).
                " ORDER BY created_at, id LIMIT ?) AND +status = 'queued'"
                f" RETURNING {_COLUMNS}",
                (owner, now, limit),
            ).fetchall()

        rows: list[Any] = await self._write(body, [], single=True)
        return sorted((_record(row) for row in rows), key=lambda r: (r.created_at, r.id))

    async def _update_claimed(
        self, claim: Claim, assignments: str, values: tuple[Any, ...]
    ) -> bool:
        def body(db: Conn) -> bool:
            cursor = db.execute(
                f"UPDATE processes SET {assignments} WHERE {_CLAIMED}",
                (*values, *_claim_params(claim)),
            )
            return cursor.rowcount == 1

        return await self._write(body, False, single=True)

    async def release(self, claim: Claim) -> None:
        """Forget the OS process of a claim that ended otherwise (e.g. cancelled)."""

        def body(db: Conn) -> None:
            db.execute(
                "UPDATE processes SET os_pid = NULL, os_pid_started = NULL,"
                " owner = CASE WHEN status = 'running' THEN owner END"
                " WHERE id = ? AND owner = ? AND claim_token = ?",
                _claim_params(claim),
            )

        await self._write(body, None, single=True)

    @staticmethod
    def _record_step(
        db: Conn, claim: Claim, index: int, name: str, output: str, now: float
    ) -> bool:
        # A step's output is recorded once: the primary key refuses a second row.
        cursor = db.execute(
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

        def body(db: Conn) -> bool:
            if not self._record_step(db, claim, index, name, text, now):
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
            if db.execute(sql, params).rowcount != 1:
                raise _Rollback
            return True

        return await self._write(body, False)

    async def interrupt(
        self, claim: Claim, index: int, name: str, output: dict[str, Any], now: float
    ) -> bool:
        text = _dumps(output)
        assert text is not None

        def body(db: Conn) -> bool:
            if not self._record_step(db, claim, index, name, text, now):
                return False
            cursor = db.execute(
                "UPDATE processes SET status = 'interrupted', step_index = ?, input = ?,"
                " output = ?, owner = NULL, os_pid = NULL, os_pid_started = NULL,"
                f" progress = NULL, progress_message = NULL WHERE {_CLAIMED}",
                (index + 1, text, text, *_claim_params(claim)),
            )
            if cursor.rowcount != 1:
                raise _Rollback
            return True

        return await self._write(body, False)

    async def proceed(self, process_id: str, data: dict[str, Any], now: float) -> bool:
        def body(db: Conn) -> bool:
            row = _one(
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
                db.execute(
                    "UPDATE processes SET status = 'finished', output = ?, input = ?,"
                    " finished_at = ? WHERE id = ? AND status = 'interrupted'",
                    (merged, merged, now, process_id),
                )
            else:
                db.execute(
                    "UPDATE processes SET status = 'queued', input = ?, output = NULL,"
                    " continuing = 1 WHERE id = ? AND status = 'interrupted'",
                    (merged, process_id),
                )
            return True

        return await self._write(body, False)

    async def step_outputs(self, process_id: str) -> list[tuple[int, str, int, dict[str, Any]]]:
        rows = await self._read(
            _all,
            "SELECT step_index, step_name, attempt, output FROM step_outputs"
            " WHERE process_id = ? ORDER BY step_index",
            (process_id,),
        )
        return [(int(row[0]), str(row[1]), int(row[2]), json.loads(row[3])) for row in rows]

    async def cancel(self, process_id: str, now: float) -> tuple[Status, ProcessRecord] | None:
        def body(db: Conn) -> tuple[str, Any] | None:
            before = _one(db, "SELECT status FROM processes WHERE id = ?", (process_id,))
            if before is None or before[0] not in _ACTIVE:
                return None
            row = _one(
                db,
                "UPDATE processes SET status = 'cancelled', finished_at = ?,"
                " cancel_requested = 1 WHERE id = ? AND status = ?"
                f" RETURNING {_COLUMNS}",
                (now, process_id, before[0]),
            )
            return None if row is None else (before[0], row)

        result = await self._write(body, None)
        return None if result is None else (Status(result[0]), _record(result[1]))

    # -- output ------------------------------------------------------------------------------

    async def append_output(
        self, claim: Claim, seq: int, data: bytes, output_size: int, truncated: bool
    ) -> bool:
        # Owner and token, not status: output that arrives after a cancel is still kept, but a
        # manager that lost the process (recovered, taken over) writes nothing more.
        def body(db: Conn) -> bool:
            cursor = db.execute(
                "UPDATE processes SET output_size = ?, output_truncated = ?"
                " WHERE id = ? AND owner = ? AND claim_token = ?",
                (output_size, int(truncated), *_claim_params(claim)),
            )
            if cursor.rowcount != 1:
                raise _Rollback
            if data:
                db.execute(
                    "INSERT INTO output_chunks (process_id, seq, data) VALUES (?, ?, ?)",
                    (claim.process_id, seq, data),
                )
            return True

        return await self._write(body, False, long=len(data) > _SHORT_WRITE_BYTES)

    async def read_output(self, process_id: str, after_seq: int = -1) -> list[tuple[int, bytes]]:
        rows = await self._call(
            _all,
            "SELECT seq, data FROM output_chunks WHERE process_id = ? AND seq > ? ORDER BY seq",
            (process_id, after_seq),
        )
        return [(int(row[0]), bytes(row[1])) for row in rows]

    async def last_output_seq(self, process_id: str) -> int:
        row = await self._read(
            _one,
            "SELECT coalesce(max(seq), -1) FROM output_chunks WHERE process_id = ?",
            (process_id,),
        )
        return -1 if row is None else int(row[0])

    # -- housekeeping ------------------------------------------------------------------------

    async def prune(self, finished_before: float) -> int:
        doomed = (
            "SELECT id FROM processes WHERE status IN"
            " ('finished', 'error', 'cancelled', 'timeout') AND finished_at < ?"
        )

        def body(db: Conn) -> int:
            db.execute(
                f"DELETE FROM output_chunks WHERE process_id IN ({doomed})", (finished_before,)
            )
            db.execute(
                f"DELETE FROM step_outputs WHERE process_id IN ({doomed})", (finished_before,)
            )
            cursor = db.execute(f"DELETE FROM processes WHERE id IN ({doomed})", (finished_before,))
            return int(cursor.rowcount)

        return await self._write(body, 0, long=True)

    async def running_owned_by(self, owner: str) -> dict[str, int]:
        rows = await self._read(
            _all,
            "SELECT id, claim_token FROM processes WHERE owner = ? AND status = 'running'",
            (owner,),
        )
        return {str(row[0]): int(row[1]) for row in rows}

    async def clock(self) -> float:
        return time.time()  # one host: its own clock

    async def change_counter(self) -> int:
        row = await self._read(_one, "PRAGMA data_version")
        return 0 if row is None else int(row[0])

    def changed(self) -> dict[str, str] | None:
        return None  # data_version says that something changed, not what

    async def register_manager(self, manager: ManagerRecord) -> None:
        def body(db: Conn) -> None:
            db.execute(
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

        await self._write(body, None, single=True)

    async def heartbeat(self, manager_id: str, now: float, boottime: float) -> bool:
        def body(db: Conn) -> bool:
            cursor = db.execute(
                "UPDATE managers SET heartbeat_at = ?, heartbeat_boottime = ? WHERE id = ?",
                (now, boottime, manager_id),
            )
            return cursor.rowcount == 1

        return await self._write(body, False, single=True)

    async def set_manager_runs(self, manager_id: str, runs: bool) -> None:
        def body(db: Conn) -> None:
            db.execute("UPDATE managers SET runs = ? WHERE id = ?", (int(runs), manager_id))

        await self._write(body, None, single=True)

    async def unregister_manager(self, manager_id: str) -> None:
        def body(db: Conn) -> None:
            db.execute("DELETE FROM managers WHERE id = ?", (manager_id,))

        await self._write(body, None, single=True)

    async def list_managers(self) -> list[ManagerRecord]:
        rows = await self._read(_all, f"SELECT {_MANAGER_COLUMNS} FROM managers", ())
        return [_manager_record(row) for row in rows]

    async def running_not_owned_by(self, owner: str) -> list[ProcessRecord]:
        rows = await self._read(
            _all,
            f"SELECT {_COLUMNS} FROM processes WHERE status = 'running'"
            " AND (owner IS NULL OR owner != ?)",
            (owner,),
        )
        return [_record(row) for row in rows]

    async def check(self) -> list[str]:
        rows = await self._call(_all, "PRAGMA integrity_check", ())
        problems = [str(row[0]) for row in rows]
        return [] if problems == ["ok"] else problems


def _all(db: Conn, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    return db.execute(sql, params).fetchall()
