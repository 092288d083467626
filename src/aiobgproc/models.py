"""What users describe (Command, Process, Step) and what they get back (ProcessInfo)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final


class Status(enum.StrEnum):
    """Where a process is in its life.

    ``queued`` → ``running`` → (``interrupted`` → ``queued`` → ``running`` ...) →
    one of the terminal states ``finished``, ``error``, ``cancelled``, ``timeout``.
    A running process may be ``suspended`` (its whole tree stopped) and back to ``running``.
    """

    QUEUED = "queued"
    RUNNING = "running"
    SUSPENDED = "suspended"
    INTERRUPTED = "interrupted"
    FINISHED = "finished"
    ERROR = "error"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES: frozenset[Status] = frozenset(
    {Status.FINISHED, Status.ERROR, Status.CANCELLED, Status.TIMEOUT}
)
"""Statuses a process never leaves."""

LIVE_STATUSES: frozenset[Status] = frozenset({Status.RUNNING, Status.SUSPENDED})
"""Statuses of a process that has an owner and OS processes: running, or stopped by suspend."""

STOPPED_STATUSES: frozenset[Status] = TERMINAL_STATUSES | {Status.INTERRUPTED}
"""Statuses at which ``wait_for`` returns: terminal, or paused for ``proceed``."""


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why a process failed: the exception type, its message, the traceback and the step."""

    type: str
    message: str
    traceback: str | None = None
    step: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ErrorInfo:
        return cls(
            type=str(raw.get("type", "")),
            message=str(raw.get("message", "")),
            traceback=raw.get("traceback"),
            step=raw.get("step"),
        )


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A snapshot of one process, as stored. Frozen: ask ``Manager.info`` for a fresh one."""

    id: str
    kind: str
    """``"command"`` or ``"process"``."""
    status: Status
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output: dict[str, Any] | None = None
    error: ErrorInfo | None = None
    step: str | None = None
    """Name of the current step (or the last one that ran)."""
    steps_done: int = 0
    steps_total: int = 0
    progress: float | None = None
    progress_message: str | None = None
    exit_code: int | None = None
    os_pid: int | None = None
    """The executor's (or command's) OS process id, while it runs."""
    attempts: int = 0
    """How many times the process was started running (more than one after a recovery)."""
    timeout: float | None = None
    output_size: int = 0
    """Bytes of output the process produced, including any beyond the stored cap."""
    output_truncated: bool = False
    """True when output beyond the manager's ``max_output_bytes`` was dropped."""
    label: str | None = None
    """The short human name given to ``start``."""
    meta: dict[str, Any] | None = None
    """The JSON object given to ``start`` as ``meta``, as given."""
    key: str | None = None
    """The idempotency key given to ``start``."""
    queue: str = "default"
    priority: int = 0
    run_at: datetime | None = None
    """Not claimed before this time (``start(delay=)`` or ``start(at=)``)."""
    after: tuple[str, ...] = ()
    """Processes that must all finish before this one runs."""
    command: tuple[str, ...] | None = None
    """A command's argv, as it is run (None for a step process)."""
    steps: tuple[str, ...] = ()
    """A step process's step names, in order (``()`` for a command)."""
    restarted_from: str | None = None
    """The process this one is a restart of (``Manager.restart``)."""
    failures: tuple[dict[str, Any], ...] = ()
    """Each failed run that was retried, oldest first: ``attempt``, ``step``, ``status``
    (``error`` or ``timeout``), ``type``, ``message`` and ``at`` (a UTC datetime; ISO 8601
    in ``to_dict()``)."""

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ISO-8601 times, the status as a string."""
        result: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, ErrorInfo):
                value = value.to_dict()
            elif isinstance(value, Status):
                value = value.value
            elif isinstance(value, tuple):
                value = [_json_ready(item) for item in value]
            result[item.name] = value
        return result


def _json_ready(item: Any) -> Any:
    if isinstance(item, dict):
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in item.items()
        }
    return item


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """A queue as ``Manager.queues()`` shows it: its stored settings and what it holds now."""

    name: str
    limit: int | None
    """At most this many of its processes run at once on the whole store (None: no limit)."""
    paused: bool
    """Its processes are not claimed (those running go on)."""
    queued: int
    running: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of the store's event log (``Manager.events``): a process's status change,
    or the start of one of its steps (``status`` running, ``step`` its name)."""

    seq: int
    """Increases with every event, in commit order; ``events(since=seq)`` resumes after it."""
    process_id: str
    status: Status
    step: str | None
    at: datetime
    """When the change was committed (UTC)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "process_id": self.process_id,
            "status": self.status.value,
            "step": self.step,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """A schedule as ``Manager.schedules()`` shows it."""

    name: str
    cron: str | None
    every: float | None
    """Seconds between runs (None for a cron schedule)."""
    next_run_at: datetime
    last_run_at: datetime | None
    last_process_id: str | None

    def to_dict(self) -> dict[str, Any]:
        result = dataclasses.asdict(self)
        for name in ("next_run_at", "last_run_at"):
            if result[name] is not None:
                result[name] = result[name].isoformat()
        return result


@dataclass(frozen=True, slots=True, init=False)
class Retry:
    """Run a failed command, process or step again: ``attempts`` runs in all (1: no retry),
    waiting ``min(delay * backoff ** (n - 1), max_delay)`` seconds after the n-th failed run,
    for the failures ``on`` names (``"error"``, ``"timeout"``). Checked by ``Manager.start``,
    which raises ``InvalidSpecError``."""

    attempts: Any
    delay: Any
    backoff: Any
    max_delay: Any
    on: Any

    def __init__(
        self,
        attempts: int = 3,
        *,
        delay: float = 1.0,
        backoff: float = 2.0,
        max_delay: float = 300.0,
        on: Sequence[str] | str = ("error", "timeout"),
    ) -> None:
        object.__setattr__(self, "attempts", attempts)
        object.__setattr__(self, "delay", delay)
        object.__setattr__(self, "backoff", backoff)
        object.__setattr__(self, "max_delay", max_delay)
        # A tuple, as documented (one name given alone too); anything else is kept as given
        # for start() to refuse.
        kept = _as_list(on) if not isinstance(on, str) else [on]
        object.__setattr__(self, "on", tuple(kept) if isinstance(kept, list) else on)


PIPE: Final = -1
"""``Command(stdin=PIPE)``: keep the command's stdin open for ``Manager.send_input`` (the
value of ``subprocess.PIPE``, which is accepted too)."""


@dataclass(frozen=True, slots=True, init=False)
class Command:
    """An operating-system command to run in the background.

    ``argv`` is a sequence of strings, run without a shell. A plain string is only accepted
    with ``shell=True`` (then it runs as ``/bin/sh -c STRING``). ``env`` adds to the inherited
    environment. ``stdin``: None gives the command /dev/null, ``bytes`` are written to its
    stdin (then closed), ``PIPE`` keeps it open for ``send_input``. Checked by
    ``Manager.start``, which raises ``InvalidSpecError``.
    """

    argv: Any
    cwd: str | None
    env: Mapping[str, str] | None
    shell: bool
    timeout: float | None
    retry: Retry | None
    stop_signal: Any
    """The signal a timeout or cancel sends first, before SIGKILL after the grace period."""
    stdin: Any

    def __init__(
        self,
        argv: Sequence[str] | str,
        *,
        cwd: str | Any | None = None,
        env: Mapping[str, str] | None = None,
        shell: bool = False,
        timeout: float | None = None,
        retry: Retry | None = None,
        stop_signal: int = 15,  # signal.SIGTERM (models imports nothing it need not)
        stdin: bytes | int | None = None,
    ) -> None:
        # Kept as given: start() validates, so a bad spec fails there and nothing is stored.
        object.__setattr__(self, "argv", argv if isinstance(argv, str) else _as_list(argv))
        object.__setattr__(self, "cwd", cwd)
        object.__setattr__(self, "env", env)
        object.__setattr__(self, "shell", shell)
        object.__setattr__(self, "timeout", timeout)
        object.__setattr__(self, "retry", retry)
        object.__setattr__(self, "stop_signal", stop_signal)
        object.__setattr__(self, "stdin", stdin)


@dataclass(frozen=True, slots=True, init=False)
class Step:
    """One Python step: ``Step("package.module:name", *args, interrupt=False, **kwargs)``.

    The target is a class (built with ``cls(*args, **kwargs)``, then ``execute(data)`` is
    called) or a function (called as ``fn(data, *args, **kwargs)``); either may be async.
    An importable callable may be given instead of a string: its import path is stored.
    """

    target: str | Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    interrupt: bool
    retry: Retry | None

    def __init__(
        self,
        target: str | Callable[..., Any],
        *args: Any,
        interrupt: bool = False,
        retry: Retry | None = None,
        **kwargs: Any,
    ) -> None:
        object.__setattr__(self, "target", _import_path(target))
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "kwargs", dict(kwargs))
        object.__setattr__(self, "interrupt", interrupt)
        object.__setattr__(self, "retry", retry)


@dataclass(frozen=True, slots=True, init=False)
class Process:
    """Python steps run one after another in a separate executor process.

    ``steps`` is a mapping of unique names to :class:`Step` (order kept) or a sequence of
    steps (named ``"0"``, ``"1"``, ...); ``process.steps`` is that ordered dict. Each step's
    output is the next one's input.
    """

    steps: Any
    timeout: float | None
    cwd: str | Any | None
    env: Mapping[str, str] | None
    retry: Retry | None

    def __init__(
        self,
        steps: Mapping[str, Step] | Sequence[Step],
        *,
        timeout: float | None = None,
        cwd: str | Any | None = None,
        env: Mapping[str, str] | None = None,
        retry: Retry | None = None,
    ) -> None:
        if isinstance(steps, Mapping):
            items = list(steps.items())
            # A mapping whose keys repeat (a custom one can) stays a list: start() says which.
            names = {name for name, _ in items}
            kept: Any = dict(items) if len(names) == len(items) else items
        elif isinstance(steps, str | bytes):
            kept = steps
        else:
            listed = _as_list(steps)
            kept = (
                {str(index): step for index, step in enumerate(listed)}
                if isinstance(listed, list)
                else listed
            )
        object.__setattr__(self, "steps", kept)
        object.__setattr__(self, "timeout", timeout)
        object.__setattr__(self, "cwd", cwd)
        object.__setattr__(self, "env", env)
        object.__setattr__(self, "retry", retry)

    @property
    def step_names(self) -> list[str]:
        return list(self.steps) if isinstance(self.steps, dict) else []


def _import_path(target: Any) -> Any:
    """A module-level function or class becomes its "module:qualname" path; anything else is
    kept as given (start() checks it and explains what is wrong)."""
    if isinstance(target, str) or not callable(target):
        return target
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        return target
    return f"{module}:{qualname}"


def _as_list(value: Any) -> Any:
    """A list copy of an iterable, or the value itself when it is not one (start() rejects it)."""
    try:
        return list(value)
    except TypeError:
        return value
