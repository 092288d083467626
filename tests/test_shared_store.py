"""Several managers in one OS process share a SQLite store with workers in other processes.

Regression tests for a fault-soak finding: opening a second Manager in a process used to
read the store's header with a plain open()+close(), and on Linux closing any descriptor
of a file drops every POSIX lock the process holds on it (SQLite's "How To Corrupt An
SQLite Database File", 2.2). A worker in another process then believed it was the store's
last user, checkpointed and deleted -wal and -shm under the first process's connections,
and the file was corrupted.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from aiobgproc import Command, Manager, Status
from helpers.procs import poll, start_worker
from helpers.storedb import query

WAIT = 30.0


def locks_on(path: Path, pid: int) -> list[str]:
    """The POSIX locks ``pid`` holds on ``path``, as /proc/locks lists them."""
    stat = os.stat(path)
    inode = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    found = []
    with open("/proc/locks", encoding="ascii") as handle:
        for line in handle:
            fields = line.split()
            # "1: POSIX  ADVISORY  READ 1234 08:01:5678 1073741826 1073742335"
            if "->" in fields:
                fields.remove("->")
            ours = len(fields) >= 6 and fields[1] == "POSIX" and fields[4] == str(pid)
            if ours and fields[5] == inode:
                found.append(line.strip())
    return found


async def test_each_open_keeps_this_process_locks_on_the_database_file(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    me = os.getpid()
    managers = []
    try:
        for count in range(1, 4):
            manager = Manager(db, run=False)
            await manager.open()
            managers.append(manager)
            # A read takes SQLite's shared lock on the file; it must stay held (it is what
            # tells another process that this one still uses the WAL).
            await manager.list()
            before = locks_on(db, me)
            assert before, f"no lock on the database file after {count} open(s)"
            await manager.start(Command(["true"]))
            after_next = locks_on(db, me)
            assert after_next, f"the lock on the database file went away after open {count}"
        # Opening one more manager must not drop the locks the first ones hold.
        extra = Manager(db, run=False)
        await extra.open()
        managers.append(extra)
        assert locks_on(db, me), "opening another manager dropped this process's locks"
    finally:
        for manager in managers:
            await manager.close()


def _integrity(db: Path) -> tuple[str, int]:
    """PRAGMA integrity_check and the number of processes, read by a fresh OS process."""
    script = (
        "import sqlite3,sys;c=sqlite3.connect(sys.argv[1]);"
        "print(c.execute('PRAGMA integrity_check').fetchone()[0]);"
        "print(c.execute('SELECT count(*) FROM processes').fetchone()[0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(db)],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    verdict, count = done.stdout.split()
    return verdict, int(count)


async def test_two_managers_in_one_process_and_a_stopped_worker_keep_the_store_whole(
    tmp_path: Path,
) -> None:
    db = tmp_path / "store.db"
    first = Manager(db, run=False)
    second = Manager(db, run=False)
    await first.open()
    await second.open()
    third: Manager | None = None
    try:
        ran = await first.start(Command(["sh", "-c", "echo from-the-worker"]))
        worker = start_worker(db, tmp_path, "worker")
        try:
            await poll(
                lambda: (
                    query(db, "SELECT status FROM processes WHERE id = ?", (ran,))
                    == [("finished",)]
                ),
                timeout=WAIT,
                what="the worker to run the command",
            )
            worker.signal(signal.SIGTERM)
            assert await worker.wait_exit(WAIT) == 0, worker.stderr()
        finally:
            worker.stop()
        # The worker closed believing nothing else used the store only if this process
        # had lost its locks; -wal and -shm must still be in use by our connections.
        more = [await first.start(Command(["true"])) for _ in range(3)]
        third = Manager(db, run=False)
        await third.open()  # failed with "database disk image is malformed"
        listed = {info.id for info in await third.list(limit=100)}
        assert {ran, *more} <= listed
        assert (await third.output(ran)) == b"from-the-worker\n"
        assert (await third.info(ran)).status is Status.FINISHED
    finally:
        for manager in (first, second, third):
            if manager is not None:
                await manager.close()
    verdict, count = _integrity(db)
    assert verdict == "ok"
    assert count == 4
    check = sqlite3.connect(db)  # and this process can still read it too
    try:
        assert check.execute("SELECT count(*) FROM processes").fetchone()[0] == 4
    finally:
        check.close()
