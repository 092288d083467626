"""The Manager: start, inspect, wait for, pause, continue and stop background processes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Any, Final, Self

from . import _clock, _spec, _tags
from ._changes import Changes
from ._errorlog import append_error_block
from ._faults import fault
from ._location import open_store
from ._os import host as _host
from ._os import tree as _tree
from ._os import zygote as _warm
from ._os.guard import Guard
from ._recovery import recover
from ._runner import CommandRunner, RunContext, StepsRunner, StopReason
from .errors import (
    ErrorType,
    InvalidSpecError,
    InvalidStateError,
    ProcessNotFoundError,
    StoreError,
    WaitTimeoutError,
)
from .models import STOPPED_STATUSES, ProcessInfo, Status
from .store import Claim, ManagerRecord, NewProcess, ProcessRecord, Store

log = logging.getLogger(__name__)
# A library logs, it does not print: without the application's own logging set up, stay silent.
logging.getLogger("aiobgproc").addHandler(logging.NullHandler())

DEFAULT_MAX_OUTPUT_BYTES: Final = 64 * 1024 * 1024
_QUEUE: Final = "queue"  # the run loop's wake-up key
_IDLE: Final = "idle"  # wait_idle's wake-up key
_RECHECK: Final = 1.0  # a waiter re-reads the store at least this often, notified or not


def _new_id() -> str:
    # Time-ordered (milliseconds first) then random: sorts by creation, never collides.
    millis = int(_clock.wall() * 1000)
    return f"{millis:012x}{uuid.uuid4().hex[:20]}"


@dataclass(eq=False, slots=True)
class _Run:
    """A process this manager is running right now."""

    claim: Claim
    stop: asyncio.Future[StopReason]
    task: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def request_stop(self, reason: StopReason) -> None:
        if not self.stop.done():
            self.stop.set_result(reason)


_MAX_LIMIT = 2**62


class Manager:
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
    ) -> None:
        if concurrency is None:
            concurrency = os.cpu_count() or 1
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidSpecError(f"concurrency must be a whole number >= 1, not {concurrency!r}")
        if max_output_bytes is not None and (
            isinstance(max_output_bytes, bool)
            or not isinstance(max_output_bytes, int)
            or max_output_bytes < 0
        ):
            raise InvalidSpecError("max_output_bytes must be a whole number >= 0 or None")
        grace = _spec.check_timeout(grace_period, "grace_period")
        poll = _spec.check_timeout(poll_interval, "poll_interval")
        lease_s = _spec.check_timeout(lease, "lease")
        if grace is None or poll is None or poll <= 0 or lease_s is None or lease_s <= 0:
            raise InvalidSpecError(
                "grace_period, poll_interval and lease must be finite and positive"
            )
        for name, value in (("max_attempts", max_attempts), ("max_jobs", max_jobs)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise InvalidSpecError(f"{name} must be a whole number >= 1 or None")
        for name, flag in (("run", run), ("warm", warm)):
            if not isinstance(flag, bool) and not (name == "warm" and flag is None):
                raise InvalidSpecError(f"{name} must be True or False, not {flag!r}")
        if error_log is not None:
            if not isinstance(error_log, str | os.PathLike):
                raise InvalidSpecError(f"error_log must be a path or None, not {error_log!r}")
            error_log = _spec.check_text(os.fspath(error_log), "error_log")
        if python is not None:
            python = _spec.check_program(python, "python")
        preload = _spec.check_module_names(preload, "preload")
        self._store: Store = open_store(store)
        self.concurrency = concurrency
        self.runs_processes = run
        self.error_log = error_log
        self.max_output_bytes = max_output_bytes
        self.grace_period = grace
        self.poll_interval = poll
        self.python = python
        self.lease = lease_s
        self.max_attempts = max_attempts
        self.max_jobs = max_jobs
        if warm is None:
            warm = os.environ.get("AIOBGPROC_WARM", "1").lower() not in ("0", "false", "no")
        self.warm = bool(warm) and _warm.available()
        self.preload = tuple(preload)
        self._zygote: _warm.Zygote | None = None
        self.jobs_claimed = 0
        self.id = uuid.uuid4().hex
        self._guard: Guard | None = None
        self._context = RunContext(self._store, self.id, grace, max_output_bytes, python)
        self._changes = Changes()
        self._claiming = False
        self._paused = False
        self._claim_idle = asyncio.Event()  # set while no claim is in flight
        self._claim_idle.set()
        self._reserved = 0  # slots taken by starts that claim at once, still being written
        self._starting: set[asyncio.Future[None]] = set()  # those starts
        self._starting_ids: set[str] = set()  # their processes, stored but maybe not launched
        self._asked = 0  # slots the claim in flight may fill
        self._counter_at_open: int | None = None
        self._store_changed = asyncio.Event()
        self._runs: dict[str, _Run] = {}
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
        try:
            await self._store.register_manager(self._manager_record())
            if self.runs_processes:
                # Before taking new work, put back what dead managers left behind.
                await recover(
                    self._store,
                    self.id,
                    grace_period=self.grace_period,
                    max_attempts=self.max_attempts,
                )
                self._guard = Guard(self.python)
                await self._guard.start()
                if self.warm:
                    self._zygote = _warm.Zygote(self.python, self.preload)
                    try:
                        await self._zygote.start()
                    except (OSError, ConnectionError) as exc:
                        log.warning("manager %s: no warm executor (%s); spawning", self.id, exc)
                        self._zygote = None
                self._context = dataclasses.replace(
                    self._context, guard=self._guard, zygote=self._zygote
                )
        except BaseException:
            with contextlib.suppress(Exception):
                await self._store.unregister_manager(self.id)
            await self._store.close()
            raise
        self._counter_at_open = await self._store.change_counter()
        if hasattr(self._store, "on_change"):
            self._store.on_change = self._store_changed.set
        self._open = True
        self._closing = False
        self._paused = False
        self.jobs_claimed = 0
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._watch(), name="aiobgproc-watch"),
            loop.create_task(self._heartbeat(), name="aiobgproc-heartbeat"),
        ]
        if self.runs_processes:
            self._run_task = loop.create_task(self._run_loop(), name="aiobgproc-run")
            self._tasks.append(loop.create_task(self._recover_loop(), name="aiobgproc-recover"))
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
        await self._announce_runs(False)
        wait = _spec.check_timeout(finish_timeout, "finish_timeout")
        if self._runs and wait != 0:
            pending = [run.done.wait() for run in self._runs.values()]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*pending), wait)
        # Nor is a start that stores its process already claimed: it launches it (and the
        # run is stopped below, like any other).
        if self._starting:
            # Bounded by the store: a write waits at most its busy timeout (30 s) for a lock.
            await asyncio.wait(list(self._starting), timeout=60.0)
        # The run loop is not cancelled mid-claim (a claimed process would be stranded): it
        # sees _closing and returns; the other tasks can be cancelled anywhere.
        self._changes.notify(_QUEUE)
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
        runs = list(self._runs.values())
        for run in runs:
            run.request_stop("closing")
        for run in runs:
            if run.task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(run.task)
        try:
            if self._zygote is not None:
                await self._zygote.close()
                self._zygote = None
            if self._guard is not None:
                await self._guard.close()
                self._guard = None
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
        self, work: Any, data: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> str:
        """Queue a Command or Process and return its id at once.

        ``timeout`` (seconds) overrides the work's own. Raises InvalidSpecError, and stores
        nothing, when the work, data or timeout is not acceptable.
        """
        self._check_open()
        spec, own_timeout = _spec.work_spec(work)
        override = _spec.check_timeout(timeout)
        payload = _spec.check_data(data)
        process = NewProcess(
            id=_new_id(),
            kind=spec["kind"],
            spec=spec,
            input=payload,
            timeout=override if timeout is not None else own_timeout,
            steps_total=len(spec.get("steps", ())),
            created_at=_clock.wall(),
        )
        # With a free slot and nothing queued (that would go first), this manager takes the
        # process at once: stored already claimed, one write and no claim loop wake-up.
        # Slots are counted again after the read (the manager may have begun to close), and
        # after a claim in flight (it may fill them; most find the queue empty).
        direct = self._free_slots(claim=False) > 0 and await self._queue_is_empty()
        if direct and self._claiming:
            await self._claim_idle.wait()
        if direct and self._free_slots() > 0:
            # The slot is reserved here, before any await, so concurrent starts cannot all
            # take it. Shielded: once stored, the process is launched even if the caller is
            # cancelled; close() waits for these before it stops this manager's runs.
            self._reserved += 1
            self._starting_ids.add(process.id)
            starting = asyncio.ensure_future(self._start_claimed(process))
            self._starting.add(starting)
            starting.add_done_callback(self._starting.discard)
            await asyncio.shield(starting)
            return process.id
        await self._store.insert(process)
        log.info(
            "process %s queued (%s)", process.id, process.kind, extra={"process_id": process.id}
        )
        self._queue_gained()
        return process.id

    async def _start_claimed(self, process: NewProcess) -> None:
        """Store ``process`` claimed by this manager (its slot already reserved) and run it."""
        try:
            record = await self._store.insert(process, owner=self.id)
        finally:
            self._reserved -= 1
            self._starting_ids.discard(process.id)
        assert record is not None
        log.info(
            "process %s started (%s)", process.id, process.kind, extra={"process_id": process.id}
        )
        self.jobs_claimed += 1
        self._launch(record)
        if self.exhausted:
            await self._announce_runs(False)

    def _free_slots(self, *, claim: bool = True) -> int:
        """Processes this manager may take on now (less those the claim in flight may fill,
        unless ``claim`` is False)."""
        if not self.runs_processes or self._closing or self._paused:
            return 0
        taken = len(self._runs) + self._reserved + (self._asked if claim else 0)
        free = self.concurrency - taken
        if self.max_jobs is not None:
            free = min(free, self.max_jobs - self.jobs_claimed - (taken - len(self._runs)))
        return free

    def _queue_gained(self) -> None:
        """Something may have been queued: the run loop claims."""
        self._changes.notify(_QUEUE)

    # -- inspecting ------------------------------------------------------------------------

    async def _record(self, process_id: str, *, full: bool = True) -> ProcessRecord:
        self._check_open()
        if not isinstance(process_id, str) or not process_id:
            raise ProcessNotFoundError(process_id)
        record = await self._store.get(process_id, full=full)
        if record is None:
            raise ProcessNotFoundError(process_id)
        return record

    async def info(self, process_id: str) -> ProcessInfo:
        """A snapshot of the process. Raises ProcessNotFoundError for an unknown id."""
        return (await self._record(process_id, full=False)).to_info()

    async def list(
        self, *, status: Status | str | Iterable[Status | str] | None = None, limit: int = 100
    ) -> list[ProcessInfo]:
        """Processes, newest first; ``status`` may be one status or several."""
        self._check_open()
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidSpecError(f"limit must be a whole number >= 1, not {limit!r}")
        limit = min(limit, _MAX_LIMIT)  # more than any store holds: a store takes 64 bits
        statuses: list[Status] | None = None
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            try:
                statuses = [Status(item) for item in wanted]
            except ValueError:
                raise InvalidSpecError(
                    f"unknown status in {status!r}; one of: {', '.join(Status)}"
                ) from None
        return [record.to_info() for record in await self._store.list_processes(statuses, limit)]

    async def output(self, process_id: str) -> bytes:
        """Everything captured so far: stdout and stderr, interleaved as they arrived."""
        await self._record(process_id)
        return b"".join(data for _, data in await self._store.read_output(process_id))

    async def stream_output(self, process_id: str) -> AsyncIterator[bytes]:
        """Yield the output from the beginning, then live, until the process stops running."""
        await self._record(process_id)
        seq = -1
        while True:
            event = self._changes.event(process_id)
            record = await self._record(process_id)
            chunks = await self._store.read_output(process_id, seq)
            for seq, data in chunks:  # noqa: B007 - seq is where the next read starts
                yield data
            if record.status not in (Status.QUEUED, Status.RUNNING):
                return
            if not chunks:
                await self._changes.wait(event, self._wait_step(record))

    def _wait_step(self, record: ProcessRecord) -> float:
        # A process run here notifies its waiters; another one is noticed by the watcher.
        if record.owner == self.id:
            return _RECHECK
        return max(self.poll_interval, min(_RECHECK, self.poll_interval * 5))

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
        run = self._runs.get(process_id) if isinstance(process_id, str) else None
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
        if before is Status.RUNNING:
            await self._stop_running(cancelled)
        return await self.info(process_id)

    async def _stop_running(self, record: ProcessRecord) -> None:
        """Make sure the OS processes of a cancelled process are gone, whoever ran it."""
        run = self._runs.get(record.id)
        if run is not None:
            run.request_stop("cancelled")
            await asyncio.shield(run.done.wait())
            return
        # Another manager runs it: it notices within its poll interval, stops the tree and
        # then releases the claim (owner and pid cleared), even if it had not recorded a pid
        # yet. An owner that is no longer registered has nothing left to release.
        deadline = _clock.monotonic() + self.grace_period + 10 * self.poll_interval + 1.0
        while _clock.monotonic() < deadline:
            current = await self._store.get(record.id)
            if current is None or current.owner is None:
                return
            if current.os_pid is None:
                managers = await self._store.list_managers()
                if current.owner not in {manager.id for manager in managers}:
                    return
            await asyncio.sleep(self.poll_interval)
        # The owner did not react (frozen or gone): kill the tree ourselves, if it is here.
        if record.os_pid is not None:
            await _tree.terminate_tree(
                record.os_pid,
                record.os_pid_started,
                grace=self.grace_period,
                tag=_tags.make_tag(record.id, record.claim_token),
            )

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
        if age is None:
            raise InvalidSpecError(f"older_than must be a finite age >= 0, not {older_than!r}")
        count = await self._store.prune(_clock.wall() - age)
        log.info("pruned %d processes", count)
        return count

    # -- running ---------------------------------------------------------------------------

    async def _run_loop(self) -> None:
        while not self._closing:
            event = self._changes.event(_QUEUE)
            free = self._free_slots()
            if free > 0:
                self._claiming = True
                self._claim_idle.clear()
                self._asked = free
                try:
                    records = await self._store.claim(self.id, _clock.wall(), free)
                except StoreError:
                    log.exception("manager %s could not claim a process", self.id)
                    records = []
                    await asyncio.sleep(self.poll_interval)
                finally:
                    self._claiming = False
                    self._claim_idle.set()
                    self._asked = 0
                for record in records:
                    fault("after_claim")
                    self.jobs_claimed += 1
                    self._launch(record)
                if records:
                    if self.exhausted:
                        await self._announce_runs(False)
                    continue
            await self._changes.wait(event, _RECHECK)

    async def stop_claiming(self) -> None:
        """Take no more queued processes (running ones go on), and record that in the store,
        so that `aiobgproc run` knows to start a worker of its own."""
        self._paused = True
        await self._announce_runs(False)

    async def resume_claiming(self) -> None:
        self._paused = False
        await self._announce_runs(True)
        self._queue_gained()

    async def queue_is_empty(self) -> bool:
        """Whether no process waits in the queue (of the whole store)."""
        return await self._queue_is_empty()

    async def _announce_runs(self, runs: bool) -> None:
        if self.runs_processes:
            with contextlib.suppress(StoreError):
                await self._store.set_manager_runs(self.id, runs)

    @property
    def exhausted(self) -> bool:
        """True once this manager has claimed ``max_jobs`` processes."""
        return self.max_jobs is not None and self.jobs_claimed >= self.max_jobs

    @property
    def running(self) -> int:
        """How many processes this manager runs right now."""
        return len(self._runs)

    async def wait_idle(self, *, burst: bool = True) -> None:
        """Return once this manager runs nothing and will take no more work: the queue was
        found empty (when ``burst``) or ``max_jobs`` processes were claimed."""
        while True:
            event = self._changes.event(_IDLE)
            empty = burst and await self._queue_is_empty()
            # A claim in flight may be taking what the query saw: let it land (its processes
            # are launched the moment it returns), then judge.
            await self._claim_idle.wait()
            if not self._runs and (self.exhausted or empty):
                return
            await self._changes.wait(event, _RECHECK)

    async def _queue_is_empty(self) -> bool:
        return not await self._store.list_processes([Status.QUEUED], 1)

    def _launch(self, record: ProcessRecord) -> None:
        loop = asyncio.get_running_loop()
        run = _Run(record.claim(self.id), loop.create_future())
        # This manager may claim again a process whose earlier run it still winds down (its
        # lease had expired): that run is fenced; stop it, and start only once it is gone.
        previous = self._runs.get(record.id)
        self._runs[record.id] = run
        run.task = loop.create_task(
            self._execute(run, record, previous), name=f"aiobgproc-{record.id}"
        )

    async def _execute(self, run: _Run, record: ProcessRecord, previous: _Run | None) -> None:
        if previous is not None:
            previous.request_stop("lost")
            await previous.done.wait()
        log.info(
            "process %s running (attempt %d)",
            record.id,
            record.attempts,
            extra={"process_id": record.id},
        )
        runner = (
            CommandRunner(self._context, record, run.stop, self._changed)
            if record.kind == "command"
            else StepsRunner(self._context, record, run.stop, self._changed, self._changed)
        )
        try:
            outcome = await runner.run()
            if outcome.status in (Status.ERROR, Status.TIMEOUT) and self.error_log is not None:
                await append_error_block(self.error_log, self._store, record.id, outcome.message)
            log.info("process %s %s", record.id, outcome.status, extra={"process_id": record.id})
        except Exception as exc:
            log.exception(
                "process %s: the manager failed while running it",
                record.id,
                extra={"process_id": record.id},
            )
            message = f"internal error in the manager: {type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):
                await self._store.finish(
                    run.claim,
                    Status.ERROR,
                    _clock.wall(),
                    error={"type": ErrorType.INTERNAL, "message": message, "traceback": None},
                )
        finally:
            if self._runs.get(record.id) is run:
                del self._runs[record.id]
            run.done.set()
            self._changes.notify(record.id)
            self._changes.notify(_QUEUE)
            self._changes.notify(_IDLE)

    def _changed(self, process_id: str) -> None:
        """A runner stored something new of the process (output, progress, a step)."""
        self._changes.notify(process_id)

    async def _watch(self) -> None:
        """Notice what other OS processes change in the store: new work, cancels, finishes.

        The last counter seen is kept while nobody waits: a change that lands between a
        waiter's read and the next poll then still differs from it and wakes the waiter (at
        worst the wake-up is spurious; it is never missed)."""
        last: int | None = self._counter_at_open
        while True:
            if not self.runs_processes and self._changes.waiting == 0:
                # Nobody to wake: idle until someone waits (then poll at once) or a poll
                # interval passes (the counter is kept current meanwhile).
                self._changes.waiter_arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changes.waiter_arrived.wait(), self.poll_interval)
                if self._changes.waiting == 0:
                    continue
            try:
                counter = await self._store.change_counter()
            except StoreError:
                log.exception("manager %s could not poll the store", self.id)
                counter = None
            if counter is not None and counter != last:
                if last is not None:
                    await self._others_changed(self._store.changed())
                last = counter
            # A store that pushes change notifications (PostgreSQL) wakes us at once;
            # otherwise this is the poll interval.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._store_changed.wait(), self.poll_interval)
            self._store_changed.clear()

    async def _others_changed(self, changed: dict[str, str] | None) -> None:
        """Wake whoever waits on what other OS processes changed: everyone when the store
        cannot say what (SQLite), else the waiters of those processes, the run loop if one
        was queued, and runs that may have been cancelled or taken over."""
        if changed is None:
            self._queue_gained()
            self._changes.notify(None)
            await self._check_runs()
            return
        for process_id in changed:
            self._changes.notify(process_id)
        if Status.QUEUED.value in changed.values():
            self._queue_gained()
        self._changes.notify(_IDLE)
        if not self._runs.keys().isdisjoint(changed):
            await self._check_runs()

    def _manager_record(self) -> ManagerRecord:
        identity = _host.Identity.here(self.id)
        now = _clock.wall()
        return ManagerRecord(
            id=self.id,
            hostname=identity.hostname,
            boot_id=identity.boot_id,
            os_pid=identity.os_pid,
            os_pid_started=identity.os_pid_started,
            runs=self.runs_processes,
            lease=self.lease,
            started_at=now,
            heartbeat_at=now,
            heartbeat_boottime=_host.boottime(),
        )

    async def _heartbeat(self) -> None:
        """Renew this manager's lease; re-register if others presumed it dead."""
        while True:
            await asyncio.sleep(self.lease / 4)
            try:
                if not await self._store.heartbeat(self.id, _clock.wall(), _host.boottime()):
                    log.warning("manager %s was presumed dead; registering again", self.id)
                    await self._store.register_manager(self._manager_record())
                    await self._check_runs()
            except StoreError:
                log.exception("manager %s could not renew its lease", self.id)

    async def _recover_loop(self) -> None:
        while True:
            await asyncio.sleep(max(self.lease / 2, self.poll_interval))
            try:
                if await recover(
                    self._store,
                    self.id,
                    grace_period=self.grace_period,
                    max_attempts=self.max_attempts,
                ):
                    self._queue_gained()
                    self._changes.notify(None)
                await self._requeue_strays()
            except StoreError:
                log.exception("manager %s could not recover lost processes", self.id)

    async def _check_runs(self) -> None:
        """Stop runs whose process another OS process cancelled (or took over)."""
        if not self._runs:
            return
        # Snapshot first: a run launched while the query is in flight is not in its answer.
        runs = list(self._runs.items())
        owned = await self._store.running_owned_by(self.id)
        for process_id, run in runs:
            if owned.get(process_id) != run.claim.token and not run.done.is_set():
                run.request_stop("cancelled")

    async def _requeue_strays(self) -> None:
        """Put back processes the store says this manager runs but it does not (a claim whose
        commit landed though its reply was lost): compare-and-set on owner and token."""
        if self._claiming:
            return
        owned = await self._store.running_owned_by(self.id)
        for process_id, token in owned.items():
            run = self._runs.get(process_id)
            if process_id in self._starting_ids or self._claiming:
                continue  # being launched: a start that stored it claimed, or a claim
            if run is None or run.claim.token != token:
                record = await self._store.get(process_id)
                if record is not None and record.claim_token == token:
                    log.warning(
                        "process %s: claimed by this manager but not run; requeued",
                        process_id,
                        extra={"process_id": process_id},
                    )
                    if await self._store.requeue(record.claim(self.id)):
                        self._queue_gained()
