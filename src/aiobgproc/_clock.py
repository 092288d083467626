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
    try:
        return datetime.fromtimestamp(timestamp, tz=UTC)
    except (OverflowError, OSError, ValueError):  # beyond years 1-9999: the nearest end
        return (
            datetime.max.replace(tzinfo=UTC) if timestamp > 0 else datetime.min.replace(tzinfo=UTC)
        )
