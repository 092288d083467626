"""The PostgreSQL store's schema: where it lives (the URL's ``schema`` parameter), and how
it is created, checked and given its change notifications on opening."""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import StoreError
from . import schema as tables
from . import triggers
from .postgres_claim import FUNCTION as CLAIM_FUNCTION
from .postgres_claim import create_function as create_claim_function

SCHEMA_VERSION: Final = tables.VERSION
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")  # short enough for the NOTIFY channel name

# Installed on stores of any version (older managers on the same store keep sending their own
# NOTIFY too: PostgreSQL folds identical notifications of one transaction into one).
_NOTIFY_TRIGGER = """
CREATE OR REPLACE FUNCTION {s}.notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('aiobgproc_' || TG_TABLE_SCHEMA, '');
    ELSE
        PERFORM pg_notify('aiobgproc_' || TG_TABLE_SCHEMA, NEW.status || ' ' || NEW.id);
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS processes_changed ON {s}.processes;
CREATE TRIGGER processes_changed AFTER INSERT OR UPDATE ON {s}.processes
    FOR EACH ROW EXECUTE FUNCTION {s}.notify_change();
CREATE TRIGGER processes_deleted AFTER DELETE ON {s}.processes
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.notify_change();
"""


def migrations(schema: str) -> list[list[str]]:
    """From version N to N + 1, at index N - 1 (version 1 is created by create_v1)."""
    return [
        [
            *tables.migrate_v2("postgres", schema),
            *triggers.postgres(schema),
            *triggers.postgres_events(schema),
        ],
        [*tables.migrate_v3("postgres", schema), *triggers.postgres_v3(schema)],
        tables.migrate_v4("postgres", schema),
    ]


def split_url(url: str) -> tuple[str, str]:
    """The connection URL without our ``schema`` parameter, and the schema name."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = "aiobgproc"
    kept = []
    for key, value in query:
        if key == "schema":
            schema = value
        else:
            kept.append((key, value))
    if not _NAME.match(schema):
        raise StoreError(f"schema name {schema!r} must be lowercase letters, digits and _")
    return urlunsplit(parts._replace(query=urlencode(kept))), schema


async def initialise(conn: Any, schema: str) -> None:
    """Create the schema or check its version, and install the notification trigger, in the
    transaction ``conn`` is in."""
    # One creator at a time, across hosts.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", schema)
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {schema}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
    )
    version = await conn.fetchval(f"SELECT value FROM {schema}.meta WHERE key = 'schema_version'")
    if version is None:
        others = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1"
            " AND table_name <> 'meta'",
            schema,
        )
        if others:
            raise StoreError(
                f"schema {schema!r} holds tables of something else, not an aiobgproc store"
            )
        for statement in tables.create_v1("postgres", schema):
            await conn.execute(statement)
        await conn.execute(f"INSERT INTO {schema}.meta VALUES ('schema_version', '1')")
        version = "1"
    if not str(version).isdigit():
        raise StoreError(f"store schema {schema!r} is damaged: schema version {version!r}")
    if int(version) < SCHEMA_VERSION:
        for step in range(int(version), SCHEMA_VERSION):
            for statement in migrations(schema)[step - 1]:
                await conn.execute(statement)
        await conn.execute(
            f"UPDATE {schema}.meta SET value = $1 WHERE key = 'schema_version'",
            str(SCHEMA_VERSION),
        )
    elif int(version) > SCHEMA_VERSION:
        raise StoreError(
            f"store schema {schema!r} has version {version}, newer than this"
            f" aiobgproc understands ({SCHEMA_VERSION}); upgrade aiobgproc"
        )
    has_trigger = await conn.fetchval(
        "SELECT count(*) FROM pg_trigger WHERE tgname = 'processes_deleted'"
        " AND tgrelid = $1::regclass",
        f"{schema}.processes",
    )
    if not has_trigger:
        await conn.execute(_NOTIFY_TRIGGER.format(s=schema))
    has_claim = await conn.fetchval(
        "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = $1 AND p.proname = $2",
        schema,
        CLAIM_FUNCTION,
    )
    if not has_claim:  # on stores of any version: older managers claim their own way
        await conn.execute(create_claim_function(schema))
