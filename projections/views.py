"""The read models' store: SQL tables kept beside their tracking record.

Every batch of events is applied in one transaction together with the
tracking position of its last event, so an event is applied exactly once: a
redelivered one fails the tracking insert and the whole transaction rolls back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import InfrastructureFactory, IntegrityError, Tracking
from eventsourcing.postgres import PostgresFactory, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteFactory, SQLiteTrackingRecorder

from projections import assignments, jobs

TRACKING_NAME = "Dispatch"


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
            for event, _ in events:
                for sql, params in jobs.statements(event) + assignments.statements(event):
                    c.execute(self._sql(sql), params)
            self._insert_tracking(c, events[-1][1])  # type: ignore[attr-defined]
        with self._advanced:
            self._advanced.notify_all()

    def process_event(self, event: Any, tracking: Tracking) -> None:
        self.process([(event, tracking)])

    def reset(self) -> None:
        """Empty both read models and forget the position (before a rebuild)."""
        with self._transaction(commit=True) as c:
            c.execute(f"DELETE FROM {jobs.TABLE}")
            c.execute(f"DELETE FROM {assignments.TABLE}")
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
        from psycopg.sql import SQL
        self.sql_create_statements.extend(SQL(s) for s in [*jobs.CREATE,
                                                           *assignments.CREATE])

    def _delete_tracking_sql(self) -> str:
        return (f"DELETE FROM {self.datastore.schema}.{self.tracking_table_name} "
                "WHERE application_name = %s")


def views_for(factory: InfrastructureFactory[Any]) -> DispatchViews:
    """The read models in the database of the given application's factory."""
    if isinstance(factory, SQLiteFactory):
        view = factory.tracking_recorder(SQLiteDispatchViews)
    elif isinstance(factory, PostgresFactory):
        view = factory.tracking_recorder(PostgresDispatchViews)
    else:
        raise TypeError(f"No read models for {type(factory).__name__}")
    assert isinstance(view, DispatchViews)
    return view


__all__ = ["DispatchViews", "IntegrityError", "Page", "views_for"]
