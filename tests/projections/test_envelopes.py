"""The published envelope of an event, and the realtime groups that receive it."""

from __future__ import annotations

import json
from uuid import UUID, uuid4

import pytest

from application.settings import Settings
from domain.catalog import event_data, event_type, format_time
from domain.job import Job
from projections.realtime.envelopes import contractors_of, envelope, groups_of, region_of
from smartscheduler.bootstrap import build_dispatch
from tests.factories import (
    cancelled_job_with_two_assignments,
    new_job,
    request,
    slot,
)


def envelopes_of(job: Job, first_position: int = 1) -> list[dict]:
    return [envelope(event, position)
            for position, event in enumerate(job.collect_events(), first_position)]


def every_kind_of_event(contractor_id: UUID) -> dict[str, dict]:
    """One envelope per event type, each naming `contractor_id` where it can."""
    job = new_job(region="South")
    first = job.assign(request=request(), contractor_id=contractor_id, **slot())
    job.confirm_assignment(request=request(), assignment_id=first)
    other = job.assign(request=request(), contractor_id=uuid4(), **slot(3))
    job.cancel_assignment(request=request(), assignment_id=other)
    job.start(request=request())
    job.complete(request=request())
    cancelled = new_job(region="South")
    cancelled.assign(request=request(), contractor_id=contractor_id, **slot())
    cancelled.cancel(request=request())
    found: dict[str, dict] = {}
    for item in envelopes_of(cancelled, 100) + envelopes_of(job):
        found.setdefault(item["type"], item)
    return found


# The shape of the envelope ---------------------------------------------------


def test_an_envelope_has_exactly_the_published_fields():
    job, _ = cancelled_job_with_two_assignments()
    cancelled = job.collect_events()[-1]

    item = envelope(cancelled, 42)

    assert set(item) == {"id", "type", "position", "time", "subject", "data"}
    assert item["type"] == "JobCancelled"
    assert item["position"] == 42
    assert item["subject"] == str(job.id)
    assert item["data"] == event_data(cancelled)
    assert item["time"] == format_time(cancelled.timestamp)
    assert item["time"].endswith("Z")
    assert UUID(item["id"])


def test_an_envelope_survives_a_round_trip_through_json_unchanged():
    job, _ = cancelled_job_with_two_assignments()

    for item in envelopes_of(job):
        assert json.loads(json.dumps(item)) == item


def test_the_envelope_type_is_the_catalog_name_of_the_event():
    job, _ = cancelled_job_with_two_assignments()
    events = job.collect_events()

    types = [envelope(event, n)["type"] for n, event in enumerate(events, 1)]

    assert types == [event_type(event) for event in events]
    assert types == ["JobCreated", "AssignmentCreated", "AssignmentCreated",
                     "AssignmentCancelled", "AssignmentCancelled", "JobCancelled"]


def test_the_envelope_id_is_the_same_for_the_same_event_at_any_position():
    job, _ = cancelled_job_with_two_assignments()
    cancelled = job.collect_events()[-1]

    ids = {envelope(cancelled, position)["id"] for position in (1, 6, 10_000)}

    assert len(ids) == 1


def test_every_event_gets_an_envelope_id_of_its_own():
    first, _ = cancelled_job_with_two_assignments()
    second, _ = cancelled_job_with_two_assignments()

    ids = [item["id"] for item in envelopes_of(first) + envelopes_of(second)]

    assert len(ids) == len(set(ids)) == 12


def test_the_envelope_of_an_event_read_back_from_the_store_equals_the_one_before_saving(
        sqlite_url):
    app = build_dispatch(Settings(database_url=sqlite_url))
    try:
        job, _ = cancelled_job_with_two_assignments()
        pending = list(job.pending_events)
        app.save(job)
        notifications = app.recorder.select_notifications(start=1, limit=100)

        before = [envelope(event, position) for position, event in enumerate(pending, 1)]
        after = [envelope(app.mapper.to_domain_event(n), n.id) for n in notifications]
    finally:
        app.close()

    assert after == before
    assert [item["position"] for item in after] == [1, 2, 3, 4, 5, 6]


# region_of -------------------------------------------------------------------


def test_region_of_an_envelope_is_the_region_of_its_job():
    job, _ = cancelled_job_with_two_assignments()

    assert {region_of(item) for item in envelopes_of(job)} == {"North"}


# contractors_of --------------------------------------------------------------


def test_contractors_of_a_job_cancelled_event_are_those_of_its_assignments():
    job, [(_, first_contractor), (_, second_contractor)] = (
        cancelled_job_with_two_assignments())

    found = [contractors_of(item) for item in envelopes_of(job)]

    assert found == [set(), {str(first_contractor)}, {str(second_contractor)},
                     {str(first_contractor)}, {str(second_contractor)},
                     {str(first_contractor), str(second_contractor)}]


def test_contractors_of_a_job_started_event_are_those_it_started():
    job = new_job()
    contractor_id = uuid4()
    job.assign(request=request(), contractor_id=contractor_id, **slot())
    job.start(request=request())

    started = envelopes_of(job)[-1]

    assert started["type"] == "JobStarted"
    assert contractors_of(started) == {str(contractor_id)}


def test_contractors_of_a_job_completed_event_are_those_who_were_working_on_it():
    job = new_job()
    working, leftover = uuid4(), uuid4()
    job.assign(request=request(), contractor_id=working, **slot())
    job.start(request=request())
    job.assign(request=request(), contractor_id=leftover, **slot(3))
    job.complete(request=request())

    completed = envelopes_of(job)[-1]

    assert completed["type"] == "JobCompleted"
    assert contractors_of(completed) == {str(working)}


def test_contractors_of_a_job_cancelled_before_any_assignment_are_none():
    job = new_job()
    job.cancel(request=request())

    assert [contractors_of(item) for item in envelopes_of(job)] == [set(), set()]


# groups_of -------------------------------------------------------------------


CONTRACTOR = UUID("00000000-0000-4000-8000-000000000001")


@pytest.mark.parametrize("kind, expected", [
    ("JobCreated", ["dispatch/South"]),
    ("AssignmentCreated", ["dispatch/South", f"contractor/{CONTRACTOR}"]),
    ("AssignmentConfirmed", ["dispatch/South", f"contractor/{CONTRACTOR}"]),
    ("AssignmentCancelled", ["dispatch/South", f"contractor/{CONTRACTOR}"]),
    ("JobStarted", ["dispatch/South", f"contractor/{CONTRACTOR}"]),
    ("JobCompleted", ["dispatch/South", f"contractor/{CONTRACTOR}"]),
    ("JobCancelled", ["dispatch/South", f"contractor/{CONTRACTOR}"]),
])
def test_groups_of_each_event_type_are_its_region_and_the_contractors_it_names(
        kind, expected):
    item = every_kind_of_event(CONTRACTOR)[kind]

    assert groups_of(item) == expected


def test_groups_of_an_assignment_cancelled_event_name_the_unassigned_contractor():
    job = new_job(region="East")
    contractor_id = uuid4()
    assignment_id = job.assign(request=request(), contractor_id=contractor_id, **slot())
    job.cancel_assignment(request=request(), assignment_id=assignment_id, reason="Sick")

    unassigned = envelopes_of(job)[-1]

    assert unassigned["type"] == "AssignmentCancelled"
    assert groups_of(unassigned) == ["dispatch/East", f"contractor/{contractor_id}"]


def test_groups_of_a_job_cancelled_event_name_every_cancelled_assignments_contractor():
    job, [(_, first_contractor), (_, second_contractor)] = (
        cancelled_job_with_two_assignments())

    groups = groups_of(envelopes_of(job)[-1])

    assert groups[0] == "dispatch/North"
    assert sorted(groups[1:]) == groups[1:]
    assert set(groups[1:]) == {f"contractor/{first_contractor}",
                               f"contractor/{second_contractor}"}


def test_groups_of_a_job_cancelled_event_leave_out_contractors_unassigned_before():
    job = new_job(region="West")
    unassigned, late = uuid4(), uuid4()
    first = job.assign(request=request(), contractor_id=unassigned, **slot())
    job.cancel_assignment(request=request(), assignment_id=first)
    job.assign(request=request(), contractor_id=late, **slot(2))
    job.cancel(request=request())

    cancelled = envelopes_of(job)[-1]

    assert cancelled["type"] == "JobCancelled"
    assert groups_of(cancelled) == ["dispatch/West", f"contractor/{late}"]


def test_every_event_goes_to_exactly_one_dispatch_group():
    job, _ = cancelled_job_with_two_assignments()

    for item in envelopes_of(job):
        dispatch_groups = [g for g in groups_of(item) if g.startswith("dispatch/")]
        assert dispatch_groups == ["dispatch/North"]
