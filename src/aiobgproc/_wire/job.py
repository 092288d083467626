"""The shapes of what is stored for a process and sent to its executor, as TypedDicts
(checked by mypy; at run time they are the plain dicts JSON and marshal carry). The child
modules import them only for type checking: ``typing`` costs an executor ~10 ms."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict


class StepSpec(TypedDict):
    """One step as stored and as the executor runs it."""

    name: str
    target: str
    """``package.module:qualname``"""
    args: list[Any]
    kwargs: dict[str, Any]
    interrupt: bool
    retry: NotRequired[dict[str, Any]]
    """Its own retry policy (_retry.check_retry's form), when it has one."""


class CommandSpec(TypedDict):
    """A command as stored: the argv exactly as it will be executed."""

    kind: Literal["command"]
    argv: list[str]
    cwd: str | None
    env: dict[str, str] | None
    retry: NotRequired[dict[str, Any]]
    stop_signal: NotRequired[int]
    """What a timeout or cancel sends first, when not SIGTERM."""
    stdin: NotRequired[Literal["pipe"]]
    """Command(stdin=PIPE): open for send_input."""
    stdin_data: NotRequired[str]
    """Command(stdin=bytes): the bytes (base64), written to each run's stdin, then closed."""


class ProcessSpec(TypedDict):
    """A process as stored: its steps, and where start() found them."""

    kind: Literal["process"]
    steps: list[StepSpec]
    path: list[str]
    """``sys.path`` of the caller of start() (absolute): a worker elsewhere looks there too."""
    cwd: str | None
    env: dict[str, str] | None
    retry: NotRequired[dict[str, Any]]
    """The retry policy of each step that has none of its own."""


WorkSpec = CommandSpec | ProcessSpec


class Job(TypedDict):
    """What an executor is given to run (in a "job" or "run" frame, or with its fork)."""

    process_id: str
    attempt: int
    sys_path: list[str]
    steps: list[StepSpec]
    start: int
    """The index of the first step to run (those before it are committed)."""
    input: dict[str, Any]
    reuse: NotRequired[bool]
    """After this job, say "idle" and wait for the next one (a reused executor) rather than
    exit."""
