"""The schema, defined once: every table's columns with a neutral type, rendered to each
database's DDL (``sqlite`` and ``postgres``).

The rendered text is, statement for statement, what the stores have always executed (a
SQLite store keeps it, as written, in ``sqlite_master``), so a store created by an earlier
release opens unchanged. The tables here are schema version ``VERSION``; a new version
adds its migration (``sqlite_file.MIGRATIONS``; ``postgres_schema.initialise``) and
changes the tables to match, keeping version 1's statements for the first migration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

VERSION: Final = 1

Database = Literal["sqlite", "postgres"]

TYPES: Final[dict[str, dict[Database, str]]] = {
    # neutral  SQLite              PostgreSQL
    "text": {"sqlite": "TEXT", "postgres": "TEXT"},
    "int": {"sqlite": "INTEGER", "postgres": "INTEGER"},
    # More than 2 GiB of output: PostgreSQL's INTEGER has 32 bits, SQLite's has 64.
    "int64": {"sqlite": "INTEGER", "postgres": "BIGINT"},
    "real": {"sqlite": "REAL", "postgres": "DOUBLE PRECISION"},
    "bytes": {"sqlite": "BLOB", "postgres": "BYTEA"},
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


# The tables, one column a line, in the order the DDL has always listed them (the order
# rows.COLUMNS and MANAGER_COLUMNS read them in, but for ``continuing``, which no record
# shows). The tables look alike by shape: they are data, rendered by create() below.
NOT_NULL: Final = "NOT NULL"
ZERO: Final = "NOT NULL DEFAULT 0"

PROCESSES: Final = Table(
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
INDEXES: Final = (
    Index("processes_by_status", "processes", "status, created_at, id"),
    Index("processes_by_created", "processes", "created_at, id"),
    Index("processes_by_owner", "processes", "owner", "owner IS NOT NULL"),
)
TABLES: Final = (PROCESSES, OUTPUT_CHUNKS, STEP_OUTPUTS, MANAGERS)
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


def create(database: Database, schema: str | None = None) -> list[str]:
    """The statements that create the current schema (in ``schema``, for PostgreSQL)."""
    prefix = f"{schema}." if schema else ""
    statements = [_create_table(PROCESSES, database, prefix)]
    statements += [
        f"CREATE INDEX {index.name} ON {prefix}{index.table} ({index.columns})"
        + (f" WHERE {index.where}" if index.where else "")
        for index in INDEXES
    ]
    for table in TABLES[1:]:
        statements.append(_create_table(table, database, prefix))
        if table.sqlite_unique_index and database == "sqlite":
            statements.append(
                f"CREATE UNIQUE INDEX {table.sqlite_unique_index} ON {table.name}"
                f" ({', '.join(table.primary_key)})"
            )
    return statements
