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
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar, final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ._faults import fault
from ._rows import COLUMNS, MANAGER_COLUMNS, ClaimedUpdates, dumps, loads, manager_record, record
from ._rows import insert as insert_statement
from .errors import StoreError
from .models import Status
from .store import Claim, ManagerRecord, NewProcess, ProcessRecord
from .store import schema as _schema

T = TypeVar("T")
SCHEMA_VERSION: Final = _schema.VERSION
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")  # short enough for the NOTIFY channel name
_TABLES = re.compile(r"\b(processes|output_chunks|step_outputs|managers)\b")

# Installed on stores of any version (older managers on the same store keep sending their own
# NOTIFY too: PostgreSQL folds identical notifications of one transaction into one).
_NOTIFY_TRIGGER = """
CREATE OR REPLACE FUNCTION {s}.notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('aiobgproc_' || TG_TABLE_SCHEMA, '');
    ELSE
        PERFORM pg_notify('aiobgproc_' || TG_TABLE_SCHEMA, NEW.status || ' ' || NEW.id);
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS processes_changed ON {s}.processes;
CREATE TRIGGER processes_changed AFTER INSERT OR UPDATE ON {s}.processes
    FOR EACH ROW EXECUTE FUNCTION {s}.notify_change();
CREATE TRIGGER processes_deleted AFTER DELETE ON {s}.processes
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.notify_change();
"""
_CHANGED_MAX: Final = 10_000  # ids remembered between two reads of them; past it, "any"
_NOW: Final = "extract(epoch from clock_timestamp())"
_ACQUIRE_TIMEOUT: Final = 30.0  # a pool connection, or StoreError


async def _reset(conn: Any) -> None:
    """Returning a connection to the pool: we keep no session state (the listener has a
    connection of its own), so skip asyncpg's default reset query, a round trip per use."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class _Rollback(Exception):
    """Raised inside a transaction to undo it when a compare-and-set fails."""


def _numbered(sql: str) -> str:
    """SQLite-style ``?`` placeholders as asyncpg's ``$1, $2, ...``."""
    count = 0

    def next_mark(_: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"${count}"

    return re.sub(r"\?", next_mark, sql)


def split_url(url: str) -> tuple[str, str]:
    """The connection URL without our ``schema`` parameter, and the schema name."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = "aiobgproc"
    kept = []
    for key, value in query:
        if key == "schema":
            schema = value
        else:
            kept.append((key, value))
    if not _NAME.match(schema):
        raise StoreError(f"schema name {schema!r} must be lowercase letters, digits and _")
    return urlunsplit(parts._replace(query=urlencode(kept))), schema


@final
class PostgresStore(ClaimedUpdates):
    """A Store in a PostgreSQL database (a schema of its own), shared by any number of hosts."""

    def __init__(self, url: str) -> None:
        self.url, self.schema = split_url(url)
        self._display = re.sub(r"//[^@/]*@", "//", self.url)
        self._pool: Any = None
        self._listener: Any = None
        self._changes = 0
        self._translated: dict[str, str] = {}
        self._own_backends: set[int] = set()  # server pids of our pool's connections
        self._changed: dict[str, str] | None = {}  # None: unknown, any process may have
        self._channel = f"aiobgproc_{self.schema}"
        self.on_change: Callable[[], None] | None = None
        """Called on every change notification (the manager wakes its watcher with it)."""

    def __repr__(self) -> str:
        return f"PostgresStore({self._display!r}, schema={self.schema!r})"

    def _t(self, sql: str) -> str:
        """Qualify our tables with the schema (in one pass: a schema may be named like a
        table) and number the placeholders. Memoised: the same few statements come back."""
        translated = self._translated.get(sql)
        if translated is None:
            translated = _numbered(_TABLES.sub(lambda match: f"{self.schema}.{match[0]}", sql))
            self._translated[sql] = translated
        return translated

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
            # One creator at a time, across hosts.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.schema)
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.schema}.meta (key TEXT PRIMARY KEY,"
                " value TEXT NOT NULL)"
            )
            version = await conn.fetchval(
                f"SELECT value FROM {self.schema}.meta WHERE key = 'schema_version'"
            )
            if version is None:
                tables = await conn.fetchval(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1"
                    " AND table_name <> 'meta'",
                    self.schema,
                )
                if tables:
                    raise StoreError(
                        f"schema {self.schema!r} holds tables of something else, not an"
                        " aiobgproc store"
                    )
                for statement in _schema.create("postgres", self.schema):
                    await conn.execute(statement)
                await conn.execute(
                    f"INSERT INTO {self.schema}.meta VALUES ('schema_version', $1)",
                    str(SCHEMA_VERSION),
                )
            elif int(version) > SCHEMA_VERSION:
                raise StoreError(
                    f"store schema {self.schema!r} has version {version}, newer than this"
                    f" aiobgproc understands ({SCHEMA_VERSION}); upgrade aiobgproc"
                )
            has_trigger = await conn.fetchval(
                "SELECT count(*) FROM pg_trigger WHERE tgname = 'processes_deleted'"
                " AND tgrelid = $1::regclass",
                f"{self.schema}.processes",
            )
            if not has_trigger:
                await conn.execute(_NOTIFY_TRIGGER.format(s=self.schema))

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
        except _Rollback:
            return on_rollback

    async def _fetch(self, sql: str, *params: Any) -> list[Any]:
        async def read(conn: Any) -> list[Any]:
            return list(await conn.fetch(self._t(sql), *params))

        return await self._run(read, write=False)

    async def _fetchrow(self, sql: str, *params: Any) -> Any:
        rows = await self._fetch(sql, *params)
        return rows[0] if rows else None

    async def clock(self) -> float:
        """The database's clock (epoch seconds): the one every host's lease is judged by."""
        row = await self._fetchrow(f"SELECT {_NOW}")
        return float(row[0])

    # -- processes ---------------------------------------------------------------------------

    async def insert(
        self, process: NewProcess, *, owner: str | None = None
    ) -> ProcessRecord | None:
        sql, params = insert_statement(process, owner)

        async def body(conn: Any) -> Any:
            if owner is not None:
                return await conn.fetchrow(self._t(sql), *params)
            return await conn.execute(self._t(sql), *params)

        row = await self._write(body, None, single=True)
        return record(row) if owner is not None else None

    async def get(self, process_id: str, *, full: bool = True) -> ProcessRecord | None:
        row = await self._fetchrow(f"SELECT {COLUMNS} FROM processes WHERE id = ?", process_id)
        return None if row is None else record(row, full=full)

    async def list_processes(
        self, statuses: Sequence[Status] | None, limit: int
    ) -> list[ProcessRecord]:
        if statuses is None:
            rows = await self._fetch(
                f"SELECT {COLUMNS} FROM processes ORDER BY created_at DESC, id DESC LIMIT ?",
                limit,
            )
        else:
            rows = await self._fetch(
                f"SELECT {COLUMNS} FROM processes WHERE status = ANY(?::text[])"
                " ORDER BY created_at DESC, id DESC LIMIT ?",
                [str(status) for status in statuses],
                limit,
            )
        return [record(row, full=False) for row in rows]

    async def claim(self, owner: str, now: float, limit: int) -> list[ProcessRecord]:
        async def body(conn: Any) -> list[Any]:
            return list(
                await conn.fetch(
                    self._t(
                        "UPDATE processes SET status = 'running', owner = ?,"
                        " claim_token = claim_token + 1, attempts = attempts + 1 - continuing,"
                        " continuing = 0, started_at = coalesce(started_at, ?), os_pid = NULL,"
                        " os_pid_started = NULL WHERE id IN (SELECT id FROM processes"
                        " WHERE status = 'queued' ORDER BY created_at, id LIMIT ?"
                        f" FOR UPDATE SKIP LOCKED) RETURNING {COLUMNS}"
                    ),
                    owner,
                    now,
                    limit,
                )
            )

        rows: list[Any] = await self._write(body, [], single=True)
        return sorted((record(row) for row in rows), key=lambda r: (r.created_at, r.id))

    async def _update_claimed(
        self, claim: Claim, assignments: str, values: tuple[Any, ...]
    ) -> bool:
        async def body(conn: Any) -> bool:
            status = await conn.execute(
                self._t(
                    f"UPDATE processes SET {assignments} WHERE id = ? AND status = 'running'"
                    " AND owner = ? AND claim_token = ?"
                ),
                *values,
                claim.process_id,
                claim.owner,
                claim.token,
            )
            return bool(status == "UPDATE 1")

        return await self._write(body, False, single=True)

    async def release(self, claim: Claim) -> None:
        async def body(conn: Any) -> None:
            await conn.execute(
                self._t(
                    "UPDATE processes SET os_pid = NULL, os_pid_started = NULL,"
                    " owner = CASE WHEN status = 'running' THEN owner END"
                    " WHERE id = ? AND owner = ? AND claim_token = ?"
                ),
                claim.process_id,
                claim.owner,
                claim.token,
            )

        await self._write(body, None, single=True)

    async def _record_step_and(
        self,
        claim: Claim,
        index: int,
        name: str,
        output: str,
        now: float,
        assignments: str,
        values: tuple[Any, ...],
    ) -> bool:
        """Insert the step's output and update the process (``assignments``), both or
        neither, in one statement: the insert locks the process row after checking the claim
        (``FOR UPDATE``), and the update runs only on the row the insert recorded."""
        sql = (
            "WITH recorded AS (INSERT INTO step_outputs (process_id, step_index, step_name,"
            " attempt, output, committed_at) SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1"
            " FROM processes WHERE id = ? AND status = 'running' AND owner = ? AND"
            " claim_token = ? FOR UPDATE) ON CONFLICT DO NOTHING RETURNING process_id)"
            f" UPDATE processes SET {assignments} WHERE id = (SELECT process_id FROM recorded)"
            " AND status = 'running' AND owner = ? AND claim_token = ?"
        )
        params = (
            *(claim.process_id, index, name, claim.attempt, output, now),
            *(claim.process_id, claim.owner, claim.token),
            *values,
            *(claim.owner, claim.token),
        )

        async def body(conn: Any) -> bool:
            return bool(await conn.execute(self._t(sql), *params) == "UPDATE 1")

        return await self._write(body, False, single=True)

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
        text = dumps(output)
        assert text is not None
        if final:
            assignments = (
                "step_index = ?, input = ?, output = ?, status = 'finished', finished_at = ?,"
                " os_pid = NULL, os_pid_started = NULL, progress = NULL, progress_message = NULL"
            )
            values: tuple[Any, ...] = (index + 1, text, text, now)
        else:
            assignments, values = "step_index = ?, input = ?", (index + 1, text)
        return await self._record_step_and(claim, index, name, text, now, assignments, values)

    async def interrupt(
        self, claim: Claim, index: int, name: str, output: dict[str, Any], now: float
    ) -> bool:
        text = dumps(output)
        assert text is not None
        return await self._record_step_and(
            claim,
            index,
            name,
            text,
            now,
            "status = 'interrupted', step_index = ?, input = ?, output = ?, owner = NULL,"
            " os_pid = NULL, os_pid_started = NULL, progress = NULL, progress_message = NULL",
            (index + 1, text, text),
        )

    async def proceed(self, process_id: str, data: dict[str, Any], now: float) -> bool:
        async def body(conn: Any) -> bool:
            row = await conn.fetchrow(
                self._t(
                    "SELECT output, step_index, steps_total FROM processes"
                    " WHERE id = ? AND status = 'interrupted' FOR UPDATE"
                ),
                process_id,
            )
            if row is None:
                return False
            merged = dumps({**(loads(row[0]) or {}), **data})
            if row[1] >= row[2]:
                await conn.execute(
                    self._t(
                        "UPDATE processes SET status = 'finished', output = ?, input = ?,"
                        " finished_at = ? WHERE id = ? AND status = 'interrupted'"
                    ),
                    merged,
                    merged,
                    now,
                    process_id,
                )
            else:
                await conn.execute(
                    self._t(
                        "UPDATE processes SET status = 'queued', input = ?, output = NULL,"
                        " continuing = 1 WHERE id = ? AND status = 'interrupted'"
                    ),
                    merged,
                    process_id,
                )
            fault("in_proceed")  # crash tests: the transaction dies uncommitted
            return True

        return await self._write(body, False)

    async def step_outputs(self, process_id: str) -> list[tuple[int, str, int, dict[str, Any]]]:
        rows = await self._fetch(
            "SELECT step_index, step_name, attempt, output FROM step_outputs"
            " WHERE process_id = ? ORDER BY step_index",
            process_id,
        )
        return [(int(row[0]), str(row[1]), int(row[2]), json.loads(row[3])) for row in rows]

    async def cancel(self, process_id: str, now: float) -> tuple[Status, ProcessRecord] | None:
        async def body(conn: Any) -> tuple[str, Any] | None:
            before = await conn.fetchrow(
                self._t("SELECT status FROM processes WHERE id = ? FOR UPDATE"), process_id
            )
            if before is None or before[0] not in ("queued", "running", "interrupted"):
                return None
            row = await conn.fetchrow(
                self._t(
                    "UPDATE processes SET status = 'cancelled', finished_at = ?,"
                    f" cancel_requested = 1 WHERE id = ? AND status = ? RETURNING {COLUMNS}"
                ),
                now,
                process_id,
                before[0],
            )
            return None if row is None else (str(before[0]), row)

        result = await self._write(body, None)
        return None if result is None else (Status(result[0]), record(result[1]))

    # -- output ------------------------------------------------------------------------------

    async def append_output(
        self, claim: Claim, seq: int, data: bytes, output_size: int, truncated: bool
    ) -> bool:
        async def body(conn: Any) -> bool:
            status = await conn.execute(
                self._t(
                    "UPDATE processes SET output_size = ?, output_truncated = ?"
                    " WHERE id = ? AND owner = ? AND claim_token = ?"
                ),
                output_size,
                int(truncated),
                claim.process_id,
                claim.owner,
                claim.token,
            )
            if status != "UPDATE 1":
                raise _Rollback
            if data:
                await conn.execute(
                    self._t("INSERT INTO output_chunks (process_id, seq, data) VALUES (?, ?, ?)"),
                    claim.process_id,
                    seq,
                    data,
                )
            return True

        return await self._write(body, False)

    async def read_output(self, process_id: str, after_seq: int = -1) -> list[tuple[int, bytes]]:
        rows = await self._fetch(
            "SELECT seq, data FROM output_chunks WHERE process_id = ? AND seq > ? ORDER BY seq",
            process_id,
            after_seq,
        )
        return [(int(row[0]), bytes(row[1])) for row in rows]

    async def last_output_seq(self, process_id: str) -> int:
        row = await self._fetchrow(
            "SELECT coalesce(max(seq), -1) FROM output_chunks WHERE process_id = ?", process_id
        )
        return -1 if row is None else int(row[0])

    # -- housekeeping ------------------------------------------------------------------------

    async def prune(self, finished_before: float) -> int:
        doomed = (
            "SELECT id FROM processes WHERE status IN"
            " ('finished', 'error', 'cancelled', 'timeout') AND finished_at < ?"
        )

        async def body(conn: Any) -> int:
            await conn.execute(
                self._t(f"DELETE FROM output_chunks WHERE process_id IN ({doomed})"),
                finished_before,
            )
            await conn.execute(
                self._t(f"DELETE FROM step_outputs WHERE process_id IN ({doomed})"),
                finished_before,
            )
            status = await conn.execute(
                self._t(f"DELETE FROM processes WHERE id IN ({doomed})"), finished_before
            )
            return int(status.split()[-1])

        return await self._write(body, 0)

    async def running_owned_by(self, owner: str) -> dict[str, int]:
        rows = await self._fetch(
            "SELECT id, claim_token FROM processes WHERE owner = ? AND status = 'running'", owner
        )
        return {str(row[0]): int(row[1]) for row in rows}

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
        async def body(conn: Any) -> None:
            await conn.execute(
                self._t(
                    "INSERT INTO managers (id, hostname, boot_id, os_pid, os_pid_started, runs,"
                    f" lease, started_at, heartbeat_at, heartbeat_boottime) VALUES (?, ?, ?, ?,"
                    f" ?, ?, ?, ?, {_NOW}, ?) ON CONFLICT (id) DO UPDATE SET"
                    " hostname = excluded.hostname, boot_id = excluded.boot_id,"
                    " os_pid = excluded.os_pid, os_pid_started = excluded.os_pid_started,"
                    " runs = excluded.runs, lease = excluded.lease,"
                    " heartbeat_at = excluded.heartbeat_at,"
                    " heartbeat_boottime = excluded.heartbeat_boottime"
                ),
                manager.id,
                manager.hostname,
                manager.boot_id,
                manager.os_pid,
                manager.os_pid_started,
                int(manager.runs),
                manager.lease,
                manager.started_at,
                manager.heartbeat_boottime,
            )

        await self._write(body, None, single=True)

    async def heartbeat(self, manager_id: str, now: float, boottime: float) -> bool:
        # The database's clock, not the caller's: leases are judged on one clock for all hosts.
        async def body(conn: Any) -> bool:
            status = await conn.execute(
                self._t(
                    f"UPDATE managers SET heartbeat_at = {_NOW}, heartbeat_boottime = ?"
                    " WHERE id = ?"
                ),
                boottime,
                manager_id,
            )
            return bool(status == "UPDATE 1")

        return await self._write(body, False, single=True)

    async def set_manager_runs(self, manager_id: str, runs: bool) -> None:
        async def body(conn: Any) -> None:
            await conn.execute(
                self._t("UPDATE managers SET runs = ? WHERE id = ?"), int(runs), manager_id
            )

        await self._write(body, None, single=True)

    async def unregister_manager(self, manager_id: str) -> None:
        async def body(conn: Any) -> None:
            await conn.execute(self._t("DELETE FROM managers WHERE id = ?"), manager_id)

        await self._write(body, None, single=True)

    async def list_managers(self) -> list[ManagerRecord]:
        rows = await self._fetch(f"SELECT {MANAGER_COLUMNS} FROM managers")
        return [manager_record(row) for row in rows]

    async def running_not_owned_by(self, owner: str) -> list[ProcessRecord]:
        rows = await self._fetch(
            f"SELECT {COLUMNS} FROM processes WHERE status = 'running'"
            " AND (owner IS NULL OR owner <> ?)",
            owner,
        )
        return [record(row) for row in rows]

    async def check(self) -> list[str]:
        rows = await self._fetch(
            "SELECT p.step_index, count(s.step_index) FROM processes p LEFT JOIN step_outputs s"
            " ON s.process_id = p.id WHERE p.kind = 'process' GROUP BY p.id, p.step_index"
            " HAVING count(s.step_index) <> p.step_index"
        )
        return [f"step outputs do not match steps done ({row[0]} vs {row[1]})" for row in rows]
