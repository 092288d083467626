"""Steps that pause the process."""

from __future__ import annotations

import os
from typing import Any

from aiobgproc import Interrupt, InterruptingStep


class Review(InterruptingStep):
    """Always pauses after it returns."""

    def __init__(self, note: str = "please review") -> None:
        self.note = note

    def execute(self, data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "note": self.note, "os_pid": os.getpid()}


class AsyncReview(InterruptingStep):
    async def execute(self, data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "note": "async review"}


def pause_if_asked(data: dict[str, Any]) -> dict[str, Any] | Interrupt:
    """Pauses only when the input says so: ``Interrupt(data)`` is returned conditionally."""
    if data.get("pause"):
        return Interrupt({**data, "paused": True, "os_pid": os.getpid()})
    return {**data, "paused": False}
