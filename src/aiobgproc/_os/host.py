"""Who and where we are: the host, its boot, a clock that wall-clock jumps do not move.

Leases between managers on one host are measured on CLOCK_BOOTTIME (it counts time since
boot, suspend included, and is never stepped by NTP), qualified by the boot id so a value
from before a reboot is never compared with one after it.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from functools import cache

import psutil

from .pidtime import create_time


@cache
def hostname() -> str:
    """This host's name; ``AIOBGPROC_HOSTNAME`` overrides it (containers that share a name,
    or tests that simulate several hosts on one machine)."""
    return os.environ.get("AIOBGPROC_HOSTNAME") or socket.gethostname()


@cache
def boot_id() -> str:
    """This boot, and this PID namespace: a pid means something only within both."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            boot = handle.read().strip()
    except OSError:
        boot = f"boot-{psutil.boot_time():.0f}"
    try:
        return f"{boot}/pidns-{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return boot


def boottime() -> float:
    """Seconds since boot on a clock that is never stepped (CLOCK_BOOTTIME)."""
    clock = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)
    return time.clock_gettime(clock)


def is_running(os_pid: int | None, started: float | None) -> bool:
    """Whether the process ``os_pid`` created at ``started`` still runs (pid reuse checked)."""
    if os_pid is None or started is None:
        return False
    try:
        proc = psutil.Process(os_pid)
        if abs(proc.create_time() - started) > 0.01:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@dataclass(frozen=True, slots=True)
class Identity:
    """What a manager records about itself so that others can tell whether it lives."""

    manager_id: str
    hostname: str
    boot_id: str
    os_pid: int
    os_pid_started: float | None

    @classmethod
    def here(cls, manager_id: str) -> Identity:
        pid = os.getpid()
        return cls(manager_id, hostname(), boot_id(), pid, create_time(pid))
