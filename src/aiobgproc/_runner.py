"""Running one claimed process: a command, or an executor that runs Python steps.

A runner owns the child from spawn to reap. It returns when the process has reached a state
it recorded (or lost its claim), and the child's whole tree is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import marshal
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from . import _clock, _spec, _tags
from ._faults import fault
from ._os import boot as _boot
from ._os import spawn as _spawn
from ._os import tree as _tree
from ._os.guard import Guard
from ._os.zygote import Zygote
from ._output import OutputRecorder
from ._wire import frames
from ._wire.channel import ExecutorChannel
from ._wire.messages import Done, Failed, FrameError, Progress, Start, parse
from .errors import ErrorType
from .models import Status
from .store import ProcessRecord, Store

log = logging.getLogger(__name__)

ATTEMPT_VARIABLE = "AIOBGPROC_ATTEMPT"
"""Set in every child's environment: which attempt at running the process this is (1, 2...)."""
StopReason = Literal["cancelled", "closing", "lost"]
_DRAIN_TIMEOUT = 0.5  # after the child exits, how long to wait for its pipe to close
_PROGRESS_INTERVAL = 0.05  # progress is written at most this often


@dataclass(frozen=True, slots=True)
class RunContext:
    """What every runner of one manager shares."""

    store: Store
    manager_id: str
    grace_period: float
    max_output_bytes: int | None
    python: str | None = None
    guard: Guard | None = None
    zygote: Zygote | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status | None
    """What was recorded (None when nothing was: the claim was lost, or requeued)."""
    message: str | None = None


def executor_argv(python: str | None, fd: int) -> list[str]:
    """The executor's command line: -I skips PYTHON* variables and the user site (the
    manager's sys.path is sent with the job). ``site`` still runs: .pth import hooks (e.g.
    editable installs) must work in the executor as they do in the manager."""
    return _boot.child_argv(python, "executor", [str(fd)])


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with code {returncode}"


def _error(
    kind: str, message: str, step: str | None = None, tb: str | None = None
) -> dict[str, Any]:
    return {"type": kind, "message": message, "traceback": tb, "step": step}


class _Runner:
    def __init__(
        self,
        context: RunContext,
        record: ProcessRecord,
        stop: asyncio.Future[StopReason],
        on_change: Any,
    ) -> None:
        self.context = context
        self.store = context.store
        self.record = record
        self.claim = record.claim(context.manager_id)
        self.tag = _tags.make_tag(record.id, self.claim.token)
        self.stop = stop
        self._on_change = on_change
        self.deadline = None if record.timeout is None else _clock.monotonic() + record.timeout

    def _remaining(self) -> float | None:
        if self.deadline is None:
            return None
        return max(self.deadline - _clock.monotonic(), 0.0)

    async def _recorder(self) -> OutputRecorder:
        async def write(seq: int, data: bytes, size: int, truncated: bool) -> None:
            await self.store.append_output(self.claim, seq, data, size, truncated)
            self._on_change(self.record.id)

        # No byte was ever produced: no chunk exists, so no need to ask where they end.
        first = (
            await self.store.last_output_seq(self.record.id) + 1 if self.record.output_size else 0
        )
        recorder = OutputRecorder(
            write,
            first_seq=first,
            output_size=self.record.output_size,
            stored_size=self.record.output_size,
            cap=self.context.max_output_bytes,
        )
        recorder.start()
        return recorder

    def _env(self) -> dict[str, str]:
        env = _spawn.environment()
        env.update(self.record.spec.get("env") or {})
        env[_tags.TAG_VARIABLE] = self.record.id
        env[_tags.CLAIM_VARIABLE] = str(self.claim.token)
        env[ATTEMPT_VARIABLE] = str(self.record.attempts)
        return env

    async def _finish(self, status: Status, message: str | None = None, **fields: Any) -> Outcome:
        recorded = await self.store.finish(self.claim, status, _clock.wall(), **fields)
        if not recorded:
            await self.store.release(self.claim)
            return Outcome(None)
        return Outcome(status, message)

    async def _stopped(self, reason: StopReason) -> Outcome:
        if reason == "closing":
            return await self._on_closing()
        # cancelled (already recorded by whoever cancelled) or lost: just let go of the pid.
        await self.store.release(self.claim)
        return Outcome(None)

    async def _on_closing(self) -> Outcome:
        raise NotImplementedError

    async def _timed_out(self) -> Outcome:
        message = f"timed out after {self.record.timeout:g} s"
        return await self._finish(
            Status.TIMEOUT, message, error=_error(ErrorType.TIMEOUT, message, self.current_step)
        )

    @property
    def current_step(self) -> str | None:
        return self.record.step

    async def _end_child(self, child: _spawn.Child, *, exited: bool) -> int | None:
        """Stop the child's whole tree (gracefully unless it already exited), close its pipe.

        However the run ends, every process carrying its tag goes too, before the end is
        recorded: what a command or a step left running in a session of its own would
        otherwise outlive it (reparented to init, forever for a daemon's worth of runs)."""
        if exited and child.process.returncode is None:
            # It said its last word; give it the grace period to exit on its own.
            exited = await _spawn.wait_exit(child, self.context.grace_period) is not None
        if exited and not child.reader.closed.done():
            # Whatever still holds its pipe is left a moment to finish writing, unless the
            # run is told to stop meanwhile (asyncio.wait: no task; nothing is cancelled).
            held: set[asyncio.Future[Any]] = {child.reader.closed, self.stop}
            await asyncio.wait(
                held,
                timeout=_DRAIN_TIMEOUT,
                return_when=asyncio.FIRST_COMPLETED,
            )
        await _tree.terminate_tree(
            child.os_pid,
            child.started,
            grace=self.context.grace_period,
            tag=self.tag,
            recent=child.recent,
            # Its end was just seen (when it exited), so its session is still its own.
            just_reaped=True,
        )
        returncode = await _spawn.wait_exit(child, 5.0)
        if returncode is None:  # cannot happen after SIGKILL, short of an unkillable process
            log.error(
                "process %s: os pid %d did not exit",
                self.record.id,
                child.os_pid,
                extra={"process_id": self.record.id},
            )
        child.reader.close()
        if self.context.guard is not None:
            self.context.guard.forget(child.os_pid)
        return returncode


class CommandRunner(_Runner):
    """Runs an operating-system command; its output is ``{"exit_code": N}``."""

    async def _on_closing(self) -> Outcome:
        message = "the manager was closed while the command was running; a command cannot resume"
        return await self._finish(
            Status.ERROR, message, error=_error(ErrorType.MANAGER_CLOSED, message)
        )

    async def run(self) -> Outcome:
        spec = self.record.spec
        recorder = await self._recorder()
        try:
            child = await _spawn.spawn(
                spec["argv"], on_output=recorder.feed, cwd=spec.get("cwd"), env=self._env()
            )
        except OSError as exc:
            await recorder.close()
            message = f"cannot run {spec['argv'][0]!r}: {exc.strerror or exc}"
            return await self._finish(
                Status.ERROR, message, error=_error(type(exc).__name__, message)
            )
        recorder.on_drain = child.reader.resume
        if self.context.guard is not None:
            self.context.guard.watch(child.os_pid, child.started, self.tag)
        fault("after_spawn")
        try:
            if not await self.store.set_os_pid(self.claim, child.os_pid, child.started):
                self.stop.set_result("lost") if not self.stop.done() else None
            exit_task = _spawn.exit_future(child.process)
            waits: set[asyncio.Future[Any]] = {exit_task, self.stop}
            done, _ = await asyncio.wait(
                waits,
                timeout=self._remaining(),
                return_when=asyncio.FIRST_COMPLETED,
            )
            exited = exit_task in done
            returncode = await _ended(self, child, exited)
        except BaseException:
            await asyncio.shield(self._end_child(child, exited=False))
            await asyncio.shield(recorder.close())
            raise
        await recorder.close()
        if not exited:
            if self.stop.done():
                return await self._stopped(self.stop.result())
            return await self._timed_out()
        assert returncode is not None
        output = {"exit_code": returncode}
        if returncode == 0:
            return await self._finish(Status.FINISHED, output=output, exit_code=0)
        message = f"command {describe_exit(returncode)}"
        return await self._finish(
            Status.ERROR,
            message,
            output=output,
            exit_code=returncode,
            error=_error(ErrorType.COMMAND, message),
        )


async def _ended(runner: _Runner, child: _spawn.Child, exited: bool) -> int | None:
    return await asyncio.shield(runner._end_child(child, exited=exited))


class StepsRunner(_Runner):
    """Runs a process's steps in an executor child, committing each step's output.

    After the executor exits, its tree is swept like a command's (see _Runner._end_child);
    the executor itself stops its own children that a step left in a session of their own
    (executor.end_escaped_children), so that they are reaped, not left as zombies."""

    def __init__(
        self,
        context: RunContext,
        record: ProcessRecord,
        stop: asyncio.Future[StopReason],
        on_change: Any,
        on_progress: Any,
    ) -> None:
        super().__init__(context, record, stop, on_change)
        self._on_progress = on_progress
        self._step: str | None = record.step
        self._pending_progress: tuple[float, str | None] | None = None
        self._progress_at = 0.0
        self._ending: Callable[[], Awaitable[Outcome]] | None = None
        self._announced: tuple[int, str] | None = None

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

    def _argv(self, fd: int) -> list[str]:
        return executor_argv(self.context.python, fd)

    def _sys_path(self) -> list[str]:
        """This manager's sys.path, then the entries of the starter's that it lacks."""
        here = _spec.import_path()
        known = set(here)
        return here + [entry for entry in self.record.spec.get("path", []) if entry not in known]

    def _job(self) -> dict[str, Any]:
        return {
            "process_id": self.record.id,
            "attempt": self.record.attempts,
            "sys_path": self._sys_path(),
            "steps": self.record.spec["steps"],
            "start": self.record.step_index,
            "input": self.record.input or {},
        }

    async def _start_executor(
        self, recorder: OutputRecorder
    ) -> tuple[_spawn.Child, socket.socket, Zygote | None]:
        """The executor, our end of its channel, and the zygote that forked it: forked by
        the warm executor when there is one; a fresh interpreter when there is not, or when
        the zygote cannot be reached (then None)."""
        zygote = self.context.zygote
        if zygote is not None:
            ours, theirs = socket.socketpair()
            try:
                child = await _spawn.spawn_forked(
                    zygote,
                    on_output=recorder.feed,
                    channel_fd=theirs.fileno(),
                    cwd=self.record.spec.get("cwd"),
                    env=self._env(),
                    job=self._job(),
                )
                return child, ours, zygote
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
                cwd=self.record.spec.get("cwd"),
                env=self._env(),
                pass_fds=(theirs.fileno(),),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the child has its own copy
        return child, ours, None

    def _begin(self, child: _spawn.Child, zygote: Zygote | None) -> tuple[Any, ...]:
        """The frame that lets the executor begin: its job, unless it was forked with it."""
        if zygote is None:
            return frames.job(self._job())
        if getattr(child.process, "has_job", False):
            return frames.go()
        changed, removed = zygote.environ_difference(self._env())
        return frames.run(changed, removed, self.record.spec.get("cwd"), self._job())

    async def run(self) -> Outcome:
        recorder = await self._recorder()
        try:
            child, ours, zygote = await self._start_executor(recorder)
        except OSError as exc:
            await recorder.close()
            message = f"cannot start the executor: {exc}"
            return await self._finish(
                Status.ERROR, message, error=_error(type(exc).__name__, message)
            )
        recorder.on_drain = child.reader.resume
        if self.context.guard is not None:
            self.context.guard.watch(child.os_pid, child.started, self.tag)
        fault("after_spawn")
        channel = ExecutorChannel(ours)
        exited = False
        garbled = False
        try:
            # The first step is known now: record it with the pid, one write instead of two.
            first = self.record.step_index
            name = self.record.spec["steps"][first]["name"]
            self._announced = (first, name)
            self._step = name
            if await self.store.set_os_pid(
                self.claim, child.os_pid, child.started, step=self._announced
            ):
                # Only now may it begin: were we to die before the pid is recorded, whoever
                # recovers the process could not tell that it ran.
                await channel.send(self._begin(child, zygote))
            elif not self.stop.done():
                self.stop.set_result("lost")  # it never begins: _converse ends it
            exited = await self._converse(child, channel)
        except ConnectionError:
            exited = child.process.returncode is not None
        except FrameError as exc:
            # Not ours to decode any further: stop the executor, record the step's error.
            garbled = True
            text = f"the executor sent an unreadable frame during step {self._step!r}: {exc}"
            error = _error(ErrorType.EXECUTOR_PROTOCOL, text, self._step)
            self._ending = lambda: self._finish(Status.ERROR, text, error=error)
        except BaseException:
            await asyncio.shield(self._end_child(child, exited=False))
            await asyncio.shield(recorder.close())
            channel.close()
            raise
        # A final frame is the executor's last word: it gets the grace period to exit.
        last_word = self._ending is not None and not garbled
        returncode = await _ended(self, child, exited or last_word)
        channel.close()
        await recorder.close()
        if self._ending is not None:
            return await self._ending()
        if self.stop.done():
            return await self._stopped(self.stop.result())
        if not exited and child.process.returncode is None:
            return await self._timed_out()
        if self.deadline is not None and _clock.monotonic() >= self.deadline:
            return await self._timed_out()
        how = describe_exit(returncode) if returncode is not None else "disappeared"
        message = f"the executor {how} during step {self._step!r}"
        return await self._finish(
            Status.ERROR,
            message,
            exit_code=returncode,
            error=_error(ErrorType.EXECUTOR_DIED, message, self._step),
        )

    async def _converse(self, child: _spawn.Child, channel: ExecutorChannel) -> bool:
        """Handle the executor's frames until a final one, its exit, a stop or the deadline.

        Returns True when the executor exited on its own.
        """
        exit_task = _spawn.exit_future(child.process)
        while self._ending is None:
            timeout = self._remaining()
            if self._pending_progress is not None and (
                timeout is None or timeout > _PROGRESS_INTERVAL
            ):
                timeout = _PROGRESS_INTERVAL
            frame_ready = channel.ready()
            if not frame_ready.done():
                waits: set[asyncio.Future[Any]] = {frame_ready, exit_task, self.stop}
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
            if self.deadline is not None and _clock.monotonic() >= self.deadline:
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
            self._on_progress(self.record.id)

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
                    self._on_progress(self.record.id)
                # else: recorded with the pid already; nothing changed, nobody to wake.
                self._announced = None
            case Failed(_, name, error_type, message, tb):
                text = f"step {name!r} failed: {error_type}: {message}"
                error = _error(error_type, message, name, tb)
                self._ending = lambda: self._finish(Status.ERROR, text, error=error)
            case Done() as done:
                await self._done(done, channel)

    async def _done(self, done: Done, channel: ExecutorChannel) -> None:
        index, name = done.index, done.name
        try:
            output = marshal.loads(done.output)
            json.dumps(output, allow_nan=False)
        except (ValueError, TypeError) as exc:
            text = f"step {name!r} returned a value that is not JSON-serialisable: {exc}"
            error = _error(ErrorType.STEP_OUTPUT, text, name)
            self._ending = lambda: self._finish(Status.ERROR, text, error=error)
            await _send(channel, frames.exit_now())
            return
        await self._flush_progress(force=True)
        if done.pause:
            self._ending = lambda: self._pause(index, name, output)
            return
        if index + 1 >= len(self.record.spec["steps"]):
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
