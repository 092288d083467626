"""The SQLite store's file: what is checked before SQLite touches it, and how a connection
to it is prepared (PRAGMAs, the schema or its migrations, WAL) on opening.

Habits that keep "database is locked" away (see docs/design.md):
- ``busy_timeout`` is the first statement on a connection;
- autocommit mode, and every write is one ``BEGIN IMMEDIATE`` transaction, so the write lock
  is taken (waiting politely) before anything is read, never upgraded from a read;
- switching to WAL is retried, since SQLite does not apply the busy handler to it;
- every state change is a compare-and-set on the state it expects.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Final

from ..errors import StoreError
from . import schema, triggers
from .sqlite_connection import BUSY_TIMEOUT_MS, Conn, busy, transaction

APPLICATION_ID: Final = 0x61626770  # "abgp": marks a file as ours
SCHEMA_VERSION: Final = schema.VERSION
PAGE_SIZE: Final = 4096
CACHE_KIB: Final = 8192
CHECKPOINT_BYTES: Final = 16 << 20
_MIN_DATABASE_BYTES: Final = 512  # the smallest SQLite page: a database is at least one

# Migrations from version N to N+1, run in one transaction each; index 0 creates version 1.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    tuple(schema.create_v1("sqlite")),
    (*schema.migrate_v2("sqlite"), triggers.SQLITE, *triggers.SQLITE_EVENTS),
    (*schema.migrate_v3("sqlite"), *triggers.SQLITE_V3),
    tuple(schema.migrate_v4("sqlite")),
)


def one(db: Conn, sql: str, params: Any = ()) -> Any:
    return db.execute(sql, params).fetchone()


def check_path(path: Path) -> None:
    """_check_location, with what the OS says about an unusable path as StoreError."""
    text = str(path)
    if "\x00" in text:
        raise StoreError(f"store path {text!r} contains a NUL byte")
    try:
        os.fsencode(text)
        _check_location(path)
    except UnicodeError:
        raise StoreError(f"store path {text!r} is not a valid file name") from None
    except OSError as exc:  # e.g. a directory on the way that cannot be searched
        raise StoreError(f"cannot use store path {text!r}: {exc.strerror or exc}") from None


def _check_location(path: Path) -> None:
    """Refuse, before SQLite touches it, a path that cannot be our store; create a new store
    file private to its owner (0600: it holds commands' environments and output).

    An existing file is never opened here: on Linux, closing *any* descriptor of a file
    drops every POSIX lock this process holds on it, including the locks of SQLite
    connections other managers of this process have open, and another process could then
    checkpoint and delete the WAL under them (SQLite's "How To Corrupt An SQLite Database
    File", 2.2). SQLite itself checks the header (see not_sqlite)."""
    if path.is_dir():
        raise StoreError(f"store path {str(path)!r} is a directory, not a file")
    if path.exists():
        if not os.access(path, os.R_OK):
            raise StoreError(f"cannot read store {str(path)!r}: permission denied")
        if 0 < path.stat().st_size < _MIN_DATABASE_BYTES:
            # SQLite would take a file of a few bytes for an empty one and overwrite it.
            raise StoreError(f"{str(path)!r} is not an aiobgproc store (not an SQLite file)")
        return
    _make_private_dirs(path.parent)
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise StoreError(f"cannot create store {str(path)!r}: directory is not writable")
    try:
        # SQLite creates the file 0644 (less the umask) and gives -wal and -shm the mode of
        # the database file: created first, 0600, they all are private. The file did not
        # exist, so no connection of this process can hold a lock on it yet.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        pass  # another process (or manager) was first: it is theirs to create
    except OSError as exc:
        raise StoreError(f"cannot create store {str(path)!r}: {exc.strerror}") from None


def _make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents, each 0700 (Path.mkdir(parents=True)
    would give the parents the umask's mode)."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        if directory.parent == directory:
            break
        directory = directory.parent
    for new in reversed(missing):
        try:
            new.mkdir(mode=0o700)
        except FileExistsError:
            continue
        except OSError as exc:
            raise StoreError(
                f"cannot create the directory of the store {str(new)!r}: {exc}"
            ) from None


def not_sqlite(exc: BaseException) -> bool:
    """Whether SQLite refused the file as not an SQLite database at all."""
    return isinstance(exc, sqlite3.DatabaseError) and "file is not a database" in str(exc)


def prepare(db: Conn, path: Path) -> tuple[int, str | None]:
    """Set up a new connection (in its thread): how many WAL pages to checkpoint after, and
    the ``output_codec`` setting (store.codec)."""
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA synchronous = NORMAL")
    # A process that ends error by trigger (its dependency failed) fires the trigger for its
    # own dependents: a trigger firing itself, which SQLite allows only with this on.
    db.execute("PRAGMA recursive_triggers = ON")
    db.execute("PRAGMA journal_size_limit = 67108864")
    # 4 KiB pages for a new store (an existing one keeps its own). 64 KiB pages store
    # bulk output 1.6-2.2x faster (a 1 MiB chunk spans 16 overflow pages, not 256), but
    # every small commit then writes 64 KiB per page it touches to the WAL: one-step
    # processes ran at 180/s instead of 300/s. Small commits are what a manager does.
    db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    transaction(db, lambda db: _initialise(db, path))
    _enable_wal(db, path)
    # Checkpoint every ~16 MiB of WAL (in fewer, larger strides than the default 4 MiB:
    # bulk output is written once to the WAL and once to the file either way).
    checkpoint_pages = max(CHECKPOINT_BYTES // int(one(db, "PRAGMA page_size")[0]), 64)
    # From here on the connection does not wait for locks by itself: an operation in the
    # event loop's thread must never block it. The connection thread sets the timeout
    # around each operation it runs (sqlite_connection._waiting). Checkpoints run there
    # too (SQLiteConnection._checkpoint), never inside a commit made in the loop's thread.
    db.execute("PRAGMA wal_autocheckpoint = 0")
    db.execute("PRAGMA busy_timeout = 0")
    setting = one(db, "SELECT value FROM settings WHERE name = 'output_codec'")
    return checkpoint_pages, None if setting is None else str(setting[0])


def _initialise(db: Conn, path: Path) -> None:
    """Create or migrate the schema, in one write transaction (another process may race)."""
    app_id = int(one(db, "PRAGMA application_id")[0])
    version = int(one(db, "PRAGMA user_version")[0])
    if app_id == 0 and version == 0:
        if one(db, "SELECT count(*) FROM sqlite_master")[0] > 0:
            raise StoreError(
                f"{str(path)!r} is an SQLite database of something else, not an aiobgproc store"
            )
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    elif app_id != APPLICATION_ID:
        raise StoreError(f"{str(path)!r} is not an aiobgproc store")
    if version < 0:  # the header's version field was damaged
        raise StoreError(f"store {str(path)!r} is damaged: schema version {version}")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"store {str(path)!r} has schema version {version}, newer than this "
            f"aiobgproc understands ({SCHEMA_VERSION}); upgrade aiobgproc"
        )
    for step in range(version, SCHEMA_VERSION):
        for statement in MIGRATIONS[step]:
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {step + 1}")


def _enable_wal(db: Conn, path: Path) -> None:
    # SQLite does not call the busy handler while changing the journal mode: retry.
    for attempt in range(200):
        try:
            row = one(db, "PRAGMA journal_mode = WAL")
            if row is not None and str(row[0]).lower() == "wal":
                return
            raise StoreError(f"store {str(path)!r} cannot use WAL mode (got {row})")
        except sqlite3.OperationalError as exc:
            if not busy(exc):
                raise
            time.sleep(min(0.002 * (attempt + 1), 0.05))
    raise StoreError(f"store {str(path)!r} stayed locked while switching to WAL")
