"""The event catalog: type names and event data, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest

from domain.catalog import (
    EVENT_TYPES,
    camel,
    event_data,
    event_type,
    format_time,
    to_json,
)
from tests.factories import (
    NOW,
    cancelled_job_with_two_assignments,
    new_job,
    request,
    slot,
)

# format_time ----------------------------------------------------------------


def test_format_time_ends_with_z_and_keeps_microseconds():
    text = format_time(datetime(2030, 1, 15, 9, 0, tzinfo=UTC))

    assert text == "2030-01-15T09:00:00.000000Z"


def test_format_time_converts_other_offsets_to_utc():
    plus_two = timezone(timedelta(hours=2))

    text = format_time(datetime(2030, 1, 15, 11, 30, 0, 5, tzinfo=plus_two))

    assert text == "2030-01-15T09:30:00.000005Z"


def test_format_time_sorts_like_the_times_it_formats():
    times = [NOW + timedelta(microseconds=n) for n in (0, 1, 999_999, 1_000_000)]

    texts = [format_time(t) for t in times]

    assert texts == sorted(texts)
    assert all(t.endswith("Z") for t in texts)


# helpers --------------------------------------------------------------------


@pytest.mark.parametrize("name, expected", [
    ("reason", "reason"),
    ("reason_code", "reasonCode"),
    ("cancelled_assignments", "cancelledAssignments"),
    ("duration_minutes", "durationMinutes"),
])
def test_camel_turns_snake_case_into_camel_case(name, expected):
    assert camel(name) == expected


def test_to_json_converts_nested_uuids_and_datetimes():
    some_id = uuid4()

    value = to_json({"a": [some_id, (NOW,)], "b": {"c": None, "d": 3}})

    assert value == {"a": [str(some_id), ["2030-01-15T09:00:00.000000Z"]],
                     "b": {"c": None, "d": 3}}


# event_type -----------------------------------------------------------------


def test_event_type_names_every_kind_of_event():
    job = new_job()
    first = job.assign(request=request(), contractor_id=uuid4(), **slot())
    job.confirm_assignment(request=request(), assignment_id=first)
    second = job.assign(request=request(), contractor_id=uuid4(), **slot())
    job.cancel_assignment(request=request(), assignment_id=second)
    job.start(request=request())
    job.complete(request=request())

    names = [event_type(e) for e in job.collect_events()]

    assert names == ["JobCreated", "AssignmentCreated", "AssignmentConfirmed",
                     "AssignmentCreated", "AssignmentCancelled", "JobStarted",
                     "JobCompleted"]


def test_event_types_match_the_explicit_topics():
    pairs = [(cls.TOPIC, f"smartscheduler.{name}") for cls, name in EVENT_TYPES.items()]

    assert all(topic == expected for topic, expected in pairs), pairs


# event_data -----------------------------------------------------------------


def test_job_cancelled_data_carries_what_the_contract_promises():
    job, [(first, first_contractor), (second, second_contractor)] = (
        cancelled_job_with_two_assignments())
    cancelled = job.collect_events()[-1]

    data = event_data(cancelled)

    assert data["jobId"] == str(job.id)
    assert data["reason"] == "Customer called"
    assert data["reasonCode"] == "CustomerRequest"
    assert data["region"] == "North"
    assert data["cancelledBy"] == "d-9"
    assert data["cancelledAt"] == format_time(cancelled.timestamp)
    assert data["cancelledAt"].endswith("Z")
    assert data["version"] == job.version == 6
    assert data["cancelledAssignments"] == [
        {"assignmentId": str(first), "contractorId": str(first_contractor)},
        {"assignmentId": str(second), "contractorId": str(second_contractor)},
    ]


def test_event_data_leaves_out_the_envelope_fields():
    job, _ = cancelled_job_with_two_assignments()

    all_data = [event_data(e) for e in job.collect_events()]

    for data in all_data:
        assert not {"originatorId", "originatorVersion", "timestamp", "request",
                    "originatorTopic"} & set(data)


def test_assignment_cancelled_data_names_the_assignment_and_the_contractor():
    job, [(first, first_contractor), _] = cancelled_job_with_two_assignments()
    assignment_cancelled = job.collect_events()[3]

    data = event_data(assignment_cancelled)

    assert data == {"jobId": str(job.id), "version": 4, "region": "North",
                    "assignmentId": str(first), "contractorId": str(first_contractor),
                    "reason": "Customer called", "jobStatus": "Assigned"}


def test_job_created_data_carries_the_job_fields_as_json():
    job = new_job(priority="High")

    data = event_data(job.collect_events()[0])

    assert data == {
        "jobId": str(job.id), "version": 1, "region": "Default",
        "type": "HVAC repair", "description": "No cooling on the second floor",
        "durationMinutes": 120, "priority": "High", "requiredSkills": ["hvac"],
        "location": {"address": "1 Main St", "latitude": 40.7, "longitude": -74.0},
        "windowStart": "2030-01-15T09:00:00.000000Z",
        "windowEnd": "2030-01-15T13:00:00.000000Z",
    }


def test_assignment_created_data_formats_the_slot_in_utc():
    job = new_job()
    contractor_id = uuid4()
    assignment_id = job.assign(request=request(), contractor_id=contractor_id, **slot(1))

    data = event_data(job.collect_events()[-1])

    assert data["assignmentId"] == str(assignment_id)
    assert data["contractorId"] == str(contractor_id)
    assert data["startUtc"] == "2030-01-15T10:00:00.000000Z"
    assert data["endUtc"] == "2030-01-15T12:00:00.000000Z"
    assert data["jobStatus"] == "Assigned"
