"""Running one claimed process: a command, or an executor that runs Python steps.

A runner owns the child from spawn to reap. It returns when the process has reached a state
it recorded (or lost its claim), and the child's whole tree is gone.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import shutil
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from . import _clock, _tags
from ._faults import fault
from ._os import spawn as _spawn
from ._os import tree as _tree
from ._os.executor_pool import ExecutorPool
from ._os.guard import Guard
from ._os.stdin import StdinPipe
from ._os.zygote import Zygote
from ._output import OutputRecorder
from ._retry import failure_entry, retry_wait
from ._run_controls import Requests, RunControls
from ._wire.job import CommandSpec
from .errors import ErrorType
from .models import Status
from .store import Chunk, ProcessRecord, Store, StoredChunk, codec

log = logging.getLogger(__name__)

ATTEMPT_VARIABLE = "AIOBGPROC_ATTEMPT"
"""Set in every child's environment: which attempt at running the process this is (1, 2...)."""
StopReason = Literal["cancelled", "closing", "lost"]
_DRAIN_TIMEOUT = 0.5  # after the child exits, how long to wait for its pipe to close


@functools.cache
def _signal_resetting_env() -> str | None:
    """GNU env (coreutils 8.31+), if it is here and takes --default-signal; asked once."""
    env = shutil.which("env")
    if env is None:
        return None
    try:
        done = subprocess.run(
            [env, "--default-signal=INT", "--", "true"], check=False, capture_output=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return env if done.returncode == 0 else None


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
    executors: ExecutorPool | None = None
    """Idle reused executors (Manager(reuse_executors=N), N > 1, with a warm executor)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status | None
    """What was recorded (None when nothing was: the claim was lost, or requeued)."""
    message: str | None = None


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with code {returncode}"


def error_dict(
    kind: str, message: str, step: str | None = None, tb: str | None = None
) -> dict[str, Any]:
    return {"type": kind, "message": message, "traceback": tb, "step": step}


class Runner:
    def __init__(
        self,
        context: RunContext,
        record: ProcessRecord,
        stop: asyncio.Future[StopReason],
        on_change: Callable[[str], None],
        requests: Requests | None = None,
    ) -> None:
        """``on_change(process_id)``: the run stored something new (output, progress, a
        step). ``requests``: set when requests were made of the run (_run_controls)."""
        self.context = context
        self.store = context.store
        self.record = record
        self.claim = record.claim(context.manager_id)
        self.tag = _tags.make_tag(record.id, self.claim.token)
        self.stop = stop
        self._on_change = on_change
        self._requests = requests or Requests()
        self._controls: RunControls | None = None
        self.deadline = None if record.timeout is None else _clock.monotonic() + record.timeout
        self.suspended_at: float | None = None
        # Resolved (and replaced) when the deadline moves: a wait re-reads _remaining().
        self.rearm: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def suspended(self) -> bool:
        return self.suspended_at is not None

    def pause_clock(self) -> None:
        """Suspended: the timeout's clock stands still until resume_clock."""
        if self.suspended_at is None:
            self.suspended_at = _clock.monotonic()
            self._rearm()

    def resume_clock(self) -> None:
        if self.suspended_at is not None:
            if self.deadline is not None:
                self.deadline += _clock.monotonic() - self.suspended_at
            self.suspended_at = None
            self._rearm()

    def _rearm(self) -> None:
        rearm, self.rearm = self.rearm, asyncio.get_running_loop().create_future()
        rearm.set_result(None)

    def _remaining(self) -> float | None:
        if self.deadline is None or self.suspended_at is not None:
            return None
        return max(self.deadline - _clock.monotonic(), 0.0)

    def _expired(self) -> bool:
        return self._remaining() == 0.0

    async def _recorder(self) -> OutputRecorder:
        async def write(chunks: Sequence[StoredChunk], size: int, truncated: bool) -> None:
            await self.store.append_output(self.claim, chunks, size, truncated)
            self._on_change(self.record.id)

        async def prepare(chunks: list[Chunk]) -> list[StoredChunk]:
            return await codec.encode(chunks, self.store.output_codec)

        # No byte was ever produced: no chunk exists, so no need to ask where they end.
        first = (
            await self.store.last_output_seq(self.record.id) + 1 if self.record.output_size else 0
        )
        recorder = OutputRecorder(
            write,
            prepare=prepare,
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

    async def _not_started(self, recorder: OutputRecorder, exc: OSError, message: str) -> Outcome:
        """The child could not be started: the run ends as error."""
        await recorder.close()
        return await self._finish(
            Status.ERROR, message, error=error_dict(type(exc).__name__, message)
        )

    def _started(
        self, child: _spawn.Child, recorder: OutputRecorder, stdin: StdinPipe | None = None
    ) -> None:
        """The child runs: its output may be paused and resumed, the guard watches it,
        requests made of it are carried out."""
        recorder.on_drain = child.reader.resume
        if self.context.guard is not None:
            self.context.guard.watch(child.os_pid, child.started, self.tag)
        self._controls = RunControls(self, child, stdin, self._requests)
        self._controls.start()
        fault("after_spawn")

    async def _finish(self, status: Status, message: str | None = None, **fields: Any) -> Outcome:
        if status in (Status.ERROR, Status.TIMEOUT):
            retried = await self._retry(status, message, fields.get("error"))
            if retried is not None:
                return retried
        recorded = await self.store.finish(self.claim, status, _clock.wall(), **fields)
        if not recorded:
            await self.store.release(self.claim)
            return Outcome(None)
        return Outcome(status, message)

    def _stop_signal(self) -> signal.Signals:
        """What stops the run's tree first (Command(stop_signal=); SIGTERM by default)."""
        return signal.Signals(self.record.spec.get("stop_signal", signal.SIGTERM))

    def _failing_step(self) -> tuple[int, str | None]:
        """The index and name of the step that failed (a command: 0 and None)."""
        return 0, None

    async def _retry(
        self, status: Status, message: str | None, error: dict[str, Any] | None
    ) -> Outcome | None:
        """Put a failed run back in the queue to run again, if its retry policy says so
        (docs/steps.md, "Retries"); None when the process ends here."""
        index, step = self._failing_step()
        record = self.record
        wait = retry_wait(record.spec, index, step, status, record.failures)
        if wait is None:
            return None
        now = _clock.wall()
        failures = [*record.failures, failure_entry(record.attempts, step, status, error, now)]
        if not await self.store.retry(self.claim, now + wait, wait <= 0, error, failures):
            await self.store.release(self.claim)  # cancelled or lost meanwhile
            return Outcome(None)
        log.info(
            "process %s: %s; run again in %.3g s",
            record.id,
            message or status,
            wait,
            extra={"process_id": record.id},
        )
        return Outcome(Status.QUEUED, message)

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
            Status.TIMEOUT, message, error=error_dict(ErrorType.TIMEOUT, message, self.current_step)
        )

    @property
    def current_step(self) -> str | None:
        return self.record.step

    async def _end_child(
        self, child: _spawn.Child, *, exited: bool, keep: bool = False
    ) -> int | None:
        """Stop the child's whole tree (gracefully unless it already exited), close its pipe.

        However the run ends, every process carrying its tag goes too, before the end is
        recorded: what a command or a step left running in a session of its own would
        otherwise outlive it (reparented to init, forever for a daemon's worth of runs).
        ``keep``: a reused executor that let go of the run's pipes and waits for its next
        run: the rest of its tree goes, it stays (returns None)."""
        if self._controls is not None:
            await self._controls.stop()
        if exited and not keep and child.process.returncode is None:
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
        # Kept, with no process (nor thread) started anywhere on this machine since the run
        # began, its tree is the executor alone: one read instead of a sweep.
        if not (keep and child.first_pid is not None and _tree.last_pid() == child.first_pid):
            await self._sweep(child, keep)
        returncode = None if keep else await self._reap(child)
        child.reader.close()
        if self.context.guard is not None:
            self.context.guard.forget(child.os_pid)
        return returncode

    async def _reap(self, child: _spawn.Child) -> int | None:
        returncode = await _spawn.wait_exit(child, 5.0)
        if returncode is None:  # cannot happen after SIGKILL, short of an unkillable process
            log.error(
                "process %s: os pid %d did not exit",
                self.record.id,
                child.os_pid,
                extra={"process_id": self.record.id},
            )
        return returncode

    async def _sweep(self, child: _spawn.Child, keep: bool) -> None:
        """Terminate the run's whole tree (but the executor, when it is kept)."""
        await _tree.terminate_tree(
            child.os_pid,
            child.started,
            grace=self.context.grace_period,
            tag=self.tag,
            recent=child.recent,
            # Its end was just seen (when it exited), so its session is still its own.
            just_reaped=True,
            first=self._stop_signal(),
            first_pid=child.first_pid,
            spare=child.os_pid if keep else None,
        )


class CommandRunner(Runner):
    """Runs an operating-system command; its output is ``{"exit_code": N}``."""

    async def _on_closing(self) -> Outcome:
        message = "the manager was closed while the command was running; a command cannot resume"
        return await self._finish(
            Status.ERROR, message, error=error_dict(ErrorType.MANAGER_CLOSED, message)
        )

    def _argv(self, spec: CommandSpec) -> list[str]:
        """The argv to run. A signal this process ignores is ignored by its children from
        birth, and a shell cannot even trap it: a manager started in the background of a
        script (SIGINT ignored) would send a stop signal nobody can act on. Then GNU env
        puts it back to its default before the command starts."""
        stop = self._stop_signal()
        if signal.getsignal(stop) is signal.SIG_IGN:
            env = _signal_resetting_env()
            if env is not None:
                return [env, f"--default-signal={stop.name}", "--", *spec["argv"]]
        return spec["argv"]

    def _stdin(self, spec: CommandSpec) -> StdinPipe | None:
        """The command's stdin pipe (None: /dev/null): open for send_input, or the bytes
        given to start, then closed."""
        data = spec.get("stdin_data")
        if data is None and spec.get("stdin") != "pipe":
            return None
        stdin = StdinPipe(on_drained=self._requests.set)
        if data is not None:
            stdin.write(base64.b64decode(data))
            stdin.close()
        return stdin

    async def run(self) -> Outcome:
        spec = cast(CommandSpec, self.record.spec)
        recorder = await self._recorder()
        stdin = self._stdin(spec)
        try:
            child = await _spawn.spawn(
                self._argv(spec),
                on_output=recorder.feed,
                cwd=spec.get("cwd"),
                env=self._env(),
                stdin=None if stdin is None else stdin.child_fd,
            )
        except OSError as exc:
            if stdin is not None:
                stdin.abort()
            message = f"cannot run {spec['argv'][0]!r}: {exc.strerror or exc}"
            return await self._not_started(recorder, exc, message)
        if stdin is not None:
            stdin.child_started()
        self._started(child, recorder, stdin)
        try:
            if not await self.store.set_os_pid(self.claim, child.os_pid, child.started):
                self.stop.set_result("lost") if not self.stop.done() else None
            exit_task = child.process.ended
            while True:
                rearm = self.rearm
                waits: set[asyncio.Future[Any]] = {exit_task, self.stop, rearm}
                await asyncio.wait(
                    waits, timeout=self._remaining(), return_when=asyncio.FIRST_COMPLETED
                )
                if exit_task.done() or self.stop.done() or self._expired():
                    break
            exited = exit_task.done()
            returncode = await ended(self, child, exited)
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
            error=error_dict(ErrorType.COMMAND, message),
        )


async def ended(runner: Runner, child: _spawn.Child, exited: bool) -> int | None:
    return await asyncio.shield(runner._end_child(child, exited=exited))
