"""Turning stored rows into ProcessRecords: shared by every store (same columns, same JSON)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from .models import Status
from .store import ProcessRecord

COLUMNS: Final = (
    "id, kind, status, spec, input, output, error, step, step_index, steps_total, progress, "
    "progress_message, exit_code, os_pid, os_pid_started, owner, attempts, timeout, "
    "output_size, output_truncated, cancel_requested, claim_token, created_at, started_at,"
    " finished_at"
)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), allow_nan=False)


def record(row: Sequence[Any], *, full: bool = True) -> ProcessRecord:
    # ``full=False`` (listings) skips decoding the spec and input, which ProcessInfo never shows.
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
