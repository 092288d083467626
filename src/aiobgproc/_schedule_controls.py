"""The Manager's schedules: stored, so that every manager that runs processes fires them
(exactly once per due time, whatever their number: see Scheduler.fire_schedules)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from . import _clock, _cron, _spec
from ._seconds import check_seconds
from ._start_options import Placement, check_short_text, new_process, placement, valid_id
from .errors import InvalidSpecError, ScheduleNotFoundError
from .models import ScheduleInfo
from .store import NewProcess, ScheduleRecord, Store

# start()'s keyword options a schedule passes on to each process it starts.
START_OPTIONS: Final = ("label", "meta", "key", "queue", "priority", "timeout")
_MAX_EVERY_S: Final = 10 * 365 * 86400.0
MIN_EVERY_S: Final = 0.01  # a schedule of a due time a millisecond would do nothing else


def check_every(value: object) -> float:
    return check_seconds(value, "every", at_least=MIN_EVERY_S, at_most=_MAX_EVERY_S)


def next_due(record: ScheduleRecord, now: float) -> float:
    """The schedule's next time after ``now``: the next matching minute (cron), or the first
    of its intervals, counted from the time that was due, past ``now`` (a schedule missed
    for hours runs once, then keeps its cadence)."""
    if record.cron is not None:
        moment = datetime.fromtimestamp(now, UTC)
        return _cron.parse(record.cron).next_after(moment).timestamp()
    every = float(record.every or 0.0)
    due = float(record.next_run_at)
    if due > now:
        return due
    return max(due + (math.floor((now - due) / every) + 1) * every, now + MIN_EVERY_S)


def scheduled_process(record: ScheduleRecord, now: float) -> NewProcess:
    """The process a schedule starts at a due time."""
    options = record.options
    where = Placement(
        label=options.get("label"),
        meta=options.get("meta"),
        key=options.get("key"),
        queue=options.get("queue", "default"),
        priority=options.get("priority", 0),
    )
    return new_process(record.spec, dict(record.data), options.get("timeout"), where, now)  # type: ignore[arg-type]


def schedule_info(record: ScheduleRecord) -> ScheduleInfo:
    next_run_at = _clock.to_datetime(record.next_run_at)
    assert next_run_at is not None
    return ScheduleInfo(
        name=record.name,
        cron=record.cron,
        every=record.every,
        next_run_at=next_run_at,
        last_run_at=_clock.to_datetime(record.last_run_at),
        last_process_id=record.last_process_id,
    )


class ScheduleControls:
    """Mixed into Manager: it provides ``_store``, ``_check_open`` and ``_schedules_changed``."""

    _store: Store

    def _check_open(self) -> None:
        raise NotImplementedError

    def _schedules_changed(self) -> None:
        raise NotImplementedError

    async def schedule(
        self,
        name: str,
        work: Any,
        *,
        cron: str | None = None,
        every: float | timedelta | None = None,
        data: dict[str, Any] | None = None,
        **start_options: Any,
    ) -> ScheduleInfo:
        """Create or replace the schedule ``name``: ``work`` started with ``data`` at each
        due time, by exactly one of the managers that run processes on the store. Exactly
        one of ``cron`` (five-field crontab, UTC) or ``every`` (seconds or timedelta, > 0).
        ``start_options``: start()'s label, meta, key, queue, priority, timeout (the label
        defaults to the name; meta gets ``"schedule": name``)."""
        self._check_open()
        checked_name = check_short_text(name, "a schedule name")
        if checked_name is None:
            raise InvalidSpecError("a schedule needs a name")
        unknown = ", ".join(sorted(set(start_options) - set(START_OPTIONS)))
        if unknown:
            allowed = ", ".join(START_OPTIONS)
            raise InvalidSpecError(f"schedule() takes the start options {allowed}, not {unknown}")
        if (cron is None) == (every is None):
            raise InvalidSpecError("give a schedule either cron or every (exactly one)")
        spec, own_timeout = _spec.work_spec(work)
        payload = _spec.check_data(data)
        timeout = _spec.check_timeout(start_options.get("timeout"))
        meta = start_options.get("meta")
        if meta is not None and not isinstance(meta, dict):
            raise InvalidSpecError(f"meta must be a dict (a JSON object), not {meta!r}")
        where = placement(
            label=start_options.get("label", checked_name),
            meta={**(meta or {}), "schedule": checked_name},
            key=start_options.get("key"),
            queue=start_options.get("queue", "default"),
            priority=start_options.get("priority", 0),
            delay=None,
            at=None,
            after=(),
            now=0.0,
        )
        now = _clock.wall()
        checked_cron = None if cron is None else _cron.parse(cron).expression
        checked_every = None if every is None else check_every(every)
        record = ScheduleRecord(
            name=checked_name,
            spec=dict(spec),
            data=payload,
            options={
                "label": where.label,
                "meta": where.meta,
                "key": where.key,
                "queue": where.queue,
                "priority": where.priority,
                "timeout": timeout if "timeout" in start_options else own_timeout,
            },
            cron=checked_cron,
            every=checked_every,
            next_run_at=now + checked_every if checked_every is not None else 0.0,
            last_run_at=None,
            last_process_id=None,
            created_at=now,
        )
        if checked_cron is not None:
            record = record.replace(next_run_at=next_due(record, now))
        await self._store.set_schedule(record)
        self._schedules_changed()
        return schedule_info(record)

    async def unschedule(self, name: str) -> None:
        """Delete the schedule ``name`` (ScheduleNotFoundError if there is none). Processes it
        started are left alone."""
        self._check_open()
        if not valid_id(name) or not await self._store.delete_schedule(name):
            raise ScheduleNotFoundError(name)
        self._schedules_changed()

    async def schedules(self) -> list[ScheduleInfo]:
        """Every schedule on the store, by name."""
        self._check_open()
        return [schedule_info(record) for record in await self._store.list_schedules()]
