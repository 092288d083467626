"""Reused executors (``Manager(reuse_executors=N)``): an executor forked by the warm executor
runs up to N processes one after another, as Celery's ``max_tasks_per_child`` and huey's
warm workers do. Between two runs it waits here, idle, its stdout and stderr on /dev/null.

Each run still gets its own pipes (sent to the executor with its job), environment,
directory, timeout and cancel; a run that does not end with the executor's last word
(timeout, cancel, a crash, a lost claim, the manager closing) ends the executor and its
tree as it would end a fresh one, and the next run gets a fresh executor.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._wire.channel import ExecutorChannel
from .spawn import ProcessHandle


@dataclass(eq=False, slots=True)
class ReusableExecutor:
    process: ProcessHandle
    started: float | None
    """Its OS create time (the same for every run it takes)."""
    channel: ExecutorChannel
    jobs_left: int
    """How many more jobs it may take after the one it runs (0: it exits after that one)."""
    generation: int
    """The warm executor it was forked from (Zygote.generation): after a restart, the new
    one's environment is what runs are told as a difference from."""

    @property
    def usable(self) -> bool:
        return self.process.returncode is None and not self.channel.at_end


class ExecutorPool:
    """The idle reused executors of one manager, the last one back first (its memory is the
    warmest)."""

    def __init__(self, jobs_per_executor: int) -> None:
        self.jobs_per_executor = jobs_per_executor
        self._idle: list[ReusableExecutor] = []
        self._closed = False

    def take(self, generation: int) -> ReusableExecutor | None:
        """An idle executor of the warm executor of ``generation`` for the next run (counted
        as one of its jobs), or None."""
        while self._idle:
            executor = self._idle.pop()
            if executor.usable and executor.generation == generation:
                executor.jobs_left -= 1
                return executor
            executor.channel.close()  # died while idle, or of an earlier warm executor
        return None

    def give_back(self, executor: ReusableExecutor) -> None:
        if self._closed or executor.jobs_left <= 0 or not executor.usable:
            executor.channel.close()  # an idle executor whose channel closes exits
        else:
            self._idle.append(executor)

    def close(self) -> None:
        """Let every idle executor go (each exits when it reads the end of its channel)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for executor in idle:
            executor.channel.close()
