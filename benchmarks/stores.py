"""The store each benchmark runs on, made afresh for each and deleted at the end: a SQLite file
(``--store PATH`` or ``sqlite:///PATH``, by default one in a temporary directory), or a
schema of its own (``bench_<random>``) in the PostgreSQL database of ``--store
postgresql://...``, where B3's peer also gets a database of its own.

Only locations go to aiobgproc (``Manager(location)``): this module reads a SQLite location
the way aiobgproc does (to delete the file and its ``-wal``/``-shm``), and for PostgreSQL
talks to the server with asyncpg (its version, and dropping what it made).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import psutil

from benchmarks.harness import BenchError, blocking, say

POSTGRES_SCHEMES = ("postgresql", "postgres")


def is_postgres(location: str) -> bool:
    return urlsplit(location).scheme.lower() in POSTGRES_SCHEMES


def sqlite_path(location: str) -> Path:
    """The file of a SQLite store location: a path, or a URL as in SQLAlchemy
    (``sqlite:///relative.db``, ``sqlite:////absolute/path.db``)."""
    if "://" in location:
        parts = urlsplit(location)
        path = unquote(parts.path)
        if parts.scheme.lower() != "sqlite" or parts.netloc not in ("", "localhost") or not path:
            raise BenchError(f"--store {location!r}: not a SQLite path or sqlite:/// URL")
        location = path[1:] if path.startswith("/") else path
    return Path(os.path.expanduser(location))


class Stores:
    """The SQLite file each benchmark uses: created afresh for each, deleted at the end."""

    def __init__(self, location: str | None, scratch: Path) -> None:
        self.location = location or str(scratch / "bench.db")
        self.path = sqlite_path(self.location)
        if location is not None and self.path.exists():
            raise BenchError(
                f"--store {location!r} exists: the benchmarks create (and delete) their store"
            )

    def _files(self) -> Iterator[Path]:
        for suffix in ("", "-wal", "-shm", "-journal"):
            yield self.path.with_name(self.path.name + suffix)

    def remove(self) -> None:
        for file in self._files():
            file.unlink(missing_ok=True)

    def fresh(self) -> str:
        self.remove()
        return self.location


def with_query(url: str, **params: str) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


def without_schema(url: str) -> tuple[str, str | None]:
    """The URL without its ``schema`` query parameter (aiobgproc's), and that schema."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    kept = [(key, value) for key, value in query if key != "schema"]
    return urlunsplit(parts._replace(query=urlencode(kept))), (schemas[-1] if schemas else None)


class PostgresStores:
    """PostgreSQL schemas for the benchmarks: a fresh one (``bench_<random>``) for each
    ``fresh()``, all dropped by ``remove()`` (after each benchmark and at the end); and the
    databases made for peers (``create_database``), dropped by ``remove()`` at the end
    (``drop_database`` drops one sooner)."""

    def __init__(self, url: str) -> None:
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            raise BenchError(
                f"--store {url!r}: the PostgreSQL store needs asyncpg:"
                " pip install 'aiobgproc[postgres]'"
            ) from None
        self.url, given = without_schema(url)
        if given is not None:
            say(f"--store: schema {given!r} ignored: each benchmark uses a fresh schema")
        self.display = re.sub(r"//[^@/]*@", "//", self.url)
        self.schema = ""
        self._schemas: list[str] = []
        self._databases: list[str] = []
        self.server_version, self.server = blocking(self._ping)

    async def connect(self, url: str | None = None) -> Any:
        import asyncpg

        try:
            return await asyncpg.connect(url or self.url, timeout=30)
        except (OSError, asyncpg.PostgresError) as exc:
            raise BenchError(f"cannot connect to {self.display}: {exc}") from None

    async def _ping(self) -> tuple[str, psutil.Process | None]:
        """The server's version, and its postmaster when it runs on this machine."""
        conn = await self.connect()
        try:
            version = await conn.fetchval("SHOW server_version")
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            return str(version), self._local_postmaster(int(backend))  # while it is alive
        finally:
            await conn.close()

    def _local_postmaster(self, backend: int) -> psutil.Process | None:
        """The server's postmaster, when it runs on this machine and we can see it."""
        host = urlsplit(self.url).hostname or "localhost"
        if host not in ("localhost", "127.0.0.1", "::1") and not host.startswith("/"):
            return None
        try:
            parent = psutil.Process(backend).parent()
        except psutil.Error:
            return None
        if parent is None or "postgres" not in parent.name():
            return None
        return parent

    def fresh(self) -> str:
        self.schema = f"bench_{secrets.token_hex(6)}"
        self._schemas.append(self.schema)
        return with_query(self.url, schema=self.schema)

    async def output_bytes(self) -> int:
        """The on-disk size of the current schema's output chunks (with TOAST and indexes)."""
        conn = await self.connect()
        try:
            size = await conn.fetchval(
                "SELECT pg_total_relation_size($1::regclass)", f"{self.schema}.output_chunks"
            )
        finally:
            await conn.close()
        return int(size)

    def database_url(self, database: str) -> str:
        return urlsplit(self.url)._replace(path=f"/{database}").geturl()

    async def create_database(self) -> str:
        """A new, empty database (``bench_procrastinate_<random>``): its name."""
        database = f"bench_procrastinate_{secrets.token_hex(6)}"
        conn = await self.connect()
        try:
            self._databases.append(database)
            await conn.execute(f"CREATE DATABASE {database}")
        finally:
            await conn.close()
        return database

    async def _drop(self, schemas: list[str], databases: list[str]) -> None:
        conn = await self.connect()
        try:
            await conn.execute("SET lock_timeout = '60s'")
            for schema in schemas:
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            for database in databases:
                # FORCE: whatever still holds a connection to it (a killed worker's backend
                # that has not noticed yet) is disconnected.
                await conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        finally:
            await conn.close()

    async def drop_database(self, database: str) -> None:
        await self._drop([], [database])
        self._databases.remove(database)

    def remove(self) -> None:
        schemas, self._schemas = self._schemas, []
        dropped, self._databases = self._databases, []
        if not schemas and not dropped:
            return
        try:
            blocking(lambda: self._drop(schemas, dropped))
        except Exception as exc:
            say(f"warning: could not drop {', '.join(schemas + dropped)}: {exc}")


AnyStores = Stores | PostgresStores


def make_stores(location: str | None, scratch: Path) -> AnyStores:
    if location is not None and is_postgres(location):
        return PostgresStores(location)
    return Stores(location, scratch)
