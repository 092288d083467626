"""Retries: a Retry checked into the form a spec stores, and what happens after a failed run.

A failed run that its policy names (``on``) and that has attempts left goes back to the
queue to wait (``queued``, ``run_at`` set: durable, any manager runs it when due); the
failure is appended to the process's ``failures`` and shown in ``info.error`` meanwhile.
A step process retries the failing step alone (the steps before it stay committed), with
the step's policy (``Step(retry=)``, else the ``Process``'s) and the step's own budget: its
runs are its failures so far plus one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from ._seconds import check_seconds
from .errors import InvalidSpecError
from .models import Retry, Status

RETRY_ON: Final = ("error", "timeout")
MAX_ATTEMPTS: Final = 10_000
_MAX_DELAY_S: Final = 10 * 365 * 86400.0  # ten years: beyond that a retry is no retry

_MESSAGE_CHARS: Final = 4000  # of each failure's message kept in ``failures``
_FAILED_AS: Final = {Status.ERROR: "error", Status.TIMEOUT: "timeout"}


def _seconds(value: object, what: str, *, at_least: float) -> float:
    return check_seconds(value, what, at_least=at_least, at_most=_MAX_DELAY_S)


def check_retry(retry: object, what: str = "retry") -> dict[str, Any] | None:
    """A Retry (or None) as the JSON a spec stores; InvalidSpecError if it is not one."""
    if retry is None:
        return None
    if not isinstance(retry, Retry):
        raise InvalidSpecError(f"{what} must be a Retry or None, not {type(retry).__name__}")
    attempts = retry.attempts
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        raise InvalidSpecError(f"{what}: attempts must be a whole number, not {attempts!r}")
    if not 1 <= attempts <= MAX_ATTEMPTS:
        raise InvalidSpecError(f"{what}: attempts must be from 1 to {MAX_ATTEMPTS}, not {attempts}")
    on = retry.on
    names = [on] if isinstance(on, str) else on
    if not isinstance(names, Iterable) or isinstance(names, bytes | Mapping):
        raise InvalidSpecError(f"{what}: on must name failures ({', '.join(RETRY_ON)})")
    checked: list[str] = []
    for name in names:
        if name not in RETRY_ON:
            raise InvalidSpecError(
                f"{what}: on takes {' and '.join(repr(item) for item in RETRY_ON)}, not {name!r}"
            )
        if name not in checked:
            checked.append(name)
    if not checked:
        raise InvalidSpecError(f"{what}: on must name at least one of {', '.join(RETRY_ON)}")
    return {
        "attempts": attempts,
        "delay": _seconds(retry.delay, f"{what}: delay", at_least=0.0),
        "backoff": _seconds(retry.backoff, f"{what}: backoff", at_least=1.0),
        "max_delay": _seconds(retry.max_delay, f"{what}: max_delay", at_least=0.0),
        "on": checked,
    }


def wait_before_retry(policy: Mapping[str, Any], failed_runs: int) -> float:
    """``min(delay * backoff ** (n - 1), max_delay)`` after the n-th failed run."""
    try:
        wait = float(policy["delay"]) * float(policy["backoff"]) ** (failed_runs - 1)
    except OverflowError:
        wait = math.inf
    return min(wait, float(policy["max_delay"]))


def policy_of(spec: Mapping[str, Any], step_index: int) -> Mapping[str, Any] | None:
    """The retry policy of a command, or of a process's step ``step_index`` (its own, else
    the process's)."""
    if spec.get("kind") != "process":
        return spec.get("retry")
    steps: Sequence[Mapping[str, Any]] = spec.get("steps", ())
    own = steps[step_index].get("retry") if 0 <= step_index < len(steps) else None
    return own if own is not None else spec.get("retry")


def retry_wait(
    spec: Mapping[str, Any],
    step_index: int,
    step: str | None,
    status: Status,
    failures: Sequence[Mapping[str, Any]],
) -> float | None:
    """Seconds to wait before the next run, if the run that just failed with ``status`` is
    to be retried (``failures``: the earlier ones); None when the process ends here."""
    policy = policy_of(spec, step_index)
    name = _FAILED_AS.get(status)
    if policy is None or name is None or name not in policy["on"]:
        return None
    failed_runs = 1 + sum(1 for failure in failures if failure.get("step") == step)
    if failed_runs >= int(policy["attempts"]):
        return None
    return wait_before_retry(policy, failed_runs)


def failure_entry(
    attempt: int, step: str | None, status: Status, error: Mapping[str, Any] | None, at: float
) -> dict[str, Any]:
    """What ``failures`` keeps of a failed run (its traceback is only in ``info.error``)."""
    error = error or {}
    return {
        "attempt": attempt,
        "step": step,
        "status": str(status),
        "type": error.get("type"),
        "message": str(error.get("message", ""))[:_MESSAGE_CHARS],
        "at": at,
    }
