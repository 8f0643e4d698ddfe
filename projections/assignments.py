"""The assignment read model: one row per assignment, by contractor, job, status.

Its table, the SQL that applies each event to its rows (`statements`, run by
the store, projections.store, and by a rebuild), and its queries, which return
AssignmentRecords: an assignment as the aggregate names its attributes, with
its job's id, and its times as the text they were stored as.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.catalog import format_time
from domain.job import Job
from domain.values import AssignmentStatus
from projections.query import Page, Sql, newest_first

TABLE = "assignment_views"

CREATE = [
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    "id TEXT PRIMARY KEY, job_id TEXT NOT NULL, contractor_id TEXT NOT NULL, "
    "start_utc TEXT NOT NULL, end_utc TEXT NOT NULL, status TEXT NOT NULL, "
    "region TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_contractor ON {TABLE} (contractor_id, created_at)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_job ON {TABLE} (job_id, created_at)",
]

INSERT = (
    f"INSERT INTO {TABLE} (id, job_id, contractor_id, start_utc, end_utc, status, region, "
    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SET_STATUS = f"UPDATE {TABLE} SET status = ?, updated_at = ? WHERE id = ?"
COLUMNS = "id, job_id, contractor_id, start_utc, end_utc, status"
"""The columns an AssignmentRecord is read from (its fields, by name)."""


def statements(event: Any) -> list[tuple[str, tuple[Any, ...]]]:
    """The SQL that applies one event to the assignment rows."""
    when = format_time(event.timestamp)
    if isinstance(event, Job.AssignmentCreated):
        return [(INSERT, (
            str(event.assignment_id), str(event.originator_id), str(event.contractor_id),
            format_time(event.start_utc), format_time(event.end_utc),
            str(AssignmentStatus.PENDING), event.region, when, when))]
    if isinstance(event, Job.AssignmentConfirmed):
        return [(SET_STATUS, (str(AssignmentStatus.CONFIRMED), when, str(event.assignment_id)))]
    if isinstance(event, Job.AssignmentCancelled):
        return [(SET_STATUS, (str(AssignmentStatus.CANCELLED), when, str(event.assignment_id)))]
    if isinstance(event, Job.Started | Job.Completed):
        status = (AssignmentStatus.IN_PROGRESS if isinstance(event, Job.Started)
                  else AssignmentStatus.COMPLETED)
        return [(SET_STATUS, (str(status), when, ref["assignmentId"]))
                for ref in event.assignments]
    return []


@dataclass(frozen=True, slots=True)
class AssignmentRecord:
    """An assignment as the read model holds it (times: formatted text)."""

    id: str
    job_id: str
    contractor_id: str
    start_utc: str
    end_utc: str
    status: str


class AssignmentReadModel:
    """The assignment read model's queries, each within the caller's transaction."""

    def __init__(self, sql: Sql) -> None:
        self._sql = sql

    def page(self, c: Any, *, contractor_id: str | None, job_id: str | None,
             status: str | None, page: int, page_size: int) -> Page[AssignmentRecord]:
        """Assignments newest first, filtered, one page of them."""
        rows, total = newest_first(c, self._sql, TABLE, COLUMNS, page, page_size,
                                   contractor_id=contractor_id, job_id=job_id, status=status)
        return Page([AssignmentRecord(**row) for row in rows], total)

    def of_jobs(self, c: Any, job_ids: list[str]) -> dict[str, list[AssignmentRecord]]:
        """The assignments of each of the jobs, oldest first (jobs without: absent)."""
        found: dict[str, list[AssignmentRecord]] = {}
        if not job_ids:
            return found
        marks = ", ".join("?" for _ in job_ids)
        c.execute(self._sql(f"SELECT {COLUMNS} FROM {TABLE} "
                            f"WHERE job_id IN ({marks}) ORDER BY created_at, id"), job_ids)
        for row in c.fetchall():
            record = AssignmentRecord(**row)
            found.setdefault(record.job_id, []).append(record)
        return found
