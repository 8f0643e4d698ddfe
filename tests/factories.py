"""Builders for test data: distinct values per call, so tests never collide."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from domain.job import Actor, Request

NOW = datetime(2030, 1, 15, 9, 0, tzinfo=UTC)


def dispatcher(sub: str = "dispatcher-1") -> Actor:
    return Actor(sub, ("Dispatcher",))


def admin(sub: str = "admin-1") -> Actor:
    return Actor(sub, ("Admin",))


def contractor(contractor_id: UUID | None = None) -> Actor:
    return Actor(str(contractor_id or uuid4()), ("Contractor",))


def request(actor: Actor | None = None, *, key: str | None = None,
            fingerprint: str | None = None) -> Request:
    return Request(actor or dispatcher(), request_id=f"req-{uuid4().hex[:12]}",
                   idempotency_key=key, fingerprint=fingerprint)


def job_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "type": "HVAC repair",
        "description": "No cooling on the second floor",
        "duration_minutes": 120,
        "priority": "Normal",
        "region": "Default",
        "required_skills": ["hvac"],
        "location": {"address": "1 Main St", "latitude": 40.7, "longitude": -74.0},
        "window_start": NOW,
        "window_end": NOW + timedelta(hours=4),
    }
    fields.update(overrides)
    return fields


def slot(hours_from_start: int = 0, length_hours: int = 2) -> dict[str, datetime]:
    start = NOW + timedelta(hours=hours_from_start)
    return {"start_utc": start, "end_utc": start + timedelta(hours=length_hours)}
