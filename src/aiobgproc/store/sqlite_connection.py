"""The SQLite store's connection: transactions, group commit, the event loop's thread or the
connection thread, and WAL checkpoints (the store's operations are in ``sqlite``).

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
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import aiosqlite

from .. import _aiosqlite as _aio
from ..errors import StoreError
from .shared import Rollback

BUSY_TIMEOUT_MS: Final = 30_000  # how long a write waits for another connection's lock

_CHECKPOINT_EVERY: Final = 256  # commits in the loop's thread between checkpoints
_CHECKPOINT_WAIT_MS: Final = 20  # a checkpoint gives up (till the next) after this wait
_CHECKPOINT_PASSES: Final = 4  # PASSIVE passes before FULL, while each copies more

T = TypeVar("T")
Conn = sqlite3.Connection


def begin_immediate(db: Conn) -> None:
    # busy_timeout makes SQLite wait for the lock; "locked" can still come back at once in a
    # few cases (e.g. while another connection switches the journal mode): retry those.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.001
    while True:
        try:
            db.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not busy(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def transaction(db: Conn, body: Callable[[Conn], None]) -> None:
    """Run ``body`` in one BEGIN IMMEDIATE transaction (in the connection's thread)."""
    begin_immediate(db)
    try:
        body(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _waiting(db: Conn, checkpoint_pages: int, fn: Callable[..., T], *args: Any) -> T:
    """``fn(db, *args)`` in the connection thread, where it may wait for locks and
    checkpoint the WAL as it commits; both are off again afterwards (see sqlite_file.prepare)."""
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
    (a single statement is its own): one whose compare-and-set fails (Rollback) or that
    raises is undone alone. Returns each write's result, its ``on_rollback`` value, or the
    exception it raised."""
    if not begun:
        begin_immediate(db)
    alone = len(writes) == 1  # the transaction is the write's own: no savepoint needed
    results: list[Any] = []
    try:
        for body, on_rollback, single in writes:
            if alone or single:
                try:
                    results.append(body(db))
                except Rollback:
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
            except Rollback:
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


class SQLiteConnection:
    """The plumbing of SQLiteStore: one aiosqlite connection, the writes waiting for the next
    group commit, and the checkpoints (``open`` is the store's)."""

    def __init__(self, path: Path) -> None:
        self.path = path
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
                if not busy(exc):
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
            if busy(exc):
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
