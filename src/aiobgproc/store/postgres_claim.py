"""PostgresStore's claim: the same steps as SQLiteStore.claim, with rows locked one by one
(claimable ones with SKIP LOCKED, so that claims never wait for each other; a limited queue's
settings row FOR UPDATE, so that its claims count its running processes one at a time).

The steps run in a PL/pgSQL function of the store's schema (``claim_1``), installed when a
store opens: a claim is one round trip and one statement (its own transaction), not the six
round trips of BEGIN, four statements and COMMIT. A later change of its body gets a new name
(``claim_2``...), so that managers of different versions on one store each call their own.
"""

from __future__ import annotations

from typing import Final

from . import sql
from .rows import COLUMNS

FUNCTION: Final = "claim_1"

# sql.CANDIDATES for several queues (names, rooms) at once.
_CANDIDATES_OF_QUEUES: Final = (
    "SELECT c.id, c.priority, c.created_at FROM unnest(v_names, v_rooms) AS q(name, room)"
    " CROSS JOIN LATERAL (SELECT id, priority, created_at FROM {processes}"
    " WHERE status = {queued} AND ready = 1 AND queue = q.name"
    " ORDER BY priority DESC, created_at, id LIMIT q.room FOR UPDATE SKIP LOCKED) c"
)


def _with(statement: str, *names: str) -> str:
    """A neutral statement with its ``?`` placeholders replaced by PL/pgSQL names."""
    first, *rest = statement.split("?")
    if len(rest) != len(names):
        raise ValueError(f"{len(rest)} placeholders, {len(names)} names: {statement}")
    return first + "".join(name + part for name, part in zip(names, rest, strict=True))


def create_function(schema: str) -> str:
    """The CREATE FUNCTION statement of the claim in ``schema``. Variables are prefixed
    (``p_``, ``v_``): a bare name that is also a column's would be ambiguous."""
    q = sql.Dialect(schema=schema, for_update=" FOR UPDATE", skip_locked=" FOR UPDATE SKIP LOCKED")
    promote = q[_with(sql.PROMOTE_DUE, "p_now")]
    locked = q[_with(sql.QUEUE_LOCKED, "v_queue.name")].replace(
        "SELECT max_running, paused", "SELECT max_running, paused INTO v_max_running, v_paused"
    )
    running = q[_with(sql.RUNNING_IN_QUEUE, "v_queue.name")]
    candidates = q[_CANDIDATES_OF_QUEUES]
    # A process that waited for others starts no earlier than the last of them finished:
    # each of this function's statements sees what committed before it began, so one that
    # ended while the claim ran (after p_now was read) may have made it claimable.
    claim = q[_with(sql.CLAIM_SET, "p_owner", "p_now")].replace(
        "coalesce(started_at, p_now)",
        f"coalesce(started_at, greatest(p_now, (SELECT max(d.finished_at) FROM"
        f" {schema}.processes d WHERE d.id IN (SELECT jsonb_array_elements_text("
        f"{schema}.processes.after_ids::jsonb)))))",
    )
    queued = q["{queued}"]
    return f"""
CREATE OR REPLACE FUNCTION {schema}.{FUNCTION}(
    p_owner text, p_now double precision, p_limit integer, p_queues text[],
    p_pids integer[], p_started double precision[]
) RETURNS SETOF {schema}.processes LANGUAGE plpgsql AS $$
DECLARE
    v_queue record;
    v_max_running integer;
    v_paused integer;
    v_room integer;
    v_names text[] := ARRAY[]::text[];
    v_rooms integer[] := ARRAY[]::integer[];
    v_ids text[];
    v_claimed text[];
    v_steps text[];
BEGIN
    {promote};
    FOR v_queue IN {q[sql.CLAIMABLE_QUEUES]} LOOP
        CONTINUE WHEN p_queues IS NOT NULL AND NOT (v_queue.name = ANY(p_queues));
        v_max_running := v_queue.max_running;
        v_paused := v_queue.paused;
        IF v_max_running IS NOT NULL THEN  -- read again, locked
            {locked};
            IF NOT FOUND THEN
                v_max_running := NULL;
                v_paused := 0;
            END IF;
        END IF;
        CONTINUE WHEN v_paused <> 0;
        v_room := p_limit;
        IF v_max_running IS NOT NULL THEN
            v_room := least(v_room, v_max_running - ({running}));
        END IF;
        IF v_room > 0 THEN
            v_names := v_names || v_queue.name::text;
            v_rooms := v_rooms || v_room;
        END IF;
    END LOOP;
    IF cardinality(v_names) = 0 THEN
        RETURN;
    END IF;
    -- claim_order: the highest priority first, then the oldest, of every queue's candidates
    SELECT (array_agg(c.id ORDER BY c.priority DESC, c.created_at, c.id))[1:p_limit]
        INTO v_ids FROM ({candidates}) c;
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
    WITH claimed AS ({claim} WHERE id = ANY(v_ids) AND status = {queued} RETURNING id)
        SELECT array_agg(id) INTO v_claimed FROM claimed;
    -- The step processes among them, in claim order, get a spare executor each (p_pids),
    -- with the step they begin at: a statement of its own, so that the event log records
    -- the step's start after the claim, as when the runner records it.
    IF cardinality(p_pids) > 0 THEN
        SELECT (array_agg(u.id ORDER BY u.n))[1:cardinality(p_pids)] INTO v_steps
            FROM unnest(v_ids) WITH ORDINALITY AS u(id, n)
            JOIN {schema}.processes p ON p.id = u.id
            WHERE p.kind = 'process' AND u.id = ANY(v_claimed);
        UPDATE {schema}.processes SET
            os_pid = p_pids[array_position(v_steps, id)],
            os_pid_started = p_started[array_position(v_steps, id)],
            step = spec::jsonb -> 'steps' -> step_index ->> 'name',
            progress = NULL, progress_message = NULL
            WHERE id = ANY(v_steps);
    END IF;
    RETURN QUERY SELECT * FROM {schema}.processes WHERE id = ANY(v_claimed);
END $$
"""


def claim_query(schema: str) -> str:
    """The claim's one round trip: owner, now, limit, queues (NULL: all), the spare
    executors' pids and create times (see Store.claim)."""
    return (
        f"SELECT {COLUMNS} FROM {schema}.{FUNCTION}"
        "($1, $2, $3, $4::text[], $5::integer[], $6::double precision[])"
    )
