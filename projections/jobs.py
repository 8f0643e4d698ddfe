"""The job read model: one row per job, filtered and paged for lists.

Its table, the SQL that applies each event to its rows (`statements`, run by
the store, projections.store, and by a rebuild), and its queries, which return
JobRecords: a job as the aggregate names its attributes, with its assignments,
and its times as the text they were stored as.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from domain.catalog import format_time, to_json
from domain.job import Job
from domain.values import JobStatus
from projections.assignments import AssignmentReadModel, AssignmentRecord
from projections.query import Page, Sql, newest_first

TABLE = "job_views"

CREATE = [
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    "id TEXT PRIMARY KEY, version INTEGER NOT NULL, type TEXT NOT NULL, "
    "description TEXT, duration_minutes INTEGER NOT NULL, priority TEXT NOT NULL, "
    "region TEXT NOT NULL, required_skills TEXT NOT NULL, location TEXT, "
    "window_start TEXT NOT NULL, window_end TEXT NOT NULL, status TEXT NOT NULL, "
    "cancellation TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_status ON {TABLE} (status, created_at)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_region ON {TABLE} (region, created_at)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_created ON {TABLE} (created_at, id)",
]

INSERT = (
    f"INSERT INTO {TABLE} (id, version, type, description, duration_minutes, priority, "
    "region, required_skills, location, window_start, window_end, status, cancellation, "
    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)"
)
UPDATE = (
    f"UPDATE {TABLE} SET version = ?, updated_at = ?, status = COALESCE(?, status), "
    "cancellation = COALESCE(?, cancellation) WHERE id = ?"
)
COLUMNS = ("id, version, type, description, duration_minutes, priority, region, "
           "required_skills, location, window_start, window_end, status, cancellation, "
           "created_at, updated_at")


def statements(event: Any) -> list[tuple[str, tuple[Any, ...]]]:
    """The SQL that applies one event to the job rows."""
    when = format_time(event.timestamp)
    job_id = str(event.originator_id)
    if isinstance(event, Job.Created):
        return [(INSERT, (
            job_id, event.originator_version, event.type, event.description,
            event.duration_minutes, event.priority, event.region,
            json.dumps(event.required_skills), _json_or_none(event.location),
            format_time(event.window_start), format_time(event.window_end),
            str(JobStatus.CREATED), when, when))]
    status: str | None = getattr(event, "job_status", None)
    cancellation = None
    if isinstance(event, Job.Started):
        status = JobStatus.IN_PROGRESS
    elif isinstance(event, Job.Completed):
        status = JobStatus.COMPLETED
    elif isinstance(event, Job.Cancelled):
        status = JobStatus.CANCELLED
        cancellation = json.dumps({"reason": event.reason, "reasonCode": event.reason_code,
                                   "cancelledBy": event.cancelled_by, "cancelledAt": when})
    return [(UPDATE, (event.originator_version, when, status and str(status),
                      cancellation, job_id))]


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(to_json(value))


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as the read model holds it: the aggregate's attribute names, its
    assignments oldest first, times as formatted text."""

    id: str
    version: int
    type: str
    description: str | None
    duration_minutes: int
    priority: str
    region: str
    required_skills: list[str]
    location: dict[str, Any] | None
    window_start: str
    window_end: str
    status: str
    assignments: list[AssignmentRecord]
    cancellation: dict[str, Any] | None
    created_at: str
    updated_at: str


class JobReadModel:
    """The job read model's queries, each within the caller's transaction."""

    def __init__(self, sql: Sql, assignments: AssignmentReadModel) -> None:
        self._sql = sql
        self._assignments = assignments

    def get(self, c: Any, job_id: str) -> JobRecord | None:
        c.execute(self._sql(f"SELECT {COLUMNS} FROM {TABLE} WHERE id = ?"), [job_id])
        row = c.fetchone()
        if row is None:
            return None
        return _record(row, self._assignments.of_jobs(c, [job_id]).get(job_id, []))

    def page(self, c: Any, *, status: str | None, priority: str | None,
             region: str | None, page: int, page_size: int) -> Page[JobRecord]:
        """Jobs newest first, filtered, one page of them."""
        rows, total = newest_first(c, self._sql, TABLE, COLUMNS, page, page_size,
                                   status=status, priority=priority, region=region)
        by_job = self._assignments.of_jobs(c, [row["id"] for row in rows])
        return Page([_record(row, by_job.get(row["id"], [])) for row in rows], total)


def _record(row: Any, assignments: list[AssignmentRecord]) -> JobRecord:
    return JobRecord(
        id=row["id"], version=row["version"], type=row["type"],
        description=row["description"], duration_minutes=row["duration_minutes"],
        priority=row["priority"], region=row["region"],
        required_skills=json.loads(row["required_skills"]),
        location=json.loads(row["location"]) if row["location"] else None,
        window_start=row["window_start"], window_end=row["window_end"],
        status=row["status"], assignments=assignments,
        cancellation=json.loads(row["cancellation"]) if row["cancellation"] else None,
        created_at=row["created_at"], updated_at=row["updated_at"])
