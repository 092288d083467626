"""aiobgproc: run commands and multi-step Python processes in the background, from asyncio.

::

    from aiobgproc import Manager, Command

    async with Manager("jobs.db") as manager:
        process_id = await manager.start(Command(["ls", "-l"]))
        info = await manager.wait_for(process_id, timeout=60)

Names are loaded lazily, so the step executor (which imports this package) starts fast.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the executor ~10 ms
if TYPE_CHECKING:
    from typing import Any

    from .errors import (
        AiobgprocError,
        InvalidSpecError,
        InvalidStateError,
        ProcessInterruptedError,
        ProcessNotFoundError,
        ScheduleNotFoundError,
        StepOutputError,
        StoreError,
        WaitTimeoutError,
    )
    from .inprocess import execute_steps, run_steps
    from .manager import Manager
    from .models import (
        PIPE,
        TERMINAL_STATUSES,
        Command,
        ErrorInfo,
        Event,
        Process,
        ProcessInfo,
        QueueInfo,
        Retry,
        ScheduleInfo,
        Status,
        Step,
    )
    from .steps import Interrupt, InterruptingStep, report_progress

__version__ = "0.1.0"

_WHERE = {
    "AiobgprocError": "errors",
    "Command": "models",
    "ErrorInfo": "models",
    "Event": "models",
    "Interrupt": "steps",
    "InterruptingStep": "steps",
    "InvalidSpecError": "errors",
    "InvalidStateError": "errors",
    "Manager": "manager",
    "PIPE": "models",
    "Process": "models",
    "ProcessInfo": "models",
    "ProcessInterruptedError": "errors",
    "ProcessNotFoundError": "errors",
    "QueueInfo": "models",
    "Retry": "models",
    "ScheduleInfo": "models",
    "ScheduleNotFoundError": "errors",
    "Status": "models",
    "Step": "models",
    "StepOutputError": "errors",
    "StoreError": "errors",
    "TERMINAL_STATUSES": "models",
    "WaitTimeoutError": "errors",
    "execute_steps": "inprocess",
    "report_progress": "steps",
    "run_steps": "inprocess",
}

__all__ = [
    "AiobgprocError",
    "Command",
    "ErrorInfo",
    "Event",
    "Interrupt",
    "InterruptingStep",
    "InvalidSpecError",
    "InvalidStateError",
    "Manager",
    "PIPE",
    "Process",
    "ProcessInfo",
    "ProcessInterruptedError",
    "ProcessNotFoundError",
    "QueueInfo",
    "Retry",
    "ScheduleInfo",
    "ScheduleNotFoundError",
    "Status",
    "Step",
    "StepOutputError",
    "StoreError",
    "TERMINAL_STATUSES",
    "WaitTimeoutError",
    "__version__",
    "execute_steps",
    "report_progress",
    "run_steps",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'aiobgproc' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
