"""The Store methods that are the same SQL in both stores, written once over the primitives
each store provides: ``_change`` (one statement; the rows it changed), ``_returned`` (the
rows one statement's RETURNING gives), ``_row`` and ``_rows`` (reads), and ``_step_and``
(record a step's output and move its process on).

Each primitive is a plain function returning the store's own awaitable (no coroutine of its
own): a method here costs what the store's hand-written method did, one await deep.
The methods repeat the signatures of the Store protocol they implement (a Protocol is
not a base class here: SharedOperations is half a store). Operations of several
statements (a transaction) stay in each store: SQLite runs them as
one function in a thread or the loop's thread, PostgreSQL as coroutines on a connection.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any, ClassVar

from ..models import Status
from . import sql
from .protocol import Claim, ManagerRecord, NewProcess, ProcessRecord
from .rows import dumps, insert_params, manager_record, record


class Rollback(Exception):
    """Raised inside a write transaction to undo it when a compare-and-set fails."""


def _age(record: ProcessRecord) -> tuple[float, str]:
    return (record.created_at, record.id)


class SharedOperations:
    """Store methods on the primitives below; ``_sql`` renders the neutral SQL for the store's
    database, and ``_CLAIM`` is its claim statement."""

    _sql: sql.Dialect
    _CLAIM: ClassVar[str]

    def _change(self, statement: str, params: tuple[Any, ...]) -> Awaitable[int]:
        """Run one write statement (atomic by itself: no savepoint, no transaction of its own);
        the number of rows it changed."""
        raise NotImplementedError

    def _returned(self, statement: str, params: tuple[Any, ...]) -> Awaitable[list[Any]]:
        """Run one write statement with RETURNING; its rows."""
        raise NotImplementedError

    def _step_and(
        self, claim: Claim, step: tuple[Any, ...], end: str, values: tuple[Any, ...]
    ) -> Awaitable[bool]:
        """Record a step's output (sql.RECORD_STEP with ``step``, then the claim) and, only if
        it was recorded, update the process with ``end`` (one of sql.STEP_ENDS) and its
        ``values``: both or neither. False if the step was recorded before or the claim is
        lost."""
        raise NotImplementedError

    def _row(self, statement: str, params: tuple[Any, ...]) -> Awaitable[Any]:
        """A short read's first row, or None."""
        raise NotImplementedError

    def _rows(
        self, statement: str, params: tuple[Any, ...], *, long: bool = False
    ) -> Awaitable[list[Any]]:
        """A read's rows (``long``: it may take milliseconds)."""
        raise NotImplementedError

    # -- processes ---------------------------------------------------------------------------

    async def insert(
        self, process: NewProcess, *, owner: str | None = None
    ) -> ProcessRecord | None:
        params = insert_params(process, owner)
        if owner is None:
            await self._change(self._sql[sql.INSERT], params)
            return None
        rows = await self._returned(self._sql[sql.INSERT_RETURNING], params)
        return record(rows[0])

    async def get(self, process_id: str, *, full: bool = True) -> ProcessRecord | None:
        row = await self._row(self._sql[sql.GET], (process_id,))
        return None if row is None else record(row, full=full)

    async def claim(self, owner: str, now: float, limit: int) -> list[ProcessRecord]:
        rows = await self._returned(self._sql[self._CLAIM], (owner, now, limit))
        return sorted((record(row) for row in rows), key=_age)

    async def _update_claimed(self, claim: Claim, statement: str, values: tuple[Any, ...]) -> bool:
        """One compare-and-set ``statement`` (sql.update_claimed) on the process ``claim``
        names: ``values`` for its assignments, then the claim."""
        params = (*values, claim.process_id, claim.owner, claim.token)
        return await self._change(self._sql[statement], params) == 1

    async def set_os_pid(
        self,
        claim: Claim,
        os_pid: int | None,
        started: float | None,
        step: tuple[int, str] | None = None,
    ) -> bool:
        if step is None:
            return await self._update_claimed(claim, sql.SET_OS_PID, (os_pid, started))
        return await self._update_claimed(claim, sql.SET_OS_PID_AND_STEP, (os_pid, started, *step))

    async def set_progress(self, claim: Claim, progress: float, message: str | None) -> bool:
        return await self._update_claimed(claim, sql.SET_PROGRESS, (progress, message))

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
        return await self._update_claimed(
            claim, sql.FINISH, (str(status), dumps(output), dumps(error), exit_code, now)
        )

    async def requeue(self, claim: Claim) -> bool:
        return await self._update_claimed(claim, sql.REQUEUE, ())

    async def start_step(self, claim: Claim, index: int, name: str) -> bool:
        return await self._update_claimed(claim, sql.START_STEP, (name, index))

    async def release(self, claim: Claim) -> None:
        """Forget the OS process of a claim that ended otherwise (e.g. cancelled)."""
        await self._change(self._sql[sql.RELEASE], (claim.process_id, claim.owner, claim.token))

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
        step = (claim.process_id, index, name, claim.attempt, text, now)
        if final:
            return await self._step_and(claim, step, sql.LAST_STEP, (index + 1, text, text, now))
        return await self._step_and(claim, step, sql.NEXT_STEP, (index + 1, text))

    async def interrupt(
        self, claim: Claim, index: int, name: str, output: dict[str, Any], now: float
    ) -> bool:
        text = dumps(output)
        assert text is not None
        step = (claim.process_id, index, name, claim.attempt, text, now)
        return await self._step_and(claim, step, sql.INTERRUPT, (index + 1, text, text))

    async def step_outputs(self, process_id: str) -> list[tuple[int, str, int, dict[str, Any]]]:
        rows = await self._rows(self._sql[sql.STEP_OUTPUTS], (process_id,))
        return [(int(row[0]), str(row[1]), int(row[2]), json.loads(row[3])) for row in rows]

    async def running_owned_by(self, owner: str) -> dict[str, int]:
        rows = await self._rows(self._sql[sql.RUNNING_OWNED_BY], (owner,))
        return {str(row[0]): int(row[1]) for row in rows}

    async def running_not_owned_by(self, owner: str) -> list[ProcessRecord]:
        rows = await self._rows(self._sql[sql.RUNNING_NOT_OWNED_BY], (owner,))
        return [record(row) for row in rows]

    # -- output ------------------------------------------------------------------------------

    async def read_output(self, process_id: str, after_seq: int = -1) -> list[tuple[int, bytes]]:
        rows = await self._rows(self._sql[sql.READ_OUTPUT], (process_id, after_seq), long=True)
        return [(int(row[0]), bytes(row[1])) for row in rows]

    async def last_output_seq(self, process_id: str) -> int:
        row = await self._row(self._sql[sql.LAST_OUTPUT_SEQ], (process_id,))
        return -1 if row is None else int(row[0])

    # -- managers ----------------------------------------------------------------------------

    async def set_manager_runs(self, manager_id: str, runs: bool) -> None:
        await self._change(self._sql[sql.SET_MANAGER_RUNS], (int(runs), manager_id))

    async def unregister_manager(self, manager_id: str) -> None:
        await self._change(self._sql[sql.UNREGISTER_MANAGER], (manager_id,))

    async def list_managers(self) -> list[ManagerRecord]:
        rows = await self._rows(self._sql[sql.LIST_MANAGERS], ())
        return [manager_record(row) for row in rows]
