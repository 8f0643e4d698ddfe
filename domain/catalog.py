"""The event catalog: stable type names and the JSON data of every Job event.

The audit trail (`audit_record`) and the published envelope both describe an
event with `event_type` and `event_data`, so what integrations receive is what
auditors read.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from domain.job import Job

EVENT_TYPES: dict[type[Any], str] = {
    Job.Created: "JobCreated",
    Job.AssignmentCreated: "AssignmentCreated",
    Job.AssignmentConfirmed: "AssignmentConfirmed",
    Job.AssignmentCancelled: "AssignmentCancelled",
    Job.Started: "JobStarted",
    Job.Completed: "JobCompleted",
    Job.Cancelled: "JobCancelled",
}

_ENVELOPE_FIELDS = {"originator_id", "originator_version", "timestamp", "request",
                    "originator_topic"}


_EARLIEST_TEXT = "0001-01-01T00:00:00.000000Z"
_LATEST_TEXT = "9999-12-31T23:59:59.999999Z"


def format_time(value: datetime) -> str:
    """ISO 8601 in UTC with a Z suffix, always with microseconds (sortable).

    Total, so that no stored event can stop a reader: an instant whose UTC value
    lies beyond what Python can hold (accepted before the edge refused it, e.g.
    0001-01-01T00:00:00+01:00) is shown as the nearest representable instant.
    """
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        offset = value.utcoffset() or timedelta(0)
        return _EARLIEST_TEXT if offset > timedelta(0) else _LATEST_TEXT
    return utc.isoformat(timespec="microseconds").replace("+00:00", "Z")


def to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def event_type(event: Any) -> str:
    return EVENT_TYPES[type(event)]


def event_data(event: Any) -> dict[str, Any]:
    """The event's own data in camelCase JSON, with jobId and version."""
    data: dict[str, Any] = {"jobId": str(event.originator_id),
                            "version": event.originator_version}
    for name, value in vars(event).items():
        if name not in _ENVELOPE_FIELDS:
            data[camel(name)] = to_json(value)
    if isinstance(event, Job.Cancelled):
        data["cancelledAt"] = format_time(event.timestamp)
    return data


def audit_record(event: Any) -> dict[str, Any]:
    """One entry of a job's audit trail: the event, who asked, and its data."""
    request = event.request
    return {
        "version": event.originator_version,
        "type": event_type(event),
        "occurredAt": format_time(event.timestamp),
        "actor": request.get("actor"),
        "requestId": request.get("requestId"),
        "data": event_data(event),
    }
