"""The warm executor ("zygote"): a lean, pre-started process that forks a fresh executor for
each process run.

Started by the manager as ``python -I -c <boot> <control fd> <preload> <sys.path...>``.
It imports the executor (and any modules named in ``preload``) once, then waits on a
SOCK_SEQPACKET control socket. For each ``fork`` request — which carries the run's output
pipe and channel socket as SCM_RIGHTS file descriptors, its environment (as a difference
from the zygote's own, which the zygote reports when ready) and working
directory — it forks a child that starts a session of its own, takes the pipe as stdout and
stderr and /dev/null as stdin, and runs ``executor.main`` on the channel: the same executor a
cold spawn would run, minus interpreter start-up and imports. The zygote reaps its children
and reports each exit status to the manager, which cannot wait for them itself.

The zygote is single-threaded and never touches the store, so forking it is safe. It exits
when the manager closes the control socket (or dies).
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # no stub; see _child
import importlib
import marshal
import os
import select
import signal
import socket
import sys
import time

from . import executor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _send(control: socket.socket, *message: Any) -> None:
    control.send(marshal.dumps(message))


def _boot_clock_ns() -> int | None:
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    return None if clock is None else time.clock_gettime_ns(clock)


def _reap(control: socket.socket | None, children: set[int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        if control is not None:
            try:
                _send(control, "exit", pid, os.waitstatus_to_exitcode(status))
            except OSError:
                pass


def _end_children(children: set[int]) -> None:
    """The manager is gone (its socket closed): its guard stops these too, but the zygote is
    their parent and the only one that surely knows them all. SIGTERM their sessions, then
    SIGKILL after a second; reap."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in list(children):
            try:
                os.killpg(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + 1.0
        while children and time.monotonic() < deadline:
            _reap(None, children)
            if children:
                time.sleep(0.01)
        if not children:
            return


def _set_environ(changed: dict[str, str], removed: list[str]) -> None:
    """Apply the run's environment as a difference from ours (which the manager knows: we
    sent it with "ready"): usually a few variables, not the whole environment again."""
    environ = os.environ
    for name in removed:
        environ.pop(name, None)
    for name, value in changed.items():
        environ[name] = value


def _child(
    out_fd: int,
    channel_fd: int,
    env: tuple[dict[str, str], list[str]],
    cwd: str | None,
    close: list[int],
) -> None:
    """In the forked child: become a fresh executor process, run, and never return."""
    code = 70
    try:
        # _signal, not signal: the latter's wrappers build enums (~100 us in a fresh child).
        _signal.set_wakeup_fd(-1)
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
        _signal.signal(_signal.SIGTERM, _signal.SIG_DFL)
        os.setsid()
        for fd in close:
            os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.close(out_fd)
        _set_environ(*env)
        if cwd:
            os.chdir(cwd)
        code = executor.main([str(channel_fd)])
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def main(control_fd: int, preload: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    control = socket.socket(fileno=control_fd)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    os.set_blocking(wake_read, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    for name in preload:
        try:
            importlib.import_module(name)
        except Exception as exc:
            _send(control, "warning", f"cannot preload {name!r}: {type(exc).__name__}: {exc}")
    # Forked children share our memory copy-on-write; the cyclic GC touching every object
    # would copy it all. Freeze what exists now so collections in children leave it alone.
    import gc

    gc.collect()
    gc.freeze()
    # Our environment, which each fork request then amends (see _set_environ).
    _send(control, "ready", os.getpid(), dict(os.environ))
    children: set[int] = set()
    try:
        _serve(control, wake_read, wake_write, children)
    finally:
        _end_children(children)
    return 0


def _serve(control: socket.socket, wake_read: int, wake_write: int, children: set[int]) -> None:
    while True:
        readable, _, _ = select.select([control.fileno(), wake_read], [], [])
        if wake_read in readable:
            try:
                while os.read(wake_read, 512):
                    pass
            except BlockingIOError:
                pass
        _reap(control, children)
        if control.fileno() not in readable:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(control, 1 << 20, 4)
        except (ConnectionError, OSError):
            return
        if not data:
            return  # the manager closed the socket (or died)
        request = marshal.loads(data)
        if request[0] != "fork" or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            continue
        _, request_id, changed, removed, cwd = request
        out_fd, channel_fd = fds
        before = _boot_clock_ns()
        pid = os.fork()
        if pid == 0:
            _child(
                out_fd,
                channel_fd,
                (changed, removed),
                cwd,
                [control.fileno(), wake_read, wake_write],
            )
        children.add(pid)
        os.close(out_fd)
        os.close(channel_fd)
        # The boot clock around the fork: the manager tells the child's create time from it.
        _send(control, "forked", request_id, pid, before, _boot_clock_ns())


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), [name for name in sys.argv[2].split(",") if name]))
