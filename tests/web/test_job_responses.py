"""The Job resource as JobSchema dumps it from the `Job` aggregate: the contract,
member for member and in the same order (the JSON goes out unsorted), and the
same from the read model's JobRecord (tests/projections/test_views.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.catalog import format_time, to_json
from domain.job import Job
from tests.factories import cancelled_job_with_two_assignments, new_job, request, slot
from tests.strategies import job_bodies
from web.jobs.resources import JOB_CREATE
from web.schemas import JobSchema, ServiceWindowSchema

SCHEMA = JobSchema()


def contract(job: Job) -> dict[str, Any]:
    """The Job resource of the HTTP contract, spelled out member by member."""
    return {
        "id": str(job.id),
        "version": job.version,
        "type": job.type,
        "description": job.description,
        "durationMinutes": job.duration_minutes,
        "priority": job.priority,
        "region": job.region,
        "requiredSkills": list(job.required_skills),
        "location": job.location,
        "serviceWindow": {"start": format_time(job.window_start),
                          "end": format_time(job.window_end)},
        "status": str(job.status),
        "assignments": [
            {"id": str(a.id), "contractorId": str(a.contractor_id),
             "startUtc": format_time(a.start_utc), "endUtc": format_time(a.end_utc),
             "status": str(a.status)}
            for a in job.assignments
        ],
        "cancellation": to_json(job.cancellation),
        "createdAt": format_time(job.created_at),
        "updatedAt": format_time(job.updated_at),
    }


def assert_dumped_as_the_contract(job: Job) -> None:
    document = contract(job)
    dumped = SCHEMA.dump(job)
    assert dumped == document
    assert _orders(dumped) == _orders(document)
    assert json.dumps(dumped) == json.dumps(document)  # the bytes sent


def _orders(value: Any) -> Any:
    """The member order of every object in the document."""
    if isinstance(value, dict):
        return [(key, _orders(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [_orders(item) for item in value]
    return None


def test_a_new_job_is_dumped_as_the_contract():
    assert_dumped_as_the_contract(new_job())
    assert_dumped_as_the_contract(new_job(location=None, description=None,
                                          required_skills=[]))


def test_an_assigned_started_and_completed_job_is_dumped_as_the_contract():
    job = new_job()
    job.assign(request=request(), contractor_id=uuid4(), **slot())
    assert_dumped_as_the_contract(job)
    job.start(request=request())
    job.complete(request=request())
    assert_dumped_as_the_contract(job)


def test_a_cancelled_job_is_dumped_as_the_contract():
    job, _ = cancelled_job_with_two_assignments()
    assert_dumped_as_the_contract(job)


@settings(max_examples=100)
@given(job_bodies(), st.booleans())
def test_any_accepted_job_is_dumped_as_the_contract(body, cancelled):
    job = Job.create(request=request(), **JOB_CREATE.load(body))
    if cancelled:
        job.cancel(request=request(), reason="r")
    assert_dumped_as_the_contract(job)


def test_a_timestamp_formats_a_datetime_and_sends_stored_text_as_it_is():
    window = ServiceWindowSchema()
    plus_one = timezone(timedelta(hours=1))

    assert window.dump({"start": datetime(2030, 1, 15, 10, tzinfo=plus_one),
                        "end": "2030-01-15T13:00:00.000000Z"}) == {
        "start": "2030-01-15T09:00:00.000000Z", "end": "2030-01-15T13:00:00.000000Z"}
    assert window.dump({"start": datetime(2030, 1, 15, 9, 0, 0, 5, tzinfo=UTC),
                        "end": None}) == {
        "start": "2030-01-15T09:00:00.000005Z", "end": None}


# Moved from tests/domain/test_catalog.py (the domain's job_document is gone) --


def test_the_job_resource_has_the_shape_of_the_contract():
    job = new_job()
    contractor_id = uuid4()
    assignment_id = job.assign(request=request(), contractor_id=contractor_id, **slot())

    document = SCHEMA.dump(job)

    assert document == {
        "id": str(job.id), "version": 2, "type": "HVAC repair",
        "description": "No cooling on the second floor", "durationMinutes": 120,
        "priority": "Normal", "region": "Default", "requiredSkills": ["hvac"],
        "location": {"address": "1 Main St", "latitude": 40.7, "longitude": -74.0},
        "serviceWindow": {"start": "2030-01-15T09:00:00.000000Z",
                          "end": "2030-01-15T13:00:00.000000Z"},
        "status": "Assigned",
        "assignments": [{"id": str(assignment_id), "contractorId": str(contractor_id),
                         "startUtc": "2030-01-15T09:00:00.000000Z",
                         "endUtc": "2030-01-15T11:00:00.000000Z",
                         "status": "Pending"}],
        "cancellation": None,
        "createdAt": format_time(job.created_at),
        "updatedAt": format_time(job.updated_at),
    }


def test_the_job_resource_values_are_plain_json_types():
    job, _ = cancelled_job_with_two_assignments()

    document = SCHEMA.dump(job)

    assert type(document["status"]) is str
    assert all(type(a["status"]) is str for a in document["assignments"])
    assert document["createdAt"].endswith("Z")
    assert document["updatedAt"].endswith("Z")


def test_the_job_resource_of_a_cancelled_job_carries_the_cancellation():
    job, _ = cancelled_job_with_two_assignments()
    cancelled = job.collect_events()[-1]

    document = SCHEMA.dump(job)

    assert document["status"] == "Cancelled"
    assert {a["status"] for a in document["assignments"]} == {"Cancelled"}
    assert document["cancellation"] == {
        "reason": "Customer called", "reasonCode": "CustomerRequest",
        "cancelledBy": "d-9", "cancelledAt": format_time(cancelled.timestamp)}
    assert document["updatedAt"] == format_time(cancelled.timestamp)
