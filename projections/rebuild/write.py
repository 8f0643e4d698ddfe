"""Writing a rebuild's batches into the shadow read models, per backend.

Part of the fast rebuild of the read models (`projections.rebuild`): each batch
of folded `Writes` (`projections.rebuild.fold`) is written in one transaction
with its tracking position, as the runner does. On SQLite they are written by a
connection of the rebuild's own (`connect`) with `synchronous=NORMAL`: in WAL
mode a crash or a power loss cannot corrupt the database with it (the WAL is
synced before each checkpoint), it can only lose the rebuild's last batches, and
that connection writes shadow tables only. The live read models are written by
other connections, and the switch by a connection of its own, with the default
FULL. On PostgreSQL each group of a batch is one statement fed by one JSON
parameter (`shadow_writer`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from projections import assignments, jobs
from projections.rebuild.fields import dumps
from projections.rebuild.fold import (
    ASSIGNMENT_COLUMNS,
    JOB_COLUMNS,
    JOB_ROW_INSERT,
    JOB_ROW_UPDATE,
    Writes,
)
from projections.store import DispatchViews

Writer = Callable[[Writes, int, int], None]
"""Writes one batch: its folded writes, and the positions of its first and last events."""


def sqlite_pool(recorder: Any) -> Any:
    """The pool of an SQLite recorder (its file and lock timeout); None on any other."""
    pool = getattr(getattr(recorder, "datastore", None), "pool", None)
    return pool if hasattr(pool, "db_name") else None


def connect(pool: Any) -> sqlite3.Connection:
    """The rebuild's own connection (see the module's docstring)."""
    connection = sqlite3.connect(pool.db_name, uri=True, isolation_level=None,
                                 timeout=pool.lock_timeout or 30, check_same_thread=False)
    connection.execute("PRAGMA synchronous=NORMAL")  # this connection's commits only
    connection.execute("PRAGMA cache_size=-65536")
    return connection


def sqlite_writer(connection: sqlite3.Connection, shadow: DispatchViews) -> Writer:
    def write(writes: Writes, first: int, last: int) -> None:
        cursor = connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in writes.groups():
                cursor.executemany(shadow._sql(sql), rows)
            shadow._advance(cursor, first, last)
        except BaseException:
            connection.rollback()
            raise
        connection.commit()

    return write


def shadow_writer(shadow: DispatchViews) -> Writer:
    """Through the read models' own transactions. On PostgreSQL each group of a
    batch is one statement that reads its rows from one JSON parameter (the
    rows encoded by Python's C encoder, parsed by the server): the server's
    work overlaps the decoding of the next batch, where psycopg's pure-Python
    COPY or executemany would hold the interpreter row by row."""
    if not hasattr(shadow, "_schema"):
        def write_plain(writes: Writes, first: int, last: int) -> None:
            with shadow._transaction(commit=True) as c:
                for sql, rows in writes.groups():
                    c.executemany(shadow._sql(sql), shadow._storable(rows))
                shadow._advance(c, first, last)
        return write_plain

    sets = {sql: statement.format(jobs=shadow._table(jobs.TABLE),
                                  assignments=shadow._table(assignments.TABLE))
            for sql, statement in _POSTGRES_SETS.items()}

    def write(writes: Writes, first: int, last: int) -> None:
        with shadow._transaction(commit=True) as c:
            for sql, rows in writes.groups():
                statement = sets.get(sql)
                if statement is None or len(rows) == 1:
                    c.executemany(shadow._sql(sql), shadow._storable(rows))
                    continue
                payload = dumps(rows)
                if "\\u0000" in payload:  # text cannot hold NUL (see _storable)
                    payload = dumps(shadow._storable(rows))
                c.execute(statement, (payload,))
            shadow._advance(c, first, last)

    return write


def _columns(*kinds: str) -> str:
    """The columns of a JSON array's elements, cast as the runner's parameters
    would be (a number for an INTEGER column arrives as float8 or integer)."""
    return ", ".join(f"(r ->> {i})::{kind}" if kind != "text" else f"r ->> {i}"
                     for i, kind in enumerate(kinds))


_POSTGRES_SETS = {
    JOB_ROW_INSERT: (
        f"INSERT INTO {{jobs}} ({', '.join(JOB_COLUMNS)}) SELECT "
        + _columns("text", "integer", "text", "text", "float8::integer", *["text"] * 10)
        + " FROM jsonb_array_elements(%s::jsonb) AS r"),
    assignments.INSERT: (
        f"INSERT INTO {{assignments}} ({', '.join(ASSIGNMENT_COLUMNS)}) SELECT "
        + _columns(*["text"] * 9) + " FROM jsonb_array_elements(%s::jsonb) AS r"),
    JOB_ROW_UPDATE: (  # one source row per job: Writes folds a batch's updates
        "UPDATE {jobs} AS t SET version = u.version, updated_at = u.updated_at, "
        "status = coalesce(u.status, t.status), "
        "cancellation = coalesce(u.cancellation, t.cancellation) FROM (SELECT "
        "(r ->> 0)::integer AS version, r ->> 1 AS updated_at, r ->> 2 AS status, "
        "r ->> 3 AS cancellation, r ->> 4 AS id FROM jsonb_array_elements(%s::jsonb) AS r"
        ") AS u WHERE t.id = u.id"),
    assignments.SET_STATUS: (
        "UPDATE {assignments} AS t SET status = u.status, updated_at = u.updated_at "
        "FROM (SELECT r ->> 0 AS status, r ->> 1 AS updated_at, r ->> 2 AS id "
        "FROM jsonb_array_elements(%s::jsonb) AS r) AS u WHERE t.id = u.id"),
}
"""The statements of PostgreSQL's batches, by the statement they stand for."""
