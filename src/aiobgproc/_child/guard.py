"""The guard: a small watchdog process that kills a manager's children if the manager dies.

Each manager starts one guard (a small Python process in its own session) and keeps the
write end of its stdin. It tells the guard about every child it spawns ("watch") and every
child that is gone ("forget"). When the manager dies, even by SIGKILL, the kernel closes that
pipe; the guard reads EOF and terminates the sessions and tagged descendants of every child
still watched (SIGTERM and SIGCONT, then SIGKILL one second later), then exits. A manager
that closes normally has forgotten all its children first, so the guard exits quietly.

Run as a child of the manager only: ``python -I -S -c <boot> <package root>``.
"""

from __future__ import annotations

import signal
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_TERM_WAIT = 1.0


def kill_all(watched: dict[int, tuple[float, str]]) -> None:
    """SIGTERM every process of every watched child, SIGKILL what is left after a second."""
    import psutil

    from .._os.tree import find_tree  # only now: a guard that never has to kill stays small

    def collect() -> list[Any]:
        procs: dict[int, Any] = {}
        for os_pid, (started, tag) in watched.items():
            for proc in find_tree(os_pid, started, tag):
                procs[proc.pid] = proc
        return list(procs.values())

    def alive(procs: list[Any]) -> list[Any]:
        found = []
        for proc in procs:
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    procs = collect()
    # SIGCONT after SIGTERM: a suspended tree acts on SIGTERM only once continued (no
    # stopped process is ever left behind: SIGKILL follows for what does not end).
    for sig in (signal.SIGTERM, signal.SIGCONT):
        for proc in procs:
            try:
                proc.send_signal(sig)
            except psutil.Error:
                pass
    deadline = time.monotonic() + _TERM_WAIT
    while alive(procs) and time.monotonic() < deadline:
        time.sleep(0.02)
    for proc in alive(procs) + alive(collect()):
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass


def main(argv: list[str] | None = None) -> int:
    """Read ``watch``/``forget`` lines until EOF (``argv``: none)."""
    # Our own session: a Ctrl-C or a kill of the manager's process group must not take the
    # guard down before it has done its job.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    watched: dict[int, tuple[float, str]] = {}
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "watch" and len(parts) == 4:
            watched[int(parts[1])] = (float(parts[2]), parts[3])
        elif parts[0] == "forget" and len(parts) == 2:
            watched.pop(int(parts[1]), None)
        elif parts[0] == "exit":
            return 0
    if watched:
        kill_all(watched)
    return 0


if __name__ == "__main__":
    sys.exit(main())
