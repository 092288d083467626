"""The options a Manager takes, checked once: every bad value is an InvalidSpecError."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import _spec
from ._os import zygote as _warm
from ._start_options import check_queue_names
from .errors import InvalidSpecError


@dataclass(frozen=True, slots=True)
class ManagerOptions:
    runs_processes: bool
    concurrency: int
    max_jobs: int | None
    max_attempts: int | None
    grace_period: float
    poll_interval: float
    lease: float
    error_log: str | None
    max_output_bytes: int | None
    python: str | None
    warm: bool
    """Whether executors are forked from a warm executor (asked for, and available here)."""
    preload: tuple[str, ...]
    queues: tuple[str, ...] | None = None
    """The queues this manager runs (None: every queue)."""
    reuse_executors: int = 1
    """How many processes one forked executor runs before it exits (1: a fresh one each)."""


class OptionsView:
    """A Manager's options, read-only: the scheduler and the watcher read them, and a value
    changed on a running manager would take effect in some places and not in others."""

    _options: ManagerOptions

    @property
    def concurrency(self) -> int:
        return self._options.concurrency

    @property
    def runs_processes(self) -> bool:
        return self._options.runs_processes

    @property
    def error_log(self) -> str | None:
        return self._options.error_log

    @property
    def max_output_bytes(self) -> int | None:
        return self._options.max_output_bytes

    @property
    def grace_period(self) -> float:
        return self._options.grace_period

    @property
    def poll_interval(self) -> float:
        return self._options.poll_interval

    @property
    def python(self) -> str | None:
        return self._options.python

    @property
    def lease(self) -> float:
        return self._options.lease

    @property
    def max_attempts(self) -> int | None:
        return self._options.max_attempts

    @property
    def max_jobs(self) -> int | None:
        return self._options.max_jobs

    @property
    def warm(self) -> bool:
        return self._options.warm

    @property
    def preload(self) -> tuple[str, ...]:
        return self._options.preload

    @property
    def reuse_executors(self) -> int:
        return self._options.reuse_executors


def check_options(
    *,
    concurrency: Any,
    run: Any,
    error_log: Any,
    max_output_bytes: Any,
    grace_period: Any,
    poll_interval: Any,
    python: Any,
    lease: Any,
    max_attempts: Any,
    max_jobs: Any,
    warm: Any,
    preload: Sequence[str],
    queues: Any = None,
    reuse_executors: Any = 1,
) -> ManagerOptions:
    if concurrency is None:
        concurrency = os.cpu_count() or 1
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidSpecError(f"concurrency must be a whole number >= 1, not {concurrency!r}")
    if max_output_bytes is not None and (
        isinstance(max_output_bytes, bool)
        or not isinstance(max_output_bytes, int)
        or max_output_bytes < 0
    ):
        raise InvalidSpecError("max_output_bytes must be a whole number >= 0 or None")
    grace = _spec.check_timeout(grace_period, "grace_period")
    poll = _spec.check_timeout(poll_interval, "poll_interval")
    lease_s = _spec.check_timeout(lease, "lease")
    if grace is None or poll is None or poll <= 0 or lease_s is None or lease_s <= 0:
        raise InvalidSpecError("grace_period, poll_interval and lease must be finite and positive")
    if (
        isinstance(reuse_executors, bool)
        or not isinstance(reuse_executors, int)
        or reuse_executors < 1
    ):
        raise InvalidSpecError(
            f"reuse_executors must be a whole number >= 1, not {reuse_executors!r}"
        )
    for name, value in (("max_attempts", max_attempts), ("max_jobs", max_jobs)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise InvalidSpecError(f"{name} must be a whole number >= 1 or None")
    for name, flag in (("run", run), ("warm", warm)):
        if not isinstance(flag, bool) and not (name == "warm" and flag is None):
            raise InvalidSpecError(f"{name} must be True or False, not {flag!r}")
    if error_log is not None:
        if not isinstance(error_log, str | os.PathLike):
            raise InvalidSpecError(f"error_log must be a path or None, not {error_log!r}")
        error_log = _spec.check_text(os.fspath(error_log), "error_log")
    if python is not None:
        # Checked as a program only where it is run: a client (run=False) starts nothing.
        check = _spec.check_program if run else _spec.check_text
        python = check(python, "python")
    preload = _spec.check_module_names(preload, "preload")
    if warm is None:
        warm = os.environ.get("AIOBGPROC_WARM", "1").lower() not in ("0", "false", "no")
    return ManagerOptions(
        runs_processes=run,
        concurrency=concurrency,
        max_jobs=max_jobs,
        max_attempts=max_attempts,
        grace_period=grace,
        poll_interval=poll,
        lease=lease_s,
        error_log=error_log,
        max_output_bytes=max_output_bytes,
        python=python,
        warm=bool(warm) and _warm.available(),
        preload=tuple(preload),
        queues=check_queue_names(queues),
        reuse_executors=reuse_executors,
    )
