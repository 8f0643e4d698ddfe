"""The published envelope of an event, and who receives it in realtime."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid5

from domain.catalog import event_data, event_type, format_time


def envelope(event: Any, position: int) -> dict[str, Any]:
    """CloudEvents-style: id, type, position, time, subject, data.

    The id is derived from the job id and version, so a re-publish of the same
    event carries the same id.
    """
    job_id: UUID = event.originator_id
    return {
        "id": str(uuid5(job_id, str(event.originator_version))),
        "type": event_type(event),
        "position": position,
        "time": format_time(event.timestamp),
        "subject": str(job_id),
        "data": event_data(event),
    }


def region_of(envelope: dict[str, Any]) -> str:
    return str(envelope["data"].get("region", ""))


def contractors_of(envelope: dict[str, Any]) -> set[str]:
    """The contractors whose assignments the event is about."""
    data = envelope["data"]
    found = {data["contractorId"]} if data.get("contractorId") else set()
    for key in ("assignments", "cancelledAssignments"):
        refs = data.get(key)
        if isinstance(refs, list):
            found.update(ref["contractorId"] for ref in refs if isinstance(ref, dict))
    return found


def groups_of(envelope: dict[str, Any]) -> list[str]:
    """The realtime groups: dispatch/<region> and contractor/<id>."""
    return [f"dispatch/{region_of(envelope)}",
            *(f"contractor/{c}" for c in sorted(contractors_of(envelope)))]
