"""Wake-ups for coroutines waiting on a process to change.

A waiter takes its event *before* reading the state it waits on, so a change that lands
between the read and the wait still wakes it.
"""

from __future__ import annotations

import asyncio

ANY = "*"


class Changes:
    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self.waiting = 0
        self.waiter_arrived = asyncio.Event()
        """Set when a wait begins: an idle watcher starts polling at once, not a poll later."""

    def event(self, key: str) -> asyncio.Event:
        event = self._events.get(key)
        if event is None:
            event = self._events[key] = asyncio.Event()
        return event

    def notify(self, key: str | None = None) -> None:
        """Wake the waiters of ``key`` and of ``ANY``; everyone when ``key`` is None."""
        if key is None:
            events = list(self._events.values())
            self._events.clear()
        else:
            events = [
                event
                for event in (self._events.pop(key, None), self._events.pop(ANY, None))
                if event
            ]
        for event in events:
            event.set()

    async def wait(self, event: asyncio.Event, timeout: float | None) -> None:
        """Wait for ``event`` at most ``timeout`` seconds (no error when it passes)."""
        self.waiting += 1
        self.waiter_arrived.set()
        try:
            async with asyncio.timeout(timeout):  # unlike wait_for, no task per wait
                await event.wait()
        except TimeoutError:
            pass
        finally:
            self.waiting -= 1
