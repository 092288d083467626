"""The exceptions aiobgproc raises.

Every error derives from :class:`AiobgprocError`, so one ``except`` catches them all::

    AiobgprocError
    ├── ProcessNotFoundError   (also LookupError)  unknown process id
    ├── InvalidStateError                          e.g. proceed() on a process that is not paused
    ├── InvalidSpecError       (also ValueError)   bad argv, step target, timeout or data;
    │                                              raised by start() before anything is stored
    ├── StoreError                                 the store cannot be opened, read or written
    ├── StepOutputError     (also TypeError, ValueError) a step returned what JSON cannot carry
    │                                              (raised by execute_steps/run_steps; in a
    │                                              manager it makes the process ``error``)
    └── WaitTimeoutError       (also TimeoutError) wait_for() ran out of time

A step that fails never raises in the caller: the process becomes ``error`` and
``info.error`` holds the exception's type, message and traceback.
"""

from __future__ import annotations


class AiobgprocError(Exception):
    """Root of every error raised by aiobgproc."""


class ProcessNotFoundError(AiobgprocError, LookupError):
    """No process with this id exists in the store."""

    def __init__(self, process_id: object) -> None:
        super().__init__(f"no process with id {process_id!r}")
        self.process_id = process_id


class InvalidStateError(AiobgprocError):
    """The process is not in a state that allows the operation."""


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
