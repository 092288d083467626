"""The one seam for time: wall-clock timestamps for records, monotonic time for deadlines."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def wall() -> float:
    """Seconds since the epoch, for timestamps that are stored and shown."""
    return time.time()


def monotonic() -> float:
    """Seconds on a clock that wall-clock jumps do not move, for deadlines."""
    return time.monotonic()


def to_datetime(timestamp: float | None) -> datetime | None:
    """A stored epoch timestamp as a timezone-aware UTC datetime."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC)
