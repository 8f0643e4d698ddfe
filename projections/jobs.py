"""The job read model: one row per job, filtered and paged for lists."""

from __future__ import annotations

import json
from typing import Any

from domain.catalog import format_time, to_json
from domain.job import Job, JobStatus

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


def document(row: Any, assignments: list[dict[str, Any]]) -> dict[str, Any]:
    """The Job resource of the HTTP contract, built from a row and its assignments."""
    return {
        "id": row["id"],
        "version": row["version"],
        "type": row["type"],
        "description": row["description"],
        "durationMinutes": row["duration_minutes"],
        "priority": row["priority"],
        "region": row["region"],
        "requiredSkills": json.loads(row["required_skills"]),
        "location": json.loads(row["location"]) if row["location"] else None,
        "serviceWindow": {"start": row["window_start"], "end": row["window_end"]},
        "status": row["status"],
        "assignments": assignments,
        "cancellation": json.loads(row["cancellation"]) if row["cancellation"] else None,
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


def where(status: str | None, priority: str | None,
          region: str | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for column, value in (("status", status), ("priority", priority), ("region", region)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(to_json(value))
