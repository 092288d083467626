"""The warm executor ("zygote"): a lean, pre-started process that forks a fresh executor for
each process run.

Started by the manager as ``python -I -c <boot> <control fd> <preload> <sys.path...>``.
It imports the executor (and any modules named in ``preload``) once, then waits on a
SOCK_SEQPACKET control socket. A ``fork`` request carries the run's output pipe and channel
socket as SCM_RIGHTS file descriptors, its environment (as a difference from the zygote's
own, which the zygote reports when ready), working directory and, unless it is large, the
job itself. The zygote forks a child that starts a session of its own, takes the pipe as
stdout and stderr and /dev/null as stdin, and runs the executor on the channel: the same
executor a cold spawn would run, minus interpreter start-up, imports and, when the job came
with the request, reading and decoding it (it then waits only for the manager's go-ahead).

A forked child pays for every page it writes (copy-on-write, ~4 us each here), so the
zygote leaves it little to undo: no signal handler or wake-up fd is installed (children
are reaped through pidfds), stdout and stderr are line-buffered already, /dev/null is open
already. It reports each exit status to the manager, which cannot wait for them itself.

With ``Manager(reuse_executors=N)`` a forked executor runs up to N jobs one after another
(``_serve_jobs``): after each it lets go of the run's pipes, says "idle", and takes the next
job with that run's pipes; the environment, directory, streams and timers are put back in
between (docs/steps.md, "Reused executors").

The zygote is single-threaded and never touches the store, so forking it is safe. It exits
when the manager closes the control socket (or dies).
"""

from __future__ import annotations

import importlib
import marshal
import os
import select
import signal
import socket
import sys
import time

from .. import steps
from .._tags import CLAIM_VARIABLE, TAG_SPACE_SIZE, TAG_SPACE_VARIABLE, TAG_VARIABLE
from .._wire import frames as _protocol
from . import executor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .._wire.job import Job


def _send(control: socket.socket, *message: Any) -> None:
    control.send(marshal.dumps(message))


_BOOT_CLOCK: int | None = getattr(time, "CLOCK_BOOTTIME", None)


def _boot_clock_ns() -> int | None:
    # As _spawn.boot_clock_ns, which the zygote does not import (it pulls in psutil).
    return None if _BOOT_CLOCK is None else time.clock_gettime_ns(_BOOT_CLOCK)


def _reaped(control: socket.socket | None, poller: Any, children: dict[int, int], fd: int) -> None:
    """A child's pidfd became readable: it exited. Reap it, report it, forget it."""
    pid = children.pop(fd)
    poller.unregister(fd)
    os.close(fd)
    try:
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
    except ChildProcessError:
        code = 255
    if control is not None:
        try:
            _send(control, "exit", pid, code)
        except OSError:
            pass


def _end_children(poller: Any, children: dict[int, int]) -> None:
    """The manager is gone (its socket closed): its guard stops these too, but the zygote is
    their parent and the only one that surely knows them all. SIGTERM their sessions, then
    SIGKILL after a second; reap."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in children.values():
            try:
                os.killpg(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + 1.0
        while children and time.monotonic() < deadline:
            for fd, _ in poller.poll(max(deadline - time.monotonic(), 0.0)):
                if fd in children:
                    _reaped(None, poller, children, fd)
        if not children:
            return


def _tag_room() -> int | None:
    """Where, in our own memory, the room for a tag is (see _retag): found once, here, since
    every forked child has its environment block at the same address as we do."""
    room = f"{TAG_SPACE_VARIABLE}=".encode()
    try:
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        env_start = int(fields[47])  # stat field 50: where the environment block starts
        with open("/proc/self/environ", "rb") as environ:
            block = b"\0" + environ.read()
    except (OSError, ValueError, IndexError):
        return None
    offset = block.find(b"\0" + room)
    return None if offset < 0 else env_start + offset


_TAG_ROOM: list[int | None] = []


def _retag(changed: dict[str, str]) -> None:
    """Write the run's tag into the environment block /proc shows for this process.

    A forked executor's /proc/PID/environ is the warm executor's (the block it was exec'd
    with: os.environ changes only libc's copy), and so is that of any process a step forks
    without exec'ing, such as a daemon (fork, setsid, fork): without the tag there, a
    sweep could not find such a daemon. The warm executor was started with room for it
    (TAG_SPACE_VARIABLE); the tag is written over it, in place, through /proc/self/mem
    (one open and one write: the address was found before the fork). Best effort: where
    that is refused, only exec'd descendants carry the tag."""
    address = _TAG_ROOM[0] if _TAG_ROOM else None
    process_id, token = changed.get(TAG_VARIABLE), changed.get(CLAIM_VARIABLE)
    if address is None or process_id is None or token is None:
        return
    entry = f"{TAG_VARIABLE}={process_id}\0{CLAIM_VARIABLE}={token}".encode()
    size = len(TAG_SPACE_VARIABLE) + 1 + TAG_SPACE_SIZE
    if len(entry) > size:
        return
    try:
        fd = os.open("/proc/self/mem", os.O_RDWR | os.O_CLOEXEC)
        try:
            os.pwrite(fd, entry.ljust(size, b"\0"), address)
        finally:
            os.close(fd)
    except OSError:
        pass


def _set_environ(changed: dict[str, str], removed: list[str]) -> None:
    """Apply the run's environment as a difference from ours (which the manager knows: we
    sent it with "ready"): usually a few variables, not the whole environment again."""
    environ = os.environ
    for name in removed:
        environ.pop(name, None)
    for name, value in changed.items():
        environ[name] = value


def _reset_environ(base: dict[str, str]) -> None:
    """Back to ``base`` (ours, before any job): whatever the last job's steps set or removed
    is undone too, not only the job's own variables."""
    environ = os.environ
    for name in [name for name in environ if name not in base]:
        del environ[name]
    for name, value in base.items():
        if environ.get(name) != value:
            environ[name] = value


def _let_go_of_pipes() -> bool:
    """A job ended and the executor is to be reused: flush, then point stdout and stderr at
    /dev/null, so that the manager reads the end of the run's pipes (unless something the
    steps started holds them: the manager's sweep ends that). False when the executor
    must not be reused: a thread the steps started still runs (it would go on into the
    next job, printing into its log), or Python's own stdout or stderr is closed."""
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return False
    executor.flush_streams()
    if any(stream is None or stream.closed for stream in (sys.__stdout__, sys.__stderr__)):
        return False
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    return True


def _enter(channel: executor.Channel, job: Job, cwd: str | None) -> bool:
    """Change to the process's directory; False, with the first step's error sent (as a
    spawned executor's run ends when its directory is gone), if that cannot be."""
    if not cwd:
        return True
    try:
        os.chdir(cwd)
    except OSError as exc:
        index = job["start"]
        name = job["steps"][index]["name"]
        message = f"cannot change to the process's directory {cwd!r}: {exc.strerror or exc}"
        channel.send(_protocol.error(index, name, type(exc).__name__, message, ""))
        return False
    return True


def _tidy() -> None:
    """Between two jobs: reap the children the last job's sweep killed (else each stays a
    zombie until the executor exits), and stop a timer a step left (its signal would end
    the next job)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    for timer in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF):
        signal.setitimer(timer, 0)


def _serve_jobs(
    channel: executor.Channel,
    changed: dict[str, str],
    removed: list[str],
    cwd: str | None,
    job: Job,
) -> int:
    """Run ``job``; while the manager marks each job "reuse", say "idle" after it and run
    the next one it sends (with its own pipes, environment and directory), as a fresh
    executor would."""
    home = os.getcwd() if job.get("reuse") else None
    base = dict(os.environ) if home is not None else None
    while True:
        _set_environ(changed, removed)
        _retag(changed)
        code = executor.run(channel, job) if _enter(channel, job, cwd) else 0
        if code != 0 or home is None or not job.get("reuse") or not _let_go_of_pipes():
            return code
        channel.send(_protocol.idle())
        message, fds = channel.receive_with_fds(2)
        if message[0] != _protocol.NEXT or len(fds) != 2:
            return 0  # the manager has no more for us (it closed the channel, or said so)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in fds:
            os.close(fd)
        _tidy()
        # What a step may have replaced: Python's own streams again (on the new pipes).
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        if base is not None:
            _reset_environ(base)
        try:
            os.chdir(home)
        except OSError:
            pass  # gone since: the next job names its own directory, or runs where it is
        _, changed, removed, cwd, job = message


def _child(
    out_fd: int,
    err_fd: int,
    channel_fd: int,
    request: tuple[Any, ...],
    devnull: int,
    close: list[int],
) -> None:
    """In the forked child: become a fresh executor process, run, and never return."""
    code = 70
    try:
        _, _, changed, removed, cwd, job = request
        os.setsid()
        for fd in close:
            os.close(fd)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.close(out_fd)
        os.close(err_fd)
        # Nothing runs before the manager's word, sent once it recorded our pid: "go" when
        # the job came with the request, else ("run", ...) with what was too big for it.
        channel = executor.Channel(channel_fd)
        message = channel.receive()
        if job is None and message[0] == _protocol.RUN:
            _, changed, removed, cwd, job = message
        elif job is None or message[0] != _protocol.GO:
            os._exit(2)
        code = _serve_jobs(channel, changed, removed, cwd, job)
    except EOFError:
        code = 3  # the manager gave up on this run (or died) before it began
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        executor.flush_streams()
        os._exit(code)


def _echo(data: dict[str, Any]) -> dict[str, Any]:
    return data


def _warm_up(rounds: int = 50) -> None:
    """Run the executor's path (receive "go", one step, send "done") here, before any fork.
    Python 3.11 rewrites a function's bytecode in place as it warms up (counters, then
    specialised instructions); done in each child, those writes would cost it a page copy
    each. Done here, children inherit the warmed code."""
    ours, theirs = socket.socketpair()
    try:
        channel = executor.Channel(theirs.fileno())
        job: Job = {
            "process_id": "warm-up",
            "attempt": 1,
            "sys_path": list(sys.path),
            "steps": [
                {
                    "name": "warm",
                    "target": f"{__name__}:_echo",
                    "args": [],
                    "kwargs": {},
                    "interrupt": False,
                }
            ],
            "start": 0,
            "input": {"warm": True},
        }
        go = _protocol.encode(_protocol.go())
        for _ in range(rounds):
            ours.sendall(go)
            channel.receive()
            _set_environ({"AIOBGPROC_WARM_UP": "1"}, ["AIOBGPROC_WARM_UP"])
            executor.run(channel, job)
            ours.recv(1 << 16)
    except Exception:  # a warm-up only: the children are right either way
        pass
    finally:
        ours.close()
        theirs.close()
        steps.set_progress_sink(None)
        os.environ.pop("AIOBGPROC_WARM_UP", None)


def main(argv: list[str]) -> int:
    """``argv``: the control socket's fd, then the modules to preload."""
    control_fd, preload = int(argv[0]), argv[1:]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    control = socket.socket(fileno=control_fd)
    for name in preload:
        try:
            importlib.import_module(name)
        except Exception as exc:
            _send(control, "warning", f"cannot preload {name!r}: {type(exc).__name__}: {exc}")
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    for stream in (sys.stdout, sys.stderr):  # as the executor wants them (see executor.run)
        try:
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass
    _warm_up()
    _TAG_ROOM[:] = [_tag_room()]
    # Forked children share our memory copy-on-write; the cyclic GC touching every object
    # would copy it all. Freeze what exists now so collections in children leave it alone.
    import gc

    gc.collect()
    gc.freeze()
    # Our environment, which each fork request then amends (see _set_environ).
    _send(control, "ready", os.getpid(), dict(os.environ))
    poller = select.epoll()
    poller.register(control.fileno(), select.EPOLLIN)
    children: dict[int, int] = {}  # pidfd -> pid
    try:
        _serve(control, poller, children, devnull)
    finally:
        try:
            poller.unregister(control.fileno())  # only the children's ends matter now
        except OSError:
            pass
        _end_children(poller, children)
    return 0


def _serve(control: socket.socket, poller: Any, children: dict[int, int], devnull: int) -> None:
    control_fd = control.fileno()
    while True:
        for fd, _ in poller.poll():
            if fd != control_fd:
                _reaped(control, poller, children, fd)
                continue
            try:
                data, fds, _, _ = socket.recv_fds(control, 1 << 20, 4)
            except (ConnectionError, OSError):
                return
            if not data:
                return  # the manager closed the socket (or died)
            request = marshal.loads(data)
            if request[0] != "fork" or len(fds) != 3:
                for passed in fds:
                    os.close(passed)
                continue
            out_fd, err_fd, channel_fd = fds
            before = _boot_clock_ns()
            pid = os.fork()
            if pid == 0:
                _child(
                    out_fd,
                    err_fd,
                    channel_fd,
                    request,
                    devnull,
                    [control_fd, poller.fileno(), *children],
                )
            after = _boot_clock_ns()
            for passed in fds:
                os.close(passed)
            pidfd = os.pidfd_open(pid)
            children[pidfd] = pid
            poller.register(pidfd, select.EPOLLIN)
            # The boot clock around the fork: the manager tells the child's create time by it.
            _send(control, "forked", request[1], pid, before, after)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
