"""The Manager's queue settings: limits and pauses, stored, so that they hold for every
manager and worker on the store (and what ``queues()`` shows)."""

from __future__ import annotations

from ._start_options import check_queue
from .errors import InvalidSpecError
from .models import QueueInfo
from .store import Store


class QueueControls:
    """Mixed into Manager: it provides ``_store``, ``_check_open`` and ``_queue_gained``."""

    _store: Store

    def _check_open(self) -> None:
        raise NotImplementedError

    def _queue_gained(self) -> None:
        raise NotImplementedError

    async def set_queue_limit(self, queue: str, limit: int | None) -> None:
        """At most ``limit`` processes of ``queue`` run at once on the whole store, whatever
        the number of managers (None: no limit). Each manager's ``concurrency`` still holds."""
        self._check_open()
        name = check_queue(queue)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise InvalidSpecError(
                f"a queue limit must be a whole number >= 1 or None, not {limit!r}"
            )
        if limit is not None and not 1 <= limit <= 2**31 - 1:
            raise InvalidSpecError(f"a queue limit must be >= 1 (and fit 32 bits), not {limit!r}")
        await self._store.set_queue(name, limit=limit)
        self._queue_gained()

    async def pause_queue(self, queue: str) -> None:
        """Claim none of ``queue``'s processes (those running go on); start() still queues
        into it."""
        self._check_open()
        await self._store.set_queue(check_queue(queue), paused=True)

    async def resume_queue(self, queue: str) -> None:
        """Claim ``queue``'s processes again."""
        self._check_open()
        await self._store.set_queue(check_queue(queue), paused=False)
        self._queue_gained()

    async def queues(self) -> list[QueueInfo]:
        """Every queue that has a setting or a queued or running process, by name."""
        self._check_open()
        return [
            QueueInfo(queue.name, queue.limit, queue.paused, queue.queued, queue.running)
            for queue in await self._store.list_queues()
        ]
