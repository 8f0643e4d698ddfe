"""The read models' store: SQL tables kept beside their tracking record.

Every batch of events is applied in one transaction together with the
tracking position of its last event, so an event is applied exactly once: a
redelivered one fails the tracking insert and the whole transaction rolls back.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import InfrastructureFactory, IntegrityError, Tracking
from eventsourcing.postgres import PostgresFactory, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteFactory, SQLiteTrackingRecorder

from projections import assignments, jobs

TRACKING_NAME = "Dispatch"


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


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int


class DispatchViews:
    """The job and assignment read models (mixed into a tracking recorder)."""

    placeholder = "?"
    tracking_name = TRACKING_NAME

    def _init_views(self) -> None:
        self._advanced = threading.Condition()

    # Writing ---------------------------------------------------------------

    def process(self, events: Sequence[tuple[Any, Tracking]]) -> None:
        """Apply a batch of (event, tracking) pairs and record the last position.

        Raises IntegrityError, changing nothing, when the batch was already applied.
        """
        if not events:
            return
        with self._transaction(commit=True) as c:
            for sql, rows in grouped(_statements(events)):
                c.executemany(self._sql(sql), rows)
            self._insert_tracking(c, events[-1][1])  # type: ignore[attr-defined]
        with self._advanced:
            self._advanced.notify_all()

    def process_event(self, event: Any, tracking: Tracking) -> None:
        self.process([(event, tracking)])

    def reset(self) -> None:
        """Empty both read models and forget the position (before a rebuild)."""
        with self._transaction(commit=True) as c:
            c.execute(self._sql(f"DELETE FROM {jobs.TABLE}"))
            c.execute(self._sql(f"DELETE FROM {assignments.TABLE}"))
            c.execute(self._delete_tracking_sql(), (self.tracking_name,))

    # Reading ---------------------------------------------------------------

    def position(self) -> int:
        return self.max_tracking_id(self.tracking_name) or 0  # type: ignore[attr-defined]

    def wait_for(self, position: int, timeout: float) -> bool:
        """Block until the read models have applied `position`; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.position() < position:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._advanced:
                self._advanced.wait(min(remaining, 0.05))
        return True

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
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _delete_tracking_sql(self) -> str:
        return "DELETE FROM tracking WHERE application_name = ?"

    @contextmanager
    def _transaction(self, *, commit: bool) -> Iterator[Any]:
        with self.datastore.transaction(commit=commit) as c:  # type: ignore[attr-defined]
            yield c


class SQLiteDispatchViews(DispatchViews, SQLiteTrackingRecorder):
    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self._init_views()

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *jobs.CREATE,
                *assignments.CREATE]


class PostgresDispatchViews(DispatchViews, PostgresTrackingRecorder):
    placeholder = "%s"

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        kwargs.setdefault("tracking_table_name", "dispatch_views_tracking")
        super().__init__(datastore, **kwargs)
        self._init_views()
        # The read-model tables live in the datastore's schema, like the tracking
        # table: unqualified names would resolve through search_path (to public).
        self._schema = '"' + self.datastore.schema.replace('"', '""') + '"'
        self._tables = re.compile(rf"\b({jobs.TABLE}|{assignments.TABLE})\b")
        from psycopg.sql import SQL
        self.sql_create_statements.extend(SQL(self._sql(s)) for s in [  # type: ignore[misc]
            *jobs.CREATE, *assignments.CREATE])

    def _sql(self, sql: str) -> str:
        return self._tables.sub(lambda m: f"{self._schema}.{m[1]}", super()._sql(sql))

    def _delete_tracking_sql(self) -> str:
        return (f"DELETE FROM {self.datastore.schema}.{self.tracking_table_name} "
                "WHERE application_name = %s")


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


__all__ = ["DispatchViews", "IntegrityError", "Page", "views_for"]
