"""The SQLite store: refusing files that are not ours, its schema, and reopening it."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import subprocess
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from aiobgproc import AiobgprocError, Command, Manager, Status, StoreError
from aiobgproc.store import NewProcess
from aiobgproc.store.sqlite import SQLiteStore


async def _open_fails(path: Path | str) -> StoreError:
    with pytest.raises(StoreError) as caught:
        async with Manager(path):
            pass
    assert isinstance(caught.value, AiobgprocError)
    return caught.value


def _bytes_of(path: Path) -> bytes:
    return path.read_bytes()


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


async def test_store_path_that_is_a_directory_raises_store_error(tmp_path: Path) -> None:
    directory = tmp_path / "jobs.db"
    directory.mkdir()
    (directory / "inside.txt").write_bytes(b"keep me")

    error = await _open_fails(directory)

    assert str(directory) in str(error)
    assert "directory" in str(error)
    assert _snapshot(directory) == {"inside.txt": b"keep me"}


async def test_store_path_below_a_regular_file_raises_store_error(tmp_path: Path) -> None:
    # Root may write anywhere, so "cannot create the store here" is tested with a parent
    # that is a file: no user can create a directory entry inside a file.
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"plain file contents\n")

    error = await _open_fails(blocker / "jobs.db")

    assert str(blocker) in str(error)
    assert blocker.read_bytes() == b"plain file contents\n"


def _lock_directory(path: Path) -> None:
    """Make ``path`` unwritable, even for root (who ignores permission bits): as root, mark
    it immutable with chattr (ext4 and most local file systems honour that)."""
    if os.geteuid() != 0:
        path.chmod(0o500)
        return
    subprocess.run(["chattr", "+i", str(path)], check=True, capture_output=True)


def _unlock_directory(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], check=True, capture_output=True)
    path.chmod(0o700)


async def test_store_in_an_unwritable_directory_raises_store_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    _lock_directory(locked)
    try:
        error = await _open_fails(locked / "jobs.db")
        assert str(locked) in str(error)
        assert list(locked.iterdir()) == []
    finally:
        _unlock_directory(locked)


@pytest.mark.parametrize(
    "contents",
    [
        pytest.param(b"this is not a database\n" * 100, id="text"),
        pytest.param(bytes(range(256)) * 64, id="binary"),
        pytest.param(b"SQLite format 3\x00" + b"\xff" * 4080, id="sqlite-header-then-garbage"),
    ],
)
async def test_store_file_that_is_not_an_sqlite_database_raises_store_error_untouched(
    tmp_path: Path, contents: bytes
) -> None:
    path = tmp_path / "jobs.db"
    path.write_bytes(contents)

    error = await _open_fails(path)

    assert str(path) in str(error)
    assert path.read_bytes() == contents


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
async def test_sqlite_database_of_another_application_raises_store_error_untouched(
    tmp_path: Path, journal_mode: str
) -> None:
    path = tmp_path / "theirs.db"
    with closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA journal_mode = {journal_mode}")
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO customers (name) VALUES ('Ada'), ('Grace')")
        db.commit()
    contents = path.read_bytes()

    error = await _open_fails(path)

    assert str(path) in str(error)
    assert path.read_bytes() == contents
    with closing(sqlite3.connect(path)) as db:
        names = [row[0] for row in db.execute("SELECT name FROM customers ORDER BY id")]
    assert names == ["Ada", "Grace"]


async def test_sqlite_database_with_a_processes_table_of_someone_else_raises_store_error(
    tmp_path: Path,
) -> None:
    # Same table name as ours, different owner: it must not be taken for our schema.
    path = tmp_path / "theirs.db"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE processes (pid INTEGER, command TEXT)")
        db.commit()
    contents = path.read_bytes()

    error = await _open_fails(path)

    assert str(path) in str(error)
    assert path.read_bytes() == contents


@pytest.mark.parametrize(
    "pragma",
    ["PRAGMA application_id = 12345", "PRAGMA user_version = 3"],
    ids=["app-id", "version"],
)
async def test_empty_sqlite_database_marked_by_another_application_raises_store_error(
    tmp_path: Path, pragma: str
) -> None:
    path = tmp_path / "theirs.db"
    with closing(sqlite3.connect(path)) as db:
        db.execute(pragma)
        db.commit()
    contents = path.read_bytes()

    error = await _open_fails(path)

    assert str(path) in str(error)
    assert path.read_bytes() == contents


async def test_store_with_a_newer_schema_version_raises_store_error_untouched(
    store_path: Path,
) -> None:
    async with Manager(store_path) as manager:
        process_id = await manager.start(Command(["true"]))
        await manager.wait_for(process_id, timeout=10)
    with closing(sqlite3.connect(store_path)) as db:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        db.execute(f"PRAGMA user_version = {version + 1}")
        db.commit()
    contents = _bytes_of(store_path)

    error = await _open_fails(store_path)

    assert str(store_path) in str(error)
    assert _bytes_of(store_path) == contents


async def test_new_store_has_a_schema_version_and_uses_wal(store_path: Path) -> None:
    async with Manager(store_path) as manager:
        process_id = await manager.start(Command(["true"]))
        await manager.wait_for(process_id, timeout=10)
    with closing(sqlite3.connect(store_path)) as db:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        (journal_mode,) = db.execute("PRAGMA journal_mode").fetchone()
        (integrity,) = db.execute("PRAGMA integrity_check").fetchone()
    assert isinstance(version, int)
    assert version >= 1
    assert journal_mode == "wal"
    assert integrity == "ok"


async def test_store_file_and_missing_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "jobs.db"
    async with Manager(path) as manager:
        process_id = await manager.start(Command(["true"]))
        assert (await manager.wait_for(process_id, timeout=10)).status is Status.FINISHED
    assert path.is_file()


async def test_an_empty_file_becomes_a_store(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    path.touch()
    async with Manager(path) as manager:
        process_id = await manager.start(Command(["true"]))
        assert (await manager.wait_for(process_id, timeout=10)).status is Status.FINISHED


async def test_reopening_a_store_keeps_its_processes_and_output(store_path: Path) -> None:
    async with Manager(store_path) as first:
        ok = await first.start(Command(["sh", "-c", "echo kept"]))
        failed = await first.start(Command(["sh", "-c", "echo oops >&2; exit 4"]))
        infos = {pid: await first.wait_for(pid, timeout=10) for pid in (ok, failed)}
        listed = await first.list()

    async with Manager(store_path) as second:
        assert {pid: await second.info(pid) for pid in (ok, failed)} == infos
        assert await second.list() == listed
        assert await second.output(ok) == b"kept\n"
        assert await second.output(failed) == b"oops\n"
        assert infos[failed].output == {"exit_code": 4}
        # And the reopened store takes new work.
        more = await second.start(Command(["true"]))
        assert (await second.wait_for(more, timeout=10)).status is Status.FINISHED
        assert [info.id for info in await second.list()] == [more, failed, ok]


async def test_sqlite_url_opens_the_same_store_as_the_path(store_path: Path) -> None:
    async with Manager(store_path) as by_path:
        process_id = await by_path.start(Command(["true"]))
        info = await by_path.wait_for(process_id, timeout=10)
    async with Manager(f"sqlite:///{store_path}", run=False) as by_url:
        assert await by_url.info(process_id) == info


async def test_store_environment_variable_picks_the_default_store(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOBGPROC_STORE", str(store_path))
    async with Manager() as manager:
        process_id = await manager.start(Command(["true"]))
        info = await manager.wait_for(process_id, timeout=10)
    async with Manager(store_path, run=False) as explicit:
        assert await explicit.info(process_id) == info


async def test_call_cancelled_while_waiting_for_the_write_lock_leaves_the_store_usable(
    store_path: Path,
) -> None:
    # asyncio.wait_for around a call (or close() cancelling the manager's own tasks) must not
    # leave the store's connection inside a transaction that holds the write lock.
    async with Manager(store_path, run=False) as client:
        first = await client.start(Command(["true"]))
        with closing(sqlite3.connect(store_path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")  # another OS process is writing
            try:
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(client.start(Command(["true"])), 0.3)
            finally:
                other.execute("ROLLBACK")
        assert (await client.info(first)).status is Status.QUEUED

        with closing(sqlite3.connect(store_path, isolation_level=None, timeout=2)) as other:
            other.execute("BEGIN IMMEDIATE")  # the write lock is free again
            other.execute("ROLLBACK")
        second = await client.start(Command(["true"]))
        assert (await client.info(second)).status is Status.QUEUED
        await client.cancel(first)
        await client.cancel(second)


async def test_waiting_for_another_writer_never_blocks_the_event_loop(store_path: Path) -> None:
    """Short operations run in the loop's thread when the write lock is free; when another
    connection holds it they wait in the connection thread, and the loop goes on."""
    async with Manager(store_path, run=False) as client:
        first = await client.start(Command(["true"]))
        with closing(sqlite3.connect(store_path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")  # another OS process is writing
            try:
                loop = asyncio.get_running_loop()
                began = loop.time()
                starting = asyncio.create_task(client.start(Command(["true"])))
                # This coroutine keeps getting turns while start() waits for the lock. Had
                # start() waited in the loop's thread, SQLite's busy handler would have held
                # the loop for its whole 30 s timeout before these turns (a liveness bound,
                # not a speed target).
                for _ in range(200):
                    await asyncio.sleep(0)
                assert loop.time() - began < 10.0, "the loop was held while start() waited"
                assert not starting.done()
            finally:
                if other.in_transaction:
                    other.execute("COMMIT")
        second = await asyncio.wait_for(starting, 30)
        assert (await client.info(first)).status is Status.QUEUED
        assert (await client.info(second)).status is Status.QUEUED
        await client.cancel(first)
        await client.cancel(second)


def _new_process(process_id: str) -> NewProcess:
    spec = {"kind": "command", "argv": ["true"], "cwd": None, "env": None}
    return NewProcess(process_id, "command", spec, {}, None, 0, time.time())


async def test_a_cancelled_call_still_in_the_store_thread_keeps_the_loop_out(
    store_path: Path,
) -> None:
    """A call whose caller is cancelled while its operation is still in the connection thread
    leaves that operation running there: until it ends, nothing may use the connection from
    the loop's thread (where, with the thread's busy timeout, it could hold the loop)."""
    store = SQLiteStore(store_path)
    await store.open()
    release = threading.Event()
    try:
        # An operation that occupies the connection thread until released.
        occupying = asyncio.create_task(store._call(lambda db: release.wait(30)))
        for _ in range(20):
            await asyncio.sleep(0)
        occupying.cancel()  # its caller gives up; the thread is still in it
        with pytest.raises(asyncio.CancelledError):
            await occupying
        writing = asyncio.create_task(store.insert(_new_process("after")))
        for _ in range(200):
            await asyncio.sleep(0)
        assert not writing.done(), "a write used the connection while the thread held it"
    finally:
        release.set()
    await asyncio.wait_for(writing, 30)
    assert (await store.get("after")) is not None
    await store.close()


async def _claim_opcodes(path: Path, queued: int) -> int:
    """How many SQLite VM instructions one claim takes with ``queued`` processes waiting."""
    store = SQLiteStore(path)
    await store.open()
    try:
        for index in range(queued):
            process = _new_process(f"p{index:06d}")
            await store.insert(dataclasses.replace(process, created_at=process.created_at + index))
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0

        assert store._db is not None
        store._db._conn.set_progress_handler(count, 1)  # called in whichever thread runs SQL
        try:
            claimed = await store.claim("manager", time.time(), 1)
        finally:
            store._db._conn.set_progress_handler(None, 1)
        assert [record.id for record in claimed] == ["p000000"]
        return steps
    finally:
        await store.close()


async def test_claiming_does_not_walk_the_queue(tmp_path: Path) -> None:
    """A claim looks up the first queued process by index: its cost does not grow with the
    number of queued processes (it once re-checked every queued row's index entry)."""
    short = await _claim_opcodes(tmp_path / "short.db", 10)
    long = await _claim_opcodes(tmp_path / "long.db", 2000)
    assert long < short * 2, (short, long)


async def test_the_wal_is_checkpointed_while_writes_go_on(store_path: Path) -> None:
    """Commits made in the event loop's thread never checkpoint by themselves; the store
    checkpoints every so many (on a connection of its own, so writes do not wait for it).
    Without that the WAL would grow by every commit: ~85 MB per 3,000 here (a queued
    process's insert writes ~7 pages since schema version 2's indexes; ~3 before). With it,
    it restarts after each checkpoint: its file (as large as it ever was) stops growing, at
    a size that depends on how many commits the loop makes while a checkpoint runs (uvloop
    makes more: up to ~40 MB was seen there)."""
    wal = store_path.with_name(store_path.name + "-wal")
    sizes = []
    async with Manager(store_path, run=False) as client:
        work = Command(["true"])
        for _ in range(3):
            for _ in range(3000):
                await client.start(work)
            # Measured while the store is open: closing the last connection removes it.
            sizes.append(wal.stat().st_size)
        assert len(await client.list(status="queued", limit=10_000)) == 9000
    assert 0 < sizes[0] < 64 * 2**20, sizes
    # Bounded: 6,000 more commits add less than half the ~170 MB they would add without
    # checkpoints (how much less depends on how busy the CPU keeps the checkpoint thread).
    assert sizes[2] - sizes[0] < 80 * 2**20, sizes


async def test_a_checkpoint_never_holds_writers_back_for_a_reader(store_path: Path) -> None:
    """A reader keeping an old snapshot (another process, a backup, a DB browser) pins the
    WAL: the checkpoint copies what it can and does not then wait for that reader in FULL
    mode, which would hold every writer back meanwhile."""
    store = SQLiteStore(store_path)
    await store.open()
    try:
        await store.insert(_new_process("first"))
        await asyncio.to_thread(store._checkpoint_aside)  # opens its connection
        assert store._checkpoint_db is not None
        statements: list[str] = []
        store._checkpoint_db.set_trace_callback(statements.append)
        with closing(sqlite3.connect(store_path, isolation_level=None)) as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM processes").fetchone()  # a snapshot now
            await store.insert(_new_process("second"))  # a frame the reader does not see
            await asyncio.to_thread(store._checkpoint_aside)
            assert not any("FULL" in statement for statement in statements), statements
            reader.execute("COMMIT")
        await store.insert(_new_process("third"))
        await asyncio.to_thread(store._checkpoint_aside)
        assert any("FULL" in statement for statement in statements), statements
    finally:
        await store.close()


def test_a_store_can_be_opened_again_in_another_event_loop(store_path: Path) -> None:
    """Closing waits only for its own checkpoint, never for one of an earlier event loop."""
    store = SQLiteStore(store_path)

    async def use(first: int, count: int) -> None:
        await store.open()
        try:
            for index in range(first, first + count):
                await store.insert(_new_process(f"p{index}"))
        finally:
            await store.close()

    asyncio.run(use(0, 300))  # past the commits between two checkpoints
    asyncio.run(use(300, 10))  # not again
    with closing(sqlite3.connect(store_path)) as db:
        assert db.execute("SELECT count(*) FROM processes").fetchone() == (310,)


async def test_the_aiosqlite_internals_the_store_relies_on_are_there(store_path: Path) -> None:
    """The SQLite store reaches into aiosqlite (see aiobgproc/_aiosqlite.py); a release
    that drops what it uses must fail here, loudly, not somewhere in a transaction."""
    import aiosqlite

    from aiobgproc import _aiosqlite

    version = getattr(aiosqlite, "__version__", "?")
    gone = _aiosqlite.missing()
    assert not gone, (
        f"aiosqlite {version} no longer has Connection.{', '.join(gone)}: "
        "update aiobgproc/_aiosqlite.py (and the version bound in pyproject.toml)"
    )
    db = await aiosqlite.connect(store_path)
    try:
        assert isinstance(_aiosqlite.raw(db), sqlite3.Connection), (
            f"aiosqlite {version}: Connection._conn is no longer the sqlite3 connection"
        )
        one = await _aiosqlite.in_thread(db, threading.get_ident)
        assert one != threading.get_ident(), (
            f"aiosqlite {version}: Connection._execute no longer runs in its thread"
        )
    finally:
        await db.close()


async def test_a_claim_with_spares_takes_a_damaged_step_process_without_one(
    store_path: Path,
) -> None:
    """A step process whose stored spec names no step it could begin at gets no spare
    executor (the claim does not fail: its run reports what is wrong)."""
    store = SQLiteStore(store_path)
    await store.open()
    try:
        spec = {"kind": "process", "steps": [{"name": "one"}]}
        await store.insert(NewProcess("damaged", "process", spec, {}, None, 1, time.time()))
        with closing(sqlite3.connect(store_path)) as db, db:
            db.execute("UPDATE processes SET spec = '{\"steps\": []}' WHERE id = 'damaged'")
        (claimed,) = await store.claim("me", time.time(), 1, executors=[(4242, 1.5)])
        assert (claimed.id, claimed.os_pid, claimed.step) == ("damaged", None, None)
    finally:
        await store.close()
