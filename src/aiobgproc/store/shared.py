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
from collections.abc import Awaitable, Sequence
from typing import Any, Final

from ..errors import ProcessNotFoundError
from ..models import Event, Status
from . import codec, sql
from .protocol import (
    Chunk,
    Claim,
    ListFilter,
    ManagerRecord,
    ProcessRecord,
    QueueRecord,
    ScheduleRecord,
)
from .rows import dumps, event, manager_record, record, schedule_record, schedule_row

SHORT_LIST: Final = 1000  # rows a listing may read in SQLite's event loop thread
_LAST_SEQ: Final = 2**31 - 1


class Rollback(Exception):
    """Raised inside a write transaction to undo it when a compare-and-set fails."""


def claim_order(candidates: list[tuple[Any, ...]], limit: int) -> list[str]:
    """The ids to claim of (id, priority, created_at) candidates from several queues: the
    highest priority first, then the oldest."""
    candidates.sort(key=lambda row: (-row[1], row[2], row[0]))
    return [str(row[0]) for row in candidates[:limit]]


def in_claim_order(records: list[ProcessRecord]) -> list[ProcessRecord]:
    return sorted(records, key=lambda item: (-item.priority, item.created_at, item.id))


class SharedOperations:
    """Store methods on the primitives below; ``_sql`` renders the neutral SQL for the store's
    database."""

    _sql: sql.Dialect
    _output_codec: int | None = None
    """What new output chunks are compressed with (store.codec), read from the store's
    ``output_codec`` setting when it opens."""

    @property
    def output_codec(self) -> int | None:
        return self._output_codec

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

    async def get(self, process_id: str, *, full: bool = True) -> ProcessRecord | None:
        row = await self._row(self._sql[sql.GET], (process_id,))
        return None if row is None else record(row, full=full)

    def _member(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        """SQL that tests ``column`` against a list of ``values``, and its parameters."""
        raise NotImplementedError

    async def list_processes(self, where: ListFilter) -> list[ProcessRecord]:
        text, params = sql.list_query(where, self._member)
        if where.before is not None:
            row = await self._row(self._sql[sql.CREATED], (where.before,))
            if row is None:
                raise ProcessNotFoundError(where.before)
            params += [row[0], row[1]]
        params.append(where.limit)
        # A page of one index range is short; a sort (several statuses, filters that no
        # one index serves) or a long page may take milliseconds.
        simple = where.statuses is None or len(where.statuses) <= 1
        long = where.limit > SHORT_LIST or not simple or len(where.meta) > 1
        rows = await self._rows(self._sql[text], tuple(params), long=long)
        return [record(row, full=False) for row in rows]

    async def next_run_at(self) -> float | None:
        row = await self._row(self._sql[sql.NEXT_RUN_AT], ())
        return None if row is None or row[0] is None else float(row[0])

    async def has_claimable(self) -> bool:
        return await self._row(self._sql[sql.HAS_CLAIMABLE], ()) is not None

    async def has_work(self, queues: Sequence[str] | None) -> bool:
        params: list[Any] = []

        def mine(column: str) -> str:
            if queues is None:
                return "1 = 1"
            test, values = self._member(column, queues)
            params.extend(values)
            return test

        text = sql.has_work_query(mine)
        return await self._row(self._sql[text], tuple(params)) is not None

    # -- queues ------------------------------------------------------------------------------

    async def set_queue(
        self, name: str, *, limit: int | bool | None = False, paused: bool | None = None
    ) -> None:
        # Each statement is atomic; a queue row left without a setting means no setting.
        if limit is not False:
            await self._change(self._sql[sql.SET_QUEUE_LIMIT], (name, limit))
        if paused is not None:
            await self._change(self._sql[sql.SET_QUEUE_PAUSED], (name, int(paused)))
        await self._change(self._sql[sql.FORGET_QUEUE], (name,))

    async def list_queues(self) -> list[QueueRecord]:
        settings = await self._rows(self._sql[sql.QUEUE_SETTINGS], ())
        counts = await self._rows(self._sql[sql.QUEUE_COUNTS], (), long=True)
        found: dict[str, list[Any]] = {
            str(name): [limit, bool(paused), 0, 0] for name, limit, paused in settings
        }
        for name, status, count in counts:
            entry = found.setdefault(str(name), [None, False, 0, 0])
            entry[2 if status == Status.QUEUED.value else 3] += int(count)  # running + suspended
        return [
            QueueRecord(name, limit, paused, queued, running)
            for name, (limit, paused, queued, running) in sorted(found.items())
        ]

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

    async def retry(
        self,
        claim: Claim,
        run_at: float,
        ready: bool,
        error: dict[str, Any] | None,
        failures: Sequence[dict[str, Any]],
    ) -> bool:
        values = (run_at, int(ready), dumps(error), dumps(list(failures)))
        return await self._update_claimed(claim, sql.RETRY, values)

    async def start_data(self, process_id: str) -> dict[str, Any] | None:
        row = await self._row(self._sql[sql.START_DATA], (process_id,))
        return None if row is None or row[0] is None else dict(json.loads(row[0]))

    # -- events ------------------------------------------------------------------------------

    async def last_event_seq(self) -> int:
        row = await self._row(self._sql[sql.LAST_EVENT_SEQ], ())
        return 0 if row is None else int(row[0])

    async def event_seq_before(self, at: float) -> int:
        """The newest event committed before ``at`` (events' times increase with their
        sequence numbers: the trigger stamps them in commit order)."""
        row = await self._row(self._sql[sql.EVENT_BEFORE], (at,))
        return 0 if row is None else int(row[0])

    async def read_events(
        self, after: int, process_id: str | None, queue: str | None, limit: int
    ) -> list[Event]:
        statement = sql.events_query(process_id is not None, queue is not None)
        params = (after, *(item for item in (process_id, queue) if item is not None), limit)
        rows = await self._rows(self._sql[statement], params)
        return [event(row) for row in rows]

    # -- schedules ---------------------------------------------------------------------------

    async def set_schedule(self, schedule: ScheduleRecord) -> None:
        await self._change(self._sql[sql.SET_SCHEDULE], schedule_row(schedule))

    async def delete_schedule(self, name: str) -> bool:
        return await self._change(self._sql[sql.DELETE_SCHEDULE], (name,)) == 1

    async def list_schedules(self) -> list[ScheduleRecord]:
        return [schedule_record(row) for row in await self._rows(self._sql[sql.LIST_SCHEDULES], ())]

    async def due_schedules(self, now: float) -> list[ScheduleRecord]:
        rows = await self._rows(self._sql[sql.DUE_SCHEDULES], (now,))
        return [schedule_record(row) for row in rows]

    async def next_schedule_at(self) -> float | None:
        row = await self._row(self._sql[sql.NEXT_SCHEDULE_AT], ())
        return None if row is None or row[0] is None else float(row[0])

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

    async def running_owned_by(self, owner: str) -> dict[str, tuple[int, int]]:
        rows = await self._rows(self._sql[sql.RUNNING_OWNED_BY], (owner,))
        return {str(row[0]): (int(row[1]), int(row[2])) for row in rows}

    async def running_not_owned_by(self, owner: str) -> list[ProcessRecord]:
        rows = await self._rows(self._sql[sql.RUNNING_NOT_OWNED_BY], (owner,))
        return [record(row) for row in rows]

    # -- requests of a process's owner ------------------------------------------------------

    async def add_input(self, process_id: str, data: bytes | None) -> bool:
        params = (process_id, data, process_id, process_id)
        return await self._change(self._sql[sql.ADD_INPUT], params) == 1

    async def input_closed(self, process_id: str) -> bool:
        return await self._row(self._sql[sql.INPUT_CLOSED], (process_id,)) is not None

    async def pending_input(
        self, process_id: str, after_seq: int
    ) -> list[tuple[int, bytes | None]]:
        rows = await self._rows(self._sql[sql.PENDING_INPUT], (process_id, after_seq), long=True)
        return [(int(row[0]), None if row[1] is None else bytes(row[1])) for row in rows]

    async def input_written(self, process_id: str, upto_seq: int) -> None:
        await self._change(self._sql[sql.INPUT_WRITTEN], (process_id, upto_seq))

    async def add_control(
        self, process_id: str, token: int, status: Status, action: str, argument: int | None
    ) -> int | None:
        params = (process_id, token, action, argument, process_id, str(status), token)
        rows = await self._returned(self._sql[sql.ADD_CONTROL], params)
        return int(rows[0][0]) if rows else None

    async def pending_controls(self, claim: Claim) -> list[tuple[int, str, int | None]]:
        rows = await self._rows(self._sql[sql.PENDING_CONTROLS], (claim.process_id, claim.token))
        return [(int(row[0]), str(row[1]), row[2]) for row in rows]

    async def control_done(
        self, claim: Claim, seq: int, result: str | None, change: tuple[Status, Status] | None
    ) -> str | None:
        if change is not None:
            before, after = change
            params = (str(after), claim.process_id, str(before), claim.owner, claim.token)
            if await self._change(self._sql[sql.SET_LIVE_STATUS], params) != 1:
                result = f"process {claim.process_id} is no longer {before}"
        await self._change(self._sql[sql.CONTROL_DONE], (result, seq))
        if change is None:
            await self._update_claimed(claim, sql.TOUCH, ())
        return result

    async def control_result(self, seq: int) -> tuple[bool, str | None] | None:
        row = await self._row(self._sql[sql.CONTROL_RESULT], (seq,))
        return None if row is None else (bool(row[0]), row[1])

    # -- output ------------------------------------------------------------------------------

    async def read_output(
        self,
        process_id: str,
        after_seq: int = -1,
        stream: int | None = None,
        limit: int | None = None,
    ) -> list[Chunk]:
        params: tuple[Any, ...]
        if stream is None:
            statement, params = sql.READ_OUTPUT, (process_id, after_seq)
        else:
            statement, params = sql.READ_STREAM_OUTPUT, (process_id, stream, after_seq)
        if limit is not None:
            statement, params = statement + " LIMIT ?", (*params, limit)
        rows = await self._rows(self._sql[statement], params, long=True)
        return await codec.decode_rows(rows)

    async def read_output_before(
        self, process_id: str, before_seq: int | None, stream: int | None, limit: int
    ) -> list[Chunk]:
        # seq is a 32-bit INTEGER on PostgreSQL: "up to the largest" is written as that.
        last = _LAST_SEQ if before_seq is None else before_seq - 1
        params: tuple[Any, ...]
        if stream is None:
            statement, params = sql.READ_OUTPUT_BACK, (process_id, last, limit)
        else:
            statement, params = sql.READ_STREAM_OUTPUT_BACK, (process_id, stream, last, limit)
        rows = await self._rows(self._sql[statement], params, long=True)
        return await codec.decode_rows(rows)

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
