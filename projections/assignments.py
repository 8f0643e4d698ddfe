"""The assignment read model: one row per assignment, by contractor, job, status."""

from __future__ import annotations

from typing import Any

from domain.catalog import format_time
from domain.job import AssignmentStatus, Job

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
COLUMNS = "id, job_id, contractor_id, start_utc, end_utc, status, region, created_at, updated_at"


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


def document(row: Any) -> dict[str, Any]:
    """An assignment as the HTTP contract shows it (with its job id)."""
    return {
        "id": row["id"],
        "jobId": row["job_id"],
        "contractorId": row["contractor_id"],
        "startUtc": row["start_utc"],
        "endUtc": row["end_utc"],
        "status": row["status"],
    }


def where(contractor_id: str | None, job_id: str | None,
          status: str | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for column, value in (("contractor_id", contractor_id), ("job_id", job_id),
                          ("status", status)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params
