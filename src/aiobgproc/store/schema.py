"""The schema, defined once: every table's columns with a neutral type, rendered to each
database's DDL (``sqlite`` and ``postgres``).

Every store is built by its migrations, in order, a new one too: version 1's tables
(``create_v1``: statement for statement what the first release executed), then each
version's changes (``migrate_v2``: describing, queueing and scheduling; ``migrate_v3``:
talking to running commands, and their two streams; ``migrate_v4``: compressed output).
So the path an old store takes to the current version is the path every new store takes,
and every test run checks it. A new version adds its ``migrate_vN`` here, to
``sqlite_file.MIGRATIONS`` and to ``postgres_schema.MIGRATIONS``, and its columns to the
tables below.

Triggers are written per database (``triggers``): their bodies differ too much to share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

VERSION: Final = 4

Database = Literal["sqlite", "postgres"]

TYPES: Final[dict[str, dict[Database, str]]] = {
    # neutral  SQLite              PostgreSQL
    "text": {"sqlite": "TEXT", "postgres": "TEXT"},
    "int": {"sqlite": "INTEGER", "postgres": "INTEGER"},
    # More than 2 GiB of output: PostgreSQL's INTEGER has 32 bits, SQLite's has 64.
    "int64": {"sqlite": "INTEGER", "postgres": "BIGINT"},
    "real": {"sqlite": "REAL", "postgres": "DOUBLE PRECISION"},
    "bytes": {"sqlite": "BLOB", "postgres": "BYTEA"},
    # An increasing key, never reused (SQLite's AUTOINCREMENT: not even after the newest row
    # is deleted), for the event log's sequence numbers.
    "serial": {
        "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "postgres": "BIGSERIAL PRIMARY KEY",
    },
}


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # a key of TYPES
    constraint: str = ""  # "NOT NULL", "PRIMARY KEY", "NOT NULL DEFAULT 0", ...


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()  # a key over several columns
    # A table SQLite keeps keyed by its primary key, no rowid beside it (step_outputs: read
    # and written by key only).
    without_rowid: bool = False
    # SQLite's output_chunks has this unique index where PostgreSQL has the primary key: the
    # same constraint, kept as each store has always had it.
    sqlite_unique_index: str | None = None


@dataclass(frozen=True, slots=True)
class Index:
    name: str
    table: str
    columns: str
    where: str = ""
    unique: bool = False


# The tables, one column a line, in the order the DDL has always listed them (the order
# rows.COLUMNS and MANAGER_COLUMNS read them in, but for ``continuing``, which no record
# shows). The tables look alike by shape: they are data, rendered by create() below.
NOT_NULL: Final = "NOT NULL"
ZERO: Final = "NOT NULL DEFAULT 0"

PROCESSES_V1: Final = Table(
    "processes",
    (
        Column("id", "text", "PRIMARY KEY"),
        Column("kind", "text", NOT_NULL),
        Column("status", "text", NOT_NULL),
        Column("spec", "text", NOT_NULL),  # JSON, as every *text* column below but step names
        Column("input", "text"),
        Column("output", "text"),
        Column("error", "text"),
        Column("step", "text"),
        Column("step_index", "int", ZERO),
        Column("steps_total", "int", ZERO),
        Column("progress", "real"),
        Column("progress_message", "text"),
        Column("exit_code", "int"),
        Column("os_pid", "int"),
        Column("os_pid_started", "real"),
        Column("owner", "text"),
        Column("attempts", "int", ZERO),
        Column("timeout", "real"),
        Column("output_size", "int64", ZERO),
        Column("output_truncated", "int", ZERO),
        Column("cancel_requested", "int", ZERO),
        Column("claim_token", "int", ZERO),
        # 1 while a proceeded process is queued: its next claim continues the same attempt.
        Column("continuing", "int", ZERO),
        Column("created_at", "real", NOT_NULL),
        Column("started_at", "real"),
        Column("finished_at", "real"),
    ),
)
# Version 2: describing, queueing and scheduling (added at the end, as ALTER TABLE adds).
PROCESSES_V2: Final = (
    Column("label", "text"),
    Column("meta", "text"),  # JSON object; each of its keys is in process_meta too
    Column("process_key", "text"),  # start(key=): unique among the active (an index)
    Column("queue", "text", "NOT NULL DEFAULT 'default'"),
    Column("priority", "int", ZERO),
    Column("run_at", "real"),  # not claimed before
    Column("after_ids", "text"),  # JSON list: start(after=)
    Column("summary", "text"),  # JSON list: a command's argv, or the step names
    Column("waiting", "int", ZERO),  # dependencies not finished yet
    # 1: claimable while queued. 0 while it waits for run_at (the claim sets it when due)
    # or for its dependencies (the last one to finish sets it, by trigger).
    Column("ready", "int", "NOT NULL DEFAULT 1"),
    Column("start_data", "text"),  # JSON: the data given to start (restart() reuses it)
    Column("restarted_from", "text"),
    Column("failures", "text"),  # JSON list: each failed run that was retried
    # The longest chain of unfinished dependencies below it: a failure ends a chain by
    # triggers firing triggers, which the databases allow only so deep (rows.MAX_CHAIN).
    Column("depth", "int", ZERO),
)
# Version 3: talking to a running process. Every request for its owner (input, a signal,
# suspend, resume) bumps ``controls`` (a trigger on the request's insert): the owner acts
# when the number it last saw changes.
PROCESSES_V3: Final = (Column("controls", "int", ZERO),)
PROCESSES: Final = Table("processes", PROCESSES_V1.columns + PROCESSES_V2 + PROCESSES_V3)
OUTPUT_CHUNKS: Final = Table(
    "output_chunks",
    (
        Column("process_id", "text", NOT_NULL),
        Column("seq", "int", NOT_NULL),
        Column("data", "bytes", NOT_NULL),
    ),
    primary_key=("process_id", "seq"),
    sqlite_unique_index="output_chunks_by_process",
)
# Version 3: which stream a chunk was read from (1 stdout, 2 stderr). Chunks of version 2
# and before were read from one pipe that carried both: they count as stdout.
STREAM: Final = Column("stream", "int", "NOT NULL DEFAULT 1")
# Version 4: how a chunk is stored (store.codec: 0 raw, 1 zstd). Older chunks are raw.
CODEC: Final = Column("codec", "int", "NOT NULL DEFAULT 0")
STEP_OUTPUTS: Final = Table(
    "step_outputs",
    (
        Column("process_id", "text", NOT_NULL),
        Column("step_index", "int", NOT_NULL),
        Column("step_name", "text", NOT_NULL),
        Column("attempt", "int", NOT_NULL),
        Column("output", "text", NOT_NULL),
        Column("committed_at", "real", NOT_NULL),
    ),
    primary_key=("process_id", "step_index"),
    without_rowid=True,
)
MANAGERS: Final = Table(
    "managers",
    (
        Column("id", "text", "PRIMARY KEY"),
        Column("hostname", "text", NOT_NULL),
        Column("boot_id", "text", NOT_NULL),
        Column("os_pid", "int", NOT_NULL),
        Column("os_pid_started", "real"),
        Column("runs", "int", NOT_NULL),
        Column("lease", "real", NOT_NULL),
        Column("started_at", "real", NOT_NULL),
        Column("heartbeat_at", "real", NOT_NULL),
        Column("heartbeat_boottime", "real", NOT_NULL),
    ),
)
INDEXES_V1: Final = (
    Index("processes_by_status", "processes", "status, created_at, id"),
    Index("processes_by_created", "processes", "created_at, id"),
    Index("processes_by_owner", "processes", "owner", "owner IS NOT NULL"),
)
TABLES_V1: Final = (PROCESSES_V1, OUTPUT_CHUNKS, STEP_OUTPUTS, MANAGERS)

QUEUES: Final = Table(
    "queues",  # a row for a queue with a setting; a queue without one has no row
    (
        Column("name", "text", "PRIMARY KEY"),
        Column("max_running", "int"),  # NULL: no limit
        Column("paused", "int", ZERO),
    ),
)
DEPENDENCIES: Final = Table(
    "dependencies",  # start(after=): the edges not resolved yet (a trigger deletes the rest)
    (Column("process_id", "text", NOT_NULL), Column("depends_on", "text", NOT_NULL)),
    primary_key=("process_id", "depends_on"),
    without_rowid=True,
)
PROCESS_META: Final = Table(
    "process_meta",  # each key of a process's meta with its canonical JSON value: list(meta=)
    (
        Column("process_id", "text", NOT_NULL),
        Column("name", "text", NOT_NULL),
        Column("value", "text", NOT_NULL),
        Column("created_at", "real", NOT_NULL),  # the process's: listings are newest first
    ),
    primary_key=("process_id", "name"),
    without_rowid=True,
)
QUEUED_READY: Final = "status = 'queued' AND ready = 1"
ACTIVE: Final = "status NOT IN ('finished', 'error', 'cancelled', 'timeout')"
SCHEDULES: Final = Table(
    "schedules",
    (
        Column("name", "text", "PRIMARY KEY"),
        Column("spec", "text", NOT_NULL),  # JSON: the work, as start() stores it
        Column("data", "text", NOT_NULL),  # JSON
        Column("options", "text", NOT_NULL),  # JSON: label, meta, key, queue, priority, timeout
        Column("cron", "text"),
        Column("every", "real"),
        Column("next_run_at", "real", NOT_NULL),  # the due time; firing moves it (compare-and-set)
        Column("last_run_at", "real"),
        Column("last_process_id", "text"),
        Column("created_at", "real", NOT_NULL),
    ),
)
EVENTS: Final = Table(
    "events",  # one per status change and step start, written by triggers (store.triggers)
    (
        Column("seq", "serial"),
        Column("process_id", "text", NOT_NULL),
        Column("status", "text", NOT_NULL),
        Column("step", "text"),
        Column("queue", "text", NOT_NULL),
        Column("at", "real", NOT_NULL),
    ),
)
INDEXES_V2: Final = (
    # The claim: per queue, higher priority first, then start order; only what is claimable.
    Index("processes_claimable", "processes", "queue, priority DESC, created_at, id", QUEUED_READY),
    # What waits for its time only: the claim makes the due ones claimable.
    Index(
        "processes_delayed",
        "processes",
        "run_at",
        "status = 'queued' AND ready = 0 AND waiting = 0",
    ),
    Index(
        "processes_active_key",
        "processes",
        "process_key",
        f"process_key IS NOT NULL AND {ACTIVE}",
        unique=True,
    ),
    Index(
        "processes_by_key", "processes", "process_key, created_at, id", "process_key IS NOT NULL"
    ),
    Index("processes_by_label", "processes", "label, created_at, id", "label IS NOT NULL"),
    Index("processes_by_queue", "processes", "queue, created_at, id"),
    Index("dependencies_by_target", "dependencies", "depends_on"),
    Index("process_meta_by_value", "process_meta", "name, value, created_at, process_id"),
    Index("schedules_by_due", "schedules", "next_run_at"),
    Index("events_by_process", "events", "process_id, seq"),
)
PROCESS_INPUT: Final = Table(
    "process_input",  # send_input()'s bytes until the owner wrote them; data NULL: close
    (
        Column("seq", "serial"),
        Column("process_id", "text", NOT_NULL),
        Column("data", "bytes"),
    ),
)
CONTROLS: Final = Table(
    "controls",  # signal(), suspend(), resume(): asked of the owner of one claim
    (
        Column("seq", "serial"),
        Column("process_id", "text", NOT_NULL),
        Column("claim_token", "int", NOT_NULL),
        Column("action", "text", NOT_NULL),  # "signal", "signal-tree", "suspend", "resume"
        Column("argument", "int"),  # the signal's number
        Column("done", "int", ZERO),
        Column("result", "text"),  # None: done; else why it could not be
    ),
)
INDEXES_V3: Final = (
    Index("output_chunks_by_stream", "output_chunks", "process_id, stream, seq"),
    Index("controls_pending", "controls", "process_id, seq", "done = 0"),
    Index("process_input_by_process", "process_input", "process_id, seq"),
)
TABLES_V2: Final = (QUEUES, DEPENDENCIES, PROCESS_META, SCHEDULES, EVENTS)
TABLES: Final = (
    PROCESSES,
    OUTPUT_CHUNKS,
    STEP_OUTPUTS,
    MANAGERS,
    QUEUES,
    DEPENDENCIES,
    PROCESS_META,
    SCHEDULES,
    EVENTS,
    PROCESS_INPUT,
    CONTROLS,
)
TABLE_NAMES: Final = tuple(table.name for table in TABLES)


def _create_table(table: Table, database: Database, prefix: str) -> str:
    lines = [
        f"    {column.name} {TYPES[column.type][database]}"
        + (f" {column.constraint}" if column.constraint else "")
        for column in table.columns
    ]
    if table.primary_key and not (table.sqlite_unique_index and database == "sqlite"):
        lines.append(f"    PRIMARY KEY ({', '.join(table.primary_key)})")
    suffix = " WITHOUT ROWID" if table.without_rowid and database == "sqlite" else ""
    return f"CREATE TABLE {prefix}{table.name} (\n" + ",\n".join(lines) + f"\n){suffix}"


def _create_index(index: Index, prefix: str) -> str:
    unique = "UNIQUE " if index.unique else ""
    return f"CREATE {unique}INDEX {index.name} ON {prefix}{index.table} ({index.columns})" + (
        f" WHERE {index.where}" if index.where else ""
    )


def create_v1(database: Database, schema: str | None = None) -> list[str]:
    """The statements that created version 1 (in ``schema``, for PostgreSQL)."""
    prefix = f"{schema}." if schema else ""
    statements = [_create_table(PROCESSES_V1, database, prefix)]
    statements += [_create_index(index, prefix) for index in INDEXES_V1]
    for table in TABLES_V1[1:]:
        statements.append(_create_table(table, database, prefix))
        if table.sqlite_unique_index and database == "sqlite":
            statements.append(
                f"CREATE UNIQUE INDEX {table.sqlite_unique_index} ON {table.name}"
                f" ({', '.join(table.primary_key)})"
            )
    return statements


# What an existing process of version 1 is described by (its summary): a command's argv, or
# its step names, from its spec.
_SUMMARY: Final[dict[Database, str]] = {
    "sqlite": (
        "CASE kind WHEN 'command' THEN json_extract(spec, '$.argv') ELSE"
        " (SELECT json_group_array(json_extract(value, '$.name'))"
        " FROM json_each(spec, '$.steps')) END"
    ),
    "postgres": (
        "CASE kind WHEN 'command' THEN (spec::jsonb -> 'argv')::text ELSE"
        # (not "step": a column of processes)
        " (SELECT jsonb_agg(s.value ->> 'name') FROM jsonb_array_elements(spec::jsonb -> 'steps')"
        " AS s(value))::text END"
    ),
}


def migrate_v2(database: Database, schema: str | None = None) -> list[str]:
    """Version 1 to 2 (triggers.dependencies adds the trigger): old processes get the queue
    "default" and priority 0 from the columns' defaults."""
    prefix = f"{schema}." if schema else ""
    statements = [
        f"ALTER TABLE {prefix}processes ADD COLUMN {column.name} {TYPES[column.type][database]}"
        + (f" {column.constraint}" if column.constraint else "")
        for column in PROCESSES_V2
    ]
    statements.append(f"ALTER TABLE {prefix}managers ADD COLUMN queues TEXT")  # JSON list
    statements.append(
        f"UPDATE {prefix}processes SET summary = {_SUMMARY[database]},"
        " start_data = CASE WHEN step_index = 0 THEN input END"  # else unknown: restart uses {}
    )
    statements += [_create_table(table, database, prefix) for table in TABLES_V2]
    statements += [_create_index(index, prefix) for index in INDEXES_V2]
    return statements


def migrate_v3(database: Database, schema: str | None = None) -> list[str]:
    """Version 2 to 3: the ``controls`` counter, the chunks' ``stream`` (old chunks: stdout),
    and the tables of pending input and controls."""
    prefix = f"{schema}." if schema else ""
    statements = [
        f"ALTER TABLE {prefix}{table} ADD COLUMN {column.name} {TYPES[column.type][database]}"
        + (f" {column.constraint}" if column.constraint else "")
        for table, column in [("processes", PROCESSES_V3[0]), ("output_chunks", STREAM)]
    ]
    statements += [_create_table(table, database, prefix) for table in (PROCESS_INPUT, CONTROLS)]
    statements += [_create_index(index, prefix) for index in INDEXES_V3]
    return statements


# Version 4: the store's settings (SQLite; PostgreSQL keeps them in its ``meta`` table).
SQLITE_SETTINGS: Final = "CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)"


def migrate_v4(database: Database, schema: str | None = None) -> list[str]:
    """Version 3 to 4: each chunk's ``codec``, and the ``output_codec`` setting: ``zstd`` for
    a store that holds no process yet (a new one), ``none`` for one that does (see
    store.codec)."""
    prefix = f"{schema}." if schema else ""
    statements = [
        f"ALTER TABLE {prefix}output_chunks ADD COLUMN {CODEC.name} {TYPES[CODEC.type][database]}"
        f" {CODEC.constraint}"
    ]
    settings = f"{prefix}meta (key, value)" if database == "postgres" else "settings (name, value)"
    if database == "sqlite":
        statements.append(SQLITE_SETTINGS)
    statements.append(
        f"INSERT INTO {settings} SELECT 'output_codec', CASE WHEN EXISTS"
        f" (SELECT 1 FROM {prefix}processes) THEN 'none' ELSE 'zstd' END"
    )
    return statements
