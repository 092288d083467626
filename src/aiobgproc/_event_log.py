"""Manager.events(): the store's event log, followed live."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Final

from ._changes import ANY, Changes
from ._start_options import check_queue, valid_id
from .errors import InvalidSpecError, ProcessNotFoundError
from .models import Event
from .store import Store

PAGE: Final = 500  # events read at once: what a slow consumer holds, whatever the backlog
_RECHECK: Final = 1.0  # a wait reads again at least this often, woken or not


class EventLog:
    """Mixed into Manager: it provides ``_store``, ``_changes`` and ``_check_open``."""

    _store: Store
    _changes: Changes

    def _check_open(self) -> None:
        raise NotImplementedError

    def events(
        self,
        *,
        since: int | None = None,
        process_id: str | None = None,
        queue: str | None = None,
    ) -> AsyncIterator[Event]:
        """Every status change and step start on the store, from any OS process, in commit
        order, never skipping one: from after event ``since`` (None: from this call on), of
        ``process_id`` and ``queue`` when given. Follows live until the caller stops."""
        self._check_open()
        if since is not None and (isinstance(since, bool) or not isinstance(since, int)):
            raise InvalidSpecError(f"since must be an event's seq (a whole number), not {since!r}")
        if since is not None and not 0 <= since < 2**63:
            raise InvalidSpecError(f"since must be an event's seq (0 to 2**63 - 1), not {since}")
        if process_id is not None and not isinstance(process_id, str):
            raise InvalidSpecError(f"process_id must be a string, not {process_id!r}")
        wanted_queue = None if queue is None else check_queue(queue)
        # "From now on" is from this call, not from the first iteration (a generator starts
        # late): the store marks the moment now (see Store.events_from_now).
        start = self._store.events_from_now() if since is None else None
        return self._follow(since, start, process_id, wanted_queue)

    async def _follow(
        self,
        since: int | None,
        start: Awaitable[int] | None,
        process_id: str | None,
        queue: str | None,
    ) -> AsyncIterator[Event]:
        last = await start if start is not None else since
        assert last is not None
        if process_id is not None and (
            not valid_id(process_id) or await self._store.get(process_id, full=False) is None
        ):
            raise ProcessNotFoundError(process_id)
        while True:
            # Taken before the read: a change committed meanwhile still wakes the wait.
            woken = self._changes.event(ANY)
            # With a queue (no index has it), the newest event is read first: a short page
            # then covers everything up to it, and the next read starts there, however few
            # of the events matched (else each wake-up would read the log again from the
            # last match).
            top = None if queue is None else await self._store.last_event_seq()
            page = await self._store.read_events(last, process_id, queue, PAGE)
            for event in page:
                last = event.seq
                yield event
            if top is not None and len(page) < PAGE:
                last = max(last, top)
            if len(page) < PAGE:
                self._check_open()
                await self._changes.wait(woken, _RECHECK)
