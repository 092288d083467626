"""The SQL both stores run, written once in a neutral form, and its rendering per database.

The neutral form is SQL in which
- ``?`` marks each parameter, in order (sqlite3 takes it as it is; PostgreSQL's ``$1, $2,
  ...`` are numbered from it: ``numbered``);
- ``{processes}``, ``{output_chunks}``, ``{step_outputs}`` and ``{managers}`` name the tables
  (qualified with the store's schema in PostgreSQL);
- ``{queued}``, ``{running}``, ... are the statuses as SQL literals, from ``Status``, and
  ``{terminal}`` is TERMINAL_STATUSES as a list of them, ``{live}`` LIVE_STATUSES (running
  or suspended: a process with an owner and OS processes);
- ``{columns}`` and ``{manager_columns}`` are the columns ``rows`` reads, in its order
  (``{p_columns}``: the process columns qualified as ``p.``);
- ``{for_update}`` locks the rows a read inside a write transaction returns: `` FOR UPDATE``
  in PostgreSQL; nothing in SQLite, where BEGIN IMMEDIATE holds the write lock already;
  ``{skip_locked}`` likewise, passing over rows another claim holds;
- ``{by_claimable}``, ``{by_delayed}`` and ``{by_status}`` name the index a claim's query must
  use: `` INDEXED BY ...`` in SQLite, whose planner (with no statistics) would take the
  status index and walk every queued row; nothing in PostgreSQL, whose planner does not.
  ``{by_stream}`` likewise for reading one stream's output chunks.

A store renders a statement by looking it up in its ``Dialect`` (rendered once, then
memoised: the same few statements come back). Statements only one database runs live in
its module, in the same form.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from ..models import LIVE_STATUSES, TERMINAL_STATUSES, Status
from .protocol import ListFilter
from .rows import COLUMNS, MANAGER_COLUMNS, P_COLUMNS
from .schema import TABLE_NAMES


def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's (asyncpg's) ``$1, $2, ...``."""
    first, *rest = sql.split("?")
    return first + "".join(f"${number}{part}" for number, part in enumerate(rest, 1))


class Dialect(dict[str, str]):
    """Statements of the neutral form as one database (and schema) runs them, memoised."""

    def __init__(
        self,
        *,
        schema: str | None = None,
        numbered: bool = False,
        for_update: str = "",
        skip_locked: str = "",
        index_hints: bool = False,
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
            "live": ", ".join(f"'{status}'" for status in Status if status in LIVE_STATUSES),
            "columns": COLUMNS,
            "p_columns": P_COLUMNS,
            "manager_columns": MANAGER_COLUMNS,
            "for_update": for_update,
            "skip_locked": skip_locked,
            **{
                f"by_{name}": f" INDEXED BY {index}" if index_hints else ""
                for name, index in (
                    ("claimable", "processes_claimable"),
                    ("delayed", "processes_delayed"),
                    ("status", "processes_by_status"),
                    ("stream", "output_chunks_by_stream"),
                )
            },
        }

    def __missing__(self, template: str) -> str:
        sql = template.format_map(self._names)
        if self._numbered:
            sql = numbered(sql)
        self[template] = sql
        return sql


SQLITE: Final = Dialect(index_hints=True)


def postgres(schema: str) -> Dialect:
    return Dialect(
        schema=schema,
        numbered=True,
        for_update=" FOR UPDATE",
        skip_locked=" FOR UPDATE SKIP LOCKED",
    )


# -- processes -------------------------------------------------------------------------------

INSERT: Final = (
    "INSERT INTO {processes} (id, kind, status, spec, input, timeout, steps_total, created_at,"
    " owner, claim_token, attempts, started_at, label, meta, process_key, queue, priority,"
    " run_at, after_ids, summary, waiting, ready, error, finished_at, start_data,"
    " restarted_from, step_index, depth) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
    " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# A key an active process holds (the unique index processes_active_key): nothing stored.
INSERT_KEYED: Final = INSERT + " ON CONFLICT DO NOTHING"
ACTIVE_WITH_KEY: Final = (
    "SELECT id FROM {processes} WHERE process_key = ? AND status NOT IN ({terminal})"
)
# Stored claimed (the direct start) only into a queue with no limit and not paused: a
# limited queue's running processes are counted by the claim, which locks the queue.
INSERT_CLAIMED: Final = (
    INSERT.replace(" VALUES (", " SELECT ").removesuffix(")")
    + " WHERE NOT EXISTS (SELECT 1 FROM {queues} WHERE name = ?"
    " AND (paused <> 0 OR max_running IS NOT NULL)) RETURNING {columns}"
)
INSERT_META: Final = (
    "INSERT INTO {process_meta} (process_id, name, value, created_at) VALUES (?, ?, ?, ?)"
)
INSERT_DEPENDENCY: Final = "INSERT INTO {dependencies} (process_id, depends_on) VALUES (?, ?)"


def dependencies_query(test: str) -> str:
    """The status and depth of the processes ``test`` selects by id (``IN (...)`` ...)."""
    return "SELECT id, status, depth FROM {processes} WHERE id " + test


GET: Final = "SELECT {columns} FROM {processes} WHERE id = ?"
CREATED: Final = "SELECT created_at, id FROM {processes} WHERE id = ?"


def list_query(
    where: ListFilter, member: Callable[[str, Sequence[str]], tuple[str, list[Any]]]
) -> tuple[str, list[Any]]:
    """A listing, newest first, of the processes every filter of ``where`` matches.

    ``member(column, values)`` is the store's test of a column against a list. A meta
    filter drives the query from process_meta's index (its first pair; the others are
    tested on each row found), anything else from the processes table, where each single
    filter has an index in created_at order."""
    conditions: list[str] = []
    params: list[Any] = []
    if where.meta:
        (name, value), *others = where.meta
        source = "{process_meta} m JOIN {processes} p ON p.id = m.process_id"
        conditions.append("m.name = ? AND m.value = ?")
        params += [name, value]
        for name, value in others:
            conditions.append(
                "EXISTS (SELECT 1 FROM {process_meta} x WHERE x.process_id = p.id"
                " AND x.name = ? AND x.value = ?)"
            )
            params += [name, value]
        created, ident = "m.created_at", "m.process_id"
    else:
        source, created, ident = "{processes} p", "p.created_at", "p.id"
    if where.statuses is not None:
        test, values = member("p.status", [str(status) for status in where.statuses])
        conditions.append(test)
        params += values
    for column, wanted in (
        ("p.queue", where.queue),
        ("p.label", where.label),
        ("p.process_key", where.key),
    ):
        if wanted is not None:
            conditions.append(f"{column} = ?")
            params.append(wanted)
    if where.before is not None:
        conditions.append(f"({created}, {ident}) < (?, ?)")  # the values: the store's
    text = "SELECT {p_columns} FROM " + source
    if conditions:
        text += " WHERE " + " AND ".join(conditions)
    return text + f" ORDER BY {created} DESC, {ident} DESC LIMIT ?", params


# The start of a claim (owner, now): each store picks the queued rows its own way.
CLAIM_SET: Final = (
    "UPDATE {processes} SET status = {running}, owner = ?, claim_token = claim_token + 1,"
    " attempts = attempts + 1 - continuing, continuing = 0,"
    " started_at = coalesce(started_at, ?), os_pid = NULL, os_pid_started = NULL"
)

# -- claiming (the start of the claim's UPDATE is CLAIM_SET; each store picks the ids) ------

# Processes whose time has come, and that wait for nothing else, become claimable (now).
PROMOTE_DUE: Final = (
    "UPDATE {processes} SET ready = 1 WHERE id IN (SELECT id FROM {processes}{by_delayed}"
    " WHERE status = {queued} AND ready = 0 AND waiting = 0 AND run_at <= ?{skip_locked})"
)
# The queues that hold a claimable process, with their settings: one index probe a queue.
CLAIMABLE_QUEUES: Final = (
    "WITH RECURSIVE q(name) AS (SELECT (SELECT queue FROM {processes}{by_claimable}"
    " WHERE status = {queued} AND ready = 1 ORDER BY queue LIMIT 1)"
    " UNION ALL SELECT (SELECT queue FROM {processes}{by_claimable} WHERE status = {queued}"
    " AND ready = 1 AND queue > q.name ORDER BY queue LIMIT 1) FROM q"
    " WHERE q.name IS NOT NULL)"
    " SELECT q.name, s.max_running, coalesce(s.paused, 0) AS paused FROM q"
    " LEFT JOIN {queues} s ON s.name = q.name WHERE q.name IS NOT NULL"
)
# A limited queue's settings, locked (PostgreSQL): its claims count one at a time.
QUEUE_LOCKED: Final = "SELECT max_running, paused FROM {queues} WHERE name = ?{for_update}"
RUNNING_IN_QUEUE: Final = (
    "SELECT count(*) FROM {processes}{by_status} WHERE status IN ({live}) AND queue = ?"
)
CANDIDATES: Final = (
    "SELECT id, priority, created_at FROM {processes}{by_claimable} WHERE status = {queued}"
    " AND ready = 1 AND queue = ? ORDER BY priority DESC, created_at, id LIMIT ?{skip_locked}"
)
NEXT_RUN_AT: Final = (
    "SELECT min(run_at) FROM {processes}{by_delayed}"
    " WHERE status = {queued} AND ready = 0 AND waiting = 0"
)
HAS_CLAIMABLE: Final = (
    "SELECT 1 FROM {processes}{by_claimable} WHERE status = {queued} AND ready = 1 LIMIT 1"
)


def has_work_query(mine: Callable[[str], str]) -> str:
    """Work a burst worker waits for, of the queues ``mine(column)`` tests: a process that
    is claimable or waits for its time, or that waits for a dependency that runs, or is
    itself queued for nothing but its time in a queue of the worker's (not one that waits
    on something else, or is interrupted: that may take days); never in a paused queue."""
    return (
        "SELECT 1 FROM {processes} p WHERE p.status = {queued} AND "
        + mine("p.queue")
        + " AND NOT EXISTS (SELECT 1 FROM {queues} s WHERE s.name = p.queue AND s.paused <> 0)"
        " AND (p.waiting = 0 OR EXISTS (SELECT 1 FROM {dependencies} d JOIN {processes} r"
        " ON r.id = d.depends_on WHERE d.process_id = p.id AND (r.status IN ({live})"
        " OR (r.status = {queued} AND r.waiting = 0 AND " + mine("r.queue") + " AND NOT EXISTS"
        " (SELECT 1 FROM {queues} t WHERE t.name = r.queue AND t.paused <> 0))))) LIMIT 1"
    )


# -- queues -----------------------------------------------------------------------------------

SET_QUEUE_LIMIT: Final = (
    "INSERT INTO {queues} (name, max_running) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET max_running = excluded.max_running"
)
SET_QUEUE_PAUSED: Final = (
    "INSERT INTO {queues} (name, paused) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET paused = excluded.paused"
)
# A queue without a setting has no row.
FORGET_QUEUE: Final = "DELETE FROM {queues} WHERE name = ? AND max_running IS NULL AND paused = 0"
QUEUE_SETTINGS: Final = "SELECT name, max_running, paused FROM {queues}"
QUEUE_COUNTS: Final = (
    "SELECT queue, status, count(*) FROM {processes} WHERE status IN ({queued}, {live})"
    " GROUP BY queue, status"
)

# The compare-and-set of every change to a claimed process: its id, still running, for the
# same owner and claim (process_id, owner, token).
CLAIMED: Final = "id = ? AND status IN ({live}) AND owner = ? AND claim_token = ?"


def update_claimed(assignments: str) -> str:
    return "UPDATE {processes} SET " + assignments + " WHERE " + CLAIMED


SET_OS_PID: Final = update_claimed("os_pid = ?, os_pid_started = ?")
# A spare executor given to a step process in the transaction that claimed it (Store.claim),
# with the step it begins at (a statement of its own: the event log sees the step start).
PIN_EXECUTOR: Final = (
    "UPDATE {processes} SET os_pid = ?, os_pid_started = ?, step = ?, progress = NULL,"
    " progress_message = NULL WHERE id = ?"
)
SET_OS_PID_AND_STEP: Final = update_claimed(
    "os_pid = ?, os_pid_started = ?, step_index = ?, step = ?, progress = NULL,"
    " progress_message = NULL"
)
SET_PROGRESS: Final = update_claimed("progress = ?, progress_message = ?")
FINISH: Final = update_claimed(
    "status = ?, output = ?, error = ?, exit_code = ?, finished_at = ?,"
    " os_pid = NULL, os_pid_started = NULL"
)
# A failed run to be retried: back to the queue, to wait for its time (run_at, error,
# ready, failures).
RETRY: Final = update_claimed(
    "status = {queued}, owner = NULL, os_pid = NULL, os_pid_started = NULL, run_at = ?,"
    " ready = ?, error = ?, failures = ?, progress = NULL,"
    " progress_message = NULL"
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
    " owner = CASE WHEN status IN ({live}) THEN owner END"
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
# (error: a retried step's failure is shown while it waits; the step then succeeded.)
NEXT_STEP: Final = "step_index = ?, input = ?, error = NULL"
# ... (index + 1, output, output, now), after the last step ...
LAST_STEP: Final = (
    "step_index = ?, input = ?, output = ?, status = {finished}, finished_at = ?,"
    " os_pid = NULL, os_pid_started = NULL, progress = NULL, progress_message = NULL,"
    " error = NULL"
)
# ... (index + 1, output, output), after a step that interrupts.
INTERRUPT: Final = (
    "status = {interrupted}, step_index = ?, input = ?, output = ?, owner = NULL,"
    " os_pid = NULL, os_pid_started = NULL, progress = NULL, progress_message = NULL,"
    " error = NULL"
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
CANCELLABLE: Final = (
    Status.QUEUED.value,
    Status.RUNNING.value,
    Status.SUSPENDED.value,
    Status.INTERRUPTED.value,
)

RUNNING_OWNED_BY: Final = (
    "SELECT id, claim_token, controls FROM {processes} WHERE owner = ? AND status IN ({live})"
)
RUNNING_NOT_OWNED_BY: Final = (
    "SELECT {columns} FROM {processes} WHERE status IN ({live}) AND (owner IS NULL OR owner <> ?)"
)

# A restart from a step: the original's committed steps before it, as the new process's
# (new id, original id, the step it starts at).
COPY_STEPS: Final = (
    "INSERT INTO {step_outputs} (process_id, step_index, step_name, attempt, output,"
    " committed_at) SELECT ?, step_index, step_name, attempt, output, committed_at"
    " FROM {step_outputs} WHERE process_id = ? AND step_index < ?"
)
START_DATA: Final = "SELECT start_data FROM {processes} WHERE id = ?"

# -- events ----------------------------------------------------------------------------------

LAST_EVENT_SEQ: Final = "SELECT coalesce(max(seq), 0) FROM {events}"
# The newest event before a time: read backwards from the newest (few are later).
EVENT_BEFORE: Final = "SELECT seq FROM {events} WHERE at < ? ORDER BY seq DESC LIMIT 1"
EVENT_COLUMNS: Final = "seq, process_id, status, step, at"


def events_query(process_id: bool, queue: bool) -> str:
    """Events after a sequence number (then the filters given), oldest first, a page."""
    where = "seq > ?" + (" AND process_id = ?" if process_id else "")
    where += " AND queue = ?" if queue else ""
    return f"SELECT {EVENT_COLUMNS} FROM {{events}} WHERE {where} ORDER BY seq LIMIT ?"


# -- schedules -------------------------------------------------------------------------------

SCHEDULE_COLUMNS: Final = (
    "name, spec, data, options, cron, every, next_run_at, last_run_at, last_process_id, created_at"
)
SET_SCHEDULE: Final = (
    "INSERT INTO {schedules} (" + SCHEDULE_COLUMNS + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, data = excluded.data,"
    " options = excluded.options, cron = excluded.cron, every = excluded.every,"
    " next_run_at = excluded.next_run_at, created_at = excluded.created_at"
)
DELETE_SCHEDULE: Final = "DELETE FROM {schedules} WHERE name = ?"
LIST_SCHEDULES: Final = "SELECT " + SCHEDULE_COLUMNS + " FROM {schedules} ORDER BY name"
DUE_SCHEDULES: Final = (
    "SELECT " + SCHEDULE_COLUMNS + " FROM {schedules} WHERE next_run_at <= ? ORDER BY next_run_at"
)
NEXT_SCHEDULE_AT: Final = "SELECT min(next_run_at) FROM {schedules}"
# Firing a due time: only the one that still finds it due moves it on (compare-and-set).
FIRE_SCHEDULE: Final = (
    "UPDATE {schedules} SET next_run_at = ?, last_run_at = ?, last_process_id = ?"
    " WHERE name = ? AND next_run_at = ?"
)

# -- output ----------------------------------------------------------------------------------

# Owner and token, not status: output that arrives after a cancel is still kept, but a
# manager that lost the process (recovered, taken over) writes nothing more.
OUTPUT_SIZE: Final = (
    "UPDATE {processes} SET output_size = ?, output_truncated = ?"
    " WHERE id = ? AND owner = ? AND claim_token = ?"
)
OUTPUT_CHUNK: Final = (
    "INSERT INTO {output_chunks} (process_id, seq, stream, codec, data) VALUES (?, ?, ?, ?, ?)"
)
# Reads take (process_id, [stream,] seq[, limit]). On SQLite a chunk's stream is stored
# after its data (an overflowed BLOB): a stream's chunks are found in output_chunks_by_stream,
# never by reading each row's stream.
_CHUNKS: Final = "SELECT seq, stream, data, codec FROM {output_chunks} WHERE process_id = ?"
_STREAM_CHUNKS: Final = (
    "SELECT seq, stream, data, codec FROM {output_chunks}{by_stream}"
    " WHERE process_id = ? AND stream = ?"
)
READ_OUTPUT: Final = _CHUNKS + " AND seq > ? ORDER BY seq"
READ_STREAM_OUTPUT: Final = _STREAM_CHUNKS + " AND seq > ? ORDER BY seq"
# Backwards, a page at a time (the last lines never load the whole log): up to seq, newest first.
READ_OUTPUT_BACK: Final = _CHUNKS + " AND seq <= ? ORDER BY seq DESC LIMIT ?"
READ_STREAM_OUTPUT_BACK: Final = _STREAM_CHUNKS + " AND seq <= ? ORDER BY seq DESC LIMIT ?"
LAST_OUTPUT_SEQ: Final = "SELECT coalesce(max(seq), -1) FROM {output_chunks} WHERE process_id = ?"

# -- requests of a process's owner: input, signals, suspend, resume ---------------------------

# Input for a command queued or live whose input is still open: (process_id, data or NULL
# for the close, process_id, process_id). A trigger moves the process's ``controls``.
ADD_INPUT: Final = (
    "INSERT INTO {process_input} (process_id, data) SELECT ?, ? WHERE EXISTS (SELECT 1 FROM"
    " {processes} WHERE id = ? AND status IN ({queued}, {live})) AND NOT EXISTS (SELECT 1"
    " FROM {process_input} WHERE process_id = ? AND data IS NULL)"
)
INPUT_CLOSED: Final = "SELECT 1 FROM {process_input} WHERE process_id = ? AND data IS NULL"
PENDING_INPUT: Final = (
    "SELECT seq, data FROM {process_input} WHERE process_id = ? AND seq > ? ORDER BY seq"
)
# Written to the pipe: forgotten (the close marker stays: no input after it).
INPUT_WRITTEN: Final = (
    "DELETE FROM {process_input} WHERE process_id = ? AND seq <= ? AND data IS NOT NULL"
)
# A control for the owner of one claim, while the process has that status:
# (process_id, token, action, argument, process_id, status, token).
ADD_CONTROL: Final = (
    "INSERT INTO {controls} (process_id, claim_token, action, argument) SELECT ?, ?, ?, ?"
    " WHERE EXISTS (SELECT 1 FROM {processes} WHERE id = ? AND status = ? AND claim_token = ?"
    " AND owner IS NOT NULL) RETURNING seq"
)
PENDING_CONTROLS: Final = (
    "SELECT seq, action, argument FROM {controls}"
    " WHERE process_id = ? AND claim_token = ? AND done = 0 ORDER BY seq"
)
CONTROL_DONE: Final = "UPDATE {controls} SET done = 1, result = ? WHERE seq = ?"
CONTROL_RESULT: Final = "SELECT done, result FROM {controls} WHERE seq = ?"
# suspend/resume: (new status, process_id, status before, owner, token).
SET_LIVE_STATUS: Final = (
    "UPDATE {processes} SET status = ? WHERE id = ? AND status = ? AND owner = ?"
    " AND claim_token = ?"
)
# A change that wakes whoever waits on the process (PostgreSQL: its NOTIFY), nothing else.
TOUCH: Final = update_claimed("controls = controls")

# -- housekeeping ----------------------------------------------------------------------------

_DOOMED: Final = "SELECT id FROM {processes} WHERE status IN ({terminal}) AND finished_at < ?"
# Each takes (finished_before,); the last one's count is the number of processes pruned.
PRUNE: Final = (
    "DELETE FROM {output_chunks} WHERE process_id IN (" + _DOOMED + ")",
    "DELETE FROM {step_outputs} WHERE process_id IN (" + _DOOMED + ")",
    "DELETE FROM {process_meta} WHERE process_id IN (" + _DOOMED + ")",
    "DELETE FROM {dependencies} WHERE process_id IN (" + _DOOMED + ")",
    "DELETE FROM {events} WHERE process_id IN (" + _DOOMED + ")",
    "DELETE FROM {process_input} WHERE process_id IN (" + _DOOMED + ")",
    "DELETE FROM {controls} WHERE process_id IN (" + _DOOMED + ")",
    "DELETE FROM {processes} WHERE id IN (" + _DOOMED + ")",
)

SET_MANAGER_RUNS: Final = "UPDATE {managers} SET runs = ? WHERE id = ?"
UNREGISTER_MANAGER: Final = "DELETE FROM {managers} WHERE id = ?"
LIST_MANAGERS: Final = "SELECT {manager_columns} FROM {managers}"
