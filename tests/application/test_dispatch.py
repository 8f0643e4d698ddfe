"""The Dispatch application end to end, on every storage backend.

Each command is saved to the event store and the job is read back from it.
"""

from __future__ import annotations

import functools
from typing import Any
from uuid import UUID, uuid4

import pytest

from application.dispatch import IDEMPOTENCY_NAMESPACE, Dispatch, Outcome
from application.errors import JobNotFound, PreconditionFailed, VersionNotFound
from domain.catalog import EVENT_TYPES, event_data, format_time
from domain.errors import (
    AssignmentNotCancellable,
    AssignmentNotFound,
    Forbidden,
    IdempotencyKeyReused,
    InvalidJob,
    InvalidTransition,
    JobAlreadyCancelled,
    JobCompleted,
    JobNotAssignable,
)
from domain.values import Actor, AssignmentStatus, JobStatus
from smartscheduler.bootstrap import build_dispatch
from tests.factories import admin, contractor, dispatcher, job_fields, request, slot

# Builders -------------------------------------------------------------------


def create(app: Dispatch, **overrides: Any) -> UUID:
    return app.create_job(request(), **job_fields(**overrides)).job.id


def assign(app: Dispatch, job_id: UUID, contractor_id: UUID | None = None) -> UUID:
    outcome = app.assign(request(), job_id, contractor_id=contractor_id or uuid4(),
                         **slot())
    return outcome.job.assignments[-1].id


def assigned(app: Dispatch, count: int = 1) -> tuple[UUID, list[UUID]]:
    job_id = create(app)
    return job_id, [assign(app, job_id) for _ in range(count)]


def started(app: Dispatch) -> tuple[UUID, UUID]:
    job_id, (assignment_id,) = assigned(app)
    app.start_job(request(), job_id)
    return job_id, assignment_id


def completed(app: Dispatch) -> UUID:
    job_id, _ = started(app)
    app.complete_job(request(), job_id)
    return job_id


def cancelled(app: Dispatch) -> UUID:
    job_id = create(app)
    app.cancel_job(request(), job_id)
    return job_id


def contractor_of(app: Dispatch, job_id: UUID, assignment_id: UUID) -> Actor:
    return contractor(app.get_job(job_id).assignment(assignment_id).contractor_id)


def types_in(app: Dispatch, job_id: UUID) -> list[str]:
    return [record["type"] for record in app.history(job_id)]


def status_of(app: Dispatch, job_id: UUID, assignment_id: UUID) -> str:
    return app.get_job(job_id).assignment(assignment_id).status


# Commands, saved and read back ----------------------------------------------


def test_create_job_saves_a_created_job(app):
    outcome = app.create_job(request(), **job_fields(region="North", priority="High"))

    job = app.get_job(outcome.job.id)
    assert isinstance(outcome, Outcome)
    assert outcome.replayed is False
    assert outcome.position == app.head_position() > 0
    assert job.version == 1
    assert job.status == JobStatus.CREATED
    assert (job.region, job.priority, job.type) == ("North", "High", "HVAC repair")
    assert job.window_start == job_fields()["window_start"]
    assert job.location == job_fields()["location"]


def test_create_job_refuses_invalid_data_and_saves_nothing(app):
    with pytest.raises(InvalidJob):
        app.create_job(request(), **job_fields(duration_minutes=0))

    assert app.head_position() == 0


def test_create_job_by_a_contractor_is_forbidden(app):
    with pytest.raises(Forbidden):
        app.create_job(request(contractor()), **job_fields())

    assert app.head_position() == 0


def test_create_job_by_a_contractor_with_an_idempotency_key_is_forbidden(app):
    with pytest.raises(Forbidden):
        app.create_job(request(contractor(), key="k-1", fingerprint="fp"), **job_fields())

    assert app.head_position() == 0


def test_assign_saves_a_pending_assignment_and_an_assigned_job(app):
    job_id = create(app)
    contractor_id = uuid4()

    outcome = app.assign(request(), job_id, contractor_id=contractor_id, **slot(1))

    job = app.get_job(job_id)
    assert outcome.position == app.head_position()
    assert job.version == 2
    assert job.status == JobStatus.ASSIGNED
    (assignment,) = job.assignments
    assert assignment.contractor_id == contractor_id
    assert assignment.status == AssignmentStatus.PENDING
    assert assignment.start_utc == slot(1)["start_utc"]


def test_assign_refuses_the_same_contractor_twice(app):
    job_id = create(app)
    contractor_id = uuid4()
    assign(app, job_id, contractor_id)

    with pytest.raises(JobNotAssignable):
        assign(app, job_id, contractor_id)

    assert app.get_job(job_id).version == 2


@pytest.mark.parametrize("make", [completed, cancelled])
def test_assign_refuses_a_terminal_job(app, make):
    job_id = make(app)
    version = app.get_job(job_id).version

    with pytest.raises(JobNotAssignable):
        assign(app, job_id)

    assert app.get_job(job_id).version == version


def test_confirm_by_the_contractor_saves_a_confirmed_assignment(app):
    job_id, (assignment_id,) = assigned(app)
    actor = contractor_of(app, job_id, assignment_id)

    app.confirm_assignment(request(actor), job_id, assignment_id)

    assert status_of(app, job_id, assignment_id) == AssignmentStatus.CONFIRMED
    assert app.history(job_id)[-1]["actor"] == {"sub": actor.sub, "roles": ["Contractor"]}


def test_confirm_by_another_contractor_on_the_same_job_is_forbidden(app):
    job_id, (mine, theirs) = assigned(app, 2)

    with pytest.raises(Forbidden):
        app.confirm_assignment(request(contractor_of(app, job_id, mine)), job_id, theirs)

    assert status_of(app, job_id, theirs) == AssignmentStatus.PENDING


def test_confirm_by_a_contractor_of_another_job_is_not_found(app):
    job_id, (assignment_id,) = assigned(app)
    other_job, (other_assignment,) = assigned(app)
    outsider = contractor_of(app, other_job, other_assignment)

    with pytest.raises(JobNotFound):
        app.confirm_assignment(request(outsider), job_id, assignment_id)

    assert status_of(app, job_id, assignment_id) == AssignmentStatus.PENDING


def test_confirm_of_an_unknown_assignment_is_not_found(app):
    job_id, _ = assigned(app)

    with pytest.raises(AssignmentNotFound):
        app.confirm_assignment(request(), job_id, uuid4())


def test_cancel_assignment_saves_a_cancelled_assignment_and_a_created_job(app):
    job_id, (assignment_id,) = assigned(app)

    app.cancel_assignment(request(), job_id, assignment_id, reason="Sick")

    job = app.get_job(job_id)
    assert job.status == JobStatus.CREATED
    assert job.assignment(assignment_id).status == AssignmentStatus.CANCELLED
    assert app.history(job_id)[-1]["data"]["reason"] == "Sick"


def test_cancel_assignment_refuses_an_in_progress_assignment(app):
    job_id, assignment_id = started(app)

    with pytest.raises(AssignmentNotCancellable):
        app.cancel_assignment(request(), job_id, assignment_id)

    assert status_of(app, job_id, assignment_id) == AssignmentStatus.IN_PROGRESS


def test_start_job_saves_an_in_progress_job(app):
    job_id, (pending, confirmed) = assigned(app, 2)
    app.confirm_assignment(request(), job_id, confirmed)

    app.start_job(request(), job_id)

    job = app.get_job(job_id)
    assert job.status == JobStatus.IN_PROGRESS
    assert job.assignment(pending).status == AssignmentStatus.IN_PROGRESS
    assert job.assignment(confirmed).status == AssignmentStatus.IN_PROGRESS


def test_start_job_refuses_a_created_job(app):
    job_id = create(app)

    with pytest.raises(InvalidTransition):
        app.start_job(request(), job_id)

    assert app.get_job(job_id).version == 1


def test_complete_job_saves_a_completed_job(app):
    job_id, assignment_id = started(app)

    app.complete_job(request(), job_id)

    job = app.get_job(job_id)
    assert job.status == JobStatus.COMPLETED
    assert job.assignment(assignment_id).status == AssignmentStatus.COMPLETED


def test_complete_job_refuses_an_assigned_job(app):
    job_id, _ = assigned(app)

    with pytest.raises(InvalidTransition):
        app.complete_job(request(), job_id)


def test_cancel_job_saves_the_cancellation_and_cancels_live_assignments(app):
    job_id, (pending, confirmed, dropped) = assigned(app, 3)
    app.confirm_assignment(request(), job_id, confirmed)
    app.cancel_assignment(request(), job_id, dropped)

    outcome = app.cancel_job(request(dispatcher("d-5")), job_id, reason="Storm",
                             reason_code="Weather")

    job = app.get_job(job_id)
    assert job.status == JobStatus.CANCELLED
    assert {a.status for a in job.assignments} == {AssignmentStatus.CANCELLED}
    assert [ref["assignmentId"] for ref in app.history(job_id)[-1]["data"][
        "cancelledAssignments"]] == [str(pending), str(confirmed)]
    assert job.cancellation["reason"] == "Storm"
    assert job.cancellation["reasonCode"] == "Weather"
    assert job.cancellation["cancelledBy"] == "d-5"
    assert types_in(app, job_id)[-3:] == ["AssignmentCancelled", "AssignmentCancelled",
                                          "JobCancelled"]
    assert outcome.position == app.head_position()


def test_cancel_job_appends_its_events_at_consecutive_positions(app):
    job_id, _ = assigned(app, 2)

    outcome = app.cancel_job(request(), job_id)

    notifications = app.recorder.select_notifications(outcome.position - 2, limit=10)
    assert [n.id for n in notifications] == [outcome.position - 2,
                                             outcome.position - 1, outcome.position]
    assert {n.originator_id for n in notifications} == {job_id}
    assert [n.originator_version for n in notifications] == [4, 5, 6]


def test_cancel_job_refuses_a_completed_job(app):
    job_id = completed(app)

    with pytest.raises(JobCompleted):
        app.cancel_job(request(), job_id)

    assert app.get_job(job_id).status == JobStatus.COMPLETED


def test_cancel_job_refuses_an_already_cancelled_job(app):
    job_id = cancelled(app)

    with pytest.raises(JobAlreadyCancelled):
        app.cancel_job(request(), job_id)

    assert types_in(app, job_id) == ["JobCreated", "JobCancelled"]


def test_cancel_job_refuses_an_already_cancelled_job_under_a_new_key(app):
    job_id = create(app)
    app.cancel_job(request(key="first", fingerprint="fp"), job_id)

    with pytest.raises(JobAlreadyCancelled):
        app.cancel_job(request(key="second", fingerprint="fp"), job_id)

    assert types_in(app, job_id) == ["JobCreated", "JobCancelled"]


def test_events_are_stored_under_their_explicit_topics(app):
    job_id, _ = assigned(app)
    app.cancel_job(request(), job_id)

    stored = app.recorder.select_events(job_id)

    assert [e.topic for e in stored] == ["smartscheduler.JobCreated",
                                         "smartscheduler.AssignmentCreated",
                                         "smartscheduler.AssignmentCancelled",
                                         "smartscheduler.JobCancelled"]


def test_a_fresh_application_on_the_same_database_reads_the_same_job(app, test_settings):
    job_id, (assignment_id,) = assigned(app, 1)
    app.confirm_assignment(request(), job_id, assignment_id)
    fresh = build_dispatch(test_settings)

    try:
        job = fresh.get_job(job_id)
    finally:
        fresh.close()

    original = app.get_job(job_id)
    assert job.version == original.version == 3
    assert job.assignments == original.assignments
    assert job.status == original.status == JobStatus.ASSIGNED


# Reading jobs: not found, versions -------------------------------------------


@pytest.mark.parametrize("read", [
    lambda app, job_id: app.get_job(job_id),
    lambda app, job_id: app.get_job(job_id, actor=dispatcher()),
    lambda app, job_id: app.history(job_id),
    lambda app, job_id: app.assign(request(), job_id, contractor_id=uuid4(), **slot()),
    lambda app, job_id: app.confirm_assignment(request(), job_id, uuid4()),
    lambda app, job_id: app.cancel_assignment(request(), job_id, uuid4()),
    lambda app, job_id: app.start_job(request(), job_id),
    lambda app, job_id: app.complete_job(request(), job_id),
    lambda app, job_id: app.cancel_job(request(), job_id),
], ids=["get_job", "get_job-as-staff", "history", "assign", "confirm",
        "cancel_assignment", "start", "complete", "cancel"])
def test_an_unknown_job_is_not_found(app, read):
    create(app)
    unknown = uuid4()

    with pytest.raises(JobNotFound) as refused:
        read(app, unknown)

    assert refused.value.job_id == unknown


def test_get_job_at_each_version_returns_the_job_as_it_was(app):
    job_id, (assignment_id,) = assigned(app)
    app.start_job(request(), job_id)
    app.complete_job(request(), job_id)

    versions = [app.get_job(job_id, version=n) for n in (1, 2, 3, 4)]

    assert [j.version for j in versions] == [1, 2, 3, 4]
    assert [j.status for j in versions] == ["Created", "Assigned", "InProgress",
                                            "Completed"]
    assert versions[0].assignments == []
    assert [j.assignment(assignment_id).status for j in versions[1:]] == [
        "Pending", "InProgress", "Completed"]


@pytest.mark.parametrize("version", [0, -1, 3, 100])
def test_get_job_at_a_version_it_never_had_is_version_not_found(app, version):
    job_id, _ = assigned(app)

    with pytest.raises(VersionNotFound) as refused:
        app.get_job(job_id, version=version)

    assert refused.value.version == version
    assert refused.value.current_version == 2


def test_get_job_at_the_current_version_is_the_current_job(app):
    job_id, _ = assigned(app)

    job = app.get_job(job_id, version=2)

    assert job.version == 2
    assert job.status == JobStatus.ASSIGNED


# History (audit trail) -------------------------------------------------------


def test_history_lists_every_event_in_version_order_with_actor_and_request(app):
    create_request = request(dispatcher("d-1"))
    job_id = app.create_job(create_request, **job_fields()).job.id
    assign_request = request(admin("a-1"))
    contractor_id = uuid4()
    assignment_id = app.assign(assign_request, job_id, contractor_id=contractor_id,
                               **slot()).job.assignments[0].id
    cancel_request = request(dispatcher("d-2"))
    app.cancel_job(cancel_request, job_id, reason="Duplicate", reason_code="Duplicate")

    records = app.history(job_id)

    assert [r["version"] for r in records] == [1, 2, 3, 4]
    assert [r["type"] for r in records] == ["JobCreated", "AssignmentCreated",
                                            "AssignmentCancelled", "JobCancelled"]
    assert [r["actor"] for r in records] == [
        {"sub": "d-1", "roles": ["Dispatcher"]}, {"sub": "a-1", "roles": ["Admin"]},
        {"sub": "d-2", "roles": ["Dispatcher"]}, {"sub": "d-2", "roles": ["Dispatcher"]}]
    assert [r["requestId"] for r in records] == [
        create_request.request_id, assign_request.request_id,
        cancel_request.request_id, cancel_request.request_id]
    assert records[-1]["data"]["cancelledAssignments"] == [
        {"assignmentId": str(assignment_id), "contractorId": str(contractor_id)}]
    assert records[-1]["data"]["cancelledBy"] == "d-2"


def test_history_records_are_the_catalog_data_of_the_stored_events(app):
    job_id, _ = assigned(app)
    app.cancel_job(request(), job_id)

    records = app.history(job_id)

    events = list(app.events.get(job_id))
    assert [r["data"] for r in records] == [event_data(e) for e in events]
    assert [r["occurredAt"] for r in records] == [format_time(e.timestamp)
                                                  for e in events]
    assert all(r["occurredAt"].endswith("Z") for r in records)
    assert set(EVENT_TYPES.values()) >= {r["type"] for r in records}
    assert set(records[0]) == {"version", "type", "occurredAt", "actor", "requestId",
                               "data"}


def test_history_by_staff_is_allowed(app):
    job_id = create(app)

    records = app.history(job_id, actor=admin())

    assert [r["type"] for r in records] == ["JobCreated"]


def test_history_by_a_contractor_is_forbidden_even_for_their_own_job(app):
    job_id, (assignment_id,) = assigned(app)

    with pytest.raises(Forbidden):
        app.history(job_id, actor=contractor_of(app, job_id, assignment_id))


# Contractor visibility ---------------------------------------------------------


def test_a_contractor_reads_a_job_they_are_assigned_to(app):
    job_id, (assignment_id,) = assigned(app)

    job = app.get_job(job_id, actor=contractor_of(app, job_id, assignment_id))

    assert job.id == job_id


def test_a_contractor_reads_an_earlier_version_of_their_job(app):
    job_id, (assignment_id,) = assigned(app)

    job = app.get_job(job_id, actor=contractor_of(app, job_id, assignment_id), version=1)

    assert job.version == 1
    assert job.assignments == []


def test_a_contractor_does_not_find_a_job_that_is_not_theirs(app):
    job_id, _ = assigned(app)

    with pytest.raises(JobNotFound):
        app.get_job(job_id, actor=contractor())


def test_a_contractor_does_not_find_a_job_even_at_a_bad_version(app):
    job_id, _ = assigned(app)

    with pytest.raises(JobNotFound):
        app.get_job(job_id, actor=contractor(), version=99)


@pytest.mark.parametrize("command", [
    lambda app, job_id, who: app.create_job(request(who), **job_fields()),
    lambda app, job_id, who: app.assign(request(who), job_id, contractor_id=uuid4(),
                                        **slot()),
    lambda app, job_id, who: app.cancel_assignment(request(who), job_id, uuid4()),
    lambda app, job_id, who: app.start_job(request(who), job_id),
    lambda app, job_id, who: app.complete_job(request(who), job_id),
    lambda app, job_id, who: app.cancel_job(request(who), job_id),
    lambda app, job_id, who: app.history(job_id, actor=who),
], ids=["create", "assign", "cancel_assignment", "start", "complete", "cancel",
        "history"])
def test_staff_only_commands_by_a_contractor_are_forbidden_before_the_job_is_loaded(
        app, command):
    unknown_job = uuid4()

    with pytest.raises(Forbidden):
        command(app, unknown_job, contractor())

    assert app.head_position() == 0


def test_a_contractor_cannot_cancel_their_own_job(app):
    job_id, (assignment_id,) = assigned(app)

    with pytest.raises(Forbidden):
        app.cancel_job(request(contractor_of(app, job_id, assignment_id)), job_id)

    assert app.get_job(job_id).status == JobStatus.ASSIGNED


# expected_version (If-Match) -----------------------------------------------------


@pytest.mark.parametrize("command", [
    lambda app, job_id, v: app.assign(request(), job_id, contractor_id=uuid4(),
                                      expected_version=v, **slot()),
    lambda app, job_id, v: app.start_job(request(), job_id, expected_version=v),
    lambda app, job_id, v: app.cancel_job(request(), job_id, expected_version=v),
], ids=["assign", "start", "cancel"])
def test_a_stale_expected_version_is_a_precondition_failure(app, command):
    job_id, _ = assigned(app)

    with pytest.raises(PreconditionFailed) as refused:
        command(app, job_id, 1)

    assert refused.value.current_version == 2
    assert refused.value.expected == 1
    assert app.get_job(job_id).version == 2


def test_a_future_expected_version_is_a_precondition_failure(app):
    job_id = create(app)

    with pytest.raises(PreconditionFailed) as refused:
        app.cancel_job(request(), job_id, expected_version=7)

    assert refused.value.current_version == 1


def test_the_current_expected_version_lets_the_command_through(app):
    job_id, (assignment_id,) = assigned(app)

    app.confirm_assignment(request(), job_id, assignment_id, expected_version=2)
    app.cancel_job(request(), job_id, expected_version=3)

    assert app.get_job(job_id).version == 5


def test_cancel_assignment_checks_the_expected_version(app):
    job_id, (first, _) = assigned(app, 2)

    with pytest.raises(PreconditionFailed) as refused:
        app.cancel_assignment(request(), job_id, first, expected_version=2)

    assert refused.value.current_version == 3
    assert status_of(app, job_id, first) == AssignmentStatus.PENDING


def test_complete_job_checks_the_expected_version(app):
    job_id, _ = started(app)

    with pytest.raises(PreconditionFailed) as refused:
        app.complete_job(request(), job_id, expected_version=2)

    assert refused.value.current_version == 3
    assert app.get_job(job_id).status == JobStatus.IN_PROGRESS


def test_confirm_checks_the_expected_version(app):
    job_id, (assignment_id,) = assigned(app)

    with pytest.raises(PreconditionFailed) as refused:
        app.confirm_assignment(request(), job_id, assignment_id, expected_version=1)

    assert refused.value.current_version == 2
    assert status_of(app, job_id, assignment_id) == AssignmentStatus.PENDING


# Idempotency -------------------------------------------------------------------


def test_create_with_the_same_key_and_fingerprint_returns_the_same_job(app):
    first = app.create_job(request(key="create-1", fingerprint="fp"), **job_fields())

    second = app.create_job(request(key="create-1", fingerprint="fp"), **job_fields())

    assert second.replayed is True
    assert second.position is None
    assert first.replayed is False
    assert second.job.id == first.job.id
    assert types_in(app, first.job.id) == ["JobCreated"]
    assert app.head_position() == first.position


def test_create_with_a_key_gives_a_job_id_derived_from_the_key(app):
    first = app.create_job(request(key="create-a", fingerprint="fp"), **job_fields())
    second = app.create_job(request(key="create-b", fingerprint="fp"), **job_fields())

    ids = {first.job.id, second.job.id}

    assert len(ids) == 2
    assert first.job.id.version == 5
    assert IDEMPOTENCY_NAMESPACE not in ids


def test_create_with_the_same_key_and_a_different_fingerprint_is_refused(app):
    first = app.create_job(request(key="create-2", fingerprint="fp-1"), **job_fields())

    with pytest.raises(IdempotencyKeyReused):
        app.create_job(request(key="create-2", fingerprint="fp-2"),
                       **job_fields(type="Plumbing"))

    assert types_in(app, first.job.id) == ["JobCreated"]
    assert app.get_job(first.job.id).type == "HVAC repair"


def test_create_without_a_key_makes_a_new_job_each_time(app):
    first = app.create_job(request(), **job_fields())

    second = app.create_job(request(), **job_fields())

    assert first.job.id != second.job.id
    assert second.replayed is False


def test_cancel_with_the_same_key_replays_and_appends_nothing(app):
    job_id, _ = assigned(app)
    app.cancel_job(request(key="cancel-1", fingerprint="fp"), job_id)
    position = app.head_position()

    again = app.cancel_job(request(key="cancel-1", fingerprint="fp"), job_id)

    assert again.replayed is True
    assert again.job.status == JobStatus.CANCELLED
    assert app.head_position() == position
    assert types_in(app, job_id).count("JobCancelled") == 1


def test_cancel_replay_with_a_stale_expected_version_still_replays(app):
    job_id, _ = assigned(app)
    app.cancel_job(request(key="cancel-2", fingerprint="fp"), job_id, expected_version=2)

    again = app.cancel_job(request(key="cancel-2", fingerprint="fp"), job_id,
                           expected_version=2)

    assert again.replayed is True
    assert again.job.version == 4
    assert types_in(app, job_id).count("JobCancelled") == 1


def test_cancel_with_the_same_key_and_a_different_fingerprint_is_refused(app):
    job_id = create(app)
    app.cancel_job(request(key="cancel-3", fingerprint="fp-1"), job_id, reason="a")

    with pytest.raises(IdempotencyKeyReused):
        app.cancel_job(request(key="cancel-3", fingerprint="fp-2"), job_id, reason="b")

    assert app.get_job(job_id).cancellation["reason"] == "a"


def test_assign_with_the_same_key_twice_makes_one_assignment(app):
    job_id = create(app)
    contractor_id = uuid4()

    first = app.assign(request(key="assign-1", fingerprint="fp"), job_id,
                       contractor_id=contractor_id, **slot())
    second = app.assign(request(key="assign-1", fingerprint="fp"), job_id,
                        contractor_id=contractor_id, **slot())

    assert first.replayed is False
    assert second.replayed is True
    assert len(app.get_job(job_id).assignments) == 1
    assert types_in(app, job_id) == ["JobCreated", "AssignmentCreated"]


def assign_with_key(app: Dispatch, job_id: UUID, key: str) -> UUID:
    outcome = app.assign(request(key=key, fingerprint="fp"), job_id,
                         contractor_id=uuid4(), **slot())
    return outcome.job.assignments[-1].id


def test_assign_with_a_key_gives_an_assignment_id_derived_from_the_key(app):
    job_a, job_b = create(app), create(app)

    first = assign_with_key(app, job_a, "assign-2")
    second = assign_with_key(app, job_b, "assign-2")

    assert first != second
    assert first.version == second.version == 5


def test_a_replayed_command_is_still_hidden_from_a_contractor_not_on_the_job(app):
    job_id, _ = assigned(app)
    app.cancel_job(request(key="cancel-4", fingerprint="fp"), job_id)
    outsider = contractor()

    with pytest.raises(JobNotFound):
        app.confirm_assignment(request(outsider, key="cancel-4", fingerprint="fp"),
                               job_id, uuid4())


# Snapshots ----------------------------------------------------------------------


def churned_job(app: Dispatch, rounds: int) -> tuple[UUID, UUID, UUID]:
    """A job with 1 + 2 * rounds + 1 events: assign/unassign loops, then one more."""
    job_id = create(app)
    contractor_id = uuid4()
    for _ in range(rounds):
        assignment_id = assign(app, job_id, contractor_id)
        app.cancel_assignment(request(), job_id, assignment_id)
    last = assign(app, job_id, contractor_id)
    return job_id, contractor_id, last


def test_a_job_with_more_than_a_hundred_events_loads_with_its_version_and_state(app):
    job_id, contractor_id, last = churned_job(app, rounds=55)

    job = app.get_job(job_id)

    assert job.version == 112
    assert len(app.history(job_id)) == job.version
    assert job.status == JobStatus.ASSIGNED
    assert len(job.assignments) == 56
    assert [a.status for a in job.assignments[:-1]] == [AssignmentStatus.CANCELLED] * 55
    assert job.assignment(last).status == AssignmentStatus.PENDING
    assert {a.contractor_id for a in job.assignments} == {contractor_id}


def test_a_job_with_more_than_a_hundred_events_has_snapshots(app):
    job_id, _, _ = churned_job(app, rounds=55)

    snapshots = list(app.snapshots.get(job_id))

    assert [s.originator_version for s in snapshots] == [50, 100]


def test_the_latest_snapshot_holds_the_state_the_events_build(app):
    job_id, _, _ = churned_job(app, rounds=55)

    (snapshot,) = app.snapshots.get(job_id, desc=True, limit=1)

    from_snapshot = snapshot.mutate(None)
    from_events = functools.reduce(lambda job, event: event.mutate(job),
                                   app.events.get(job_id, lte=100), None)
    assert from_snapshot.version == from_events.version == 100
    assert vars(from_snapshot) == vars(from_events)
    assert isinstance(from_snapshot.assignments[0].id, UUID)
    assert from_snapshot.assignments[0].updated_at.tzinfo is not None


def test_a_snapshotted_job_keeps_working_and_reads_back_in_a_fresh_application(
        app, test_settings):
    job_id, _, last = churned_job(app, rounds=55)
    app.confirm_assignment(request(), job_id, last)
    app.cancel_job(request(key="big-cancel", fingerprint="fp"), job_id)
    fresh = build_dispatch(test_settings)

    try:
        job = fresh.get_job(job_id)
        replay = fresh.cancel_job(request(key="big-cancel", fingerprint="fp"), job_id)
    finally:
        fresh.close()

    assert job.version == 115 == len(app.history(job_id))
    assert job.status == JobStatus.CANCELLED
    assert job.assignment(last).status == AssignmentStatus.CANCELLED
    assert replay.replayed is True


def test_a_snapshotted_job_can_be_read_at_a_version_between_snapshots(app):
    job_id, _, _ = churned_job(app, rounds=55)

    at_75 = app.get_job(job_id, version=75)
    at_100 = app.get_job(job_id, version=100)

    assert at_75.version == 75
    assert at_75.status == JobStatus.CREATED
    assert len(at_75.assignments) == 37
    assert at_100.version == 100
    assert at_100.status == JobStatus.ASSIGNED
    assert at_100.assignments[-1].status == AssignmentStatus.PENDING
