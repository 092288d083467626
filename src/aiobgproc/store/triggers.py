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
    f" WHEN NEW.status IN {_TERMINAL} AND OLD.status NOT IN {_TERMINAL} BEGIN "
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
