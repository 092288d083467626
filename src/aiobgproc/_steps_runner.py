"""Running a process made of Python steps: an executor child runs them one after another,
and this side commits each step's output before the next begins."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import marshal
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any, cast

from . import _clock, _spec
from ._faults import fault
from ._os import boot as _boot
from ._os import spawn as _spawn
from ._os import tree as _tree
from ._os.executor_pool import ReusableExecutor
from ._os.spares import Spare
from ._os.zygote import Zygote
from ._output import OutputRecorder
from ._run_controls import Requests
from ._runner import Outcome, RunContext, Runner, StopReason, describe_exit, ended, error_dict
from ._wire import frames
from ._wire.channel import ExecutorChannel
from ._wire.job import Job, ProcessSpec
from ._wire.messages import Done, Failed, FrameError, Progress, Start, Unknown, parse
from .errors import ErrorType
from .models import Status
from .store import ProcessRecord

log = logging.getLogger(__name__)

_PROGRESS_INTERVAL = 0.05  # progress is written at most this often


class StepsRunner(Runner):
    """Runs a process's steps in an executor child, committing each step's output.

    After the executor exits, its tree is swept like a command's (see Runner._end_child);
    the executor itself stops its own children that a step left in a session of their own
    (executor.end_escaped_children), so that they are reaped, not left as zombies."""

    def __init__(
        self,
        context: RunContext,
        record: ProcessRecord,
        stop: asyncio.Future[StopReason],
        on_change: Callable[[str], None],
        requests: Requests | None = None,
        spare: Spare | None = None,
    ) -> None:
        super().__init__(context, record, stop, on_change, requests)
        self._spare = spare
        """A spare executor (see _os/spares) the claim recorded as this run's os_pid."""
        self._on_spare = False
        """Its executor is the spare: pid and first step were recorded by the claim."""
        self._spec = cast(ProcessSpec, record.spec)
        self._step: str | None = record.step
        self._pending_progress: tuple[float, str | None] | None = None
        self._progress_at = 0.0
        self._ending: Callable[[], Awaitable[Outcome]] | None = None
        self._announced: tuple[int, str] | None = None
        self._executor: ReusableExecutor | None = None
        """The reused executor this run has (see _os/executor_pool), if any."""
        self._pipes: list[int] = []
        """A reused executor's new pipes (write ends), until sent with its job."""

    async def _on_closing(self) -> Outcome:
        # Steps resume: back to the queue at the first step without committed output.
        if not await self.store.requeue(self.claim):
            await self.store.release(self.claim)  # cancelled meanwhile: let go of it
        return Outcome(None)

    async def _pause(self, index: int, name: str, output: dict[str, Any]) -> Outcome:
        recorded = await self.store.interrupt(self.claim, index, name, output, _clock.wall())
        if not recorded:
            await self.store.release(self.claim)  # cancelled or lost meanwhile
        return Outcome(Status.INTERRUPTED if recorded else None)

    async def _commit_last(self, index: int, name: str, output: dict[str, Any]) -> Outcome:
        fault("before_step_commit")
        recorded = await self.store.commit_step(
            self.claim, index, name, output, _clock.wall(), final=True
        )
        return Outcome(Status.FINISHED) if recorded else await self._lost()

    async def _lost(self) -> Outcome:
        await self.store.release(self.claim)
        return Outcome(None)

    @property
    def current_step(self) -> str | None:
        return self._step

    def _failing_step(self) -> tuple[int, str | None]:
        names = [step["name"] for step in self._spec["steps"]]
        if self._step in names:
            return names.index(self._step), self._step
        index = min(self.record.step_index, len(names) - 1)
        return index, names[index]

    def _argv(self, fd: int) -> list[str]:
        """A cold executor's command line: ``-I`` skips PYTHON* variables and the user site
        (the manager's sys.path is sent with the job); ``site`` still runs, so .pth import
        hooks (editable installs) work in the executor as in the manager."""
        return _boot.child_argv(self.context.python, "executor", [str(fd)])

    def _sys_path(self) -> list[str]:
        """This manager's sys.path, then the entries of the starter's that it lacks."""
        here = _spec.import_path()
        known = set(here)
        return here + [entry for entry in self._spec.get("path", []) if entry not in known]

    def _job(self, reuse: bool = False) -> Job:
        job: Job = {
            "process_id": self.record.id,
            "attempt": self.record.attempts,
            "sys_path": self._sys_path(),
            "steps": self._spec["steps"],
            "start": self.record.step_index,
            "input": self.record.input or {},
        }
        if reuse:
            job["reuse"] = True
        return job

    @property
    def _reuses(self) -> bool:
        """Whether this run's executor is to say "idle" and wait for another run after it."""
        return self._executor is not None and self._executor.jobs_left > 0

    async def _start_executor(
        self, recorder: OutputRecorder
    ) -> tuple[_spawn.Child, ExecutorChannel, Zygote | None]:
        """The executor, our end of its channel, and the zygote that forked it: an idle
        reused one, or one forked by the warm executor when there is one; a fresh
        interpreter when there is not, or when the zygote cannot be reached (then None)."""
        zygote, pool = self.context.zygote, self.context.executors
        spare, self._spare = self._spare, None
        if spare is not None and zygote is not None and self._can_take(spare, zygote):
            spare.relay.attach(recorder.feed)
            self._on_spare = True
            return spare.child, spare.channel, zygote
        if spare is not None:
            spare.close()  # died, or of an earlier warm executor: a fresh one instead
        if zygote is not None and pool is not None:
            reused = pool.take(zygote.generation)
            if reused is not None:
                try:
                    child, self._pipes = await _spawn.attach_reused(
                        reused.process, reused.started, on_output=recorder.feed
                    )
                except BaseException:
                    reused.channel.close()  # it exits at the end of its channel
                    raise
                self._executor = reused
                return child, reused.channel, zygote
        if zygote is not None:
            ours, theirs = socket.socketpair()
            try:
                jobs_left = 0 if pool is None else pool.jobs_per_executor - 1
                child = await _spawn.spawn_forked(
                    zygote,
                    on_output=recorder.feed,
                    channel_fd=theirs.fileno(),
                    cwd=self._spec.get("cwd"),
                    env=self._env(),
                    job=self._job(reuse=jobs_left > 0),
                )
                channel = ExecutorChannel(ours)
                if jobs_left > 0:
                    self._executor = ReusableExecutor(
                        child.process, child.started, channel, jobs_left, zygote.generation
                    )
                return child, channel, zygote
            except ConnectionError as exc:
                # A new channel below: a child forked before the zygote failed may hold
                # this one (it sees its end close, and exits).
                ours.close()
                log.warning(
                    "process %s: warm executor unavailable (%s); spawning",
                    self.record.id,
                    exc,
                    extra={"process_id": self.record.id},
                )
            except BaseException:
                ours.close()
                raise
            finally:
                theirs.close()  # the child has its own copy
        ours, theirs = socket.socketpair()
        try:
            child = await _spawn.spawn(
                self._argv(theirs.fileno()),
                on_output=recorder.feed,
                cwd=self._spec.get("cwd"),
                env=self._env(),
                pass_fds=(theirs.fileno(),),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the child has its own copy
        return child, ExecutorChannel(ours), None

    @property
    def _pinned(self) -> bool:
        """The claim gave this run a spare: its pid and the first step are recorded."""
        first = self._spec["steps"][self.record.step_index]["name"]
        return self.record.os_pid is not None and self.record.step == first

    def _can_take(self, spare: Spare, zygote: Zygote) -> bool:
        return (
            self._pinned
            and self.record.os_pid == spare.child.os_pid
            and spare.generation == zygote.generation
            and spare.usable
        )

    async def _begin(
        self, child: _spawn.Child, zygote: Zygote | None, channel: ExecutorChannel
    ) -> None:
        """Let the executor begin: send its job, unless it was forked with it."""
        if zygote is None:
            await channel.send(frames.job(self._job()))
            return
        if child.has_job:
            await channel.send(frames.go())
            return
        changed, removed = zygote.environ_difference(self._env())
        job = self._job(reuse=self._reuses)
        if not self._pipes:  # forked without its job (too big for the fork request)
            await channel.send(frames.run(changed, removed, self._spec.get("cwd"), job))
            return
        try:  # a reused executor: the job, with the run's pipes
            begin = frames.next_job(changed, removed, self._spec.get("cwd"), job)
            await channel.send_with_fds(begin, self._pipes)
        finally:
            self._close_pipes()

    def _close_pipes(self) -> None:
        pipes, self._pipes = self._pipes, []
        for fd in pipes:
            os.close(fd)

    async def _keep_executor(self, child: _spawn.Child, channel: ExecutorChannel) -> bool:
        """After its last word, a reused executor lets go of the run's pipes and says "idle":
        the run's tree but the executor is ended, the executor waits in the pool for the
        next run. False when it does not (in time): it is then ended like a fresh one."""
        executor, pool = self._executor, self.context.executors
        if executor is None or pool is None or not self._reuses or self.stop.done():
            return False
        if self._ending == self._lost:
            return False  # the claim was lost: as any end but the usual ones, a fresh one next
        ready = channel.ready()
        waits: set[asyncio.Future[Any]] = {ready, child.process.ended, self.stop}
        await asyncio.wait(
            waits, timeout=self.context.grace_period + 1.0, return_when=asyncio.FIRST_COMPLETED
        )
        if not ready.done() or self.stop.done() or child.process.returncode is not None:
            return False
        try:
            frame = channel.pop()
        except FrameError:
            return False
        if frame is None or frame[0] != frames.IDLE:
            return False
        if self._controls is not None:
            await self._controls.stop()  # no request is carried out after this
        if self.suspended:
            # A suspend that raced the run's end stopped the executor: it must not take the
            # next run so. Continued, it reads the end of its channel and exits.
            await _tree.signal_tree(
                child.os_pid,
                child.started,
                signal.SIGCONT,
                tag=self.tag,
                recent=child.recent,
                first_pid=child.first_pid,
            )
            self.resume_clock()
            return False
        await self._end_child(child, exited=True, keep=True)
        pool.give_back(executor)
        return True

    async def run(self) -> Outcome:
        recorder = await self._recorder()
        try:
            child, channel, zygote = await self._start_executor(recorder)
        except OSError as exc:
            return await self._not_started(recorder, exc, f"cannot start the executor: {exc}")
        self._started(child, recorder)
        exited = False
        garbled = False
        try:
            # The first step is known now: record it with the pid, one write instead of two.
            first = self.record.step_index
            name = self._spec["steps"][first]["name"]
            self._announced = (first, name)
            self._step = name
            # A spare's pid and first step came with the claim (a spare refused by
            # _can_take leaves that step recorded: not announced twice).
            pinned = self._pinned
            if self._on_spare:
                if not self.stop.done():  # cancelled or lost since the claim: it never begins
                    await self._begin(child, zygote, channel)
            elif await self.store.set_os_pid(
                self.claim, child.os_pid, child.started, step=None if pinned else self._announced
            ):
                # Only now may it begin: were we to die before the pid is recorded, whoever
                # recovers the process could not tell that it ran.
                await self._begin(child, zygote, channel)
            elif not self.stop.done():
                self.stop.set_result("lost")  # it never begins: _converse ends it
            exited = await self._converse(child, channel)
        except ConnectionError:
            exited = child.process.returncode is not None
        except FrameError as exc:
            # Not ours to decode any further: stop the executor, record the step's error.
            garbled = True
            text = f"the executor sent an unreadable frame during step {self._step!r}: {exc}"
            error = error_dict(ErrorType.EXECUTOR_PROTOCOL, text, self._step)
            self._ending = lambda: self._finish(Status.ERROR, text, error=error)
        except BaseException:
            self._close_pipes()
            await asyncio.shield(self._end_child(child, exited=False))
            await asyncio.shield(recorder.close())
            channel.close()
            raise
        finally:
            self._close_pipes()  # not sent: the run never began
        # A final frame is the executor's last word: it gets the grace period to exit (or,
        # reused, to say "idle").
        last_word = self._ending is not None and not garbled
        returncode: int | None = None
        try:
            kept = last_word and await self._keep_executor(child, channel)
        except BaseException:
            await asyncio.shield(self._end_child(child, exited=False))
            await asyncio.shield(recorder.close())
            channel.close()
            raise
        if not kept:
            if self._reuses:
                channel.close()  # a reused executor waiting for a next job exits at this
            returncode = await ended(self, child, exited or last_word)
            channel.close()
        await recorder.close()
        if self._ending is not None:
            return await self._ending()
        if self.stop.done():
            return await self._stopped(self.stop.result())
        if not exited and child.process.returncode is None:
            return await self._timed_out()
        if self._expired():
            return await self._timed_out()
        how = describe_exit(returncode) if returncode is not None else "disappeared"
        message = f"the executor {how} during step {self._step!r}"
        return await self._finish(
            Status.ERROR,
            message,
            exit_code=returncode,
            error=error_dict(ErrorType.EXECUTOR_DIED, message, self._step),
        )

    async def _converse(self, child: _spawn.Child, channel: ExecutorChannel) -> bool:
        """Handle the executor's frames until a final one, its exit, a stop or the deadline.

        Returns True when the executor exited on its own.
        """
        exit_task = child.process.ended
        while self._ending is None:
            timeout = self._remaining()
            if self._pending_progress is not None and (
                timeout is None or timeout > _PROGRESS_INTERVAL
            ):
                timeout = _PROGRESS_INTERVAL
            frame_ready = channel.ready()
            if not frame_ready.done():
                waits: set[asyncio.Future[Any]] = {frame_ready, exit_task, self.stop, self.rearm}
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if frame_ready.done():
                frame = channel.pop()
                if frame is None:  # EOF: the executor is exiting
                    ends: set[asyncio.Future[Any]] = {exit_task, self.stop}
                    await asyncio.wait(
                        ends, timeout=self._remaining(), return_when=asyncio.FIRST_COMPLETED
                    )
                    return exit_task.done()
                await self._handle(frame, channel)
                continue
            await self._flush_progress(force=False)
            if self.stop.done():
                return False
            if exit_task.done():
                # Frames written just before exiting are still in the socket: read them.
                while self._ending is None:
                    try:
                        frame = await asyncio.wait_for(channel.next(), 1.0)
                    except TimeoutError:
                        break
                    if frame is None:
                        break
                    await self._handle(frame, channel)
                return True
            if self._expired():
                return False
        return False

    async def _flush_progress(self, *, force: bool) -> None:
        pending = self._pending_progress
        if pending is None:
            return
        now = _clock.monotonic()
        if force or now - self._progress_at >= _PROGRESS_INTERVAL:
            self._pending_progress = None
            self._progress_at = now
            await self.store.set_progress(self.claim, pending[0], pending[1])
            self._on_change(self.record.id)

    async def _handle(self, frame: tuple[Any, ...], channel: ExecutorChannel) -> None:
        match parse(frame):
            case Progress(fraction, message):
                self._pending_progress = (fraction, message)
                await self._flush_progress(force=False)
            case Start(index, name):
                self._pending_progress = None
                self._step = name
                if (index, name) != self._announced:
                    await self.store.start_step(self.claim, index, name)
                    self._on_change(self.record.id)
                # else: recorded with the pid already; nothing changed, nobody to wake.
                self._announced = None
            case Failed(_, name, error_type, message, tb):
                text = f"step {name!r} failed: {error_type}: {message}"
                error = error_dict(error_type, message, name, tb)
                self._ending = lambda: self._finish(Status.ERROR, text, error=error)
            case Done() as done:
                await self._done(done, channel)
            case Unknown(kind):
                log.warning(
                    "process %s: unknown executor frame %r",
                    self.record.id,
                    kind,
                    extra={"process_id": self.record.id},
                )

    async def _done(self, done: Done, channel: ExecutorChannel) -> None:
        index, name = done.index, done.name
        try:
            output = marshal.loads(done.output)
            json.dumps(output, allow_nan=False)
        except (ValueError, TypeError) as exc:
            text = f"step {name!r} returned a value that is not JSON-serialisable: {exc}"
            error = error_dict(ErrorType.STEP_OUTPUT, text, name)
            self._ending = lambda: self._finish(Status.ERROR, text, error=error)
            await _send(channel, frames.exit_now())
            return
        await self._flush_progress(force=True)
        if done.pause:
            self._ending = lambda: self._pause(index, name, output)
            return
        if index + 1 >= len(self._spec["steps"]):
            # Recorded once the executor is gone and its output is all stored, so whoever
            # sees "finished" also sees the complete output log. The executor exits after
            # its last step without waiting for a word from us.
            self._ending = lambda: self._commit_last(index, name, output)
            return
        fault("before_step_commit")
        recorded = await self.store.commit_step(
            self.claim, index, name, output, _clock.wall(), final=False
        )
        if not recorded:
            self._ending = self._lost
            await _send(channel, frames.exit_now())
            return
        self._on_change(self.record.id)
        await _send(channel, frames.ack())


async def _send(channel: ExecutorChannel, message: tuple[Any, ...]) -> None:
    # The executor may have exited already (e.g. after a final frame): nothing to tell it.
    with contextlib.suppress(ConnectionError):
        await channel.send(message)
