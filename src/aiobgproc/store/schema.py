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


def _c(name: str, type_: str, constraint: str = "") -> Column:
    return Column(name, type_, constraint)


NOT_NULL: Final = "NOT NULL"
ZERO: Final = "NOT NULL DEFAULT 0"

PROCESSES: Final = Table(
    "processes",
    (
        _c("id", "text", "PRIMARY KEY"),
        _c("kind", "text", NOT_NULL),
        _c("status", "text", NOT_NULL),
        _c("spec", "text", NOT_NULL),  # JSON, as every *text* column below but step names
        _c("input", "text"),
        _c("output", "text"),
        _c("error", "text"),
        _c("step", "text"),
        _c("step_index", "int", ZERO),
        _c("steps_total", "int", ZERO),
        _c("progress", "real"),
        _c("progress_message", "text"),
        _c("exit_code", "int"),
        _c("os_pid", "int"),
        _c("os_pid_started", "real"),
        _c("owner", "text"),
        _c("attempts", "int", ZERO),
        _c("timeout", "real"),
        _c("output_size", "int64", ZERO),
        _c("output_truncated", "int", ZERO),
        _c("cancel_requested", "int", ZERO),
        _c("claim_token", "int", ZERO),
        # 1 while a proceeded process is queued: its next claim continues the same attempt.
        _c("continuing", "int", ZERO),
        _c("created_at", "real", NOT_NULL),
        _c("started_at", "real"),
        _c("finished_at", "real"),
    ),
)
OUTPUT_CHUNKS: Final = Table(
    "output_chunks",
    (
        _c("process_id", "text", NOT_NULL),
        _c("seq", "int", NOT_NULL),
        _c("data", "bytes", NOT_NULL),
    ),
    primary_key=("process_id", "seq"),
    sqlite_unique_index="output_chunks_by_process",
)
STEP_OUTPUTS: Final = Table(
    "step_outputs",
    (
        _c("process_id", "text", NOT_NULL),
        _c("step_index", "int", NOT_NULL),
        _c("step_name", "text", NOT_NULL),
        _c("attempt", "int", NOT_NULL),
        _c("output", "text", NOT_NULL),
        _c("committed_at", "real", NOT_NULL),
    ),
    primary_key=("process_id", "step_index"),
    without_rowid=True,
)
MANAGERS: Final = Table(
    "managers",
    (
        _c("id", "text", "PRIMARY KEY"),
        _c("hostname", "text", NOT_NULL),
        _c("boot_id", "text", NOT_NULL),
        _c("os_pid", "int", NOT_NULL),
        _c("os_pid_started", "real"),
        _c("runs", "int", NOT_NULL),
        _c("lease", "real", NOT_NULL),
        _c("started_at", "real", NOT_NULL),
        _c("heartbeat_at", "real", NOT_NULL),
        _c("heartbeat_boottime", "real", NOT_NULL),
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
