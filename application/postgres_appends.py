"""PostgreSQL appends that do not hold a table lock through their commit.

Part of the PostgreSQL recorder (`application.postgres`), which adds the
settled reads (`application.postgres_settled`) and bounded waits on top of
this one. The library runs LOCK TABLE ... IN EXCLUSIVE MODE in every append and
holds it through the COMMIT, and so through the commit's WAL flush: appends of
all processes run one after the other, and no two share a flush. The lock is
what keeps its followers from skipping: notification ids then commit in id
order.

Ours (docs/architecture.md, "PostgreSQL: appends without a table lock"):

- every row records the id of the transaction that wrote it (`transaction_id
  xid8 DEFAULT pg_current_xact_id()`);
- one statement of each append holds the append lock, a session-level advisory
  lock: taken before its first row, released after its last, so the rows' ids
  (nextval) and the transaction's id (the column's default) are assigned under
  it, and never the COMMIT. So among appenders, transaction id order is
  notification id order, which is what lets the readers return settled rows
  only, and never skip. The NOTIFY follows the COMMIT in a transaction of its
  own (see `_notify_statements`).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import ProgrammingError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder as _PostgresApplicationRecorder
from eventsourcing.postgres import PostgresDatastore
from psycopg import Connection
from psycopg.sql import SQL, Composed, Identifier, Literal

from application.postgres_bounded import retry_fast_failures

log = logging.getLogger("application.postgres")  # the recorder's, as before the split

APPEND_LOCK_CLASS = 0x5353_4348  # "SSCH"
"""First half of the append lock's advisory-lock key; the second names the table."""


def append_lock_key(schema: str, table: str) -> tuple[int, int]:
    """The advisory-lock key (two int4) of the append lock of one events table."""
    return APPEND_LOCK_CLASS, zlib.crc32(f"{schema}.{table}".encode()) & 0x7FFF_FFFF


class PostgresAppendingRecorder(_PostgresApplicationRecorder):
    """The library's PostgreSQL recorder, its appends serialised only up to their
    INSERT (see the module's docstring), each row with its transaction's id."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        if self.datastore.enable_db_functions:
            raise ProgrammingError(
                "POSTGRES_ENABLE_DB_FUNCTIONS: the library's insert function takes "
                "no append lock, so followers could skip events; leave it off")
        schema = Identifier(self.datastore.schema)
        table = Identifier(self.events_table_name)
        self.sql_create_statements[self.create_table_statement_index] = SQL(
            "CREATE TABLE IF NOT EXISTS {schema}.{table} ("
            "originator_id {originator_id_type} NOT NULL, "
            "originator_version bigint NOT NULL, "
            "topic text, "
            "state bytea, "
            "notification_id bigserial, "
            "transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(), "
            "PRIMARY KEY "
            "(originator_id, originator_version)) "
            "WITH ("
            "    autovacuum_enabled = true,"
            "    autovacuum_vacuum_threshold = 100000000,"
            "    autovacuum_vacuum_scale_factor = 0.5,"
            "    autovacuum_analyze_threshold = 1000,"
            "    autovacuum_analyze_scale_factor = 0.01"
            ")"
        ).format(schema=schema, table=table,
                 originator_id_type=Identifier(self.datastore.originator_id_type))
        # A table made before this column: rows already there get 0 (settled;
        # a constant default rewrites nothing), rows from now on their writer's id.
        self._add_transaction_id = [
            SQL("ALTER TABLE {}.{} ADD COLUMN IF NOT EXISTS transaction_id xid8 "
                "NOT NULL DEFAULT '0'").format(schema, table),
            SQL("ALTER TABLE {}.{} ALTER COLUMN transaction_id "
                "SET DEFAULT pg_current_xact_id()").format(schema, table),
        ]
        self.append_lock_key = append_lock_key(self.datastore.schema, self.events_table_name)
        key = SQL("{}, {}").format(*map(Literal, self.append_lock_key))
        # One statement holds the append lock: taken before the first row (a
        # one-time filter), released once every row is in (the aggregate has
        # read them all), whatever the client does meanwhile. Each row's id
        # (nextval) and the transaction's id (the first pg_current_xact_id(), the
        # column's default) are assigned in between. Ids ascend in input order.
        self._append_statement = SQL(
            "WITH append_lock AS MATERIALIZED (SELECT pg_advisory_lock({key})), "
            "appended AS (INSERT INTO {schema}.{table} "
            "(originator_id, originator_version, topic, state) "
            "SELECT originator_id, originator_version, topic, state "
            "FROM unnest(%s::{schema}.{type}[]) WHERE EXISTS (SELECT FROM append_lock) "
            "RETURNING notification_id) "
            "SELECT array_agg(notification_id ORDER BY notification_id) AS ids, "
            "pg_advisory_unlock({key}) AS unlocked FROM appended"
        ).format(key=key, schema=schema, table=table,
                 type=Identifier(self.stored_event_type_name))
        self._before_append: list[SQL | Composed] = [
            SQL("BEGIN"),
            SQL("SET LOCAL lock_timeout = '{}s'").format(Literal(self.datastore.lock_timeout)),
        ]
        self._commit_statement = SQL("COMMIT")
        # The NOTIFY goes in a transaction of its own, after the append's COMMIT:
        # a transaction that notifies holds PostgreSQL's notify lock (one for the
        # whole server) from before its commit until after it, so appends that
        # notified would flush the WAL one at a time again. This one commits
        # without waiting for its flush: a notification needs no durability, and
        # the append it announces is already durable.
        self._notify_statements: list[SQL | Composed] = [
            SQL("BEGIN"),
            SQL("SET LOCAL synchronous_commit TO OFF"),
            SQL("NOTIFY {}").format(Identifier(self.channel_name)),
            SQL("COMMIT"),
        ]
        # One message, run by the server as a whole: no moment outside a
        # transaction with the lock held. Our pooled sessions hold no other
        # session-level advisory lock.
        self._release_statement = SQL("ROLLBACK; SELECT pg_advisory_unlock_all()")

    def _create_table(self, curs: Any) -> None:
        super()._create_table(curs)
        curs.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = %s AND column_name = 'transaction_id'",
            (self.datastore.schema, self.events_table_name))
        if curs.fetchone() is None:  # ALTER TABLE locks the table: only when needed
            for statement in self._add_transaction_id:
                curs.execute(statement)

    @retry_fast_failures
    def insert_events(self, stored_events: Sequence[StoredEvent],
                      **kwargs: Any) -> Sequence[int] | None:
        if not stored_events:
            return []
        with self.datastore.get_connection() as conn:
            return self._append(conn, stored_events, commit=True)

    def _append(self, conn: Connection[Any], stored_events: Sequence[StoredEvent], *,
                commit: bool) -> list[int]:
        """Append in one round trip: BEGIN, the INSERT under the append lock,
        COMMIT, then the NOTIFY in a transaction of its own (without `commit`,
        for tests: neither; the caller ends the transaction).

        When the INSERT fails (a conflict: the usual failure) it may leave the
        lock held, in a failed transaction (so the session's
        idle_in_transaction_session_timeout bounds it): the transaction is rolled
        back and the lock released in one more message. A connection that
        cannot do that is closed, which ends its session, and so the lock.
        A failure after the append's COMMIT (of the NOTIFY) fails no append.
        """
        events = [self.construct_pg_stored_event(e.originator_id, e.originator_version,
                                                 e.topic, e.state) for e in stored_events]
        error: BaseException | None = None
        committed = False
        ids: list[int] = []
        try:
            with conn.pipeline() as pipeline, conn.cursor() as curs, \
                    conn.cursor() as append, conn.cursor() as ending:
                try:
                    for statement in self._before_append:
                        curs.execute(statement, prepare=True)
                    append.execute(self._append_statement, (events,))
                    if commit:
                        ending.execute(self._commit_statement, prepare=True)
                        for statement in self._notify_statements:
                            curs.execute(statement, prepare=True)
                    pipeline.sync()
                except BaseException as e:  # raised once the pipeline is closed
                    error = e
                committed = commit and ending.statusmessage == "COMMIT"
                if error is None or committed:
                    row = append.fetchone()
                    ids = list(row["ids"]) if row else []
        except BaseException as e:
            error = error or e
        if error is not None:
            self._release_after_failure(conn)
            if not committed:
                raise error
            log.warning("An append committed, but what followed failed (%s): followers "
                        "see it at the next NOTIFY", error)
        return ids

    def _release_after_failure(self, conn: Connection[Any]) -> None:
        try:
            if not conn.closed:
                conn.execute(self._release_statement)
        except BaseException:  # cannot tell whether the lock is held: end the session
            conn.close()

    # Reads -----------------------------------------------------------------------
