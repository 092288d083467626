"""Recovery: finding processes whose manager is gone, and putting them back to work.

A manager is alive while its lease holds. On its own host that means: same boot, its OS
process still runs (pid and create time), and its heartbeat on CLOCK_BOOTTIME is younger than
its lease. On another host only the heartbeat's wall-clock age can be judged.

For each running process whose owner is not alive, recovery first kills whatever is left of
the old executor's tree (pid and create time checked; found by tag when the pid was never
recorded), then, with a compare-and-set on the old owner and claim token:
- a step process goes back to the queue at its first step without committed output;
- a command, which cannot resume, becomes ``error`` (or, with a retry policy that retries
  errors and has attempts left, goes back to the queue to run again from the start);
- a process that has used up ``max_attempts`` becomes ``error``.
"""

from __future__ import annotations

import logging

from . import _clock, _tags
from ._os import host as _host
from ._os import tree as _tree
from ._retry import failure_entry, retry_wait
from .errors import ErrorType
from .models import Status
from .store import ManagerRecord, ProcessRecord, Store

log = logging.getLogger(__name__)


def manager_alive(manager: ManagerRecord, now: float, boottime: float) -> bool:
    if manager.hostname != _host.hostname():
        return now - manager.heartbeat_at <= manager.lease
    ours = _host.boot_id()
    if manager.boot_id != ours:
        if manager.boot_id.split("/")[0] != ours.split("/")[0]:
            return False  # that host was rebooted since
        # Same boot, another PID namespace (a container): its pid means nothing here.
        return boottime - manager.heartbeat_boottime <= manager.lease
    if not _host.is_running(manager.os_pid, manager.os_pid_started):
        return False
    return boottime - manager.heartbeat_boottime <= manager.lease


async def orphans(store: Store, me: str) -> tuple[list[ProcessRecord], list[ManagerRecord]]:
    """Running processes whose owner is gone, and the records of managers that are gone."""
    # Processes first: a manager registers before it claims, so the owner of any process
    # read here is in the list read next, unless it is gone.
    running = await store.running_not_owned_by(me)
    managers = {manager.id: manager for manager in await store.list_managers()}
    now, boottime = await store.clock(), _host.boottime()
    dead = {
        manager_id: manager
        for manager_id, manager in managers.items()
        if manager_id != me and not manager_alive(manager, now, boottime)
    }
    lost = [
        record
        for record in running
        if record.owner is None or record.owner not in managers or record.owner in dead
    ]
    return lost, list(dead.values())


async def recover(
    store: Store, me: str, *, grace_period: float, max_attempts: int | None
) -> list[str]:
    """Recover every process whose manager is gone; returns the ids it recovered."""
    lost, dead = await orphans(store, me)
    recovered = []
    for record in lost:
        owner = record.owner or ""
        manager = next((m for m in dead if m.id == owner), None)
        if manager is None or manager.hostname == _host.hostname():
            # Never signal a process of another host; on ours, kill the old tree first — by
            # pid only when that pid was recorded in our PID namespace, else by tag alone.
            same_pids = manager is None or manager.boot_id == _host.boot_id()
            await _tree.terminate_tree(
                record.os_pid if same_pids else None,
                record.os_pid_started if same_pids else None,
                grace=grace_period,
                tag=_tags.make_tag(record.id, record.claim_token),
            )
        claim = record.claim(owner)
        # Runs that failed and were retried are not the manager's losses.
        lost_runs = record.attempts - len(record.failures)
        if record.kind == "command":
            message = (
                "the manager running this command was lost (killed or frozen past its lease);"
                " a command cannot resume"
            )
            error = {"type": ErrorType.MANAGER_LOST, "message": message, "traceback": None}
            now = _clock.wall()
            wait = retry_wait(record.spec, 0, None, Status.ERROR, record.failures)
            if wait is not None:  # its retry policy runs it again, from the start
                entry = failure_entry(record.attempts, None, Status.ERROR, error, now)
                failures = [*record.failures, entry]
                done = await store.retry(claim, now + wait, wait <= 0, error, failures)
            else:
                done = await store.finish(claim, Status.ERROR, now, error=error)
        elif max_attempts is not None and lost_runs >= max_attempts:
            message = f"gave up after {record.attempts} attempts (its manager was lost each time)"
            done = await store.finish(
                claim,
                Status.ERROR,
                _clock.wall(),
                error={
                    "type": ErrorType.MANAGER_LOST,
                    "message": message,
                    "traceback": None,
                    "step": record.step,
                },
            )
        else:
            done = await store.requeue(claim)
        if done:
            log.warning(
                "process %s recovered from lost manager %s (attempt %d)",
                record.id,
                owner or "?",
                record.attempts,
                extra={"process_id": record.id},
            )
            recovered.append(record.id)
    for manager in dead:
        await store.unregister_manager(manager.id)
    return recovered
