"""The whole tree of a run, found and stopped: its process, the session it leads, their
descendants, and every process that carries the run's tag.

The tag (``TAG_VARIABLE`` and ``CLAIM_VARIABLE`` in the environment every child gets) is what
finds a process that left the session (``setsid``) and lost its parent: such a process is
in no session of ours and descends from nothing of ours, but /proc/PID/environ still shows
the environment it was started with. Every end of a run sweeps by tag (docs/guarantees.md).

A sweep reads /proc itself: one directory listing, then /proc/PID/stat of each candidate
(parent, session, state, start time) and /proc/PID/environ of those that started after the
run's process. Two things keep it cheap when a run was short (most are):
- pids are handed out in increasing order, wrapping at pid_max: a process started after
  the run's process has a pid in the cyclic range from that process's pid to the last one
  handed out (/proc/loadavg), unless the counter went all the way round meanwhile, which a
  run shorter than ``pid_max / 100,000`` seconds cannot see happen;
- the live children of this OS process (other runs' processes, the warm executor, the
  guard) are never part of another run's tree: they are skipped without a read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
from collections.abc import Sequence
from typing import NamedTuple

import psutil

from .. import _clock
from .._tags import CLAIM_VARIABLE, TAG_VARIABLE
from . import pidtime as _pidtime

log = logging.getLogger(__name__)

_children: set[int] = set()
"""Pids of this OS process's live children started by spawn (any manager's)."""


def add_child(pid: int) -> None:
    _children.add(pid)


def forget_child(pid: int) -> None:
    _children.discard(pid)


def _read_pid_max() -> int:
    try:
        with open("/proc/sys/kernel/pid_max", "rb") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return 32768  # the kernel's default


RECENT_SECONDS = _read_pid_max() / 100_000
"""A run's process younger than this cannot have seen the pid counter go round."""
_PROBE_MAX = 48  # more pids than this to look at: one listing of /proc costs less (~50 us)
_PROBE_ROUNDS = 3


class _Stat(NamedTuple):
    ppid: int
    session: int
    zombie: bool
    started: float  # psutil's create time


def _stat(pid: int) -> _Stat | None:
    fields = _pidtime.stat_fields(pid)
    if fields is None:
        return None
    try:
        started = _pidtime.ticks_to_create_time(int(fields[19]))
        return _Stat(int(fields[1]), int(fields[3]), fields[0] in (b"Z", b"X"), started)
    except ValueError:
        return None


def _environ(pid: int) -> bytes:
    try:
        fd = os.open(f"/proc/{pid}/environ", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return b""
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return b""
    finally:
        os.close(fd)
    return b"\0" + b"".join(chunks) + b"\0"


def last_pid() -> int | None:
    try:
        with open("/proc/loadavg", "rb") as handle:
            return int(handle.read().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def _needles(tag: str) -> tuple[bytes, bytes]:
    process_id, _, token = tag.rpartition("/")
    return (
        f"\0{TAG_VARIABLE}={process_id}\0".encode(),
        f"\0{CLAIM_VARIABLE}={token}\0".encode(),
    )


def _pids_since(first: int) -> list[int] | None:
    """The pids handed out after ``first`` that may be live processes, or None when
    listing /proc is the cheaper way to find them. A pid that is no process (any more) is
    told by one system call (~1 us) rather than a read; pids of threads may be among them
    (they share the counter), which is harmless: their stat shows their process's session,
    and signalling one signals its process. The last pid is read again after probing: a
    process that forked meanwhile has its child probed too."""
    live: list[int] = []
    probed = first
    last = last_pid()
    for _ in range(_PROBE_ROUNDS):
        if last is None or not first <= last <= first + _PROBE_MAX:
            return None  # unknown, far (the listing costs less), or wrapped
        for pid in range(probed + 1, last + 1):
            if pid in _children:
                continue
            try:
                os.getsid(pid)
            except OSError:
                continue  # no such process
            live.append(pid)
        probed, last = last, last_pid()
        if last == probed:
            break
    return live


def _all_pids(first: int | None) -> list[int]:
    """Every pid in /proc; when ``first`` is given, only those handed out since."""
    names = os.listdir("/proc")
    last = None if first is None else last_pid()  # after the listing: it covers every pid
    pids = [int(name) for name in names if name.isdigit()]
    if first is None or last is None:
        return pids
    if first <= last:
        return [pid for pid in pids if first < pid <= last]
    return [pid for pid in pids if not last < pid <= first]  # the counter wrapped since


def _candidates(first: int | None) -> dict[int, _Stat]:
    """Live processes other than this one and its children; when ``first`` (a process
    started less than RECENT_SECONDS ago) is given, only those started since."""
    me = os.getpid()
    pids = None if first is None else _pids_since(first)
    if pids is None:
        pids = _all_pids(first)
    found: dict[int, _Stat] = {}
    for pid in pids:
        if pid == me or pid in _children:
            continue
        stat = _stat(pid)
        if stat is not None and not stat.zombie:
            found[pid] = stat
    return found


def find_pids(
    os_pid: int | None,
    started: float | None,
    tag: str | None = None,
    *,
    recent: bool = False,
    just_reaped: bool = False,
    first_pid: int | None = None,
) -> set[int]:
    """Pids of every live process of the tree of ``os_pid`` (created at ``started``): the
    process, its session, their descendants, and processes carrying ``tag``.

    ``recent``: ``os_pid`` was started less than RECENT_SECONDS ago (only pids handed out
    since are looked at). ``just_reaped``: the caller saw ``os_pid`` exit a moment ago, so
    the session it led is still its own even with no process left of that pid.
    ``first_pid``: the last pid handed out when the run began, if after ``os_pid`` was (a
    reused executor's run: ``recent`` then counts from the run's start)."""
    if os_pid is None or started is None:
        os_pid, started = None, None
    first = (os_pid if first_pid is None else first_pid) if recent else None
    procs = _candidates(first)
    found: set[int] = set()
    leader = _stat(os_pid) if os_pid is not None else None
    ours = leader is not None and started is not None and abs(leader.started - started) < 0.01
    if ours and leader is not None and not leader.zombie:
        found.add(os_pid)  # type: ignore[arg-type]
    # A session id is not handed out again while a member lives, but a recorded pid may be
    # hours old: its number may since have led (and left) the session of some other
    # program. So members are taken by session only while our leader lives, or just after
    # we saw it exit; otherwise only by tag.
    if os_pid is not None and started is not None and (ours or (leader is None and just_reaped)):
        found.update(
            pid
            for pid, stat in procs.items()
            if stat.session == os_pid and stat.started >= started - 0.01
        )
    if tag is not None:
        process_needle, claim_needle = _needles(tag)
        for pid, stat in procs.items():
            if pid in found or (started is not None and stat.started < started - 0.01):
                continue  # a process started before the run's cannot be one of it
            environ = _environ(pid)
            if process_needle in environ and claim_needle in environ:
                found.add(pid)
    # Descendants of what was found (of the process itself while it lives).
    roots = list(found) + ([os_pid] if ours and os_pid is not None else [])
    by_parent: dict[int, list[int]] = {}
    for pid, stat in procs.items():
        by_parent.setdefault(stat.ppid, []).append(pid)
    while roots:
        for child in by_parent.get(roots.pop(), ()):
            if child not in found:
                found.add(child)
                roots.append(child)
    return found


def find_tree(
    os_pid: int | None,
    started: float | None,
    tag: str | None = None,
    *,
    recent: bool = False,
    just_reaped: bool = False,
    first_pid: int | None = None,
    spare: int | None = None,
) -> list[psutil.Process]:
    """find_pids() less ``spare``, as psutil processes (which refuse to signal a reused pid),
    the run's own process first, then the others oldest first: parents before children.

    The order matters: a shell signalled after the child it waits for may see that child
    die first and report it ("Terminated" on its stderr, which lands in the run's log)."""
    procs = []
    found = find_pids(
        os_pid, started, tag, recent=recent, just_reaped=just_reaped, first_pid=first_pid
    )
    if spare is not None:
        found.discard(spare)
    for pid in found:
        with contextlib.suppress(psutil.Error):
            procs.append(psutil.Process(pid))
    procs.sort(key=lambda proc: (proc.pid != os_pid, _create_time(proc), proc.pid))
    return procs


def _create_time(proc: psutil.Process) -> float:
    try:
        return proc.create_time()  # psutil read it when the object was made: no system call
    except psutil.Error:
        return 0.0


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal_all(procs: Sequence[psutil.Process], sig: signal.Signals) -> None:
    for proc in procs:
        # psutil refuses to signal a process whose pid was reused (create time differs).
        with contextlib.suppress(psutil.Error, OSError):
            proc.send_signal(sig)


async def _wait_gone(procs: Sequence[psutil.Process], timeout: float) -> list[psutil.Process]:
    deadline = _clock.monotonic() + timeout
    delay = 0.005
    alive = [proc for proc in procs if _alive(proc)]
    while alive and _clock.monotonic() < deadline:
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
        alive = [proc for proc in alive if _alive(proc)]
    return alive


async def _find(
    os_pid: int | None,
    started: float | None,
    tag: str | None,
    recent: bool,
    just_reaped: bool,
    first_pid: int | None = None,
    spare: int | None = None,
) -> list[psutil.Process]:
    """find_tree(), less ``spare`` (a reused executor, which outlives its run's tree)."""
    if recent:  # a few reads: no thread hop
        return find_tree(
            os_pid,
            started,
            tag,
            recent=True,
            just_reaped=just_reaped,
            first_pid=first_pid,
            spare=spare,
        )
    return await asyncio.to_thread(
        functools.partial(find_tree, os_pid, started, tag, just_reaped=just_reaped, spare=spare)
    )


async def terminate_tree(
    os_pid: int | None,
    started: float | None,
    *,
    grace: float,
    tag: str | None = None,
    recent: bool = False,
    just_reaped: bool = False,
    first: signal.Signals = signal.SIGTERM,
    first_pid: int | None = None,
    spare: int | None = None,
) -> int:
    """Send ``first`` (SIGTERM) and then SIGCONT to the whole tree, wait up to ``grace``
    seconds, SIGKILL what is left (see find_pids for ``recent``, ``just_reaped`` and
    ``first_pid``). ``spare``: a pid left alone (a reused executor: the rest of its tree
    is its run's leftovers).

    Returns how many processes had to be killed with SIGKILL. Never waits unboundedly.
    """
    procs = await _find(os_pid, started, tag, recent, just_reaped, first_pid, spare)
    if not procs:
        return 0
    log.debug(
        "process %s: terminating %d OS processes (tree of %s)",
        tag or "-",
        len(procs),
        os_pid,
        extra={"process_id": tag},
    )
    _signal_all(procs, first)
    # A stopped process (suspend(), or SIGSTOP from anyone) only acts on ``first`` once it
    # is continued: continue them all, so each can end as gracefully as a running one.
    _signal_all(procs, signal.SIGCONT)
    survivors = await _wait_gone(procs, grace)
    # Look again: the tree may have forked while it was being terminated.
    again = await _find(os_pid, started, tag, False, just_reaped, spare=spare)
    stubborn = {proc.pid: proc for proc in [*survivors, *again] if _alive(proc)}
    if stubborn:
        log.debug(
            "process %s: killing %d OS processes that outlived %s",
            tag or "-",
            len(stubborn),
            first.name,
            extra={"process_id": tag},
        )
        _signal_all(list(stubborn.values()), signal.SIGKILL)
        await _wait_gone(list(stubborn.values()), 2.0)
    return len(stubborn)


async def signal_tree(
    os_pid: int | None,
    started: float | None,
    sig: signal.Signals,
    *,
    tag: str | None = None,
    recent: bool = False,
    first_pid: int | None = None,
) -> int:
    """Send ``sig`` to every process of the tree (found as terminate_tree finds it), and to
    any it forked meanwhile (a second look); how many processes were signalled."""
    procs = await _find(os_pid, started, tag, recent, False, first_pid)
    _signal_all(procs, sig)
    seen = {proc.pid for proc in procs}
    late = [
        proc for proc in await _find(os_pid, started, tag, False, False) if proc.pid not in seen
    ]
    _signal_all(late, sig)
    return len(procs) + len(late)
