"""Rows as records, and records as rows: the same columns and the same JSON in every store."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple

from .._clock import to_datetime
from ..errors import InvalidSpecError, ProcessNotFoundError, StoreError
from ..models import Event, Status
from .protocol import ManagerRecord, NewProcess, ProcessRecord, ScheduleRecord

COLUMNS: Final = (
    "id, kind, status, spec, input, output, error, step, step_index, steps_total, progress, "
    "progress_message, exit_code, os_pid, os_pid_started, owner, attempts, timeout, "
    "output_size, output_truncated, cancel_requested, claim_token, created_at, started_at,"
    " finished_at, label, meta, process_key, queue, priority, run_at, after_ids, summary,"
    " restarted_from, failures"
)


# The same, qualified: for a listing that joins another table.
P_COLUMNS: Final = ", ".join(f"p.{name.strip()}" for name in COLUMNS.split(","))

MANAGER_COLUMNS: Final = (
    "id, hostname, boot_id, os_pid, os_pid_started, runs, lease, started_at, heartbeat_at,"
    " heartbeat_boottime, queues"
)


# Rows are read field by field, each column named where it is read (here, in record, and
# in manager_row the other way): the mappings look alike by shape, not by content.
def manager_record(row: Sequence[Any]) -> ManagerRecord:
    return ManagerRecord(
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
        queues=None if row[10] is None else tuple(json.loads(row[10])),
    )


def manager_row(manager: ManagerRecord) -> tuple[Any, ...]:
    """A manager as the values of MANAGER_COLUMNS (manager_record's inverse)."""
    return (
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
        None if manager.queues is None else dumps(list(manager.queues)),
    )


def schedule_row(schedule: ScheduleRecord) -> tuple[Any, ...]:
    """A schedule as the values of sql.SCHEDULE_COLUMNS (schedule_record's inverse)."""
    return (
        schedule.name,
        dumps(schedule.spec),
        dumps(schedule.data),
        dumps(schedule.options),
        schedule.cron,
        schedule.every,
        schedule.next_run_at,
        schedule.last_run_at,
        schedule.last_process_id,
        schedule.created_at,
    )


def schedule_record(row: Sequence[Any]) -> ScheduleRecord:
    try:
        return ScheduleRecord(
            name=row[0],
            spec=json.loads(row[1]),
            data=json.loads(row[2]),
            options=json.loads(row[3]),
            cron=row[4],
            every=row[5],
            next_run_at=row[6],
            last_run_at=row[7],
            last_process_id=row[8],
            created_at=row[9],
        )
    except (ValueError, TypeError, IndexError) as exc:
        raise StoreError(
            f"the store is damaged: schedule {row[0]!r} cannot be read ({exc})"
        ) from None


def event(row: Sequence[Any]) -> Event:
    try:
        at = to_datetime(row[4])
        assert at is not None
        return Event(seq=int(row[0]), process_id=row[1], status=Status(row[2]), step=row[3], at=at)
    except (ValueError, TypeError, AssertionError) as exc:
        raise StoreError(f"the store is damaged: event {row[0]!r} cannot be read ({exc})") from None


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), allow_nan=False)


_QUEUED: Final = Status.QUEUED.value
_RUNNING: Final = Status.RUNNING.value
_ERROR: Final = Status.ERROR.value


def insert_params(
    process: NewProcess,
    owner: str | None,
    waiting: int = 0,
    failed: str | None = None,
    depth: int = 0,
) -> tuple[Any, ...]:
    """The values sql.INSERT stores for a new process: queued, or (``owner``) already claimed
    by that manager, as its first claim would leave it. ``waiting``: its dependencies that
    have not finished; ``failed``: the DependencyError message of one that failed (the
    process is stored ended, ``error``)."""
    claimed = owner is not None
    ready = waiting == 0 and (process.run_at is None or process.run_at <= process.created_at)
    status = _RUNNING if claimed else _QUEUED
    error = None
    if failed is not None:
        status = _ERROR
        error = dumps(
            {"type": "DependencyError", "message": failed, "traceback": None, "step": None}
        )
    return (
        process.id,
        process.kind,
        status,
        process.spec_json(),
        dumps(process.input),
        process.timeout,
        process.steps_total,
        process.created_at,
        owner,
        1 if claimed else 0,
        1 if claimed else 0,
        process.created_at if claimed else None,
        process.label,
        dumps(process.meta),
        process.key,
        process.queue,
        process.priority,
        process.run_at,
        dumps(list(process.after)) if process.after else None,
        dumps(process.summary()),
        waiting,
        int(ready),
        error,
        process.created_at if failed is not None else None,
        dumps(process.start_data if process.start_data is not None else process.input),
        process.restarted_from,
        process.step_index,
        depth,
    )


_FAILED: Final = frozenset(
    status.value for status in (Status.ERROR, Status.CANCELLED, Status.TIMEOUT)
)


MAX_CHAIN: Final = 200
"""How long a chain of processes waiting for each other may be: a failure at its head ends
it by triggers firing triggers (SQLite allows 1,000 levels; PostgreSQL a stack's worth)."""


class Dependencies(NamedTuple):
    pending: list[str]
    """Those not finished yet: the new process waits for them."""
    failed: str | None
    """The DependencyError message of the first that failed (the process is stored ended)."""
    depth: int


def pending_dependencies(
    after: Sequence[str], found: Mapping[str, tuple[str, int]]
) -> Dependencies:
    """What the processes ``after`` names mean for a new process (``found``: id -> (status,
    depth), as read). ProcessNotFoundError for one that was not found; InvalidSpecError
    when the chain below it would be longer than MAX_CHAIN."""
    for depends_on in after:
        if depends_on not in found:
            raise ProcessNotFoundError(depends_on)
    for depends_on in after:
        status = found[depends_on][0]
        if status in _FAILED:
            return Dependencies([], f"dependency {depends_on} ended {status}", 0)
    pending = [item for item in after if found[item][0] != Status.FINISHED.value]
    depth = 1 + max((int(found[item][1]) for item in pending), default=-1)
    if depth > MAX_CHAIN:
        raise InvalidSpecError(
            f"a chain of more than {MAX_CHAIN} processes waiting for each other: finish some first"
        )
    return Dependencies(pending, None, depth)


def record(row: Sequence[Any], *, full: bool = True) -> ProcessRecord:
    """A process row as a record; a row that cannot be decoded (a damaged store) raises
    StoreError. ``full=False`` (listings) skips decoding the spec and input, which
    ProcessInfo never shows."""
    try:
        return _record(row, full)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        name = row[0] if row and isinstance(row[0], str) else "?"
        raise StoreError(f"the store is damaged: process {name!r} cannot be read ({exc})") from None


def _record(row: Sequence[Any], full: bool) -> ProcessRecord:
    return ProcessRecord(
        id=row[0],
        kind=row[1],
        status=Status(row[2]),
        spec=json.loads(row[3]) if full else {},
        input=loads(row[4]) if full else None,
        output=loads(row[5]),
        error=loads(row[6]),
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
        label=row[25],
        meta=loads(row[26]),
        key=row[27],
        queue=row[28],
        priority=row[29],
        run_at=row[30],
        after=tuple(loads(row[31]) or ()),
        summary=tuple(loads(row[32]) or ()),
        restarted_from=row[33],
        failures=tuple(loads(row[34]) or ()),
    )
