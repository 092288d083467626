"""The SQL both stores run, written once in a neutral form, and its rendering per database.

The neutral form is SQL in which
- ``?`` marks each parameter, in order (sqlite3 takes it as it is; PostgreSQL's ``$1, $2,
  ...`` are numbered from it: ``numbered``);
- ``{processes}``, ``{output_chunks}``, ``{step_outputs}`` and ``{managers}`` name the tables
  (qualified with the store's schema in PostgreSQL);
- ``{queued}``, ``{running}``, ... are the statuses as SQL literals, from ``Status``, and
  ``{terminal}`` is TERMINAL_STATUSES as a list of them;
- ``{columns}`` and ``{manager_columns}`` are the columns ``rows`` reads, in its order;
- ``{for_update}`` locks the rows a read inside a write transaction returns: `` FOR UPDATE``
  in PostgreSQL; nothing in SQLite, where BEGIN IMMEDIATE holds the write lock already.

A store renders a statement by looking it up in its ``Dialect`` (rendered once, then
memoised: the same few statements come back). Statements only one database runs live in
its module, in the same form.
"""

from __future__ import annotations

from typing import Final

from ..models import TERMINAL_STATUSES, Status
from .rows import COLUMNS, MANAGER_COLUMNS
from .schema import TABLE_NAMES


def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's (asyncpg's) ``$1, $2, ...``."""
    first, *rest = sql.split("?")
    return first + "".join(f"${number}{part}" for number, part in enumerate(rest, 1))


class Dialect(dict[str, str]):
    """Statements of the neutral form as one database (and schema) runs them, memoised."""

    def __init__(
        self, *, schema: str | None = None, numbered: bool = False, for_update: str = ""
    ) -> None:
        super().__init__()
        prefix = f"{schema}." if schema else ""
        self._numbered = numbered
        self._names: dict[str, str] = {
            **{table: prefix + table for table in TABLE_NAMES},
            **{status.name.lower(): f"'{status}'" for status in Status},
            "terminal": ", ".join(
                f"'{status}'" for status in Status if status in TERMINAL_STATUSES
            ),
            "columns": COLUMNS,
            "manager_columns": MANAGER_COLUMNS,
            "for_update": for_update,
        }

    def __missing__(self, template: str) -> str:
        sql = template.format_map(self._names)
        if self._numbered:
            sql = numbered(sql)
        self[template] = sql
        return sql


SQLITE: Final = Dialect()


def postgres(schema: str) -> Dialect:
    return Dialect(schema=schema, numbered=True, for_update=" FOR UPDATE")


# -- processes -------------------------------------------------------------------------------

INSERT: Final = (
    "INSERT INTO {processes} (id, kind, status, spec, input, timeout, steps_total, created_at,"
    " owner, claim_token, attempts, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_RETURNING: Final = INSERT + " RETURNING {columns}"
GET: Final = "SELECT {columns} FROM {processes} WHERE id = ?"
LIST: Final = "SELECT {columns} FROM {processes} ORDER BY created_at DESC, id DESC LIMIT ?"


def list_where(status_test: str) -> str:
    """A listing of the processes whose status passes ``status_test`` (``IN (?, ?)``, ...)."""
    return (
        f"SELECT {{columns}} FROM {{processes}} WHERE status {status_test}"
        " ORDER BY created_at DESC, id DESC LIMIT ?"
    )


# The start of a claim (owner, now): each store picks the queued rows its own way.
CLAIM_SET: Final = (
    "UPDATE {processes} SET status = {running}, owner = ?, claim_token = claim_token + 1,"
    " attempts = attempts + 1 - continuing, continuing = 0,"
    " started_at = coalesce(started_at, ?), os_pid = NULL, os_pid_started = NULL"
)

# The compare-and-set of every change to a claimed process: its id, still running, for the
# same owner and claim (process_id, owner, token).
CLAIMED: Final = "id = ? AND status = {running} AND owner = ? AND claim_token = ?"


def update_claimed(assignments: str) -> str:
    return "UPDATE {processes} SET " + assignments + " WHERE " + CLAIMED


SET_OS_PID: Final = update_claimed("os_pid = ?, os_pid_started = ?")
SET_OS_PID_AND_STEP: Final = update_claimed(
    "os_pid = ?, os_pid_started = ?, step_index = ?, step = ?, progress = NULL,"
    " progress_message = NULL"
)
SET_PROGRESS: Final = update_claimed("progress = ?, progress_message = ?")
FINISH: Final = update_claimed(
    "status = ?, output = ?, error = ?, exit_code = ?, finished_at = ?,"
    " os_pid = NULL, os_pid_started = NULL"
)
REQUEUE: Final = update_claimed(
    "status = {queued}, owner = NULL, os_pid = NULL, os_pid_started = NULL"
)
START_STEP: Final = update_claimed(
    "step = ?, step_index = ?, progress = NULL, progress_message = NULL"
)
# Owner and token, not status: the claim ended otherwise (cancelled, lost); a process that
# still runs keeps its owner (see Store.release).
RELEASE: Final = (
    "UPDATE {processes} SET os_pid = NULL, os_pid_started = NULL,"
    " owner = CASE WHEN status = {running} THEN owner END"
    " WHERE id = ? AND owner = ? AND claim_token = ?"
)

# A step's output is recorded once (the primary key refuses a second row), and only while
# the claim holds: (process_id, index, name, attempt, output, now) + the claim.
RECORD_STEP: Final = (
    "INSERT INTO {step_outputs} (process_id, step_index, step_name, attempt, output,"
    " committed_at) SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM {processes}"
    " WHERE " + CLAIMED + "{for_update}) ON CONFLICT DO NOTHING"
)
# What a recorded step changes in its process: (index + 1, output) ...
NEXT_STEP: Final = "step_index = ?, input = ?"
# ... (index + 1, output, output, now), after the last step ...
LAST_STEP: Final = (
    "step_index = ?, input = ?, output = ?, status = {finished}, finished_at = ?,"
    " os_pid = NULL, os_pid_started = NULL, progress = NULL, progress_message = NULL"
)
# ... (index + 1, output, output), after a step that interrupts.
INTERRUPT: Final = (
    "status = {interrupted}, step_index = ?, input = ?, output = ?, owner = NULL,"
    " os_pid = NULL, os_pid_started = NULL, progress = NULL, progress_message = NULL"
)
STEP_ENDS: Final = (NEXT_STEP, LAST_STEP, INTERRUPT)

PROCEED_READ: Final = (
    "SELECT output, step_index, steps_total FROM {processes}"
    " WHERE id = ? AND status = {interrupted}{for_update}"
)
PROCEED_FINISH: Final = (
    "UPDATE {processes} SET status = {finished}, output = ?, input = ?,"
    " finished_at = ? WHERE id = ? AND status = {interrupted}"
)
PROCEED_QUEUE: Final = (
    "UPDATE {processes} SET status = {queued}, input = ?, output = NULL,"
    " continuing = 1 WHERE id = ? AND status = {interrupted}"
)
STEP_OUTPUTS: Final = (
    "SELECT step_index, step_name, attempt, output FROM {step_outputs}"
    " WHERE process_id = ? ORDER BY step_index"
)
CANCEL_READ: Final = "SELECT status FROM {processes} WHERE id = ?{for_update}"
CANCEL: Final = (
    "UPDATE {processes} SET status = {cancelled}, finished_at = ?,"
    " cancel_requested = 1 WHERE id = ? AND status = ? RETURNING {columns}"
)
CANCELLABLE: Final = (Status.QUEUED.value, Status.RUNNING.value, Status.INTERRUPTED.value)

RUNNING_OWNED_BY: Final = (
    "SELECT id, claim_token FROM {processes} WHERE owner = ? AND status = {running}"
)
RUNNING_NOT_OWNED_BY: Final = (
    "SELECT {columns} FROM {processes} WHERE status = {running} AND (owner IS NULL OR owner <> ?)"
)

# -- output ----------------------------------------------------------------------------------

# Owner and token, not status: output that arrives after a cancel is still kept, but a
# manager that lost the process (recovered, taken over) writes nothing more.
OUTPUT_SIZE: Final = (
    "UPDATE {processes} SET output_size = ?, output_truncated = ?"
    " WHERE id = ? AND owner = ? AND claim_token = ?"
)
OUTPUT_CHUNK: Final = "INSERT INTO {output_chunks} (process_id, seq, data) VALUES (?, ?, ?)"
READ_OUTPUT: Final = (
    "SELECT seq, data FROM {output_chunks} WHERE process_id = ? AND seq > ? ORDER BY seq"
)
LAST_OUTPUT_SEQ: Final = "SELECT coalesce(max(seq), -1) FROM {output_chunks} WHERE process_id = ?"

# -- housekeeping ----------------------------------------------------------------------------

_DOOMED: Final = "SELECT id FROM {processes} WHERE status IN ({terminal}) AND finished_at < ?"
# Each takes (finished_before,); the last one's count is the number of processes pruned.
PRUNE: Final = (
    "DELETE FROM {output_chunks} WHERE process_id IN (" + _DOOMED + ")",
    "DELETE FROM {step_outputs} WHERE process_id IN (" + _DOOMED + ")",
    "DELETE FROM {processes} WHERE id IN (" + _DOOMED + ")",
)

SET_MANAGER_RUNS: Final = "UPDATE {managers} SET runs = ? WHERE id = ?"
UNREGISTER_MANAGER: Final = "DELETE FROM {managers} WHERE id = ?"
LIST_MANAGERS: Final = "SELECT {manager_columns} FROM {managers}"
