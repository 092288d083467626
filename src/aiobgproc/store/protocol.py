"""The Store protocol: everything the manager needs from persistence, and nothing about SQL.

A store keeps processes, their captured output and their step outputs. Every method that
changes a process is a compare-and-set: it names the state it expects (status, owner,
attempt) and reports whether the change happened, so two managers never overwrite each other.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .._clock import to_datetime
from ..models import LIVE_STATUSES, ErrorInfo, Event, ProcessInfo, Status


def _when(moment: Any) -> Any:
    return to_datetime(moment) if isinstance(moment, int | float) else moment


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    """One stored process, as the manager sees it (ProcessInfo plus what only we need)."""

    id: str
    kind: str
    status: Status
    spec: dict[str, Any]
    input: dict[str, Any] | None
    output: dict[str, Any] | None
    error: dict[str, Any] | None
    step: str | None
    step_index: int
    steps_total: int
    progress: float | None
    progress_message: str | None
    exit_code: int | None
    os_pid: int | None
    os_pid_started: float | None
    owner: str | None
    attempts: int
    timeout: float | None
    output_size: int
    output_truncated: bool
    cancel_requested: bool
    claim_token: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    label: str | None = None
    meta: dict[str, Any] | None = None
    key: str | None = None
    queue: str = "default"
    priority: int = 0
    run_at: float | None = None
    after: tuple[str, ...] = ()
    summary: tuple[str, ...] = ()
    """A command's argv, or a step process's step names."""
    restarted_from: str | None = None
    failures: tuple[dict[str, Any], ...] = ()

    def claim(self, owner: str) -> Claim:
        return Claim(self.id, owner, self.claim_token, self.attempts)

    def to_info(self) -> ProcessInfo:
        created = to_datetime(self.created_at)
        assert created is not None
        return ProcessInfo(
            id=self.id,
            kind=self.kind,
            status=self.status,
            created_at=created,
            started_at=to_datetime(self.started_at),
            finished_at=to_datetime(self.finished_at),
            output=self.output,
            error=ErrorInfo.from_dict(self.error) if self.error is not None else None,
            step=self.step,
            steps_done=self.step_index,
            steps_total=self.steps_total,
            progress=self.progress,
            progress_message=self.progress_message,
            exit_code=self.exit_code,
            os_pid=self.os_pid if self.status in LIVE_STATUSES else None,
            attempts=self.attempts,
            timeout=self.timeout,
            output_size=self.output_size,
            output_truncated=self.output_truncated,
            label=self.label,
            meta=self.meta,
            key=self.key,
            queue=self.queue,
            priority=self.priority,
            run_at=to_datetime(self.run_at),
            after=self.after,
            command=self.summary if self.kind == "command" else None,
            steps=self.summary if self.kind == "process" else (),
            restarted_from=self.restarted_from,
            failures=tuple(
                {**failure, "at": _when(failure.get("at"))} for failure in self.failures
            ),
        )


@dataclass(frozen=True, slots=True)
class NewProcess:
    """What start() stores: a queued process, checked and serialised."""

    id: str
    kind: str
    spec: Mapping[str, Any]
    """A CommandSpec or ProcessSpec (aiobgproc._wire.job)."""
    input: dict[str, Any]
    timeout: float | None
    steps_total: int
    created_at: float
    label: str | None = None
    meta: dict[str, Any] | None = None
    key: str | None = None
    queue: str = "default"
    priority: int = 0
    run_at: float | None = None
    after: tuple[str, ...] = ()
    meta_pairs: tuple[tuple[str, str], ...] = ()
    """Each key of ``meta`` with its canonical JSON value (what list(meta=) matches)."""
    start_data: dict[str, Any] | None = None
    """The data given to start (None: ``input``); a restart from a step keeps the
    original's here, and starts with ``input``."""
    restarted_from: str | None = None
    step_index: int = 0
    """The first step to run: a restart from a step copies the committed outputs of the
    steps before it from ``restarted_from``, in the insert's transaction."""

    def spec_json(self) -> str:
        return json.dumps(self.spec, separators=(",", ":"))

    def summary(self) -> list[str]:
        """A command's argv, or the step names: what info and list show a process is."""
        if self.kind == "command":
            return list(self.spec["argv"])
        return [step["name"] for step in self.spec["steps"]]

    @property
    def plain(self) -> bool:
        """Neither keyed, delayed nor waiting for others: it may be stored already claimed."""
        return self.key is None and self.run_at is None and not self.after


@dataclass(frozen=True, slots=True)
class ListFilter:
    """What list() asks for: every given filter must match (None: any)."""

    statuses: Sequence[Status] | None = None
    limit: int = 100
    queue: str | None = None
    label: str | None = None
    key: str | None = None
    meta: tuple[tuple[str, str], ...] = ()
    """(key, canonical JSON value) pairs."""
    before: str | None = None
    """A process id: only processes created before it."""


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    name: str
    spec: dict[str, Any]
    data: dict[str, Any]
    options: dict[str, Any]
    """start()'s options for each process: label, meta, key, queue, priority, timeout."""
    cron: str | None
    every: float | None
    next_run_at: float
    last_run_at: float | None
    last_process_id: str | None
    created_at: float

    def replace(self, **changes: Any) -> ScheduleRecord:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class QueueRecord:
    name: str
    limit: int | None
    paused: bool
    queued: int
    running: int


Chunk = tuple[int, int, bytes]
"""A chunk of captured output: its sequence number, its stream (1 stdout, 2 stderr), its bytes."""
StoredChunk = tuple[int, int, int, bytes]
"""A chunk as stored: seq, stream, codec (store.codec: 0 raw, 1 zstd), its bytes so encoded."""


@dataclass(frozen=True, slots=True)
class Claim:
    """Who runs a process: the manager, and the claim's fencing token (a counter bumped by
    every claim, so a manager that lost a process can never write over its new owner)."""

    process_id: str
    owner: str
    token: int
    attempt: int


@dataclass(frozen=True, slots=True)
class ManagerRecord:
    """A manager (or worker) as recorded for leases: who it is, where, and when it last
    showed it was alive."""

    id: str
    hostname: str
    boot_id: str
    os_pid: int
    os_pid_started: float | None
    runs: bool
    lease: float
    started_at: float
    heartbeat_at: float
    heartbeat_boottime: float
    queues: tuple[str, ...] | None = None
    """The queues it runs (None: every queue)."""


class Store(Protocol):
    """Persistence for processes. Implementations: store.sqlite.SQLiteStore and
    store.postgres.PostgresStore."""

    on_change: Callable[[], None] | None
    """Set by the manager: called (in the event loop's thread) whenever the store learns that
    another connection changed a process, so that waiters wake without polling. A store that
    cannot tell (SQLite: ``data_version`` is polled) never calls it."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    @property
    def output_codec(self) -> int | None:
        """What new output chunks are to be compressed with (store.codec.encode), from the
        store's ``output_codec`` setting; known once the store is open."""
        ...

    async def insert(self, process: NewProcess) -> str:
        """Store a new queued process and return its id. With a key that an active process
        holds, store nothing and return that process's id. Raises ProcessNotFoundError
        (nothing stored) when a process of ``process.after`` does not exist; a process
        whose dependency already failed is stored ended (``error``, DependencyError)."""
        ...

    async def insert_claimed(self, process: NewProcess, owner: str) -> ProcessRecord | None:
        """Store a new ``plain`` process already claimed by ``owner`` (its first claim) and
        return it; None, and nothing stored, when its queue is paused or has a limit (the
        claim must count it)."""
        ...

    async def get(self, process_id: str, *, full: bool = True) -> ProcessRecord | None:
        """The process, or None. ``full=False`` may leave ``spec`` and ``input`` undecoded
        (empty): enough for ProcessInfo, which shows neither."""
        ...

    async def list_processes(self, where: ListFilter) -> list[ProcessRecord]:
        """Newest first. Raises ProcessNotFoundError when ``where.before`` is unknown."""
        ...

    async def claim(
        self,
        owner: str,
        now: float,
        limit: int,
        queues: Sequence[str] | None = None,
        executors: Sequence[tuple[int, float | None]] = (),
    ) -> list[ProcessRecord]:
        """Move up to ``limit`` claimable processes of ``queues`` (None: all) to running for
        ``owner``: first those whose ``run_at`` has come are made claimable; then, queue by
        queue (a paused one skipped, a limited one counted in the same transaction), the
        highest priority first, then the oldest. ``now`` is a lower bound: the store reads
        the clock again when the claim runs (a process a dependency's end made claimable
        meanwhile starts no earlier than that end). ``executors`` (pid, create time), spare
        executors forked ahead: the claimed step processes, in that order, are given one
        each as their ``os_pid`` in the same write (commands and the rest get none)."""
        ...

    async def next_run_at(self) -> float | None:
        """The earliest ``run_at`` of a process that waits for its time only."""
        ...

    async def has_claimable(self) -> bool:
        """Whether some process is queued and claimable now (in any queue)."""
        ...

    async def has_work(self, queues: Sequence[str] | None) -> bool:
        """Whether a process of ``queues`` (None: all) that is not paused is queued and
        claimable, waits for its time, or waits for a dependency that is queued or runs."""
        ...

    async def set_queue(
        self, name: str, *, limit: int | bool | None = False, paused: bool | None = None
    ) -> None:
        """Store a queue's limit (False: unchanged) and/or paused flag (None: unchanged)."""
        ...

    async def list_queues(self) -> list[QueueRecord]:
        """Every queue with a setting or a queued or running process, by name."""
        ...

    async def set_os_pid(
        self,
        claim: Claim,
        os_pid: int | None,
        started: float | None,
        step: tuple[int, str] | None = None,
    ) -> bool:
        """Record the run's OS process (and, for steps, the step it starts with)."""
        ...

    async def set_progress(self, claim: Claim, progress: float, message: str | None) -> bool: ...

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
        """Running (for this claim) → a terminal status. False if the claim was lost."""
        ...

    async def retry(
        self,
        claim: Claim,
        run_at: float,
        ready: bool,
        error: dict[str, Any] | None,
        failures: Sequence[dict[str, Any]],
    ) -> bool:
        """Running (for this claim) → queued, to run again at ``run_at`` (``ready``: now),
        with ``error`` shown meanwhile and ``failures`` as its history of failed runs."""
        ...

    async def start_data(self, process_id: str) -> dict[str, Any] | None:
        """The data the process was started with (None if unknown: stored before version 2,
        after its first step)."""
        ...

    async def last_event_seq(self) -> int:
        """The newest event's sequence number (0 before the first)."""
        ...

    def events_from_now(self) -> Awaitable[int]:
        """The sequence number after which the events committed from this call on come
        (called synchronously: the moment is the call's, whenever the result is awaited)."""
        ...

    async def read_events(
        self, after: int, process_id: str | None, queue: str | None, limit: int
    ) -> list[Event]:
        """Up to ``limit`` events after ``after``, oldest first, of ``process_id`` and
        ``queue`` when given."""
        ...

    async def set_schedule(self, schedule: ScheduleRecord) -> None:
        """Create or replace a schedule (its last run is kept)."""
        ...

    async def delete_schedule(self, name: str) -> bool: ...

    async def list_schedules(self) -> list[ScheduleRecord]: ...

    async def due_schedules(self, now: float) -> list[ScheduleRecord]: ...

    async def next_schedule_at(self) -> float | None: ...

    async def fire_schedule(
        self, schedule: ScheduleRecord, next_run_at: float, now: float, process: NewProcess
    ) -> str | None:
        """Move ``schedule`` from its due time to ``next_run_at`` and store ``process`` (see
        insert), both or neither; the process's id, or None if another manager fired this
        due time first."""
        ...

    async def requeue(self, claim: Claim) -> bool:
        """Running (for this claim) → queued at its current step, e.g. on a graceful stop."""
        ...

    async def release(self, claim: Claim) -> None:
        """Forget the OS process of a claim that ended otherwise (cancelled, lost), once its
        OS processes are gone, and its owner unless it still runs (whoever cancelled it
        waits for that; a running process always keeps an owner, for recovery)."""
        ...

    async def start_step(self, claim: Claim, index: int, name: str) -> bool: ...

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
        """Record step ``index``'s output once and move on (or finish, when ``final``)."""
        ...

    async def interrupt(
        self, claim: Claim, index: int, name: str, output: dict[str, Any], now: float
    ) -> bool:
        """Record step ``index``'s output and pause the process with it as its output."""
        ...

    async def proceed(self, process_id: str, data: dict[str, Any], now: float) -> bool:
        """Interrupted → queued (or finished, after the last step), merging ``data``."""
        ...

    async def step_outputs(self, process_id: str) -> list[tuple[int, str, int, dict[str, Any]]]:
        """The committed step outputs: (index, name, attempt, output), in step order."""
        ...

    async def cancel(self, process_id: str, now: float) -> tuple[Status, ProcessRecord] | None:
        """Queued, interrupted or running → cancelled. Returns the status it had, and the row."""
        ...

    async def append_output(
        self, claim: Claim, chunks: Sequence[StoredChunk], output_size: int, truncated: bool
    ) -> bool:
        """Append chunks as stored (store.codec.encode; none: only the totals) for the run
        ``claim`` names; False (nothing written) if the process has another owner or claim
        by now."""
        ...

    # -- requests of a process's owner (input, signals, suspend, resume) --------------------

    async def add_input(self, process_id: str, data: bytes | None) -> bool:
        """Store input (None: the close) for a queued or live process whose input is open;
        False (nothing stored) otherwise. Moves the process's ``controls`` counter."""
        ...

    async def input_closed(self, process_id: str) -> bool: ...

    async def pending_input(
        self, process_id: str, after_seq: int
    ) -> list[tuple[int, bytes | None]]:
        """Input not written yet, after ``after_seq``, in order: (seq, data or None: close)."""
        ...

    async def input_written(self, process_id: str, upto_seq: int) -> None:
        """Forget the input up to ``upto_seq``: it reached the command's stdin."""
        ...

    async def add_control(
        self, process_id: str, token: int, status: Status, action: str, argument: int | None
    ) -> int | None:
        """Ask the owner of claim ``token`` for ``action`` while the process is ``status``:
        the request's number, or None (nothing stored) when it is not."""
        ...

    async def pending_controls(self, claim: Claim) -> list[tuple[int, str, int | None]]:
        """The requests not done yet for ``claim``: (seq, action, argument), in order."""
        ...

    async def control_done(
        self, claim: Claim, seq: int, result: str | None, change: tuple[Status, Status] | None
    ) -> str | None:
        """Record request ``seq`` done (``result``: None, or why it could not be), after the
        status ``change`` (before, after) it makes, compare-and-set; the result recorded."""
        ...

    async def control_result(self, seq: int) -> tuple[bool, str | None] | None:
        """(done, result) of request ``seq``; None if it is gone (pruned)."""
        ...

    async def read_output(
        self,
        process_id: str,
        after_seq: int = -1,
        stream: int | None = None,
        limit: int | None = None,
    ) -> list[Chunk]:
        """The chunks after ``after_seq``, oldest first: all of them, or only those of
        ``stream`` (1 stdout, 2 stderr); at most ``limit`` of them when given."""
        ...

    async def read_output_before(
        self, process_id: str, before_seq: int | None, stream: int | None, limit: int
    ) -> list[Chunk]:
        """Up to ``limit`` chunks before ``before_seq`` (None: the newest), newest first, of
        ``stream`` when given: a page of the log read backwards."""
        ...

    async def last_output_seq(self, process_id: str) -> int: ...

    async def prune(self, finished_before: float) -> int: ...

    async def running_owned_by(self, owner: str) -> dict[str, tuple[int, int]]:
        """The processes ``owner`` runs (or holds suspended): their claim token and their
        ``controls`` counter (which moves with every request made of the owner)."""
        ...

    async def clock(self) -> float:
        """Now, in epoch seconds, on the clock leases are judged by (the database's, for a
        server database shared by several hosts)."""
        ...

    async def change_counter(self) -> int:
        """A number that changes whenever another connection commits a change."""
        ...

    def changed(self) -> dict[str, str] | None:
        """The processes other connections changed since the last call (id -> status), or
        None when the store cannot tell (then any process may have changed). Drains."""
        ...

    async def register_manager(self, manager: ManagerRecord) -> None: ...

    async def heartbeat(self, manager_id: str, now: float, boottime: float) -> bool:
        """Renew a manager's lease; False if its row is gone (it was presumed dead)."""
        ...

    async def unregister_manager(self, manager_id: str) -> None: ...

    async def set_manager_runs(self, manager_id: str, runs: bool) -> None:
        """Record whether a manager takes work now (a draining worker says it does not)."""
        ...

    async def list_managers(self) -> list[ManagerRecord]: ...

    async def running_not_owned_by(self, owner: str) -> list[ProcessRecord]:
        """Running processes owned by anyone but ``owner`` (recovery candidates)."""
        ...

    async def check(self) -> list[str]:
        """Problems found by an integrity check (empty when the store is sound)."""
        ...
