"""The invariant checker run after every durability scenario.

``check_store(store)`` reads a store (a SQLite file or a PostgreSQL URL) without aiobgproc
(helpers.storedb) and returns a list of problems, empty when all is well:

- ``PRAGMA integrity_check`` is ``ok`` (SQLite);
- every process is terminal, queued or interrupted, or running with an owner that is in the
  managers table and whose OS process (pid and create time) is alive on this host and boot;
- a step process has exactly the step outputs ``0 .. step_index - 1`` (no gap, no duplicate,
  none beyond), and a finished one has all its steps;
- no step output belongs to an unknown process.

``leftover_executors(ids)`` lists live OS processes tagged with one of the process ids, and
any executor, warm executor or guard of this test run still alive (call it once the
scenario's managers are gone).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import psutil

from aiobgproc._os import host as _host
from helpers.storedb import is_postgres, query_many

TAG = "AIOBGPROC_PROCESS_ID"
RUN_MARK = "AIOBGPROC_TEST_RUN"  # set by conftest.py for this test run, inherited by children
INTERNALS = ("aiobgproc._child.executor", "aiobgproc._child.zygote", "aiobgproc._child.guard")
TERMINAL = frozenset({"finished", "error", "cancelled", "timeout"})
AT_REST = TERMINAL | {"queued", "interrupted"}


def os_process_alive(os_pid: int | None, started: float | None) -> bool:
    """The OS process ``os_pid`` created at ``started`` runs (not a zombie, not a reused pid)."""
    if os_pid is None or started is None:
        return False
    try:
        proc = psutil.Process(os_pid)
        return abs(proc.create_time() - started) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _live_managers(rows: list[tuple[Any, ...]]) -> tuple[set[str], set[str]]:
    """(ids of all registered managers, ids of those whose OS process is alive here)."""
    known: set[str] = set()
    alive: set[str] = set()
    here, boot = _host.hostname(), _host.boot_id()
    for manager_id, host, boot_id, os_pid, started in rows:
        known.add(manager_id)
        if host == here and boot_id == boot and os_process_alive(os_pid, started):
            alive.add(manager_id)
    return known, alive


def check_store(store: str | os.PathLike[str]) -> list[str]:
    """Problems found in the store (a SQLite file or a PostgreSQL URL); empty when consistent."""
    problems: list[str] = []
    integrity_sql = "SELECT 'ok'" if is_postgres(store) else "PRAGMA integrity_check"
    integrity_rows, manager_rows, output_rows, process_rows = query_many(
        store,
        [
            (integrity_sql, ()),
            ("SELECT id, hostname, boot_id, os_pid, os_pid_started FROM managers", ()),
            ("SELECT process_id, step_index FROM step_outputs ORDER BY process_id, step_index", ()),
            ("SELECT id, kind, status, owner, step_index, steps_total FROM processes", ()),
        ],
    )
    integrity = [row[0] for row in integrity_rows]
    if integrity != ["ok"]:
        problems.append(f"integrity_check: {integrity}")
    known, alive = _live_managers(manager_rows)
    outputs: dict[str, list[int]] = defaultdict(list)
    for process_id, index in output_rows:
        outputs[process_id].append(index)
    seen: set[str] = set()
    for process_id, kind, status, owner, step_index, steps_total in process_rows:
        seen.add(process_id)
        if status not in AT_REST:
            if status != "running":
                problems.append(f"{process_id}: unknown status {status!r}")
            elif owner not in known:
                problems.append(f"{process_id}: running, owner {owner} is not registered")
            elif owner not in alive:
                problems.append(f"{process_id}: running, owner {owner} is not alive")
        if kind != "process":
            if outputs.get(process_id):
                problems.append(f"{process_id}: a {kind} has step outputs")
            continue
        indexes = outputs.get(process_id, [])
        if indexes != list(range(step_index)):
            problems.append(
                f"{process_id} ({status}): step outputs {indexes}, expected 0..{step_index - 1}"
            )
        if status == "finished" and step_index != steps_total:
            problems.append(f"{process_id}: finished after {step_index} of {steps_total} steps")
    for process_id in sorted(set(outputs) - seen):
        problems.append(f"step outputs of unknown process {process_id}")
    return problems


def _live_others(matches: Callable[[psutil.Process], bool]) -> list[psutil.Process]:
    """Live (non-zombie) OS processes other than this one for which ``matches`` is true."""
    me = os.getpid()
    found: list[psutil.Process] = []
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and matches(proc):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def tagged(ids: Iterable[str]) -> list[psutil.Process]:
    """Live (non-zombie) OS processes whose environment carries one of the process ids.

    /proc shows the environment a process was exec'd with: a step's children carry the tag,
    and so does an executor that was spawned; an executor forked by the warm executor does
    not (its tag was set after the fork), so see also ``aiobgproc_processes``."""
    wanted = set(ids)
    return _live_others(lambda proc: proc.environ().get(TAG) in wanted)


def aiobgproc_processes() -> list[psutil.Process]:
    """Live processes of this test run that run aiobgproc's own code outside a manager:
    executors (spawned, or forked by the warm executor), warm executors and guards."""
    run = os.environ.get(RUN_MARK)
    if run is None:
        return []

    def ours(proc: psutil.Process) -> bool:
        command = " ".join(proc.cmdline())
        if "aiobgproc" not in command or not any(part in command for part in INTERNALS):
            return False
        return bool(proc.environ().get(RUN_MARK) == run)

    return _live_others(ours)


def leftover_executors(ids: Iterable[str]) -> list[psutil.Process]:
    """What is still running of the processes ``ids`` once no manager of the scenario runs:
    processes tagged with one of the ids, and any executor, warm executor or guard of this
    test run (a forked executor cannot be told apart by its tag from outside)."""
    found = {proc.pid: proc for proc in tagged(ids)}
    for proc in aiobgproc_processes():
        found.setdefault(proc.pid, proc)
    return list(found.values())


def describe(procs: Iterable[psutil.Process]) -> str:
    lines = []
    for proc in procs:
        try:
            lines.append(f"{proc.pid} {proc.status()} {' '.join(proc.cmdline())[:120]}")
        except psutil.Error:
            lines.append(f"{proc.pid} (gone)")
    return "\n".join(lines)
