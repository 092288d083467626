"""What a run does with the requests made of it, from any OS process, through the store:
input written to its command's stdin, signals, suspend and resume.

A request is a row (``process_input`` or ``controls``) whose insert moves the process's
``controls`` counter; the owner's watcher sees the counter move (``Scheduler.check_runs``)
and sets the run's event; this task then reads what is pending and carries it out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Protocol

from ._os import spawn as _spawn
from ._os import tree as _tree
from ._os.stdin import StdinPipe
from .errors import StoreError
from .models import Status
from .store import Claim, ProcessRecord, Store

log = logging.getLogger(__name__)

_FINISH_SECONDS = 5.0  # how long the end of a run waits for a request being carried out
SUSPEND: tuple[Status, Status] = (Status.RUNNING, Status.SUSPENDED)
RESUME: tuple[Status, Status] = (Status.SUSPENDED, Status.RUNNING)


class Runner(Protocol):
    """What of a run (_runner.Runner) its requests need."""

    store: Store
    record: ProcessRecord
    claim: Claim
    tag: str
    _on_change: Callable[[str], None]

    @property
    def suspended(self) -> bool: ...

    def pause_clock(self) -> None: ...

    def resume_clock(self) -> None: ...


class Requests:
    """That requests were made of a run (its watcher saw the counter move, or a caller in
    this process made one): wakes the run's request task, or starts it. Most runs are never
    asked anything: they never have a task."""

    def __init__(self) -> None:
        self.pending = False
        self._listener: Callable[[], None] | None = None

    def set(self) -> None:
        self.pending = True
        if self._listener is not None:
            self._listener()

    def listen(self, listener: Callable[[], None] | None) -> None:
        self._listener = listener
        if listener is not None and self.pending:
            listener()


class RunControls:
    def __init__(
        self,
        runner: Runner,
        child: _spawn.Child,
        stdin: StdinPipe | None,
        requests: Requests,
    ) -> None:
        self.runner = runner
        self.child = child
        self.stdin = stdin
        self.requests = requests
        self._event: asyncio.Event | None = None
        self._input_seq = 0  # the last input handed to the pipe
        self._forgotten = 0  # ... and the last one the store has forgotten
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._busy = False  # carrying out requests (stop() lets that finish)

    def start(self) -> None:
        """Take requests: at once for input sent while it was queued, else when asked."""
        self.requests.listen(self._wake)
        if self.stdin is not None:
            self._wake()

    def _wake(self) -> None:
        if self._stopping:
            return
        if self._event is None:
            self._event = asyncio.Event()
        self._event.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._serve(self._event))

    async def stop(self) -> None:
        """Stop taking requests. One being carried out is finished and answered first (a
        signal that ended the command is still a signal sent), within a bound."""
        self.requests.listen(None)
        task, self._task = self._task, None
        self._stopping = True
        if task is not None and not self._busy:
            task.cancel()  # idle, waiting for a request: nothing to finish
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elif task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), _FINISH_SECONDS)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.stdin is not None:
            self.stdin.abort()

    async def _serve(self, event: asyncio.Event) -> None:
        record = self.runner.record
        while not self._stopping:
            await event.wait()
            event.clear()
            self.requests.pending = False
            self._busy = True
            try:
                await self.apply()
            except StoreError:
                log.exception("process %s: could not read its requests", record.id)
            finally:
                self._busy = False

    async def apply(self) -> None:
        runner = self.runner
        store = runner.store
        if self.stdin is not None:
            await self._input()
        for seq, action, argument in await store.pending_controls(runner.claim):
            result, change = await self._carry_out(action, argument)
            await store.control_done(runner.claim, seq, result, change)
            runner._on_change(runner.record.id)

    async def _input(self) -> None:
        stdin = self.stdin
        assert stdin is not None
        process_id = self.runner.record.id
        for seq, data in await self.runner.store.pending_input(process_id, self._input_seq):
            self._input_seq = seq
            if data is None:
                stdin.close()
                break
            stdin.write(data)
        # Forgotten once the pipe took it all (the pipe's drain sets the event again).
        if stdin.buffered == 0 and self._forgotten < self._input_seq:
            await self.runner.store.input_written(process_id, self._input_seq)
            self._forgotten = self._input_seq

    async def _carry_out(
        self, action: str, argument: int | None
    ) -> tuple[str | None, tuple[Status, Status] | None]:
        """Do what was asked: (None or why it could not be, the status change it makes)."""
        runner, child = self.runner, self.child
        if child.process.returncode is not None:
            return f"process {runner.record.id} has exited", None
        if action == "signal" and argument is not None:
            procs = _tree.find_tree(
                child.os_pid, child.started, None, recent=True, first_pid=child.first_pid
            )
            if not procs or procs[0].pid != child.os_pid:
                return f"process {runner.record.id} has exited", None
            procs[0].send_signal(signal.Signals(argument))
            return None, None
        if action == "signal-tree" and argument is not None:
            await self._tree_signal(signal.Signals(argument))
            return None, None
        if action == "suspend":
            if runner.suspended:
                return f"process {runner.record.id} is suspended, not running", None
            await self._tree_signal(signal.SIGSTOP)
            runner.pause_clock()
            return None, SUSPEND
        if action == "resume":
            if not runner.suspended:
                return f"process {runner.record.id} is running, not suspended", None
            await self._tree_signal(signal.SIGCONT)
            runner.resume_clock()
            return None, RESUME
        return f"unknown request {action!r}", None

    async def _tree_signal(self, sig: signal.Signals) -> None:
        child = self.child
        await _tree.signal_tree(
            child.os_pid,
            child.started,
            sig,
            tag=self.runner.tag,
            recent=child.recent,
            first_pid=child.first_pid,
        )
