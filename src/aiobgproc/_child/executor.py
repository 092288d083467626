"""The executor: the child process that runs a process's steps (command line: _os/boot.py).

It stays lean on purpose: interpreter start-up is most of a step's latency, so it imports
only built-in modules (marshal, os, sys, importlib); asyncio is imported only when a step
is ``async``, traceback only when a step fails. It never touches the store: it reports to
the manager on a socket of its own, and whatever steps print goes to stdout/stderr, which
the manager captures as the output log.

Before a step starts, the previous step's output has been committed: the executor waits
for the manager's ``ack`` after each ``done`` but the last one.
"""

from __future__ import annotations

import marshal
import os
import sys

from .. import steps
from .._wire import frames as _protocol
from ..errors import ErrorType, StepOutputError
from .stepcall import call_step, resolve, step_output

TYPE_CHECKING = False  # typing costs ~10 ms of executor start-up
if TYPE_CHECKING:
    from typing import Any

    from .._wire.job import Job


class Channel:
    """Blocking frame I/O on the executor's end of the socket pair."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, message: tuple[Any, ...]) -> None:
        data = _protocol.encode(message)
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]

    def _read_exactly(self, size: int) -> bytes:
        parts = []
        while size:
            chunk = os.read(self.fd, min(size, 1 << 20))
            if not chunk:
                raise EOFError("the manager closed the channel")
            parts.append(chunk)
            size -= len(chunk)
        return b"".join(parts)

    def receive(self) -> tuple[Any, ...]:
        size = int.from_bytes(self._read_exactly(_protocol.HEADER), "big")
        return _protocol.decode(self._read_exactly(size))

    def receive_with_fds(self, most: int) -> tuple[tuple[Any, ...], list[int]]:
        """The next frame, and the fds (at most ``most``) sent with it (a "next" frame)."""
        import socket  # only a reused executor gets here

        sock = socket.socket(fileno=os.dup(self.fd))  # its own fd: closing it leaves ours
        header = b""
        fds: list[int] = []
        try:
            while len(header) < _protocol.HEADER:
                data, got, _, _ = socket.recv_fds(sock, _protocol.HEADER - len(header), most)
                fds.extend(got)
                if not data:
                    raise EOFError("the manager closed the channel")
                header += data
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        finally:
            sock.close()
        size = int.from_bytes(header, "big")
        return _protocol.decode(self._read_exactly(size)), fds


def flush_streams() -> None:
    """Flush stdout and stderr, and Python's own ones too when a step replaced them (what
    it printed before is still in their buffers)."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()  # type: ignore[union-attr]
        except (AttributeError, OSError, ValueError):
            pass


def _report_error(channel: Channel, index: int, name: str, exc: BaseException) -> None:
    import traceback  # only on failure

    text = "".join(traceback.format_exception(exc))
    if isinstance(exc, StepOutputError):
        kind, message = ErrorType.STEP_OUTPUT, str(exc)
    else:
        kind = type(exc).__name__  # the module is in the traceback
        message = str(exc)
    print(text, file=sys.stderr, end="")
    flush_streams()
    channel.send(_protocol.error(index, name, kind, message, text))


def run_job(channel: Channel, job: Job) -> None:
    data: dict[str, Any] = job["input"] or {}
    all_steps = job["steps"]
    steps.set_progress_sink(
        lambda fraction, message: channel.send(_protocol.progress(fraction, message))
    )
    for index in range(job["start"], len(all_steps)):
        spec = all_steps[index]
        name = spec["name"]
        if index != job["start"]:  # the manager recorded the first one with our pid
            channel.send(_protocol.start(index, name))
        try:
            target = resolve(spec["target"])
            result, interrupting = call_step(target, spec["args"], spec["kwargs"], data)
            output, interrupt = step_output(name, result)
            payload = marshal.dumps(output)
        except BaseException as exc:
            _report_error(channel, index, name, exc)
            return
        flush_streams()
        if interrupting or interrupt or spec.get("interrupt"):
            channel.send(_protocol.interrupt(index, name, payload))
            return
        channel.send(_protocol.done(index, name, payload))
        if index + 1 == len(all_steps):
            return  # the last one: the manager expects no more of us
        reply = channel.receive()
        if reply[0] != _protocol.ACK:
            return  # the manager wants us gone (cancelled, or it lost the process)
        data = output


def main(argv: list[str] | None = None) -> int:
    """A spawned executor: read the job from the channel whose fd is ``argv[0]``, run it."""
    args = sys.argv[1:] if argv is None else argv
    channel = Channel(int(args[0]))
    try:
        message = channel.receive()
    except (EOFError, OSError):
        return 3  # the manager went away (or gave up on this run) before it began
    if message[0] != _protocol.JOB:
        return 2
    return run(channel, message[1])


def run(channel: Channel, job: Job) -> int:
    sys.path[:] = job["sys_path"]
    for stream in (sys.stdout, sys.stderr):
        # Line by line, as a terminal would have it (a forked executor's already are).
        if not getattr(stream, "line_buffering", True):
            try:
                stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
            except (AttributeError, ValueError):
                pass
    try:
        run_job(channel, job)
    except (EOFError, BrokenPipeError):
        return 3  # the manager went away
    finally:
        flush_streams()
    end_escaped_children()
    return 0


def _has_children() -> bool:
    """Whether this process has any child, alive or not: one system call, nothing reaped."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    except (OSError, AttributeError):
        pass  # cannot tell: look
    return True


def _children() -> list[int]:
    pids: list[int] = []
    try:
        for tid in os.listdir("/proc/self/task"):
            # Binary: a text file would import an encoding module (~0.5 ms in a forked child).
            with open(f"/proc/self/task/{tid}/children", "rb") as handle:
                pids.extend(int(pid) for pid in handle.read().split())
    except OSError:
        pass
    return pids


def end_escaped_children(grace: float = 1.0) -> None:
    """Stop the children a step started in a session of their own and left running.

    Children in the executor's own session are the manager's business (it terminates the
    session once the executor exits); these would escape that. SIGTERM to their process
    group, up to ``grace`` seconds, then SIGKILL; each is reaped.
    """
    if not _has_children():
        return  # the common case: the steps started nothing
    import signal
    import time

    session = os.getsid(0)
    escaped = []
    for pid in _children():
        try:
            if os.getsid(pid) != session:
                escaped.append(pid)
        except OSError:
            continue
    if not escaped:
        return

    def signal_all(sig: int) -> None:
        for pid in escaped:
            try:
                if os.getpgid(pid) == pid:
                    os.killpg(pid, sig)
                else:
                    os.kill(pid, sig)
            except OSError:
                pass

    signal_all(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while escaped and time.monotonic() < deadline:
        escaped = [pid for pid in escaped if os.waitpid(pid, os.WNOHANG)[0] == 0]
        if escaped:
            time.sleep(0.01)
    if escaped:
        signal_all(signal.SIGKILL)
        for pid in escaped:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


if __name__ == "__main__":
    sys.exit(main())
