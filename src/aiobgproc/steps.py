"""What step code imports: Interrupt, InterruptingStep and report_progress.

Kept free of heavy imports: the executor loads it for every process, and every millisecond
of import time is a millisecond of latency per process.
"""

from __future__ import annotations

import math

TYPE_CHECKING = False  # typing costs ~10 ms of executor start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_progress_sink: Callable[[float, str | None], None] | None = None


class Interrupt:
    """Return ``Interrupt(data)`` from a step to pause the process with ``data`` as its output.

    ``Manager.proceed(process_id, more)`` then continues with the next step, whose input is
    ``{**data, **more}``.
    """

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Interrupt({self.data!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Interrupt) and other.data == self.data

    __hash__ = None  # type: ignore[assignment]


class InterruptingStep:
    """Base class for a step that always pauses the process after ``execute`` returns.

    ::

        class Review(InterruptingStep):
            def execute(self, data):
                return {"draft": data["text"]}
    """

    def execute(self, data: dict[str, Any]) -> Any:
        raise NotImplementedError


def report_progress(fraction: float, message: str | None = None) -> None:
    """Report how far the current step is (0.0 to 1.0), shown in ``info.progress``.

    Outside an executor (e.g. under ``execute_steps``) it does nothing.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise TypeError(f"progress must be a number from 0.0 to 1.0, not {fraction!r}")
    if math.isnan(fraction):
        raise ValueError("progress must be a number from 0.0 to 1.0, not NaN")
    value = min(max(float(fraction), 0.0), 1.0)
    if message is not None and not isinstance(message, str):
        message = str(message)
    if _progress_sink is not None:
        _progress_sink(value, message)


def set_progress_sink(sink: Callable[[float, str | None], None] | None) -> None:
    global _progress_sink  # noqa: PLW0603 - one sink per executor process
    _progress_sink = sink
