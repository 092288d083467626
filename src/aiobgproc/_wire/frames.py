"""Executor frames: a 4-byte big-endian length and a ``marshal`` payload, a tuple whose
first item names the message (the whole conversation is in aiobgproc._wire's docstring).

Plain functions build each frame, on both sides; the manager reads what the executor sends
with ``_wire.messages.parse``. marshal is built in and this module imports nothing else, so
the executor speaks it without any import cost.
"""

from __future__ import annotations

import marshal

TYPE_CHECKING = False  # typing costs ~10 ms of executor start-up
if TYPE_CHECKING:
    from typing import Any

    from .job import Job

HEADER = 4
MAX_FRAME = 1 << 30

# manager -> executor
JOB = "job"
GO = "go"
RUN = "run"
ACK = "ack"
EXIT = "exit"
NEXT = "next"
# executor -> manager
START = "start"
PROGRESS = "progress"
DONE = "done"
INTERRUPT = "interrupt"
ERROR = "error"
IDLE = "idle"


def encode(message: tuple[Any, ...]) -> bytes:
    payload = marshal.dumps(message)
    return len(payload).to_bytes(HEADER, "big") + payload


def decode(payload: bytes) -> tuple[Any, ...]:
    message = marshal.loads(payload)
    if not isinstance(message, tuple) or not message or not isinstance(message[0], str):
        raise ValueError("malformed frame")
    return message


# -- manager -> executor ---------------------------------------------------------------------


def job(spec: Job) -> tuple[Any, ...]:
    """Begin: the job of a spawned executor (process id, attempt, sys.path, steps, the step
    to start at, the input)."""
    return (JOB, spec)


def go() -> tuple[Any, ...]:
    """Begin: to an executor forked with its job."""
    return (GO,)


def run(changed: dict[str, str], removed: list[str], cwd: str | None, spec: Job) -> tuple[Any, ...]:
    """Begin: to an executor forked without its job (too big for the fork request); its
    environment as a difference from the warm executor's, its directory, the job."""
    return (RUN, changed, removed, cwd, spec)


def next_job(
    changed: dict[str, str], removed: list[str], cwd: str | None, spec: Job
) -> tuple[Any, ...]:
    """Begin the next job: to a reused executor (it said "idle"), with the write ends of the
    new run's stdout and stderr pipes as SCM_RIGHTS fds; the environment as a difference
    from the warm executor's, the directory (None: the warm executor's), the job."""
    return (NEXT, changed, removed, cwd, spec)


def ack() -> tuple[Any, ...]:
    """A step's output is committed: go on with the next step."""
    return (ACK,)


def exit_now() -> tuple[Any, ...]:
    """Stop at once (the step's output could not be stored, or the claim was lost)."""
    return (EXIT,)


# -- executor -> manager ---------------------------------------------------------------------


def start(index: int, name: str) -> tuple[Any, ...]:
    """Step ``index`` begins (not sent for the first one: the manager recorded it)."""
    return (START, index, name)


def progress(fraction: float, message: str | None) -> tuple[Any, ...]:
    return (PROGRESS, fraction, message)


def done(index: int, name: str, output: bytes) -> tuple[Any, ...]:
    """Step ``index`` returned ``output`` (marshal bytes of its dict)."""
    return (DONE, index, name, output)


def interrupt(index: int, name: str, output: bytes) -> tuple[Any, ...]:
    """Step ``index`` returned ``output`` and the process pauses."""
    return (INTERRUPT, index, name, output)


def idle() -> tuple[Any, ...]:
    """A reused executor ended its job: it let go of the run's pipes (its stdout and stderr
    are /dev/null until the next job) and waits for ("next", ...)."""
    return (IDLE,)


def error(index: int, name: str, error_type: str, message: str, traceback: str) -> tuple[Any, ...]:
    """Step ``index`` raised."""
    return (ERROR, index, name, error_type, message, traceback)
