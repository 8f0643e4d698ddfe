"""The read models' store on each backend: what SQLite and PostgreSQL do differently,
and which one an application's database gets (`views_for(factory)`).

Each is the store (projections.store) mixed into the library's tracking
recorder of its backend, so the read models' tables live, and commit, with
their tracking record: the tracking table's SQL, placeholders, schemas, how a
rebuild's switch keeps the runners out, and what text each can hold.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

from eventsourcing.persistence import InfrastructureFactory, Notification
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteTrackingRecorder

from projections import assignments, jobs
from projections.batches import Params
from projections.following import status
from projections.log import EventLog
from projections.store import DispatchViews
from projections.tracking import advance_sql, store_for


class SQLiteDispatchViews(DispatchViews, SQLiteTrackingRecorder):
    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self._init_views()

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *jobs.CREATE,
                *assignments.CREATE, status.CREATE]

    def _delete_tracking_sql(self) -> str:
        return "DELETE FROM tracking WHERE application_name = ?"

    def _select_tracking_sql(self) -> str:
        return "SELECT notification_id FROM tracking WHERE application_name = ?"

    def _advance_sql(self) -> str:
        return advance_sql()

    def _lock_for_switch(self, c: Any) -> int:
        c.execute(self._sql(f"DELETE FROM {jobs.TABLE} WHERE 1 = 0"))  # the RESERVED lock
        return super()._lock_for_switch(c)

    def _read_log(self, c: Any, app: EventLog, after: int, upto: int) -> Sequence[Notification]:
        # Through the switch's own connection: see _switch_transaction.
        recorder = cast(SQLiteApplicationRecorder, app.recorder)
        c.execute(f"SELECT rowid, * FROM {recorder.events_table_name} "
                  "WHERE rowid > ? AND rowid <= ? ORDER BY rowid", (after, upto))
        return [Notification(id=row["rowid"],
                             originator_id=recorder.convert_originator_id(row["originator_id"]),
                             originator_version=row["originator_version"],
                             topic=row["topic"], state=row["state"])
                for row in c.fetchall()]

    @contextmanager
    def _switch_transaction(self) -> Iterator[Any]:
        # A connection of its own, outside the pool, and no pool connection taken
        # while it holds the write lock: a thread queued in the pool for the writer
        # would make such a request wait until the pool's timeout.
        pool = self.datastore.pool
        connection = sqlite3.connect(pool.db_name, uri=True, isolation_level=None,
                                     timeout=pool.lock_timeout or 30)
        connection.row_factory = sqlite3.Row
        try:
            cursor = connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                connection.rollback()
                raise
            connection.commit()
        finally:
            connection.close()


class PostgresDispatchViews(DispatchViews, PostgresTrackingRecorder):
    placeholder = "%s"

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        # The read-model tables live in the datastore's schema, like the tracking
        # table: unqualified names would resolve through search_path (to public).
        self._schema = '"' + self.datastore.schema.replace('"', '""') + '"'
        self._tracking = f'{self._schema}."{self.tracking_table_name}"'
        self._init_views()
        from psycopg.sql import SQL
        self.sql_create_statements.extend(SQL(self._sql(s)) for s in [  # type: ignore[misc]
            *jobs.CREATE, *assignments.CREATE])
        self.sql_create_statements.append(SQL(self._status_sql(status.CREATE)))  # type: ignore[arg-type]

    def _table(self, name: str) -> str:
        return f"{self._schema}.{name}{self.suffix}"

    def _status_sql(self, sql: str) -> str:
        found = self._sql_cache.get(sql)
        if found is None:
            found = sql.replace("?", "%s").replace(
                status.TABLE, f"{self._schema}.{status.TABLE}", 1)
            self._sql_cache[sql] = found
        return found

    def _storable(self, rows: list[Params]) -> list[Params]:
        # PostgreSQL text cannot hold U+0000. The edge refuses it now, but an event
        # stored before it did must not stop the read models: it shows as U+FFFD.
        return [tuple(_without_nul(value) for value in row) for row in rows]

    def _delete_tracking_sql(self) -> str:
        return f"DELETE FROM {self._tracking} WHERE application_name = %s"

    def _select_tracking_sql(self) -> str:
        return (f"SELECT notification_id FROM {self._tracking} "
                "WHERE application_name = %s FOR UPDATE")

    def _advance_sql(self) -> str:
        return advance_sql(self._tracking, postgres=True)

    def _lock_for_switch(self, c: Any) -> int:
        # Tables first, then the tracking row: the order a runner takes them in.
        c.execute(f"LOCK TABLE {self._table(jobs.TABLE)}, "
                  f"{self._table(assignments.TABLE)} IN ACCESS EXCLUSIVE MODE")
        return super()._lock_for_switch(c)


def views_for(factory: InfrastructureFactory[Any]) -> DispatchViews:
    """The read models in the database of the given application's factory."""
    return store_for(factory, DispatchViews, SQLiteDispatchViews, PostgresDispatchViews)


def _without_nul(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value
