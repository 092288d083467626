"""The PostgreSQL store: the same Store contract as SQLite, for workers on many hosts.

Chosen by a ``postgresql://`` URL; needs ``pip install 'aiobgproc[postgres]'`` (asyncpg).
A ``?schema=NAME`` parameter keeps aiobgproc's tables in a schema of their own (default
``aiobgproc``), created on first use.

- Claims take rows with ``FOR UPDATE SKIP LOCKED``: workers never wait for each other.
- Every change to a process sends ``NOTIFY`` on a channel per schema (by a row trigger, so it
  costs no round trip); a listening connection counts them, so ``change_counter`` costs no
  round trip either and waiters wake as soon as a change commits.
- Leases are measured on the database's clock (``clock()``), the same for every host.
- Every state change is a compare-and-set in one transaction, as in SQLite.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar, final

from .._faults import fault
from ..errors import StoreError
from ..models import Status
from . import codec, sql
from .postgres_claim import claim_query
from .postgres_schema import initialise, split_url
from .protocol import (
    Claim,
    ManagerRecord,
    NewProcess,
    ProcessRecord,
    ScheduleRecord,
    StoredChunk,
)
from .rows import dumps, insert_params, loads, manager_row, pending_dependencies, record
from .shared import Rollback, SharedOperations, in_claim_order

T = TypeVar("T")
_CHANGED_MAX: Final = 10_000  # ids remembered between two reads of them; past it, "any"
_NOW: Final = "extract(epoch from clock_timestamp())"
_ACQUIRE_TIMEOUT: Final = 30.0  # a pool connection, or StoreError


async def _reset(conn: Any) -> None:
    """Returning a connection to the pool: we keep no session state (the listener has a
    connection of its own), so skip asyncpg's default reset query, a round trip per use."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


_KEY_ATTEMPTS: Final = 5
_DEPENDENCY_STATUSES: Final = sql.dependencies_query("= ANY(?::text[]) FOR SHARE")


def _count(status: str) -> int:
    """The rows a command changed, from its status ("UPDATE 1", "INSERT 0 1", ...)."""
    return int(status.rpartition(" ")[2])


def _after_step(assignments: str) -> str:
    """Insert the step's output and update the process (``assignments``), both or neither,
    in one statement: the insert locks the process row after checking the claim (``FOR
    UPDATE``), and the update runs only on the row the insert recorded."""
    return (
        "WITH recorded AS (" + sql.RECORD_STEP + " RETURNING process_id)"
        " UPDATE {processes} SET " + assignments + " WHERE id = (SELECT process_id FROM"
        " recorded) AND status IN ({live}) AND owner = ? AND claim_token = ?"
    )


_AFTER_STEP: Final = {end: _after_step(end) for end in sql.STEP_ENDS}


@final
class PostgresStore(SharedOperations):
    """A Store in a PostgreSQL database (a schema of its own), shared by any number of hosts."""

    def __init__(self, url: str) -> None:
        self.url, self.schema = split_url(url)
        self._display = re.sub(r"//[^@/]*@", "//", self.url)
        self._pool: Any = None
        self._listener: Any = None
        self._changes = 0
        self._sql = sql.postgres(self.schema)
        self._claim_query = claim_query(self.schema)
        self._own_backends: set[int] = set()  # server pids of our pool's connections
        self._changed: dict[str, str] | None = {}  # None: unknown, any process may have
        self._channel = f"aiobgproc_{self.schema}"
        self.on_change: Callable[[], None] | None = None  # on every change notification

    def __repr__(self) -> str:
        return f"PostgresStore({self._display!r}, schema={self.schema!r})"

    # -- opening ---------------------------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        try:
            import asyncpg
        except ImportError:
            raise StoreError(
                "the PostgreSQL store needs asyncpg: pip install 'aiobgproc[postgres]'"
            ) from None
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=4, init=self._adopt, reset=_reset
            )
        except (OSError, asyncpg.PostgresError, ValueError) as exc:
            raise StoreError(f"cannot open store {self._display!r}: {exc}") from None
        try:
            await self._initialise()
            await self._listen()
        except BaseException as exc:
            await self.close()
            if isinstance(exc, asyncpg.PostgresError | OSError):
                raise StoreError(f"cannot open store {self._display!r}: {exc}") from None
            raise

    async def _adopt(self, conn: Any) -> None:
        """A new pool connection: remember its server pid (until it closes), so that the
        notifications of our own writes are told apart from other clients'."""
        backend = conn.get_server_pid()
        self._own_backends.add(backend)
        conn.add_termination_listener(lambda _: self._own_backends.discard(backend))

    def _notified(self, _conn: Any, backend: int, _channel: str, payload: str) -> None:
        # Like SQLite's data_version, the counter moves for other clients' changes only: the
        # manager wakes its own waiters itself, and counting its own writes would wake every
        # waiter of this process on each of them.
        if backend in self._own_backends:
            return
        self._changes += 1
        status, _, process_id = payload.partition(" ")
        if self._changed is not None and process_id and len(self._changed) < _CHANGED_MAX:
            self._changed[process_id] = status
        else:
            self._changed = None
        if self.on_change is not None:
            self.on_change()

    async def _initialise(self) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await initialise(conn, self.schema)
            setting = await conn.fetchval(
                f"SELECT value FROM {self.schema}.meta WHERE key = 'output_codec'"
            )
        self._output_codec = codec.CODECS.get(setting)

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                await listener.close(timeout=5)
            except Exception:
                listener.terminate()
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 5.0)
            except Exception:  # TimeoutError included: a connection still busy
                pool.terminate()

    # -- plumbing ----------------------------------------------------------------------------

    async def _run(
        self, fn: Callable[[Any], Awaitable[T]], *, write: bool, single: bool = False
    ) -> T:
        """Run ``fn`` on a pool connection: a read as is, a write in a transaction, unless it
        is ``single`` statement (atomic on its own: one round trip fewer each way). Changes to
        ``processes`` notify listeners by trigger, inside the writing transaction."""
        if self._pool is None:
            raise StoreError("the store is not open")
        import asyncpg

        try:
            async with self._pool.acquire(timeout=_ACQUIRE_TIMEOUT) as conn:
                if not write or single:
                    return await fn(conn)
                async with conn.transaction():
                    return await fn(conn)
        except asyncpg.PostgresError as exc:
            raise StoreError(f"store {self._display!r}: {exc}") from exc
        except (OSError, TimeoutError) as exc:
            raise StoreError(f"store {self._display!r}: {exc}") from exc

    async def _write(
        self, fn: Callable[[Any], Awaitable[T]], on_rollback: T, *, single: bool = False
    ) -> T:
        try:
            return await self._run(fn, write=True, single=single)
        except Rollback:
            return on_rollback

    async def _fetch(self, statement: str, *params: Any) -> list[Any]:
        async def read(conn: Any) -> list[Any]:
            return list(await conn.fetch(statement, *params))

        return await self._run(read, write=False)

    def events_from_now(self) -> Awaitable[int]:
        # A read started now could reach the server after the caller's next write (another
        # pool connection): the moment is marked by time instead, microseconds on both sides
        # (the events' times are the server's clock: exact on one host; across hosts, off by
        # the clocks' difference).
        return self.event_seq_before(time.time())

    async def clock(self) -> float:
        """The database's clock (epoch seconds): the one every host's lease is judged by."""
        rows = await self._fetch(f"SELECT {_NOW}")
        return float(rows[0][0])

    # -- the primitives of SharedOperations --------------------------------------------------

    def _change(self, statement: str, params: tuple[Any, ...]) -> Awaitable[int]:
        async def body(conn: Any) -> int:
            return _count(await conn.execute(statement, *params))

        return self._write(body, 0, single=True)

    def _returned(self, statement: str, params: tuple[Any, ...]) -> Awaitable[list[Any]]:
        async def body(conn: Any) -> list[Any]:
            return list(await conn.fetch(statement, *params))

        empty: list[Any] = []
        return self._write(body, empty, single=True)

    async def _row(self, statement: str, params: tuple[Any, ...]) -> Any:
        rows = await self._fetch(statement, *params)
        return rows[0] if rows else None

    def _rows(
        self, statement: str, params: tuple[Any, ...], *, long: bool = False
    ) -> Awaitable[list[Any]]:
        return self._fetch(statement, *params)

    # -- processes ---------------------------------------------------------------------------

    def _member(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        if len(values) == 1:  # the planner reads an index in order for "=", not for ANY
            return f"{column} = ?", [values[0]]
        return f"{column} = ANY(?::text[])", [list(values)]

    async def insert(self, process: NewProcess) -> str:
        # A process with no key, dependency, meta or copied steps is one INSERT: atomic on
        # its own, a round trip instead of three (BEGIN, INSERT, COMMIT).
        single = (
            process.key is None
            and not process.after
            and not process.meta_pairs
            and not (process.restarted_from is not None and process.step_index > 0)
        )
        return await self._write(
            lambda conn: self._insert(conn, process), process.id, single=single
        )

    async def fire_schedule(
        self, schedule: ScheduleRecord, next_run_at: float, now: float, process: NewProcess
    ) -> str | None:
        statement = self._sql[sql.FIRE_SCHEDULE]

        async def body(conn: Any) -> str | None:
            fired = (next_run_at, now, process.id, schedule.name, schedule.next_run_at)
            if _count(await conn.execute(statement, *fired)) != 1:
                return None
            stored = await self._insert(conn, process)
            if stored != process.id:  # its key is held: that process is this time's
                await conn.execute(statement, next_run_at, now, stored, schedule.name, next_run_at)
            return stored

        return await self._write(body, None)

    async def _insert(self, conn: Any, process: NewProcess) -> str:
        """Store a new process (see Store.insert) in the transaction ``conn`` is in."""
        q = self._sql
        # Another transaction may store the same key meanwhile: the unique index makes
        # the insert do nothing, and the next read sees its process (or, ended by now,
        # the next attempt stores ours).
        for _ in range(_KEY_ATTEMPTS):
            if process.key is not None:
                held = await conn.fetchval(q[sql.ACTIVE_WITH_KEY], process.key)
                if held is not None:
                    return str(held)
            found: dict[str, tuple[str, int]] = {}
            if process.after:
                # FOR SHARE: a dependency cannot end before this transaction commits, so
                # its trigger finds the edges stored here.
                rows = await conn.fetch(q[_DEPENDENCY_STATUSES], list(process.after))
                found = {str(row[0]): (str(row[1]), int(row[2])) for row in rows}
            deps = pending_dependencies(process.after, found)
            params = insert_params(process, None, len(deps.pending), deps.failed, deps.depth)
            if _count(await conn.execute(q[sql.INSERT_KEYED], *params)) == 1:
                await self._insert_extras(conn, process, deps.pending)
                return process.id
        raise StoreError(f"key {process.key!r}: could not store or find its process")

    async def insert_claimed(self, process: NewProcess, owner: str) -> ProcessRecord | None:
        params = (*insert_params(process, owner), process.queue)

        async def body(conn: Any) -> Any:
            row = await conn.fetchrow(self._sql[sql.INSERT_CLAIMED], *params)
            if row is not None:
                await self._insert_extras(conn, process, ())
            return row

        row = await self._write(body, None, single=not process.meta_pairs)
        return None if row is None else record(row)

    async def _insert_extras(self, conn: Any, process: NewProcess, pending: Sequence[str]) -> None:
        """A new process's rows beside its own: its unfinished dependencies, its meta, and
        (restarted from a step) the steps it starts after."""
        if process.restarted_from is not None and process.step_index > 0:
            copied = (process.id, process.restarted_from, process.step_index)
            await conn.execute(self._sql[sql.COPY_STEPS], *copied)
        if pending:
            await conn.executemany(
                self._sql[sql.INSERT_DEPENDENCY], [(process.id, item) for item in pending]
            )
        if process.meta_pairs:
            created = process.created_at
            await conn.executemany(
                self._sql[sql.INSERT_META],
                [(process.id, name, value, created) for name, value in process.meta_pairs],
            )

    async def claim(
        self,
        owner: str,
        now: float,
        limit: int,
        queues: Sequence[str] | None = None,
        executors: Sequence[tuple[int, float | None]] = (),
    ) -> list[ProcessRecord]:
        # See postgres_claim: the same steps as SQLiteStore.claim, in a function of the
        # schema (one statement, one round trip), rows locked one by one.
        statement = self._claim_query
        wanted = None if queues is None else list(queues)
        pids = [pid for pid, _ in executors]
        started = [at for _, at in executors]

        async def body(conn: Any) -> list[Any]:
            # Now, not when the claim was asked for (it may have waited for a connection):
            # a process a dependency's end made claimable meanwhile must not start before
            # that end (started_at).
            at = max(now, time.time())
            return list(await conn.fetch(statement, owner, at, limit, wanted, pids, started))

        empty: list[Any] = []
        rows = await self._write(body, empty, single=True)
        return in_claim_order([record(row) for row in rows])

    def _step_and(
        self, claim: Claim, step: tuple[Any, ...], end: str, values: tuple[Any, ...]
    ) -> Awaitable[bool]:
        # One statement (see _after_step): atomic by itself. The claim is checked twice:
        # by the insert (process_id, owner, token) and by the update (owner, token).
        owner, token = claim.owner, claim.token
        params = (*step, claim.process_id, owner, token, *values, owner, token)

        async def body(conn: Any) -> bool:
            return _count(await conn.execute(self._sql[_AFTER_STEP[end]], *params)) == 1

        return self._write(body, False, single=True)

    async def proceed(self, process_id: str, data: dict[str, Any], now: float) -> bool:
        async def body(conn: Any) -> bool:
            row = await conn.fetchrow(self._sql[sql.PROCEED_READ], process_id)
            if row is None:
                return False
            merged = dumps({**(loads(row[0]) or {}), **data})
            if row[1] >= row[2]:
                await conn.execute(self._sql[sql.PROCEED_FINISH], merged, merged, now, process_id)
            else:
                await conn.execute(self._sql[sql.PROCEED_QUEUE], merged, process_id)
            fault("in_proceed")  # crash tests: the transaction dies uncommitted
            return True

        return await self._write(body, False)

    async def cancel(self, process_id: str, now: float) -> tuple[Status, ProcessRecord] | None:
        async def body(conn: Any) -> tuple[str, Any] | None:
            before = await conn.fetchrow(self._sql[sql.CANCEL_READ], process_id)
            if before is None or before[0] not in sql.CANCELLABLE:
                return None
            row = await conn.fetchrow(self._sql[sql.CANCEL], now, process_id, before[0])
            return None if row is None else (str(before[0]), row)

        result = await self._write(body, None)
        return None if result is None else (Status(result[0]), record(result[1]))

    # -- output ------------------------------------------------------------------------------

    async def append_output(
        self, claim: Claim, stored: Sequence[StoredChunk], output_size: int, truncated: bool
    ) -> bool:

        async def body(conn: Any) -> bool:
            status = await conn.execute(
                self._sql[sql.OUTPUT_SIZE],
                output_size,
                int(truncated),
                claim.process_id,
                claim.owner,
                claim.token,
            )
            if status != "UPDATE 1":
                raise Rollback
            for seq, stream, how, data in stored:
                await conn.execute(
                    self._sql[sql.OUTPUT_CHUNK], claim.process_id, seq, stream, how, data
                )
            return True

        return await self._write(body, False)

    # -- housekeeping ------------------------------------------------------------------------

    async def prune(self, finished_before: float) -> int:
        *others, processes = (self._sql[statement] for statement in sql.PRUNE)

        async def body(conn: Any) -> int:
            for statement in others:
                await conn.execute(statement, finished_before)
            return _count(await conn.execute(processes, finished_before))

        return await self._write(body, 0)

    async def change_counter(self) -> int:
        listener = self._listener
        if listener is None or listener.is_closed():
            # The listening connection dropped: reconnect, and count a change meanwhile so
            # that waiters re-read the store (what was notified while it was down is lost).
            self._changes += 1
            self._changed = None
            await self._listen()
        return self._changes

    def changed(self) -> dict[str, str] | None:
        changed, self._changed = self._changed, {}
        return changed

    async def _listen(self) -> None:
        import asyncpg

        old, self._listener = self._listener, None
        if old is not None and not old.is_closed():
            old.terminate()
        try:
            listener = await asyncpg.connect(self.url)
            await listener.add_listener(self._channel, self._notified)
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"store {self._display!r}: cannot listen: {exc}") from exc
        self._listener = listener

    async def register_manager(self, manager: ManagerRecord) -> None:
        row = manager_row(manager)
        await self._change(
            self._sql[
                "INSERT INTO {managers} ({manager_columns})"
                f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, {_NOW}, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " hostname = excluded.hostname, boot_id = excluded.boot_id,"
                " os_pid = excluded.os_pid, os_pid_started = excluded.os_pid_started,"
                " runs = excluded.runs, lease = excluded.lease,"
                " heartbeat_at = excluded.heartbeat_at,"
                " heartbeat_boottime = excluded.heartbeat_boottime, queues = excluded.queues"
            ],
            (*row[:8], *row[9:]),  # heartbeat_at: the database's clock, as in heartbeat()
        )

    async def heartbeat(self, manager_id: str, now: float, boottime: float) -> bool:
        # The database's clock, not the caller's: leases are judged on one clock for all hosts.
        statement = f"UPDATE {{managers}} SET heartbeat_at = {_NOW}, heartbeat_boottime = ?"
        return (
            await self._change(self._sql[statement + " WHERE id = ?"], (boottime, manager_id)) == 1
        )

    async def check(self) -> list[str]:
        rows = await self._fetch(
            self._sql[
                "SELECT p.step_index, count(s.step_index) FROM {processes} p LEFT JOIN"
                " {step_outputs} s ON s.process_id = p.id WHERE p.kind = 'process'"
                " GROUP BY p.id, p.step_index HAVING count(s.step_index) <> p.step_index"
            ]
        )
        return [f"step outputs do not match steps done ({row[0]} vs {row[1]})" for row in rows]
