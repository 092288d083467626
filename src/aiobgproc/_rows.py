"""What every store shares: the same columns, the same JSON, and the same compare-and-set
updates of a claimed process (each store says how to run one)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from .errors import StoreError
from .models import Status
from .store import Claim, ManagerRecord, NewProcess, ProcessRecord

COLUMNS: Final = (
    "id, kind, status, spec, input, output, error, step, step_index, steps_total, progress, "
    "progress_message, exit_code, os_pid, os_pid_started, owner, attempts, timeout, "
    "output_size, output_truncated, cancel_requested, claim_token, created_at, started_at,"
    " finished_at"
)


MANAGER_COLUMNS: Final = (
    "id, hostname, boot_id, os_pid, os_pid_started, runs, lease, started_at, heartbeat_at,"
    " heartbeat_boottime"
)


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
    )


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), allow_nan=False)


_INSERT: Final = (
    "INSERT INTO processes (id, kind, status, spec, input, timeout, steps_total, created_at,"
    " owner, claim_token, attempts, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def insert(process: NewProcess, owner: str | None) -> tuple[str, tuple[Any, ...]]:
    """The statement that stores a new process: queued, or (``owner``) already claimed by
    that manager, as its first claim would leave it; then it returns the row."""
    claimed = owner is not None
    sql = f"{_INSERT} RETURNING {COLUMNS}" if claimed else _INSERT
    return sql, (
        process.id,
        process.kind,
        "running" if claimed else "queued",
        process.spec_json(),
        dumps(process.input),
        process.timeout,
        process.steps_total,
        process.created_at,
        owner,
        1 if claimed else 0,
        1 if claimed else 0,
        process.created_at if claimed else None,
    )


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
    )


class ClaimedUpdates:
    """The updates a manager makes to a process it runs, as a store's ``_update_claimed``
    (one compare-and-set on id, status ``running``, owner and claim token) runs them."""

    async def _update_claimed(
        self, claim: Claim, assignments: str, values: tuple[Any, ...]
    ) -> bool:
        raise NotImplementedError

    async def set_os_pid(
        self,
        claim: Claim,
        os_pid: int | None,
        started: float | None,
        step: tuple[int, str] | None = None,
    ) -> bool:
        if step is None:
            return await self._update_claimed(
                claim, "os_pid = ?, os_pid_started = ?", (os_pid, started)
            )
        return await self._update_claimed(
            claim,
            "os_pid = ?, os_pid_started = ?, step_index = ?, step = ?, progress = NULL,"
            " progress_message = NULL",
            (os_pid, started, *step),
        )

    async def set_progress(self, claim: Claim, progress: float, message: str | None) -> bool:
        return await self._update_claimed(
            claim, "progress = ?, progress_message = ?", (progress, message)
        )

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
            claim,
            "status = ?, output = ?, error = ?, exit_code = ?, finished_at = ?,"
            " os_pid = NULL, os_pid_started = NULL",
            (str(status), dumps(output), dumps(error), exit_code, now),
        )

    async def requeue(self, claim: Claim) -> bool:
        return await self._update_claimed(
            claim, "status = 'queued', owner = NULL, os_pid = NULL, os_pid_started = NULL", ()
        )

    async def start_step(self, claim: Claim, index: int, name: str) -> bool:
        return await self._update_claimed(
            claim,
            "step = ?, step_index = ?, progress = NULL, progress_message = NULL",
            (name, index),
        )
