"""Fresh PostgreSQL schemas for the benchmarks, dropped at the end, also on failure.

The database is the one named by `--database-url` when it is a postgresql://
URL, else `SMARTSCHEDULER_BENCH_POSTGRES_URL` (default
postgresql://postgres@127.0.0.1:5432/test); each store is a schema of it,
`?schema=bench_<hex>`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import uuid4

from application.persistence import eventsourcing_env, prepare_database
from bench.context import Context

POSTGRES_URL = os.environ.get("SMARTSCHEDULER_BENCH_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/test")
SCHEMES = ("postgres", "postgresql", "postgresql+psycopg")


def base_url(ctx: Context) -> str:
    url = ctx.args.database_url
    return url if url and urlsplit(url).scheme in SCHEMES else POSTGRES_URL


def missing(*, redis: bool = False) -> str | None:
    """Why PostgreSQL (and a private redis-server, if asked) cannot be used here."""
    if redis and shutil.which("redis-server") is None:
        return "redis-server is not installed"
    try:
        import psycopg

        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except Exception as error:  # no server, no driver: say why
        return f"PostgreSQL at {POSTGRES_URL}: {str(error).strip()}"
    return None


class Schemas:
    """Fresh schemas of one database, every one of them dropped on `drop()`."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.names: list[str] = []

    def new(self) -> str:
        """The URL of a new, empty schema `bench_<hex>` (created now)."""
        name = f"bench_{uuid4().hex[:12]}"
        url = urlsplit(self.base)
        query = {**dict(parse_qsl(url.query)), "schema": name}
        database_url = urlunsplit(url._replace(query=urlencode(query)))
        self.names.append(name)
        prepare_database(database_url)
        return database_url

    def connect(self) -> Any:
        import psycopg

        env = eventsourcing_env(self.base)
        return psycopg.connect(
            dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"],
            port=int(env["POSTGRES_PORT"]), user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"] or None, autocommit=True)

    def settle(self) -> str:
        """Run CHECKPOINT, so that a checkpoint started by bulk seeding does not run
        (and stall commits) during a measurement; say what was done."""
        import psycopg

        began = time.perf_counter()
        try:
            with self.connect() as connection:
                connection.execute("CHECKPOINT")
        except psycopg.Error as error:  # e.g. not a superuser nor pg_checkpoint
            return f"no CHECKPOINT ({type(error).__name__})"
        return f"CHECKPOINT {time.perf_counter() - began:.1f}s"

    def drop(self) -> None:
        if not self.names:
            return
        from psycopg import sql

        with self.connect() as connection:
            while self.names:
                connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(self.names[-1])))
                self.names.pop()


@contextlib.contextmanager
def schemas_of(base: str = POSTGRES_URL) -> Iterator[Schemas]:
    schemas = Schemas(base)
    try:
        yield schemas
    finally:
        schemas.drop()
