"""The Manager: start, inspect, wait for, pause, continue and stop background processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Final, Self

from . import _clock, _spec
from ._changes import Changes
from ._event_log import EventLog
from ._list_filter import list_filter
from ._location import open_store
from ._options import OptionsView, check_options
from ._output_reading import OutputReading
from ._process_controls import ProcessControls
from ._queue_controls import QueueControls
from ._restart import restart_process
from ._runner import RunContext
from ._schedule_controls import ScheduleControls
from ._schedule_firer import SCHEDULES, ScheduleFirer
from ._scheduler import RECHECK, Scheduler
from ._start_options import DEFAULT_QUEUE, new_process, placement, valid_id
from ._watcher import Watcher
from ._worker_controls import WorkerControls
from .errors import (
    InvalidSpecError,
    InvalidStateError,
    ProcessNotFoundError,
    StoreError,
    WaitTimeoutError,
)
from .models import LIVE_STATUSES, STOPPED_STATUSES, ProcessInfo, Status
from .store import ProcessRecord, Store

log = logging.getLogger(__name__)
# A library logs, it does not print: without the application's own logging set up, stay silent.
logging.getLogger("aiobgproc").addHandler(logging.NullHandler())

DEFAULT_MAX_OUTPUT_BYTES: Final = 64 * 1024 * 1024


class Manager(
    OutputReading,
    QueueControls,
    ScheduleControls,
    EventLog,
    ProcessControls,
    WorkerControls,
    OptionsView,
):
    """Runs commands and step processes in the background, with state in a store.

    ::

        async with Manager("jobs.db") as manager:
            process_id = await manager.start(Command(["sleep", "1"]))
            info = await manager.wait_for(process_id, timeout=10)

    ``store`` is a SQLite file path, a ``sqlite:///`` URL, or None for the default file
    (``$AIOBGPROC_STORE``, else ``~/.local/share/aiobgproc/aiobgproc.db``). With ``run=False``
    the manager only starts, inspects and controls processes; a running manager or
    ``aiobgproc worker`` on the same store executes them.
    """

    def __init__(
        self,
        store: str | os.PathLike[str] | Store | None = None,
        *,
        concurrency: int | None = None,
        run: bool = True,
        error_log: str | os.PathLike[str] | None = None,
        max_output_bytes: int | None = DEFAULT_MAX_OUTPUT_BYTES,
        grace_period: float = 2.0,
        poll_interval: float = 0.02,
        python: str | None = None,
        lease: float = 10.0,
        max_attempts: int | None = 3,
        max_jobs: int | None = None,
        warm: bool | None = None,
        preload: Sequence[str] = (),
        queues: Iterable[str] | None = None,
        reuse_executors: int = 1,
    ) -> None:
        options = check_options(
            concurrency=concurrency,
            run=run,
            error_log=error_log,
            max_output_bytes=max_output_bytes,
            grace_period=grace_period,
            poll_interval=poll_interval,
            python=python,
            lease=lease,
            max_attempts=max_attempts,
            max_jobs=max_jobs,
            warm=warm,
            preload=preload,
            queues=queues,
            reuse_executors=reuse_executors,
        )
        self._store: Store = open_store(store)
        self._options = options
        self.id = uuid.uuid4().hex
        self._changes = Changes()
        context = RunContext(
            self._store, self.id, options.grace_period, options.max_output_bytes, options.python
        )
        self._scheduler = Scheduler(self.id, self._store, self._changes, options, context)
        self._watcher = Watcher(self._store, self._changes, self._scheduler)
        self._tasks: list[asyncio.Task[None]] = []
        self._run_task: asyncio.Task[None] | None = None
        self._open = False
        self._closing = False

    @property
    def store(self) -> Store:
        return self._store

    # -- lifetime --------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the store and, unless ``run=False``, start taking queued processes."""
        if self._open:
            return
        await self._store.open()
        scheduler = self._scheduler
        try:
            await self._store.register_manager(self._watcher.registration())
            if self.runs_processes:
                await scheduler.recover()  # before taking new work: what dead managers left
                await self._scheduler.start_helpers()
            await self._watcher.opened()
        except BaseException:
            with contextlib.suppress(Exception):
                await self._store.unregister_manager(self.id)
            await self._store.close()
            raise
        self._open = True
        self._closing = False
        scheduler.reset()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._watcher.watch(), name="aiobgproc-watch"),
            loop.create_task(self._watcher.heartbeat(), name="aiobgproc-heartbeat"),
        ]
        if self.runs_processes:
            self._run_task = loop.create_task(scheduler.run_loop(), name="aiobgproc-run")
            self._tasks.append(loop.create_task(scheduler.recover_loop(), name="aiobgproc-recover"))
            self._tasks.append(
                loop.create_task(
                    ScheduleFirer(
                        self._store, self._changes, scheduler.queue_gained
                    ).schedule_loop(),
                    name="aiobgproc-schedules",
                )
            )
        log.debug("manager %s opened %r", self.id, self._store)

    async def close(self, *, finish_timeout: float = 0.0) -> None:
        """Stop taking work, stop what this manager runs, and close the store.

        Running processes get ``finish_timeout`` seconds to finish on their own (default: none).
        Then step processes that are still running go back to the queue at their current
        step (another manager or worker resumes them); a running command cannot resume and
        becomes ``error``. No child process is left behind.
        """
        if not self._open or self._closing:
            return
        self._closing = True
        await self._scheduler.stop(_spec.check_timeout(finish_timeout, "finish_timeout"))
        # The run loop is not cancelled mid-claim (a claimed process would be stranded): it
        # sees the scheduler closing and returns; the other tasks can be cancelled anywhere.
        if self._run_task is not None:
            with contextlib.suppress(Exception):
                # Bounded: a claim stuck on an unreachable store must not hang close().
                await asyncio.wait_for(asyncio.shield(self._run_task), 30.0)
            if not self._run_task.done():
                self._run_task.cancel()
            self._run_task = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            # A background task that failed must not stop the rest of the shutdown, and one
            # that swallowed its cancellation (asyncio.wait_for on 3.11) must not hang it.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(task), 5.0)
        self._tasks = []
        await self._scheduler.stop_runs()
        try:
            await self._scheduler.stop_helpers()
            with contextlib.suppress(StoreError):
                await self._store.unregister_manager(self.id)
        finally:
            self._open = False
            await self._store.close()
            self._changes.notify(None)
            log.debug("manager %s closed", self.id)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _check_open(self) -> None:
        if not self._open:
            raise InvalidStateError(
                "the manager is not open: use 'async with Manager(...)' or 'await manager.open()'"
            )

    # -- starting --------------------------------------------------------------------------

    async def start(
        self,
        work: Any,
        data: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        label: str | None = None,
        meta: dict[str, Any] | None = None,
        key: str | None = None,
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
        delay: float | timedelta | None = None,
        at: datetime | None = None,
        after: Iterable[str] = (),
    ) -> str:
        """Queue a Command or Process and return its id at once.

        ``timeout`` (seconds) overrides the work's own. ``label`` and ``meta`` describe it;
        ``key``: while a process started with the same key is active, nothing is stored and
        its id is returned; ``queue`` and ``priority`` (higher first) order it; ``delay`` or
        ``at``: not run before; ``after``: not before these processes all finished. Raises
        InvalidSpecError (ProcessNotFoundError for an unknown id in ``after``), and stores
        nothing, when a value is not acceptable.
        """
        self._check_open()
        spec, own_timeout = _spec.work_spec(work)
        override = _spec.check_timeout(timeout)
        payload = _spec.check_data(data)
        now = _clock.wall()
        where = placement(
            label=label,
            meta=meta,
            key=key,
            queue=queue,
            priority=priority,
            delay=delay,
            at=at,
            after=after,
            now=now,
        )
        timeout = override if timeout is not None else own_timeout
        process = new_process(spec, payload, timeout, where, now)
        if await self._scheduler.start_directly(process):
            return process.id
        stored = await self._store.insert(process)
        if stored != process.id:
            log.info("key %r is held by process %s", process.key, stored)
            return stored
        log.info(
            "process %s queued (%s)", process.id, process.kind, extra={"process_id": process.id}
        )
        self._queue_gained()
        return process.id

    def _queue_gained(self) -> None:
        self._scheduler.queue_gained()

    def _schedules_changed(self) -> None:
        self._changes.notify(SCHEDULES)

    async def restart(
        self,
        process_id: str,
        *,
        data: dict[str, Any] | None = None,
        from_step: str | None = None,
    ) -> str:
        """Start an ended process's work again, as a new process (its id is returned; its
        ``info.restarted_from`` is ``process_id``): same work, label, meta, queue and
        priority, the original data unless ``data`` is given. ``from_step`` (step processes):
        the steps before it are not run again, their committed outputs are reused."""
        self._check_open()
        process = await restart_process(self._store, process_id, data, from_step)
        await self._store.insert(process)
        log.info("process %s restarts %s", process.id, process_id, extra={"process_id": process.id})
        self._queue_gained()
        return process.id

    # -- inspecting ------------------------------------------------------------------------

    async def _record(self, process_id: str, *, full: bool = True) -> ProcessRecord:
        self._check_open()
        if not valid_id(process_id):
            raise ProcessNotFoundError(process_id)
        record = await self._store.get(process_id, full=full)
        if record is None:
            raise ProcessNotFoundError(process_id)
        return record

    async def info(self, process_id: str) -> ProcessInfo:
        """A snapshot of the process. Raises ProcessNotFoundError for an unknown id."""
        return (await self._record(process_id, full=False)).to_info()

    async def list(
        self,
        *,
        status: Status | str | Iterable[Status | str] | None = None,
        limit: int = 100,
        queue: str | None = None,
        label: str | None = None,
        key: str | None = None,
        meta: dict[str, Any] | None = None,
        before: str | None = None,
    ) -> list[ProcessInfo]:
        """Processes, newest first, that match every filter given: ``status`` (one or
        several), ``queue``, ``label``, ``key``, ``meta`` (each of its keys with an equal
        value) and ``before`` (created before that process: the next page)."""
        self._check_open()
        where = list_filter(
            status=status,
            limit=limit,
            queue=queue,
            label=label,
            key=key,
            meta=meta,
            before=before,
        )
        return [record.to_info() for record in await self._store.list_processes(where)]

    def _wait_step(self, record: ProcessRecord) -> float:
        # A process run here notifies its waiters; another one is noticed by the watcher.
        if record.owner == self.id:
            return RECHECK
        return max(self.poll_interval, min(RECHECK, self.poll_interval * 5))

    async def wait_for(self, process_id: str, timeout: float | None = None) -> ProcessInfo:
        """Wait until the process is interrupted or terminal, and return its info.

        A failed process is returned, not raised. Raises WaitTimeoutError (a TimeoutError)
        when ``timeout`` seconds pass; the process keeps running.
        """
        limit = _spec.check_timeout(timeout)
        deadline = None if limit is None else _clock.monotonic() + limit
        # A process this manager runs, and has not been told to stop, is running (as far
        # as anyone here has seen): the first read can wait for the first change (its run
        # notifies when it ends, after it recorded how; the watcher, when another OS
        # process changes the store). Every wake-up reads, and so does a wait that times
        # out, before it raises.
        run = self._scheduler.runs.get(process_id) if isinstance(process_id, str) else None
        read = limit == 0 or run is None or run.stop.done()
        while True:
            event = self._changes.event(process_id)
            if read:
                record = await self._record(process_id, full=False)
                if record.status in STOPPED_STATUSES:
                    return record.to_info()
                step = self._wait_step(record)
            else:
                self._check_open()
                step = self.poll_interval  # then a read, whatever happened meanwhile
            read = True
            if deadline is not None:
                remaining = deadline - _clock.monotonic()
                if remaining <= 0:
                    raise WaitTimeoutError(process_id, limit or 0.0)
                step = min(step, remaining)
            await self._changes.wait(event, step)

    # -- controlling -----------------------------------------------------------------------

    async def cancel(self, process_id: str) -> ProcessInfo:
        """Cancel a queued, interrupted or running process; a terminal one is left as it is.

        A running process's executor and all its descendants are terminated before this
        returns (SIGTERM, then SIGKILL after the grace period).
        """
        record = await self._record(process_id)
        if record.status.is_terminal:
            return record.to_info()
        result = await self._store.cancel(process_id, _clock.wall())
        if result is None:  # it became terminal meanwhile
            return await self.info(process_id)
        before, cancelled = result
        log.info(
            "process %s cancelled (was %s)", process_id, before, extra={"process_id": process_id}
        )
        self._changes.notify(process_id)
        if before in LIVE_STATUSES:
            await self._scheduler.stop_process(cancelled)
        return await self.info(process_id)

    async def proceed(self, process_id: str, data: dict[str, Any] | None = None) -> str:
        """Continue an interrupted process with ``data`` merged into its paused output."""
        payload = _spec.check_data(data)
        record = await self._record(process_id)
        if record.status is not Status.INTERRUPTED:
            raise InvalidStateError(
                f"process {process_id} is {record.status}, not interrupted: nothing to proceed"
            )
        if not await self._store.proceed(process_id, payload, _clock.wall()):
            current = await self._record(process_id)
            raise InvalidStateError(
                f"process {process_id} is {current.status}, not interrupted: nothing to proceed"
            )
        log.info("process %s proceeded", process_id, extra={"process_id": process_id})
        self._changes.notify(process_id)
        self._queue_gained()
        return process_id

    async def prune(self, older_than: timedelta | float) -> int:
        """Delete terminal processes (and their output) that finished before ``older_than`` ago."""
        self._check_open()
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        # NaN would compare past every time on PostgreSQL (and prune everything).
        age = _spec.check_timeout(seconds, "older_than")
        if age is None:  # infinitely old: nothing finished that long ago
            if seconds is None:
                raise InvalidSpecError("older_than must be a timedelta >= 0, not None")
            return 0
        count = await self._store.prune(_clock.wall() - age)
        log.info("pruned %d processes", count)
        return count
