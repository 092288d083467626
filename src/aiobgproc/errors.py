"""The exceptions aiobgproc raises, and the error type names it records.

Every error derives from :class:`AiobgprocError`, so one ``except`` catches them all::

    AiobgprocError
    ├── ProcessNotFoundError   (also LookupError)  unknown process id
    ├── ScheduleNotFoundError  (also LookupError)  unknown schedule name
    ├── InvalidStateError                          e.g. proceed() on a process that is not paused
    │   └── ProcessInterruptedError                execute_steps/run_steps reached a pausing
    │                                              step (carries ``step`` and ``output``)
    ├── InvalidSpecError       (also ValueError)   bad argv, step target, timeout, data or
    │                                              option; raised before anything is stored
    ├── StoreError                                 the store cannot be opened, read or written
    ├── StepOutputError     (also TypeError, ValueError) a step returned what JSON cannot carry
    │                                              (raised by execute_steps/run_steps; in a
    │                                              manager it makes the process ``error``)
    └── WaitTimeoutError       (also TimeoutError) wait_for() ran out of time

A step that fails never raises in the caller: the process becomes ``error`` and
``info.error`` holds the exception's type, message and traceback. The ``info.error.type``
names aiobgproc writes itself are those of :class:`ErrorType`; a failing step's own
exception is recorded under its own class name.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class AiobgprocError(Exception):
    """Root of every error raised by aiobgproc."""


class ProcessNotFoundError(AiobgprocError, LookupError):
    """No process with this id exists in the store."""

    def __init__(self, process_id: object) -> None:
        super().__init__(f"no process with id {process_id!r}")
        self.process_id = process_id


class ScheduleNotFoundError(AiobgprocError, LookupError):
    """No schedule with this name exists in the store."""

    def __init__(self, name: object) -> None:
        super().__init__(f"no schedule named {name!r}")
        self.name = name


class InvalidStateError(AiobgprocError):
    """The process is not in a state that allows the operation."""


class ProcessInterruptedError(InvalidStateError):
    """``execute_steps``/``run_steps`` reached a step that pauses the process."""

    def __init__(self, step: str, output: dict[str, Any]) -> None:
        super().__init__(
            f"step {step!r} interrupts the process; run it with a Manager to pause and"
            " proceed, or pass on_interrupt='continue'"
        )
        self.step = step
        self.output = output


class InvalidSpecError(AiobgprocError, ValueError):
    """A command, process, step, timeout or data value is not acceptable."""


class StoreError(AiobgprocError):
    """The store cannot be opened, read or written."""


class StepOutputError(AiobgprocError, TypeError, ValueError):
    """A step returned something other than a JSON-serialisable dict (or None)."""


class WaitTimeoutError(AiobgprocError, TimeoutError):
    """``wait_for`` gave up waiting; the process itself keeps running."""

    def __init__(self, process_id: str, timeout: float) -> None:
        super().__init__(f"process {process_id} did not stop running within {timeout:g} s")
        self.process_id = process_id
        self.timeout = timeout


class ErrorType:
    """The ``info.error.type`` names that aiobgproc records itself (docs/steps.md and
    docs/guarantees.md say when each is written).

    Plain string constants, not an ``enum.StrEnum``: the executor imports this module, and
    importing ``enum`` would add ~4 ms to every cold executor's start."""

    COMMAND = "CommandError"
    """A command exited with a non-zero code or was killed by a signal."""
    TIMEOUT = "TimeoutError"
    """The process ran past its timeout."""
    STEP_OUTPUT = "StepOutputError"
    """A step returned something JSON cannot carry."""
    EXECUTOR_DIED = "ExecutorDiedError"
    """The executor exited (or was killed) in the middle of a step."""
    EXECUTOR_PROTOCOL = "ExecutorProtocolError"
    """The executor sent a frame the manager cannot read (a step wrote to its channel)."""
    MANAGER_CLOSED = "ManagerClosedError"
    """The manager running a command was closed (a command cannot resume)."""
    MANAGER_LOST = "ManagerLostError"
    """The manager running it was lost (killed, or frozen past its lease)."""
    DEPENDENCY = "DependencyError"
    """A process given in ``start(after=)`` ended ``error``, ``cancelled`` or ``timeout``: this
    one ended without running."""
    INTERNAL = "InternalError"
    """The manager itself failed while running the process (a bug: please report it)."""
