"""Builders for test data: distinct values per call, so tests never collide."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from domain.job import Job
from domain.values import Actor, Request

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


def new_job(**overrides: Any) -> Job:
    """A Job aggregate, not saved."""
    return Job.create(request=request(), **job_fields(**overrides))


def cancelled_job_with_two_assignments() -> tuple[Job, list[tuple[UUID, UUID]]]:
    """A Job aggregate (not saved) assigned twice and cancelled, with its
    (assignment id, contractor id) pairs."""
    job = new_job(region="North")
    first_contractor, second_contractor = uuid4(), uuid4()
    first = job.assign(request=request(), contractor_id=first_contractor, **slot())
    second = job.assign(request=request(), contractor_id=second_contractor, **slot(2))
    job.cancel(request=request(dispatcher("d-9")), reason="Customer called",
               reason_code="CustomerRequest")
    return job, [(first, first_contractor), (second, second_contractor)]


def save_cancelled_job(app: Any, region: str = "North",
                  contractors: tuple[UUID, ...] = ()) -> UUID:
    """A job saved through `app`: created, assigned to each contractor and
    cancelled (2 + 2n events)."""
    job_id = app.create_job(request(), **job_fields(region=region)).job.id
    for hours, contractor_id in enumerate(contractors):
        app.assign(request(), job_id, contractor_id=contractor_id, **slot(hours * 2))
    app.cancel_job(request(), job_id, reason="Customer called",
                   reason_code="CustomerRequest")
    return job_id


def store_unknown_event(app: Any, topic: str) -> tuple[Job, int]:
    """A good job, then an event of it stored under `topic`, which this build does
    not know (as if written by a newer one): no follower can decode it. Returns
    the job and the event's position."""
    from eventsourcing.persistence import StoredEvent

    job = app.create_job(request(), **job_fields()).job
    app.assign(request(), job.id, contractor_id=uuid4(), **slot(0))
    job = app.repository.get(job.id)
    job.confirm_assignment(request=request(), assignment_id=job.assignments[0].id)
    stored = app.mapper.to_stored_event(job.collect_events()[0])
    app.recorder.insert_events([StoredEvent(
        originator_id=stored.originator_id, originator_version=stored.originator_version,
        topic=topic, state=stored.state)])
    return job, app.head_position()
