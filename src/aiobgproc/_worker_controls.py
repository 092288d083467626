"""What ``aiobgproc worker`` (cli.cmd_worker) uses of a Manager to drain its queues, stop on a
signal or after ``--max-jobs``; an asyncio daemon that embeds a worker uses them the same way
(docs/scale-out.md)."""

from __future__ import annotations

from ._scheduler import Scheduler


class WorkerControls:
    """Mixed into Manager, which provides ``_scheduler``."""

    _scheduler: Scheduler

    @property
    def jobs_claimed(self) -> int:
        """How many processes this manager has taken since it opened."""
        return self._scheduler.jobs_claimed

    @property
    def exhausted(self) -> bool:
        """True once this manager has claimed ``max_jobs`` processes."""
        return self._scheduler.exhausted

    @property
    def running(self) -> int:
        """How many processes this manager runs right now."""
        return len(self._scheduler.runs)

    async def stop_claiming(self) -> None:
        """Take no more queued processes (running ones go on), and record that in the store,
        so that `aiobgproc run` knows to start a worker of its own."""
        await self._scheduler.stop_claiming()

    async def resume_claiming(self) -> None:
        await self._scheduler.resume_claiming()

    async def queue_is_empty(self) -> bool:
        """Whether no process waits in the queue (of the whole store)."""
        return await self._scheduler.queue_is_empty()

    async def wait_idle(self, *, burst: bool = True) -> None:
        """Return once this manager runs nothing and will take no more work: the queue was
        found empty (when ``burst``) or ``max_jobs`` processes were claimed."""
        await self._scheduler.wait_idle(burst=burst)
