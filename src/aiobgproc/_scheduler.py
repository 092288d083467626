"""What a manager that runs processes does in the background: it takes queued processes as
its slots allow (claims, and the direct start that stores a new process already claimed),
runs each with a runner, stops runs that another OS process cancelled or took over, puts
back what it claimed but does not run, and recovers what dead managers left behind.

The slot bookkeeping is all here, in one object, because its fields only make sense
together: ``runs`` (running now), ``reserved`` (direct starts being written), ``asked``
(what the claim in flight may fill), ``claiming`` and ``claim_idle`` (that claim), and
``starting_ids`` (processes stored claimed but maybe not launched yet: the stray check
must leave them alone). Every slot is reserved before the first await that could let
another start or claim in.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from . import _clock, _tags
from ._changes import Changes
from ._errorlog import append_error_block
from ._faults import fault
from ._options import ManagerOptions
from ._os import tree as _tree
from ._os.executor_pool import ExecutorPool
from ._os.guard import Guard
from ._os.spares import MOST_SPARES, Spare, SpareExecutors
from ._os.zygote import Zygote
from ._recovery import recover
from ._run_controls import Requests
from ._runner import CommandRunner, RunContext, StopReason
from ._steps_runner import StepsRunner
from .errors import ErrorType, StoreError
from .models import Status
from .store import Claim, NewProcess, ProcessRecord, Store

log = logging.getLogger(__name__)

QUEUE: Final = "queue"  # the run loop's wake-up key
IDLE: Final = "idle"  # wait_idle's wake-up key
RECHECK: Final = 1.0  # a waiter re-reads the store at least this often, notified or not


@dataclass(eq=False, slots=True)
class Run:
    """A process this manager is running right now."""

    claim: Claim
    stop: asyncio.Future[StopReason]
    task: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    controls: Requests = field(default_factory=Requests)
    """Set when requests were made of this run (its runner reads and applies them)."""
    controls_seen: int = 0

    def request_stop(self, reason: StopReason) -> None:
        if not self.stop.done():
            self.stop.set_result(reason)


class Scheduler:
    """The slots of one manager and everything that fills or frees them."""

    def __init__(
        self,
        manager_id: str,
        store: Store,
        changes: Changes,
        limits: ManagerOptions,
        context: RunContext,
    ) -> None:
        self.manager_id = manager_id
        self.store = store
        self.changes = changes
        self.limits = limits
        self.context = context
        self.runs: dict[str, Run] = {}
        self.jobs_claimed = 0
        self.paused = False
        self.closing = False
        self.claiming = False
        self.claim_idle = asyncio.Event()  # set while no claim is in flight
        self.claim_idle.set()
        self.reserved = 0  # slots taken by starts that claim at once, still being written
        self.starting: set[asyncio.Future[bool]] = set()  # those starts
        self.starting_ids: set[str] = set()  # their processes, stored but maybe not launched
        self.asked = 0  # slots the claim in flight may fill
        self.spares: SpareExecutors | None = None  # executors forked ahead of claims

    async def start_helpers(self) -> None:
        """The guard (kills our children should we die) and the warm executor."""
        limits = self.limits
        guard = Guard(limits.python)
        await guard.start()
        zygote: Zygote | None = None
        if limits.warm:
            zygote = Zygote(limits.python, limits.preload)
            try:
                await zygote.start()
            except (OSError, ConnectionError) as exc:
                log.warning("manager %s: no warm executor (%s); spawning", self.manager_id, exc)
                zygote = None
        executors = None
        self.spares = None
        if zygote is not None and limits.reuse_executors > 1:
            executors = ExecutorPool(limits.reuse_executors)
        elif zygote is not None:
            self.spares = SpareExecutors(zygote, min(limits.concurrency, MOST_SPARES))
        self.context = dataclasses.replace(
            self.context, guard=guard, zygote=zygote, executors=executors
        )

    async def stop_helpers(self) -> None:
        context = self.context
        self.context = dataclasses.replace(context, guard=None, zygote=None, executors=None)
        if context.executors is not None:
            context.executors.close()
        if self.spares is not None:  # closed, it closes what a claim in flight gives back
            await self.spares.close()
        if context.zygote is not None:
            await context.zygote.close()
        if context.guard is not None:
            await context.guard.close()

    def reset(self) -> None:
        """Back to a fresh state, for a manager (re)opened."""
        self.closing = False
        self.paused = False
        self.jobs_claimed = 0

    # -- slots -------------------------------------------------------------------------------

    def free_slots(self, *, claim: bool = True) -> int:
        """Processes this manager may take on now (less those the claim in flight may fill,
        unless ``claim`` is False)."""
        limits = self.limits
        if not limits.runs_processes or self.closing or self.paused:
            return 0
        taken = len(self.runs) + self.reserved + (self.asked if claim else 0)
        free = limits.concurrency - taken
        if limits.max_jobs is not None:
            free = min(free, limits.max_jobs - self.jobs_claimed - (taken - len(self.runs)))
        return free

    @property
    def exhausted(self) -> bool:
        """True once this manager has claimed ``max_jobs`` processes."""
        return self.limits.max_jobs is not None and self.jobs_claimed >= self.limits.max_jobs

    def queue_gained(self) -> None:
        """Something may have been queued: the run loop claims."""
        self.changes.notify(QUEUE)

    async def queue_is_empty(self) -> bool:
        """Whether this manager's queues hold no work it could run or wait for (see
        Store.has_work)."""
        return not await self.store.has_work(self.limits.queues)

    async def start_directly(self, process: NewProcess) -> bool:
        """Store ``process`` already claimed by this manager and run it, if a slot is free
        and nothing claimable is queued (that would go first): one write, and no claim loop
        wake-up. Only a plain process of a queue this manager runs, with no limit and not
        paused (the store checks that in the insert). False: the caller queues it. Slots
        are counted again after the read (the manager may have begun to close), and after
        a claim in flight (it may fill them; most find the queue empty)."""
        queues = self.limits.queues
        if not process.plain or (queues is not None and process.queue not in queues):
            return False
        direct = self.free_slots(claim=False) > 0 and not await self.store.has_claimable()
        if direct and self.claiming:
            await self.claim_idle.wait()
        if not direct or self.free_slots() <= 0:
            return False
        # The slot is reserved here, before any await, so concurrent starts cannot all take
        # it. Shielded: once stored, the process is launched even if the caller is cancelled;
        # close() waits for these before it stops this manager's runs.
        self.reserved += 1
        self.starting_ids.add(process.id)
        starting = asyncio.ensure_future(self._start_claimed(process))
        self.starting.add(starting)
        starting.add_done_callback(self.starting.discard)
        return await asyncio.shield(starting)

    async def _start_claimed(self, process: NewProcess) -> bool:
        """Store ``process`` claimed by this manager (its slot already reserved) and run it;
        False if its queue has a limit or is paused (nothing stored)."""
        try:
            record = await self.store.insert_claimed(process, self.manager_id)
        finally:
            self.reserved -= 1
            self.starting_ids.discard(process.id)
        if record is None:
            return False
        log.info(
            "process %s started (%s)", process.id, process.kind, extra={"process_id": process.id}
        )
        self.jobs_claimed += 1
        self.launch(record)
        if self.exhausted:
            await self.announce_runs(False)
        return True

    # -- claiming ----------------------------------------------------------------------------

    async def run_loop(self) -> None:
        # Woken by the clock alone (no change was notified, no delayed process fell due):
        # a read, not a claim (a write), says whether there is anything to take. An idle
        # manager then makes one short read a second, whatever waits for hours.
        read_first = False
        while not self.closing:
            event = self.changes.event(QUEUE)
            free = self.free_slots()
            wait = RECHECK
            if free > 0 and read_first and not await self._claimable():
                wait = await self._until_due()
            elif free > 0:
                self.claiming = True
                self.claim_idle.clear()
                self.asked = free
                spares = self.spares.take(free) if self.spares is not None else []
                records: list[ProcessRecord] = []
                failed = False
                try:
                    records = await self.store.claim(
                        self.manager_id,
                        _clock.wall(),
                        free,
                        self.limits.queues,
                        [(spare.child.os_pid, spare.child.started) for spare in spares],
                    )
                except BaseException as exc:
                    for spare in spares:  # it may have committed them to processes: never again
                        spare.close()
                    spares = []
                    if not isinstance(exc, StoreError):
                        raise
                    log.exception("manager %s could not claim a process", self.manager_id)
                    failed = True
                finally:
                    self.claiming = False
                    self.claim_idle.set()
                    self.asked = 0
                unused = {spare.child.os_pid: spare for spare in spares}
                for record in records:  # launched whatever comes next
                    fault("after_claim")
                    self.jobs_claimed += 1
                    self.launch(record, unused.pop(record.os_pid, None) if record.os_pid else None)
                self._spare_for_next(records, len(spares), list(unused.values()))
                if records:
                    if self.exhausted:
                        await self.announce_runs(False)
                    continue
                if failed:
                    await asyncio.sleep(self.limits.poll_interval)
                else:
                    wait = await self._until_due()
            await self.changes.wait(event, wait)
            read_first = not event.is_set() and wait >= RECHECK

    async def _claimable(self) -> bool:
        """Whether a claim could take something now (claimable, or delayed and due)."""
        try:
            if await self.store.has_claimable():
                return True
            due = await self.store.next_run_at()
        except StoreError:
            return True  # the claim says what is wrong
        return due is not None and due <= _clock.wall()

    async def _until_due(self) -> float:
        """How long the run loop may sleep: until the earliest delayed process is due, at
        most RECHECK (a change that queues work wakes it sooner)."""
        try:
            due = await self.store.next_run_at()
        except StoreError:
            return RECHECK
        if due is None:
            return RECHECK
        return min(RECHECK, max(due - _clock.wall(), 0.0) + 0.001)

    async def stop_claiming(self) -> None:
        self.paused = True
        await self.announce_runs(False)

    async def resume_claiming(self) -> None:
        self.paused = False
        await self.announce_runs(True)
        self.queue_gained()

    async def announce_runs(self, runs: bool) -> None:
        """Record in the store whether this manager takes work (`aiobgproc run` reads it)."""
        if self.limits.runs_processes:
            with contextlib.suppress(StoreError):
                await self.store.set_manager_runs(self.manager_id, runs)

    async def wait_idle(self, *, burst: bool) -> None:
        while True:
            event = self.changes.event(IDLE)
            empty = burst and await self.queue_is_empty()
            # A claim in flight may be taking what the query saw: let it land (its processes
            # are launched the moment it returns), then judge.
            await self.claim_idle.wait()
            if not self.runs and (self.exhausted or empty):
                return
            await self.changes.wait(event, RECHECK)

    # -- running -----------------------------------------------------------------------------

    def _spare_for_next(
        self, records: list[ProcessRecord], taken: int, unused: list[Spare]
    ) -> None:
        if self.spares is not None:
            steps = sum(record.kind == "process" for record in records)
            self.spares.after_claim(steps, taken, unused, more=not (self.closing or self.exhausted))

    def launch(self, record: ProcessRecord, spare: Spare | None = None) -> None:
        loop = asyncio.get_running_loop()
        run = Run(record.claim(self.manager_id), loop.create_future())
        # This manager may claim again a process whose earlier run it still winds down (its
        # lease had expired): that run is fenced; stop it, and start only once it is gone.
        previous = self.runs.get(record.id)
        self.runs[record.id] = run
        run.task = loop.create_task(
            self._execute(run, record, previous, spare), name=f"aiobgproc-{record.id}"
        )

    async def _execute(
        self, run: Run, record: ProcessRecord, previous: Run | None, spare: Spare | None
    ) -> None:
        if previous is not None:
            if spare is not None:  # it would begin without the pid write's fencing
                spare.close()
                spare = None
            previous.request_stop("lost")
            await previous.done.wait()
        log.info(
            "process %s running (attempt %d)",
            record.id,
            record.attempts,
            extra={"process_id": record.id},
        )
        changed: Callable[[str], None] = self.changes.notify
        if record.kind == "command":
            runner: CommandRunner | StepsRunner = CommandRunner(
                self.context, record, run.stop, changed, run.controls
            )
        else:
            runner = StepsRunner(self.context, record, run.stop, changed, run.controls, spare)
        try:
            outcome = await runner.run()
            error_log = self.limits.error_log
            if outcome.status in (Status.ERROR, Status.TIMEOUT) and error_log is not None:
                await append_error_block(error_log, self.store, record.id, outcome.message)
            log.info("process %s %s", record.id, outcome.status, extra={"process_id": record.id})
        except Exception as exc:
            log.exception(
                "process %s: the manager failed while running it",
                record.id,
                extra={"process_id": record.id},
            )
            message = f"internal error in the manager: {type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):
                await self.store.finish(
                    run.claim,
                    Status.ERROR,
                    _clock.wall(),
                    error={"type": ErrorType.INTERNAL, "message": message, "traceback": None},
                )
        finally:
            if spare is not None:
                spare.close()  # the run's executor now, or never taken: it goes either way
            if self.runs.get(record.id) is run:
                del self.runs[record.id]
            run.done.set()
            self.changes.notify(record.id)
            self.changes.notify(QUEUE)
            self.changes.notify(IDLE)

    async def stop(self, finish_timeout: float | None) -> None:
        """Stop taking work, give running processes ``finish_timeout`` seconds (None: as
        long as they take), then stop the rest: steps go back to the queue, commands end."""
        self.closing = True
        await self.announce_runs(False)
        if self.runs and finish_timeout != 0:
            pending = [run.done.wait() for run in self.runs.values()]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*pending), finish_timeout)
        # Nor is a start that stores its process already claimed: it launches it (and the
        # run is stopped below, like any other).
        if self.starting:
            # Bounded by the store: a write waits at most its busy timeout (30 s) for a lock.
            await asyncio.wait(list(self.starting), timeout=60.0)
        self.changes.notify(QUEUE)  # the run loop sees ``closing`` and returns

    async def stop_runs(self) -> None:
        runs = list(self.runs.values())
        for run in runs:
            run.request_stop("closing")
        for run in runs:
            if run.task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(run.task)

    async def stop_process(self, record: ProcessRecord) -> None:
        """Make sure the OS processes of a cancelled process are gone, whoever ran it."""
        run = self.runs.get(record.id)
        if run is not None:
            run.request_stop("cancelled")
            await asyncio.shield(run.done.wait())
            return
        # Another manager runs it: it notices within its poll interval, stops the tree and
        # then releases the claim (owner and pid cleared), even if it had not recorded a pid
        # yet. An owner that is no longer registered has nothing left to release.
        deadline = (
            _clock.monotonic() + self.limits.grace_period + 10 * self.limits.poll_interval + 1.0
        )
        while _clock.monotonic() < deadline:
            current = await self.store.get(record.id)
            if current is None or current.owner is None:
                return
            if current.os_pid is None:
                managers = await self.store.list_managers()
                if current.owner not in {manager.id for manager in managers}:
                    return
            await asyncio.sleep(self.limits.poll_interval)
        # The owner did not react (frozen or gone): kill the tree ourselves, if it is here.
        if record.os_pid is not None:
            await _tree.terminate_tree(
                record.os_pid,
                record.os_pid_started,
                grace=self.limits.grace_period,
                tag=_tags.make_tag(record.id, record.claim_token),
            )

    # -- keeping the store and the runs in agreement -----------------------------------------

    async def check_runs(self) -> None:
        """Stop runs whose process another OS process cancelled (or took over); hand the
        others the requests made of them (input, signals, suspend, resume) when their
        ``controls`` counter moved."""
        if not self.runs:
            return
        # Snapshot first: a run launched while the query is in flight is not in its answer.
        runs = list(self.runs.items())
        owned = await self.store.running_owned_by(self.manager_id)
        for process_id, run in runs:
            token, controls = owned.get(process_id, (None, 0))
            if token != run.claim.token:
                if not run.done.is_set():
                    run.request_stop("cancelled")
            elif controls != run.controls_seen:
                run.controls_seen = controls
                run.controls.set()

    async def recover_loop(self) -> None:
        limits = self.limits
        while True:
            await asyncio.sleep(max(limits.lease / 2, limits.poll_interval))
            try:
                if await self.recover():
                    self.queue_gained()
                    self.changes.notify(None)
                await self.requeue_strays()
            except StoreError:
                log.exception("manager %s could not recover lost processes", self.manager_id)

    async def recover(self) -> list[str]:
        """Put back, or fail, what dead managers left behind."""
        return await recover(
            self.store,
            self.manager_id,
            grace_period=self.limits.grace_period,
            max_attempts=self.limits.max_attempts,
        )

    async def requeue_strays(self) -> None:
        """Put back processes the store says this manager runs but it does not (a claim whose
        commit landed though its reply was lost): compare-and-set on owner and token."""
        if self.claiming:
            return
        owned = await self.store.running_owned_by(self.manager_id)
        for process_id, (token, _) in owned.items():
            run = self.runs.get(process_id)
            if process_id in self.starting_ids or self.claiming:
                continue  # being launched: a start that stored it claimed, or a claim
            if run is None or run.claim.token != token:
                record = await self.store.get(process_id)
                if record is not None and record.claim_token == token:
                    log.warning(
                        "process %s: claimed by this manager but not run; requeued",
                        process_id,
                        extra={"process_id": process_id},
                    )
                    if await self.store.requeue(record.claim(self.manager_id)):
                        self.queue_gained()
