"""A number of seconds checked: the one place every delay, interval and backoff of the
API is read (InvalidSpecError otherwise). Low in the layers: _retry and _spec use it."""

from __future__ import annotations

import math
from datetime import timedelta

from .errors import InvalidSpecError


def check_seconds(
    value: object, what: str, *, at_least: float = 0.0, at_most: float = math.inf
) -> float:
    """A finite number of seconds (an int, a float or a ``timedelta``) within
    [at_least, at_most]: delays, intervals, backoff factors."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise InvalidSpecError(f"{what} must be a number of seconds, not {value!r}")
    try:
        number = float(seconds)
    except OverflowError:  # an int past a float's range
        raise InvalidSpecError(f"{what} is too large: {value!r}") from None
    if not math.isfinite(number) or not at_least <= number <= at_most:
        raise InvalidSpecError(
            f"{what} must be a finite number from {at_least:g} to {at_most:g}, not {value!r}"
        )
    return number
