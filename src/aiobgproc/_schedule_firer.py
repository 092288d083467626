"""Firing schedules: what every manager that runs processes does for the store's schedules
(clients never fire them)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from . import _clock
from ._changes import Changes
from ._schedule_controls import next_due, scheduled_process
from .errors import StoreError
from .store import Store

log = logging.getLogger(__name__)

SCHEDULES: Final = "schedules"  # the schedule loop's wake-up key
RECHECK: Final = 1.0  # schedules another OS process adds are seen within this


class ScheduleFirer:
    def __init__(self, store: Store, changes: Changes, queue_gained: Callable[[], None]) -> None:
        self.store = store
        self.changes = changes
        self.queue_gained = queue_gained

    async def schedule_loop(self) -> None:
        """Fire the store's due schedules, and sleep until the next one is due (at most
        RECHECK: a schedule another OS process adds is seen within a second)."""
        while True:
            event = self.changes.event(SCHEDULES)
            try:
                wait = await self.fire_schedules()
            except StoreError:
                log.exception("could not fire schedules")
                wait = RECHECK
            await self.changes.wait(event, wait)

    async def fire_schedules(self) -> float:
        """Start one process for each due time of the store's schedules (a compare-and-set
        on the due time: whichever manager moves it on starts the process, in the same
        transaction); how long until the next one is due."""
        now = _clock.wall()
        for schedule in await self.store.due_schedules(now):
            try:
                process = scheduled_process(schedule, now)
                next_at = next_due(schedule, now)
            except Exception:  # stored by another version, or damaged: the others still fire
                log.exception("schedule %r cannot be fired; skipped", schedule.name)
                continue
            fired = await self.store.fire_schedule(schedule, next_at, now, process)
            if fired is not None:
                log.info(
                    "schedule %r started process %s",
                    schedule.name,
                    fired,
                    extra={"process_id": fired},
                )
                self.queue_gained()
        due = await self.store.next_schedule_at()
        if due is None:
            return RECHECK
        return min(RECHECK, max(due - _clock.wall(), 0.0) + 0.001)
