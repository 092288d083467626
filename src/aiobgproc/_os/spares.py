"""Spare executors: forked by the warm executor ahead of the claims that will use them, so
that a claim records the executor's pid with the claim itself (one write, not two) and no
fork stands between a slot freeing and its next process beginning.

A spare is a fresh executor that has run nothing: forked with the warm executor's own
environment and no job, it waits for its run's ("run", environment, directory, job), as an
executor forked with a job too big for the fork request does. Its stdout and stderr pipes
are its own from the fork; what they carry goes to the run that takes it.

Spares are forked only while claims find step processes (one more than a claim took at
once, at most MOST_SPARES and the concurrency), and one unused for IDLE_SECONDS exits: an
idle manager keeps none.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Final

from .. import _clock
from .._wire.channel import ExecutorChannel
from . import spawn as _spawn
from .zygote import Zygote

log = logging.getLogger(__name__)

IDLE_SECONDS: Final = 2.0
MOST_SPARES: Final = 4  # a few keep forks off the path; more only add idle processes
_FORK_WAIT: Final = 5.0  # how long close() waits for forks in flight


class OutputRelay:
    """A spare's output, held until a run takes it, then handed to that run's recorder."""

    def __init__(self) -> None:
        self._target: _spawn.OnOutput | None = None
        self._held: list[tuple[int, bytes]] = []

    def feed(self, stream: int, data: bytes) -> bool:
        if self._target is None:
            self._held.append((stream, data))
            return True
        return self._target(stream, data)

    def attach(self, target: _spawn.OnOutput) -> None:
        held, self._held = self._held, []
        self._target = target
        for stream, data in held:
            target(stream, data)


class Spare:
    """A forked executor waiting for its run."""

    def __init__(
        self, child: _spawn.Child, channel: ExecutorChannel, relay: OutputRelay, generation: int
    ) -> None:
        self.child = child
        self.channel = channel
        self.relay = relay
        self.generation = generation
        self.since = _clock.monotonic()

    @property
    def usable(self) -> bool:
        """Alive, as far as can be told without a round trip: its end may not have been
        reported yet, so the pid is asked too (one syscall; a killed spare is reaped by
        the warm executor at once)."""
        if self.child.process.returncode is not None or self.channel.at_end:
            return False
        try:
            os.kill(self.child.os_pid, 0)
        except (ProcessLookupError, PermissionError):  # gone (the latter: pid reused)
            return False
        return True

    def close(self) -> None:
        """Let it go: it exits when it reads the end of its channel (the warm executor reaps
        it); its pipes close with it."""
        self.channel.close()
        self.child.reader.close()


class SpareExecutors:
    """The spares of one manager (with a warm executor, executors not reused)."""

    def __init__(self, zygote: Zygote, most: int) -> None:
        self._zygote = zygote
        self._most = most
        self._ready: list[Spare] = []
        self._forking = 0
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._expiry: asyncio.TimerHandle | None = None
        self.pinned = 0
        """How many spares claims gave to processes so far."""
        self._wanted = 0

    def take(self, count: int) -> list[Spare]:
        """Up to ``count`` usable spares of the current warm executor."""
        taken: list[Spare] = []
        while self._ready and len(taken) < count:
            spare = self._ready.pop()
            if spare.usable and spare.generation == self._zygote.generation:
                taken.append(spare)
            else:
                spare.close()
        return taken

    def after_claim(self, steps: int, taken: int, unused: list[Spare], *, more: bool) -> None:
        """A claim took ``taken`` spares and claimed ``steps`` step processes: the spares
        it did not use wait for the next, and one spare more than the claims take at once is
        kept forked (another slot may free before the next is); none once they find no step
        process, or when no claim is to come (``more``)."""
        self.pinned += taken - len(unused)
        for spare in unused:
            if self._closed or not spare.usable:
                spare.close()
            else:
                self._ready.append(spare)
        if self._ready:
            self._expire_later()
        self._wanted = max(steps + 1, self._wanted) if steps and more else 0
        self.replenish(self._wanted)

    def replenish(self, wanted: int) -> None:
        """Fork, in the background, what it takes to have ``wanted`` spares (at most the
        concurrency) ready or on their way."""
        missing = min(wanted, self._most) - len(self._ready) - self._forking
        for _ in range(max(missing, 0) if not self._closed else 0):
            self._forking += 1
            task = asyncio.get_running_loop().create_task(self._fork())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fork(self) -> None:
        try:
            spare = await fork_spare(self._zygote)
        except (OSError, ConnectionError) as exc:
            log.debug("no spare executor: %s", exc)
            return
        finally:
            self._forking -= 1
        if self._closed:
            spare.close()
            return
        self._ready.append(spare)
        self._expire_later()

    def _expire_later(self, delay: float = IDLE_SECONDS) -> None:
        if self._expiry is None:
            self._expiry = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        now = _clock.monotonic()
        kept = []
        for spare in self._ready:
            if now - spare.since >= IDLE_SECONDS or not spare.usable:
                spare.close()
            else:
                kept.append(spare)
        self._ready = kept
        if kept:  # when the oldest left is due, not a whole period on (it would live 2x)
            oldest = min(spare.since for spare in kept)
            self._expire_later(max(oldest + IDLE_SECONDS - now, 0.05))

    async def close(self) -> None:
        self._closed = True
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self._tasks:  # a fork the warm executor never answers must not hold the close
            _, late = await asyncio.wait(set(self._tasks), timeout=_FORK_WAIT)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        ready, self._ready = self._ready, []
        for spare in ready:
            spare.close()


async def fork_spare(zygote: Zygote) -> Spare:
    """A spare forked now, with the warm executor's environment and no job."""
    generation = zygote.generation  # the one asked (it may be replaced meanwhile)
    ours, theirs = socket.socketpair()
    relay = OutputRelay()
    try:
        child = await _spawn.spawn_forked(
            zygote,
            on_output=relay.feed,
            channel_fd=theirs.fileno(),
            env=zygote.environ,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return Spare(child, ExecutorChannel(ours), relay, generation)
