"""The read models' store: SQL tables kept beside their tracking record.

Every batch of events is applied in one transaction together with the
tracking position of its last event, so an event is applied exactly once: a
redelivered one fails the tracking insert and the whole transaction rolls back.
"""

from __future__ import annotations

import copy
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from eventsourcing.persistence import (
    InfrastructureFactory,
    IntegrityError,
    Notification,
    Tracking,
)
from eventsourcing.postgres import PostgresFactory, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteFactory, SQLiteTrackingRecorder

from projections import assignments, jobs, status
from projections.log import EventLog
from projections.status import Failure

TRACKING_NAME = "Dispatch"
SHADOW_SUFFIX = "_rebuild"
"""Tables and tracking name of a read model being rebuilt beside the live one."""

_TABLE_NAMES = re.compile(rf"\b({jobs.TABLE}|{assignments.TABLE})\b")


Params = tuple[Any, ...]

# The row each write of the read models touches: its table, and where the row's
# key sits in the statement's parameters. `grouped` reorders only these writes.
ROW_KEYS: dict[str, tuple[str, int]] = {
    jobs.INSERT: (jobs.TABLE, 0),
    jobs.UPDATE: (jobs.TABLE, -1),
    assignments.INSERT: (assignments.TABLE, 0),
    assignments.SET_STATUS: (assignments.TABLE, -1),
}


def _statements(events: Sequence[tuple[Any, Tracking]]) -> Iterator[tuple[str, Params]]:
    for event, _ in events:
        yield from jobs.statements(event)
        yield from assignments.statements(event)


def grouped(statements: Iterable[tuple[str, Params]]) -> Iterator[tuple[str, list[Params]]]:
    """The statements as (sql, rows) groups for executemany, with the same effect.

    Statements are grouped by their SQL; the groups run in the order of their
    first statements, each group's rows in their own order. Each statement
    writes one row (its primary key, by ROW_KEYS) and no other, so this equals
    running them one by one unless a row is written by a group that runs after
    the group of a later write to the same row. Such a statement, and any
    statement not in ROW_KEYS, starts a new set of groups, so the rows' own
    sequences of writes never change.
    """
    groups: dict[str, list[Params]] = {}  # in the order they run
    ranks: dict[str, int] = {}  # sql -> its place in that order
    last: dict[tuple[str, Any], int] = {}  # row -> rank of the group that last wrote it
    for sql, params in statements:
        key = ROW_KEYS.get(sql)
        if key is None:
            yield from groups.items()
            groups, ranks, last = {}, {}, {}
            yield sql, [params]
            continue
        row = (key[0], params[key[1]])
        rank = ranks.get(sql)
        if rank is None:
            rank = ranks[sql] = len(ranks)
            groups[sql] = [params]
        elif last.get(row, rank) > rank:
            yield from groups.items()
            groups, ranks, last = {sql: [params]}, {sql: 0}, {}
            rank = 0
        else:
            groups[sql].append(params)
        last[row] = rank
    yield from groups.items()


def decode(app: EventLog, notifications: Sequence[Notification],
           tracking_name: str) -> list[tuple[Any, Tracking]]:
    """Domain events from stored notifications, each with its tracking position."""
    to_event = app.mapper.to_domain_event
    return [(to_event(n), Tracking(tracking_name, n.id)) for n in notifications]


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int


class DispatchViews:
    """The job and assignment read models (mixed into a tracking recorder)."""

    placeholder = "?"
    tracking_name = TRACKING_NAME
    suffix = ""

    on_advanced: Callable[[], None] | None = None
    """Called after this object committed a batch (or a rebuild's switch), to tell
    the other processes' waits (the composition root sets it); the waits of
    this process are woken directly."""

    def _init_views(self) -> None:
        self._advanced = threading.Condition()
        self._advances = 0  # counted under _advanced: a wait misses no wake-up
        self._sql_cache: dict[str, str] = {}

    # Writing ---------------------------------------------------------------

    def process(self, events: Sequence[tuple[Any, Tracking]]) -> None:
        """Apply a batch of (event, tracking) pairs and record the last position.

        Raises IntegrityError, changing nothing, when the batch was already applied.
        """
        if not events:
            return
        with self._transaction(commit=True) as c:
            self._apply(c, events)
            self._advance(c, events[0][1].notification_id, events[-1][1].notification_id)
        self._advanced_here()

    def _apply(self, c: Any, events: Sequence[tuple[Any, Tracking]]) -> None:
        for sql, rows in grouped(_statements(events)):
            c.executemany(self._sql(sql), self._storable(rows))

    def _storable(self, rows: list[Params]) -> list[Params]:
        """The rows as this backend can store them (see PostgresDispatchViews)."""
        return rows

    def _advance(self, c: Any, first: int, last: int) -> None:
        """Record `last` as the position, if the position is still below `first`.

        A batch applies only on top of the position it was read after, so a batch
        that overlaps what is already applied (a redelivery, or a rebuild that
        switched in meanwhile) changes nothing and raises IntegrityError.
        """
        c.execute(self._advance_sql(), {"name": self.tracking_name, "first": first,
                                        "last": last})
        if c.fetchone() is None:
            raise IntegrityError(f"{self.tracking_name} is already at or past {first}")

    # Rebuilding beside the live tables ---------------------------------------

    def shadow(self) -> DispatchViews:
        """The same read models under other table names, to rebuild into."""
        twin = copy.copy(self)
        twin.suffix = SHADOW_SUFFIX
        twin.tracking_name = self.tracking_name + SHADOW_SUFFIX
        twin._init_views()
        twin.on_advanced = None  # no wait is for its position
        return twin

    def create_empty(self) -> None:
        """(Re)create this model's tables, empty and without secondary indexes."""
        with self._transaction(commit=True) as c:
            for table in (jobs.TABLE, assignments.TABLE):
                c.execute(self._sql(f"DROP TABLE IF EXISTS {table}"))
            for sql in (*jobs.CREATE, *assignments.CREATE):
                if not sql.startswith("CREATE INDEX"):
                    c.execute(self._sql(sql))
            c.execute(self._delete_tracking_sql(), (self.tracking_name,))

    def switch_to(self, shadow: DispatchViews, app: EventLog) -> int:
        """Make the shadow's tables the live ones, in one transaction.

        Runners are held off meanwhile (a lock on the live tables); whatever they
        applied beyond the shadow is applied to the shadow first, so the switch
        loses nothing, and the position becomes the later of the two.
        """
        with self._switch_transaction() as c:
            live = self._lock_for_switch(c)
            c.execute(self._select_tracking_sql(), (shadow.tracking_name,))
            row = c.fetchone()
            built = int(row["notification_id"]) if row else 0
            if live > built:
                notifications = self._read_log(c, app, built, live)
                if notifications:
                    shadow._apply(c, decode(app, notifications, shadow.tracking_name))
            for table in (jobs.TABLE, assignments.TABLE):
                c.execute(self._sql(f"DROP TABLE {table}"))
                c.execute(f"ALTER TABLE {shadow._sql(table)} RENAME TO {table}")
            for sql in (*jobs.CREATE, *assignments.CREATE):
                if sql.startswith("CREATE INDEX"):
                    c.execute(self._sql(sql))
            position = max(live, built)
            c.execute(self._delete_tracking_sql(), (self.tracking_name,))
            c.execute(self._delete_tracking_sql(), (shadow.tracking_name,))
            if position:
                self._advance(c, position, position)
        self._advanced_here()
        return position

    def _lock_for_switch(self, c: Any) -> int:
        """Take the write lock that keeps runners out; return the live position."""
        c.execute(self._sql(f"DELETE FROM {jobs.TABLE} WHERE 1 = 0"))  # SQLite: RESERVED lock
        c.execute(self._select_tracking_sql(), (self.tracking_name,))
        row = c.fetchone()
        return int(row["notification_id"]) if row else 0

    # Reading ---------------------------------------------------------------

    def position(self) -> int:
        return self.position_of(self.tracking_name)

    def position_of(self, tracking_name: str) -> int:
        """The position recorded under `tracking_name` (0 when none)."""
        return self.max_tracking_id(tracking_name) or 0  # type: ignore[attr-defined]

    def wait_for(self, position: int, timeout: float) -> bool:
        """Block until the read models have applied `position`; False on timeout.

        Woken when they advance (`notify_advanced`), else it looks every 50 ms.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._advanced:
                seen = self._advances
            if self.position() >= position:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._advanced:
                if self._advances == seen:  # else they moved since: look again now
                    self._advanced.wait(min(remaining, 0.05))

    def notify_advanced(self) -> None:
        """Wake this process's waits: the read models moved (here, or in another
        process that shares them)."""
        with self._advanced:
            self._advances += 1
            self._advanced.notify_all()

    def _advanced_here(self) -> None:
        self.notify_advanced()
        if self.on_advanced is not None:
            self.on_advanced()

    def list_jobs(self, *, status: str | None = None, priority: str | None = None,
                  region: str | None = None, page: int = 1, page_size: int = 20) -> Page:
        clause, params = jobs.where(status, priority, region)
        with self._transaction(commit=False) as c:
            c.execute(self._sql(f"SELECT COUNT(*) AS n FROM {jobs.TABLE}{clause}"), params)
            total = c.fetchone()["n"]
            c.execute(self._sql(
                f"SELECT {jobs.COLUMNS} FROM {jobs.TABLE}{clause} "
                "ORDER BY created_at DESC, id LIMIT ? OFFSET ?"),
                [*params, page_size, (page - 1) * page_size])
            rows = c.fetchall()
            by_job = self._assignments_of(c, [row["id"] for row in rows])
        return Page([jobs.document(row, by_job.get(row["id"], [])) for row in rows], total)

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        with self._transaction(commit=False) as c:
            c.execute(self._sql(f"SELECT {jobs.COLUMNS} FROM {jobs.TABLE} WHERE id = ?"),
                      [job_id])
            row = c.fetchone()
            if row is None:
                return None
            return jobs.document(row, self._assignments_of(c, [job_id]).get(job_id, []))

    def list_assignments(self, *, contractor_id: str | None = None,
                         job_id: str | None = None, status: str | None = None,
                         page: int = 1, page_size: int = 100) -> Page:
        clause, params = assignments.where(contractor_id, job_id, status)
        with self._transaction(commit=False) as c:
            c.execute(self._sql(f"SELECT COUNT(*) AS n FROM {assignments.TABLE}{clause}"),
                      params)
            total = c.fetchone()["n"]
            c.execute(self._sql(
                f"SELECT {assignments.COLUMNS} FROM {assignments.TABLE}{clause} "
                "ORDER BY created_at DESC, id LIMIT ? OFFSET ?"),
                [*params, page_size, (page - 1) * page_size])
            return Page([assignments.document(row) for row in c.fetchall()], total)

    def count_jobs(self) -> int:
        return self.list_jobs(page_size=1).total

    # The followers' failures (projections.status) ----------------------------

    def record_failure(self, name: str, failure: Failure | None) -> None:
        """Record a follower's failure; None when it has moved on."""
        with self._transaction(commit=True) as c:
            if failure is None:
                c.execute(self._status_sql(status.DELETE), (name,))
            else:
                c.execute(self._status_sql(status.UPSERT), failure.row(name))

    def failures(self) -> dict[str, Failure]:
        with self._transaction(commit=False) as c:
            c.execute(self._status_sql(status.SELECT))
            return {row["name"]: Failure.from_row(row) for row in c.fetchall()}

    # Internals -------------------------------------------------------------

    def _assignments_of(self, c: Any, job_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        if not job_ids:
            return found
        marks = ", ".join("?" for _ in job_ids)
        c.execute(self._sql(
            f"SELECT {assignments.COLUMNS} FROM {assignments.TABLE} "
            f"WHERE job_id IN ({marks}) ORDER BY created_at, id"), job_ids)
        for row in c.fetchall():
            document = assignments.document(row)
            found.setdefault(document.pop("jobId"), []).append(document)
        return found

    def _sql(self, sql: str) -> str:
        """The statement for this backend and this model's table names (cached)."""
        found = self._sql_cache.get(sql)
        if found is None:
            found = sql if self.placeholder == "?" else sql.replace("?", self.placeholder)
            found = _TABLE_NAMES.sub(lambda m: self._table(m[1]), found)
            self._sql_cache[sql] = found
        return found

    def _table(self, name: str) -> str:
        return name + self.suffix

    def _status_sql(self, sql: str) -> str:
        return sql

    def _delete_tracking_sql(self) -> str:
        return "DELETE FROM tracking WHERE application_name = ?"

    def _select_tracking_sql(self) -> str:
        return "SELECT notification_id FROM tracking WHERE application_name = ?"

    def _advance_sql(self) -> str:
        return ("INSERT INTO tracking VALUES (:name, :last) "
                "ON CONFLICT (application_name) DO UPDATE SET notification_id = :last "
                "WHERE tracking.notification_id < :first RETURNING notification_id")

    @contextmanager
    def _transaction(self, *, commit: bool) -> Iterator[Any]:
        with self.datastore.transaction(commit=commit) as c:  # type: ignore[attr-defined]
            yield c

    def _switch_transaction(self) -> Any:
        return self._transaction(commit=True)

    def _read_log(self, c: Any, app: EventLog, after: int, upto: int) -> Sequence[Notification]:
        """The notifications after `after` up to `upto`, read during the switch."""
        return app.recorder.select_notifications(
            start=after, stop=upto, limit=upto - after, inclusive_of_start=False)


class SQLiteDispatchViews(DispatchViews, SQLiteTrackingRecorder):
    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self._init_views()

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *jobs.CREATE,
                *assignments.CREATE, status.CREATE]

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
        return (f"INSERT INTO {self._tracking} VALUES (%(name)s, %(last)s) "
                "ON CONFLICT (application_name) DO UPDATE SET notification_id = %(last)s "
                f"WHERE {self._tracking}.notification_id < %(first)s "
                "RETURNING notification_id")

    def _lock_for_switch(self, c: Any) -> int:
        # Tables first, then the tracking row: the order a runner takes them in.
        c.execute(f"LOCK TABLE {self._table(jobs.TABLE)}, "
                  f"{self._table(assignments.TABLE)} IN ACCESS EXCLUSIVE MODE")
        return super()._lock_for_switch(c)


def _without_nul(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def views_for(factory: InfrastructureFactory[Any]) -> DispatchViews:
    """The read models in the database of the given application's factory."""
    view: Any
    if isinstance(factory, SQLiteFactory):
        view = factory.tracking_recorder(SQLiteDispatchViews)
    elif isinstance(factory, PostgresFactory):
        view = factory.tracking_recorder(PostgresDispatchViews)
    else:
        raise TypeError(f"No read models for {type(factory).__name__}")
    assert isinstance(view, DispatchViews)
    return view
