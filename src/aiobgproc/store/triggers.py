"""The triggers of schema version 2, per database: what happens to the processes that wait
for another (``start(after=)``) when it ends, in the transaction that ends it, whoever ends
it (a runner, a cancel, a recovery, a trigger for the process it waited for).

- ``finished``: each dependent still queued has one dependency fewer to wait for; the last
  one makes it claimable (or leaves it to wait for its ``run_at``).
- ``error``, ``cancelled``, ``timeout``: each dependent still queued ends ``error`` with a
  ``DependencyError`` naming the dependency, without running; that change fires the trigger
  again for the dependents' own dependents (SQLite: ``PRAGMA recursive_triggers``, set on
  every connection by sqlite_file.prepare; at most 1,000 levels deep).
- Either way its edges are deleted: the dependencies table holds only those still waited on.

And the event log (``events``): a process's creation is its ``queued`` event (and, stored
already claimed or already ended, an event of the status it was stored with), each status
change an event, each step start (its ``step`` set while it runs) an event ``running`` with
the step's name; in the transaction of the change. On PostgreSQL the trigger first takes a
transaction-wide advisory lock, so that sequence numbers are committed in order: a reader
that saw event N can never see an event below N appear later (SQLite has one writer at a
time already).

Version 3: a request made of a process's owner (a row of ``process_input`` or ``controls``)
moves the process's ``controls`` counter, in the request's transaction.
"""

from __future__ import annotations

from typing import Final

_TERMINAL: Final = "('finished', 'error', 'cancelled', 'timeout')"
_MESSAGE: Final = "'dependency ' || NEW.id || ' ended ' || NEW.status"
# {status}: SQLite's "+status", so that its planner looks the dependents up by id (there are
# few) rather than walking every queued row by the status index (it did: a cancel cost
# O(queue)); a trigger's statements cannot say INDEXED BY.
_ONE_FEWER: Final = (
    "UPDATE {p}processes SET waiting = waiting - 1,"
    " ready = CASE WHEN waiting = 1 AND run_at IS NULL THEN 1 ELSE ready END"
    " WHERE id IN (SELECT process_id FROM {p}dependencies WHERE depends_on = NEW.id)"
    " AND {status} = 'queued'"
)
_FAIL: Final = (
    "UPDATE {p}processes SET status = 'error', finished_at = coalesce(NEW.finished_at, {now}),"
    " error = {error} WHERE id IN"
    " (SELECT process_id FROM {p}dependencies WHERE depends_on = NEW.id)"
    " AND {status} = 'queued'"
)
_FORGET: Final = "DELETE FROM {p}dependencies WHERE depends_on = NEW.id"

SQLITE: Final = (
    "CREATE TRIGGER processes_ended AFTER UPDATE OF status ON processes FOR EACH ROW"
    f" WHEN NEW.status IN {_TERMINAL} AND OLD.status NOT IN {_TERMINAL}"
    # One index probe when nothing waits for it (most ends), not three statements.
    " AND EXISTS (SELECT 1 FROM dependencies WHERE depends_on = NEW.id) BEGIN "
    + _ONE_FEWER.format(p="", status="+status")
    + " AND NEW.status = 'finished'; "
    + _FAIL.format(
        p="",
        status="+status",
        now="(julianday('now') - 2440587.5) * 86400.0",
        error=(
            f"json_object('type', 'DependencyError', 'message', {_MESSAGE},"
            " 'traceback', NULL, 'step', NULL)"
        ),
    )
    + " AND NEW.status <> 'finished'; "
    + _FORGET.format(p="")
    + "; END"
)


def postgres(schema: str) -> list[str]:
    """The function and trigger, in ``schema``."""
    p = f"{schema}."
    fail = _FAIL.format(
        p=p,
        status="status",
        now="extract(epoch from clock_timestamp())",
        error=(
            f"json_build_object('type', 'DependencyError', 'message', {_MESSAGE},"
            " 'traceback', NULL, 'step', NULL)::text"
        ),
    )
    return [
        f"CREATE OR REPLACE FUNCTION {p}process_ended() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN IF NEW.status = 'finished' THEN "
        + _ONE_FEWER.format(p=p, status="status")
        + "; ELSE "
        + fail
        + "; END IF; "
        + _FORGET.format(p=p)
        + "; RETURN NULL; END $$",
        f"CREATE TRIGGER processes_ended AFTER UPDATE OF status ON {p}processes FOR EACH ROW"
        f" WHEN (NEW.status IN {_TERMINAL} AND OLD.status NOT IN {_TERMINAL})"
        f" EXECUTE FUNCTION {p}process_ended()",
        # Queue settings wake the claim loops of other managers (as a queued process does).
        f"CREATE OR REPLACE FUNCTION {p}queue_changed() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN PERFORM pg_notify('aiobgproc_' || TG_TABLE_SCHEMA, 'queued '); RETURN NULL;"
        " END $$",
        f"CREATE TRIGGER queues_changed AFTER INSERT OR UPDATE ON {p}queues"
        f" FOR EACH STATEMENT EXECUTE FUNCTION {p}queue_changed()",
    ]


_EVENT: Final = "INSERT INTO {p}events (process_id, status, step, queue, at) VALUES"
_SQLITE_NOW: Final = "(julianday('now') - 2440587.5) * 86400.0"

SQLITE_EVENTS: Final = (
    "CREATE TRIGGER processes_event_created AFTER INSERT ON processes BEGIN "
    + _EVENT.format(p="")
    + f" (NEW.id, 'queued', NULL, NEW.queue, {_SQLITE_NOW}); "
    + "INSERT INTO events (process_id, status, step, queue, at)"
    + f" SELECT NEW.id, NEW.status, NULL, NEW.queue, {_SQLITE_NOW} WHERE NEW.status <> 'queued';"
    + " END",
    "CREATE TRIGGER processes_event_status AFTER UPDATE OF status ON processes"
    " WHEN NEW.status <> OLD.status BEGIN "
    + _EVENT.format(p="")
    + f" (NEW.id, NEW.status, NULL, NEW.queue, {_SQLITE_NOW}); END",
    "CREATE TRIGGER processes_event_step AFTER UPDATE OF step ON processes"
    " WHEN NEW.status = 'running' AND NEW.step IS NOT NULL AND OLD.status = 'running' BEGIN "
    + _EVENT.format(p="")
    + f" (NEW.id, 'running', NEW.step, NEW.queue, {_SQLITE_NOW}); END",
)


def postgres_events(schema: str) -> list[str]:
    """The event log's function and trigger, in ``schema``."""
    p = f"{schema}."
    now = "extract(epoch from clock_timestamp())"
    event = _EVENT.format(p=p)
    return [
        f"CREATE OR REPLACE FUNCTION {p}process_event() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN"
        " PERFORM pg_advisory_xact_lock(hashtext(TG_TABLE_SCHEMA || '.events'));"
        " IF TG_OP = 'INSERT' THEN"
        f" {event} (NEW.id, 'queued', NULL, NEW.queue, {now});"
        " IF NEW.status <> 'queued' THEN"
        f" {event} (NEW.id, NEW.status, NULL, NEW.queue, {now}); END IF;"
        " ELSIF NEW.status <> OLD.status THEN"
        f" {event} (NEW.id, NEW.status, NULL, NEW.queue, {now});"
        # The status unchanged: a statement that sets the step (the trigger fires only for
        # statements that name status or step), i.e. a step starts.
        " ELSIF NEW.status = 'running' AND NEW.step IS NOT NULL THEN"
        f" {event} (NEW.id, 'running', NEW.step, NEW.queue, {now});"
        " END IF; RETURN NULL; END $$",
        f"CREATE TRIGGER processes_event AFTER INSERT OR UPDATE OF status, step ON {p}processes"
        f" FOR EACH ROW EXECUTE FUNCTION {p}process_event()",
    ]


# Version 3: a request for a process's owner (input, a control) moves the process's
# ``controls`` counter in the same transaction: the owner's poll (or NOTIFY) sees it.
_BUMP: Final = "UPDATE {p}processes SET controls = controls + 1 WHERE id = NEW.process_id"
SQLITE_V3: Final = tuple(
    f"CREATE TRIGGER {table}_added AFTER INSERT ON {table} BEGIN {_BUMP.format(p='')}; END"
    for table in ("process_input", "controls")
)


def postgres_v3(schema: str) -> list[str]:
    p = f"{schema}."
    return [
        f"CREATE OR REPLACE FUNCTION {p}request_added() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN {_BUMP.format(p=p)}; RETURN NULL; END $$",
        *(
            f"CREATE TRIGGER {table}_added AFTER INSERT ON {p}{table}"
            f" FOR EACH ROW EXECUTE FUNCTION {p}request_added()"
            for table in ("process_input", "controls")
        ),
    ]
