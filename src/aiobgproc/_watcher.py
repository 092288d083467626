"""What every manager does in the background, running processes or not: notice what other
OS processes change in the store (and wake whoever waits on it), and keep its lease."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from . import _clock
from ._changes import Changes
from ._os import host as _host
from ._scheduler import IDLE, Scheduler
from .errors import StoreError
from .models import Status
from .store import ManagerRecord, Store

log = logging.getLogger(__name__)


class Watcher:
    def __init__(
        self,
        store: Store,
        changes: Changes,
        scheduler: Scheduler,
    ) -> None:
        self.store = store
        self.changes = changes
        self.scheduler = scheduler
        self.store_changed = asyncio.Event()
        """Set by a store that pushes change notifications (PostgreSQL)."""
        self.counter_at_open: int | None = None

    @property
    def _manager_id(self) -> str:
        return self.scheduler.manager_id

    def registration(self) -> ManagerRecord:
        """This manager's row in the store, as (re-)registered."""
        identity = _host.Identity.here(self._manager_id)
        now = _clock.wall()
        limits = self.scheduler.limits
        return ManagerRecord(
            id=self._manager_id,
            hostname=identity.hostname,
            boot_id=identity.boot_id,
            os_pid=identity.os_pid,
            os_pid_started=identity.os_pid_started,
            runs=limits.runs_processes,
            lease=limits.lease,
            started_at=now,
            heartbeat_at=now,
            heartbeat_boottime=_host.boottime(),
            queues=limits.queues,
        )

    async def opened(self) -> None:
        self.counter_at_open = await self.store.change_counter()
        self.store.on_change = self.store_changed.set

    async def watch(self) -> None:
        """Notice what other OS processes change in the store: new work, cancels, finishes.

        The last counter seen is kept while nobody waits: a change that lands between a
        waiter's read and the next poll then still differs from it and wakes the waiter (at
        worst the wake-up is spurious; it is never missed)."""
        limits = self.scheduler.limits
        last: int | None = self.counter_at_open
        while True:
            if not limits.runs_processes and self.changes.waiting == 0:
                # Nobody to wake: idle until someone waits (then poll at once) or a poll
                # interval passes (the counter is kept current meanwhile).
                self.changes.waiter_arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changes.waiter_arrived.wait(), limits.poll_interval)
                if self.changes.waiting == 0:
                    continue
            try:
                counter = await self.store.change_counter()
            except StoreError:
                log.exception("manager %s could not poll the store", self._manager_id)
                counter = None
            if counter is not None and counter != last:
                if last is not None:
                    await self._others_changed(self.store.changed())
                last = counter
            # A store that pushes change notifications (PostgreSQL) wakes us at once;
            # otherwise this is the poll interval.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.store_changed.wait(), limits.poll_interval)
            self.store_changed.clear()

    async def _others_changed(self, changed: dict[str, str] | None) -> None:
        """Wake whoever waits on what other OS processes changed: everyone when the store
        cannot say what (SQLite), else the waiters of those processes, the run loop if one
        was queued, and runs that may have been cancelled or taken over."""
        scheduler = self.scheduler
        if changed is None:
            scheduler.queue_gained()
            self.changes.notify(None)
            await scheduler.check_runs()
            return
        for process_id in changed:
            self.changes.notify(process_id)
        if Status.QUEUED.value in changed.values():
            scheduler.queue_gained()
        self.changes.notify(IDLE)
        if not scheduler.runs.keys().isdisjoint(changed):
            await scheduler.check_runs()

    async def heartbeat(self) -> None:
        """Renew this manager's lease; re-register if others presumed it dead."""
        while True:
            await asyncio.sleep(self.scheduler.limits.lease / 4)
            try:
                if not await self.store.heartbeat(
                    self._manager_id, _clock.wall(), _host.boottime()
                ):
                    log.warning("manager %s was presumed dead; registering again", self._manager_id)
                    await self.store.register_manager(self.registration())
                    await self.scheduler.check_runs()
            except StoreError:
                log.exception("manager %s could not renew its lease", self._manager_id)
