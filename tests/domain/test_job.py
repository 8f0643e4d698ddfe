"""The Job aggregate on its own: every transition and every refusal, no database."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from domain.catalog import EVENT_TYPES
from domain.errors import (
    AssignmentNotCancellable,
    AssignmentNotConfirmable,
    AssignmentNotFound,
    DomainError,
    Forbidden,
    IdempotencyKeyReused,
    InvalidJob,
    InvalidTransition,
    JobAlreadyCancelled,
    JobCompleted,
    JobNotAssignable,
)
from domain.job import Job
from domain.values import Actor, AssignmentStatus, JobStatus, ReasonCode, Request
from tests.factories import (
    NOW,
    admin,
    contractor,
    dispatcher,
    job_fields,
    new_job,
    request,
    slot,
)

# Builders -------------------------------------------------------------------


def assign(job: Job, contractor_id: UUID | None = None, **kwargs: Any) -> UUID:
    return job.assign(request=request(), contractor_id=contractor_id or uuid4(),
                      **(kwargs or slot()))


def assigned_job(count: int = 1) -> tuple[Job, list[UUID]]:
    job = new_job()
    ids = [assign(job) for _ in range(count)]
    return job, ids


def started_job() -> tuple[Job, UUID]:
    job, (assignment_id,) = assigned_job()
    job.start(request=request())
    return job, assignment_id


def completed_job() -> Job:
    job, _ = started_job()
    job.complete(request=request())
    return job


def new_cancelled_job() -> Job:
    job = new_job()
    job.cancel(request=request())
    return job


def status_of(job: Job, assignment_id: UUID) -> str:
    return job.assignment(assignment_id).status


def contractor_of(job: Job, assignment_id: UUID) -> Actor:
    return contractor(job.assignment(assignment_id).contractor_id)


def rebuilt(events: list[Any]) -> Job:
    return functools.reduce(lambda aggregate, event: event.mutate(aggregate), events, None)


def state(job: Job) -> dict[str, Any]:
    return {k: v for k, v in vars(job).items() if k != "_pending_events"}


TERMINAL_JOBS = [pytest.param(completed_job, id="Completed"),
                 pytest.param(new_cancelled_job, id="Cancelled")]


# create ---------------------------------------------------------------------


def test_create_makes_a_created_job_with_the_given_fields():
    fields = job_fields(priority="Rush", region="North", required_skills=["hvac", "gas"])

    job = Job.create(request=request(), **fields)

    assert job.status == JobStatus.CREATED
    assert job.version == 1
    assert (job.type, job.priority, job.region) == ("HVAC repair", "Rush", "North")
    assert job.required_skills == ["hvac", "gas"]
    assert (job.window_start, job.window_end) == (fields["window_start"],
                                                  fields["window_end"])
    assert job.assignments == []
    assert job.cancellation is None
    assert job.created_at == job.updated_at


def test_create_uses_the_given_id():
    job_id = uuid4()

    job = new_job(id=job_id)

    assert job.id == job_id


def test_create_drops_repeated_skills_and_keeps_their_order():
    job = new_job(required_skills=["gas", "hvac", "gas"])

    assert job.required_skills == ["gas", "hvac"]


def test_create_accepts_an_admin():
    job = Job.create(request=request(admin()), **job_fields())

    assert job.status == JobStatus.CREATED


def test_create_accepts_a_window_with_a_non_utc_offset():
    plus_two = timezone(timedelta(hours=2))
    start = datetime(2030, 1, 15, 11, 0, tzinfo=plus_two)

    job = new_job(window_start=start, window_end=start + timedelta(hours=1))

    assert job.window_start == NOW


@pytest.mark.parametrize("end_offset", [timedelta(0), timedelta(hours=-1)])
def test_create_refuses_a_window_that_does_not_end_after_it_starts(end_offset):
    with pytest.raises(InvalidJob) as refused:
        new_job(window_end=NOW + end_offset)

    assert refused.value.field == "serviceWindow"


@pytest.mark.parametrize("name, field", [("window_start", "serviceWindow.start"),
                                         ("window_end", "serviceWindow.end")])
def test_create_refuses_a_naive_window_datetime(name, field):
    naive = {"window_start": NOW, "window_end": NOW + timedelta(hours=4)}[name].replace(
        tzinfo=None)

    with pytest.raises(InvalidJob) as refused:
        new_job(**{name: naive})

    assert refused.value.field == field


@pytest.mark.parametrize("minutes", [0, -30])
def test_create_refuses_a_duration_that_is_not_positive(minutes):
    with pytest.raises(InvalidJob) as refused:
        new_job(duration_minutes=minutes)

    assert refused.value.field == "durationMinutes"


@pytest.mark.parametrize("actor", [contractor(), Actor("nobody", ())],
                         ids=["contractor", "no-roles"])
def test_create_refuses_an_actor_who_is_not_staff(actor):
    with pytest.raises(Forbidden):
        Job.create(request=request(actor), **job_fields())


def test_create_checks_the_role_before_the_data():
    with pytest.raises(Forbidden):
        Job.create(request=request(contractor()), **job_fields(duration_minutes=0))


# assign ---------------------------------------------------------------------


def test_assign_moves_a_created_job_to_assigned_with_a_pending_assignment():
    job = new_job()
    contractor_id = uuid4()

    assignment_id = job.assign(request=request(), contractor_id=contractor_id, **slot(1))

    assert job.status == JobStatus.ASSIGNED
    assert job.version == 2
    assignment = job.assignment(assignment_id)
    assert assignment.contractor_id == contractor_id
    assert assignment.status == AssignmentStatus.PENDING
    assert (assignment.start_utc, assignment.end_utc) == (
        NOW + timedelta(hours=1), NOW + timedelta(hours=3))


def test_assign_uses_the_given_assignment_id():
    job = new_job()
    wanted = uuid4()

    assignment_id = job.assign(request=request(), contractor_id=uuid4(),
                               assignment_id=wanted, **slot())

    assert assignment_id == wanted
    assert [a.id for a in job.assignments] == [wanted]


def test_assign_keeps_an_assigned_job_assigned():
    job, _ = assigned_job()

    assign(job)

    assert job.status == JobStatus.ASSIGNED
    assert len(job.assignments) == 2


def test_assign_keeps_an_in_progress_job_in_progress():
    job, _ = started_job()

    new_id = assign(job)

    assert job.status == JobStatus.IN_PROGRESS
    assert status_of(job, new_id) == AssignmentStatus.PENDING


@pytest.mark.parametrize("make", TERMINAL_JOBS)
def test_assign_refuses_a_terminal_job(make):
    job = make()
    version = job.version

    with pytest.raises(JobNotAssignable) as refused:
        assign(job)

    assert refused.value.current_status == job.status
    assert refused.value.job_id == job.id
    assert job.version == version


def test_assign_refuses_a_second_live_assignment_of_the_same_contractor():
    job = new_job()
    contractor_id = uuid4()
    assign(job, contractor_id)

    with pytest.raises(JobNotAssignable):
        assign(job, contractor_id, **slot(5))

    assert len(job.assignments) == 1


def test_assign_refuses_a_contractor_whose_assignment_is_in_progress():
    job, assignment_id = started_job()

    with pytest.raises(JobNotAssignable):
        assign(job, job.assignment(assignment_id).contractor_id)


def test_assign_accepts_a_contractor_again_once_their_assignment_is_cancelled():
    job = new_job()
    contractor_id = uuid4()
    first = assign(job, contractor_id)
    job.cancel_assignment(request=request(), assignment_id=first)

    second = assign(job, contractor_id)

    assert status_of(job, first) == AssignmentStatus.CANCELLED
    assert status_of(job, second) == AssignmentStatus.PENDING
    assert job.status == JobStatus.ASSIGNED


def test_assign_refuses_a_contractor_actor():
    job = new_job()

    with pytest.raises(Forbidden):
        job.assign(request=request(contractor()), contractor_id=uuid4(), **slot())


@pytest.mark.parametrize("start, end, field", [
    (NOW.replace(tzinfo=None), NOW + timedelta(hours=1), "startUtc"),
    (NOW, (NOW + timedelta(hours=1)).replace(tzinfo=None), "endUtc"),
    (NOW, NOW, "endUtc"),
    (NOW, NOW - timedelta(hours=1), "endUtc"),
], ids=["naive-start", "naive-end", "empty", "backwards"])
def test_assign_refuses_a_bad_slot(start, end, field):
    job = new_job()

    with pytest.raises(InvalidJob) as refused:
        job.assign(request=request(), contractor_id=uuid4(), start_utc=start, end_utc=end)

    assert refused.value.field == field
    assert job.assignments == []


# confirm --------------------------------------------------------------------


def test_confirm_by_the_assigned_contractor_confirms_the_assignment():
    job, (assignment_id,) = assigned_job()

    job.confirm_assignment(request=request(contractor_of(job, assignment_id)),
                           assignment_id=assignment_id)

    assert status_of(job, assignment_id) == AssignmentStatus.CONFIRMED
    assert job.status == JobStatus.ASSIGNED


@pytest.mark.parametrize("actor", [dispatcher(), admin()], ids=["dispatcher", "admin"])
def test_confirm_by_staff_confirms_the_assignment(actor):
    job, (assignment_id,) = assigned_job()

    job.confirm_assignment(request=request(actor), assignment_id=assignment_id)

    assert status_of(job, assignment_id) == AssignmentStatus.CONFIRMED


def test_confirm_by_another_contractor_is_forbidden():
    job, (mine, theirs) = assigned_job(2)

    with pytest.raises(Forbidden):
        job.confirm_assignment(request=request(contractor_of(job, mine)),
                               assignment_id=theirs)

    assert status_of(job, theirs) == AssignmentStatus.PENDING


def test_confirm_refuses_an_assignment_that_is_already_confirmed():
    job, (assignment_id,) = assigned_job()
    job.confirm_assignment(request=request(), assignment_id=assignment_id)

    with pytest.raises(AssignmentNotConfirmable):
        job.confirm_assignment(request=request(), assignment_id=assignment_id)


def test_confirm_refuses_a_cancelled_assignment():
    job, (assignment_id, _) = assigned_job(2)
    job.cancel_assignment(request=request(), assignment_id=assignment_id)

    with pytest.raises(AssignmentNotConfirmable):
        job.confirm_assignment(request=request(), assignment_id=assignment_id)


def test_confirm_refuses_an_in_progress_assignment():
    job, assignment_id = started_job()

    with pytest.raises(AssignmentNotConfirmable) as refused:
        job.confirm_assignment(request=request(), assignment_id=assignment_id)

    assert refused.value.current_status == JobStatus.IN_PROGRESS


def test_confirm_refuses_a_late_assignment_of_a_completed_job():
    job, _ = started_job()
    late = assign(job)
    job.complete(request=request())

    with pytest.raises(AssignmentNotConfirmable) as refused:
        job.confirm_assignment(request=request(), assignment_id=late)

    assert refused.value.current_status == JobStatus.COMPLETED


def test_confirm_refuses_an_assignment_of_a_cancelled_job():
    job, (assignment_id,) = assigned_job()
    job.cancel(request=request())

    with pytest.raises(AssignmentNotConfirmable) as refused:
        job.confirm_assignment(request=request(), assignment_id=assignment_id)

    assert refused.value.current_status == JobStatus.CANCELLED


def test_confirm_of_an_unknown_assignment_is_not_found():
    job, _ = assigned_job()
    unknown = uuid4()

    with pytest.raises(AssignmentNotFound) as refused:
        job.confirm_assignment(request=request(), assignment_id=unknown)

    assert refused.value.assignment_id == unknown
    assert refused.value.job_id == job.id


# cancel_assignment ----------------------------------------------------------


def test_cancel_assignment_of_the_only_assignment_returns_the_job_to_created():
    job, (assignment_id,) = assigned_job()

    job.cancel_assignment(request=request(), assignment_id=assignment_id,
                          reason="Van broke down")

    assert status_of(job, assignment_id) == AssignmentStatus.CANCELLED
    assert job.status == JobStatus.CREATED
    assert job.collect_events()[-1].reason == "Van broke down"


def test_cancel_assignment_of_a_confirmed_assignment_returns_the_job_to_created():
    job, (assignment_id,) = assigned_job()
    job.confirm_assignment(request=request(), assignment_id=assignment_id)

    job.cancel_assignment(request=request(), assignment_id=assignment_id)

    assert status_of(job, assignment_id) == AssignmentStatus.CANCELLED
    assert job.status == JobStatus.CREATED


def test_cancel_assignment_keeps_the_job_assigned_while_another_is_left():
    job, (first, second) = assigned_job(2)

    job.cancel_assignment(request=request(), assignment_id=first)

    assert job.status == JobStatus.ASSIGNED
    assert status_of(job, second) == AssignmentStatus.PENDING


def test_cancel_assignment_of_a_late_pending_assignment_keeps_the_job_in_progress():
    job, _ = started_job()
    late = assign(job)

    job.cancel_assignment(request=request(), assignment_id=late)

    assert status_of(job, late) == AssignmentStatus.CANCELLED
    assert job.status == JobStatus.IN_PROGRESS


def test_cancel_assignment_refuses_an_in_progress_assignment():
    job, assignment_id = started_job()

    with pytest.raises(AssignmentNotCancellable) as refused:
        job.cancel_assignment(request=request(), assignment_id=assignment_id)

    assert refused.value.current_status == JobStatus.IN_PROGRESS
    assert status_of(job, assignment_id) == AssignmentStatus.IN_PROGRESS


def test_cancel_assignment_refuses_an_already_cancelled_assignment():
    job, (first, _) = assigned_job(2)
    job.cancel_assignment(request=request(), assignment_id=first)

    with pytest.raises(AssignmentNotCancellable):
        job.cancel_assignment(request=request(), assignment_id=first)


def test_cancel_assignment_refuses_a_completed_assignment():
    job, assignment_id = started_job()
    job.complete(request=request())

    with pytest.raises(AssignmentNotCancellable):
        job.cancel_assignment(request=request(), assignment_id=assignment_id)

    assert status_of(job, assignment_id) == AssignmentStatus.COMPLETED


def test_cancel_assignment_refuses_a_late_assignment_of_a_completed_job():
    job, _ = started_job()
    late = assign(job)
    job.complete(request=request())

    with pytest.raises(AssignmentNotCancellable):
        job.cancel_assignment(request=request(), assignment_id=late)


def test_cancel_assignment_of_an_unknown_id_is_not_found():
    job, _ = assigned_job()

    with pytest.raises(AssignmentNotFound):
        job.cancel_assignment(request=request(), assignment_id=uuid4())


def test_cancel_assignment_by_a_contractor_is_forbidden():
    job, (assignment_id,) = assigned_job()

    with pytest.raises(Forbidden):
        job.cancel_assignment(request=request(contractor_of(job, assignment_id)),
                              assignment_id=assignment_id)

    assert status_of(job, assignment_id) == AssignmentStatus.PENDING


# start ----------------------------------------------------------------------


def test_start_moves_pending_and_confirmed_assignments_to_in_progress():
    job, (pending, confirmed, dropped) = assigned_job(3)
    job.confirm_assignment(request=request(), assignment_id=confirmed)
    job.cancel_assignment(request=request(), assignment_id=dropped)

    job.start(request=request())

    assert job.status == JobStatus.IN_PROGRESS
    assert status_of(job, pending) == AssignmentStatus.IN_PROGRESS
    assert status_of(job, confirmed) == AssignmentStatus.IN_PROGRESS
    assert status_of(job, dropped) == AssignmentStatus.CANCELLED


def test_start_event_lists_the_assignments_it_started():
    job, (first, second) = assigned_job(2)
    job.collect_events()

    job.start(request=request())

    (started,) = job.collect_events()
    assert [a["assignmentId"] for a in started.assignments] == [str(first), str(second)]


def test_start_refuses_a_created_job():
    job = new_job()

    with pytest.raises(InvalidTransition) as refused:
        job.start(request=request())

    assert refused.value.current_status == JobStatus.CREATED


def test_start_refuses_a_job_whose_assignments_were_all_cancelled():
    job, (assignment_id,) = assigned_job()
    job.cancel_assignment(request=request(), assignment_id=assignment_id)

    with pytest.raises(InvalidTransition):
        job.start(request=request())


def test_start_refuses_an_in_progress_job():
    job, _ = started_job()

    with pytest.raises(InvalidTransition):
        job.start(request=request())


def test_start_refuses_an_in_progress_job_with_a_late_pending_assignment():
    job, _ = started_job()
    late = assign(job)

    with pytest.raises(InvalidTransition):
        job.start(request=request())

    assert status_of(job, late) == AssignmentStatus.PENDING


def test_start_refuses_a_completed_job_with_a_late_assignment():
    job, _ = started_job()
    assign(job)
    job.complete(request=request())

    with pytest.raises(InvalidTransition) as refused:
        job.start(request=request())

    assert refused.value.current_status == JobStatus.COMPLETED


@pytest.mark.parametrize("make", TERMINAL_JOBS)
def test_start_refuses_a_terminal_job(make):
    job = make()

    with pytest.raises(InvalidTransition) as refused:
        job.start(request=request())

    assert refused.value.current_status == job.status


def test_start_by_a_contractor_is_forbidden():
    job, (assignment_id,) = assigned_job()

    with pytest.raises(Forbidden):
        job.start(request=request(contractor_of(job, assignment_id)))

    assert job.status == JobStatus.ASSIGNED


# complete -------------------------------------------------------------------


def test_complete_moves_an_in_progress_job_and_its_working_assignments_to_completed():
    job, assignment_id = started_job()

    job.complete(request=request())

    assert job.status == JobStatus.COMPLETED
    assert status_of(job, assignment_id) == AssignmentStatus.COMPLETED


def test_complete_leaves_cancelled_assignments_cancelled():
    job, (dropped, kept) = assigned_job(2)
    job.cancel_assignment(request=request(), assignment_id=dropped)
    job.start(request=request())

    job.complete(request=request())

    assert status_of(job, dropped) == AssignmentStatus.CANCELLED
    assert status_of(job, kept) == AssignmentStatus.COMPLETED


@pytest.mark.parametrize("make", [
    pytest.param(new_job, id="Created"),
    pytest.param(lambda: assigned_job()[0], id="Assigned"),
    *TERMINAL_JOBS,
])
def test_complete_refuses_a_job_that_is_not_in_progress(make):
    job = make()
    status = job.status

    with pytest.raises(InvalidTransition) as refused:
        job.complete(request=request())

    assert refused.value.current_status == status
    assert job.status == status


def test_complete_by_a_contractor_is_forbidden():
    job, assignment_id = started_job()

    with pytest.raises(Forbidden):
        job.complete(request=request(contractor_of(job, assignment_id)))


# cancel ---------------------------------------------------------------------


def test_cancel_moves_a_created_job_to_cancelled_with_one_event():
    job = new_job()
    job.collect_events()
    actor = dispatcher("d-42")

    job.cancel(request=request(actor), reason="Customer called",
               reason_code=ReasonCode.CUSTOMER_REQUEST)

    assert job.status == JobStatus.CANCELLED
    (event,) = job.collect_events()
    assert isinstance(event, Job.Cancelled)
    assert job.cancellation == {"reason": "Customer called",
                                "reasonCode": "CustomerRequest",
                                "cancelledBy": "d-42", "cancelledAt": event.timestamp}


def test_cancel_defaults_the_reason_code_to_other_and_the_reason_to_none():
    job = new_job()

    job.cancel(request=request())

    assert job.cancellation["reasonCode"] == "Other"
    assert job.cancellation["reason"] is None


def test_cancel_of_an_assigned_job_cancels_every_unstarted_assignment():
    job, (pending, confirmed) = assigned_job(2)
    job.confirm_assignment(request=request(), assignment_id=confirmed)

    job.cancel(request=request())

    assert job.status == JobStatus.CANCELLED
    assert status_of(job, pending) == AssignmentStatus.CANCELLED
    assert status_of(job, confirmed) == AssignmentStatus.CANCELLED


def test_cancel_of_an_in_progress_job_cancels_working_and_late_assignments():
    job, working = started_job()
    late = assign(job)

    job.cancel(request=request())

    assert job.status == JobStatus.CANCELLED
    assert status_of(job, working) == AssignmentStatus.CANCELLED
    assert status_of(job, late) == AssignmentStatus.CANCELLED


def test_cancel_collects_one_assignment_cancelled_per_live_assignment_then_cancelled():
    job, (pending, confirmed, dropped) = assigned_job(3)
    job.confirm_assignment(request=request(), assignment_id=confirmed)
    job.cancel_assignment(request=request(), assignment_id=dropped)
    job.collect_events()
    version_before = job.version

    job.cancel(request=request(), reason="Storm")

    events = job.collect_events()
    assert [type(e) for e in events] == [Job.AssignmentCancelled,
                                         Job.AssignmentCancelled, Job.Cancelled]
    assert [e.assignment_id for e in events[:2]] == [pending, confirmed]
    assert [e.originator_version for e in events] == [version_before + 1,
                                                      version_before + 2,
                                                      version_before + 3]
    assert all(e.reason == "Storm" for e in events)
    assert job.collect_events() == []


def test_cancel_event_lists_the_assignments_it_cancelled():
    job, (pending, dropped) = assigned_job(2)
    job.cancel_assignment(request=request(), assignment_id=dropped)

    job.cancel(request=request())

    cancelled = job.collect_events()[-1]
    assert cancelled.cancelled_assignments == [{
        "assignmentId": str(pending),
        "contractorId": str(job.assignment(pending).contractor_id),
    }]


def test_cancel_leaves_an_already_cancelled_assignment_alone():
    job, (dropped, _) = assigned_job(2)
    job.cancel_assignment(request=request(), assignment_id=dropped)
    dropped_at = job.assignment(dropped).updated_at
    job.collect_events()

    job.cancel(request=request())

    assert job.assignment(dropped).updated_at == dropped_at
    cancelled_ids = [e.assignment_id for e in job.collect_events()
                     if isinstance(e, Job.AssignmentCancelled)]
    assert dropped not in cancelled_ids
    assert len(cancelled_ids) == 1


def test_cancel_leaves_a_completed_assignment_alone():
    # No command can leave a Completed assignment on a live job, so set one up
    # through the aggregate's own state-changing helper to check the filter.
    job, (done, live) = assigned_job(2)
    job._set_assignment_status([done], AssignmentStatus.COMPLETED, NOW)
    job.collect_events()

    job.cancel(request=request())

    events = job.collect_events()
    assert [e.assignment_id for e in events[:-1]] == [live]
    assert status_of(job, done) == AssignmentStatus.COMPLETED
    assert events[-1].cancelled_assignments[0]["assignmentId"] == str(live)


def test_cancel_refuses_a_completed_job():
    job = completed_job()
    version = job.version

    with pytest.raises(JobCompleted) as refused:
        job.cancel(request=request())

    assert refused.value.current_status == JobStatus.COMPLETED
    assert job.version == version


def test_cancel_refuses_an_already_cancelled_job():
    job = new_cancelled_job()
    version = job.version

    with pytest.raises(JobAlreadyCancelled) as refused:
        job.cancel(request=request())

    assert refused.value.current_status == JobStatus.CANCELLED
    assert refused.value.job_id == job.id
    assert job.version == version


def test_cancel_by_a_contractor_is_forbidden():
    job, (assignment_id,) = assigned_job()

    with pytest.raises(Forbidden):
        job.cancel(request=request(contractor_of(job, assignment_id)))

    assert job.status == JobStatus.ASSIGNED


# What every event records ---------------------------------------------------


def every_kind_of_event() -> list[Any]:
    actor = Actor("dispatcher-7", ("Dispatcher", "Admin"))
    req = Request(actor, request_id="req-every")
    job = Job.create(request=req, **job_fields())
    first = job.assign(request=req, contractor_id=uuid4(), **slot())
    second = job.assign(request=req, contractor_id=uuid4(), **slot())
    job.confirm_assignment(request=req, assignment_id=first)
    job.cancel_assignment(request=req, assignment_id=second)
    job.start(request=req)
    job.assign(request=req, contractor_id=uuid4(), **slot())
    job.complete(request=req)
    other = Job.create(request=req, **job_fields())
    other.assign(request=req, contractor_id=uuid4(), **slot())
    other.cancel(request=req)
    return job.collect_events() + other.collect_events()


def test_every_event_records_the_actor_and_the_request_id():
    events = every_kind_of_event()

    assert {type(e) for e in events} == set(EVENT_TYPES)
    for event in events:
        assert event.request["actor"] == {"sub": "dispatcher-7",
                                          "roles": ["Dispatcher", "Admin"]}
        assert event.request["requestId"] == "req-every"


def test_every_event_records_the_region():
    job = new_job(region="North")
    assign(job)
    job.cancel(request=request())

    events = job.collect_events()

    assert [e.region for e in events] == ["North"] * 4


def test_every_event_records_the_idempotency_key_and_fingerprint():
    job = Job.create(request=request(key="k-create", fingerprint="fp-1"), **job_fields())

    (created,) = job.collect_events()

    assert created.request["idempotencyKey"] == "k-create"
    assert created.request["fingerprint"] == "fp-1"


def test_the_confirming_contractor_is_the_recorded_actor():
    job, (assignment_id,) = assigned_job()
    actor = contractor_of(job, assignment_id)
    job.collect_events()

    job.confirm_assignment(request=request(actor), assignment_id=assignment_id)

    (confirmed,) = job.collect_events()
    assert confirmed.request["actor"] == {"sub": actor.sub, "roles": ["Contractor"]}


@pytest.mark.parametrize("event_class", [Job, *EVENT_TYPES],
                         ids=lambda cls: cls.__qualname__)
def test_every_event_class_has_an_explicit_smartscheduler_topic(event_class):
    topic = event_class.__dict__.get("TOPIC")

    assert topic is not None
    assert topic.startswith("smartscheduler.")


def test_event_topics_are_all_different():
    topics = [cls.TOPIC for cls in EVENT_TYPES]

    assert len(set(topics)) == len(topics) == 7


def test_the_aggregate_and_its_events_are_all_in_the_catalog():
    nested = {value for value in vars(Job).values()
              if isinstance(value, type) and issubclass(value, Job.Event)
              and value is not Job.Event}

    assert nested == set(EVENT_TYPES)


def test_the_events_rebuild_the_same_job():
    job, (first, _) = assigned_job(2)
    job.confirm_assignment(request=request(), assignment_id=first)
    job.start(request=request())
    job.complete(request=request())

    copy = rebuilt(job.collect_events())

    assert state(copy) == state(job)
    assert copy.version == job.version == 6


# replays (idempotency) ------------------------------------------------------


def test_replays_is_false_without_a_key():
    job = Job.create(request=request(key="k", fingerprint="fp"), **job_fields())

    assert job.replays(request()) is False


def test_replays_is_false_for_a_key_the_job_has_not_seen():
    job = Job.create(request=request(key="k", fingerprint="fp"), **job_fields())

    assert job.replays(request(key="other", fingerprint="fp")) is False


def test_replays_is_true_for_the_same_key_and_fingerprint():
    job = Job.create(request=request(key="k", fingerprint="fp"), **job_fields())

    assert job.replays(request(key="k", fingerprint="fp")) is True


def test_replays_refuses_the_same_key_with_a_different_fingerprint():
    job = Job.create(request=request(key="k", fingerprint="fp"), **job_fields())

    with pytest.raises(IdempotencyKeyReused) as refused:
        job.replays(request(key="k", fingerprint="another"))

    assert refused.value.job_id == job.id


def test_replays_remembers_the_key_of_a_later_command():
    job, _ = assigned_job()
    job.cancel(request=request(key="cancel-1", fingerprint="fp-cancel"))

    assert job.replays(request(key="cancel-1", fingerprint="fp-cancel")) is True
    with pytest.raises(IdempotencyKeyReused):
        job.replays(request(key="cancel-1", fingerprint="fp-other"))


def test_replays_remembers_a_key_with_no_fingerprint():
    job = Job.create(request=request(key="k"), **job_fields())

    assert job.replays(request(key="k")) is True
    with pytest.raises(IdempotencyKeyReused):
        job.replays(request(key="k", fingerprint="fp"))


# is_visible_to --------------------------------------------------------------


@pytest.mark.parametrize("actor", [dispatcher(), admin()], ids=["dispatcher", "admin"])
def test_staff_see_every_job(actor):
    job = new_job()

    assert job.is_visible_to(actor) is True


def test_a_contractor_sees_a_job_they_are_assigned_to():
    job, (assignment_id,) = assigned_job()

    assert job.is_visible_to(contractor_of(job, assignment_id)) is True


def test_a_contractor_does_not_see_a_job_of_someone_else():
    job, _ = assigned_job()

    assert job.is_visible_to(contractor()) is False


def test_a_contractor_does_not_see_an_unassigned_job():
    job = new_job()

    assert job.is_visible_to(contractor()) is False


def test_an_actor_without_the_contractor_role_does_not_see_a_job_with_their_id():
    job, (assignment_id,) = assigned_job()
    sub = str(job.assignment(assignment_id).contractor_id)

    assert job.is_visible_to(Actor(sub, ())) is False


@pytest.mark.parametrize("roles, staff, is_contractor", [
    (("Admin",), True, False),
    (("Dispatcher",), True, False),
    (("Contractor",), False, True),
    (("Contractor", "Dispatcher"), True, False),
    ((), False, False),
])
def test_an_actor_is_staff_or_a_contractor_by_role(roles, staff, is_contractor):
    actor = Actor("someone", roles)

    assert (actor.is_staff, actor.is_contractor) == (staff, is_contractor)


def test_a_request_records_the_actor_request_id_key_and_fingerprint():
    req = Request(Actor("d-1", ("Dispatcher", "Admin")), request_id="r-1",
                  idempotency_key="k-1", fingerprint="fp-1")

    record = req.record()

    assert record == {"actor": {"sub": "d-1", "roles": ["Dispatcher", "Admin"]},
                      "requestId": "r-1", "idempotencyKey": "k-1", "fingerprint": "fp-1"}


def test_errors_are_domain_errors():
    job = new_cancelled_job()

    with pytest.raises(DomainError) as refused:
        job.cancel(request=request())

    assert refused.value.message == "The job is already cancelled."


# Any sequence of commands keeps the job consistent -------------------------


class JobLifecycle(RuleBasedStateMachine):
    """Random commands; refusals leave the job as it was; invariants always hold."""

    def __init__(self) -> None:
        super().__init__()
        self.job = new_job()
        self.events: list[Any] = list(self.job.collect_events())
        self.contractors = [uuid4() for _ in range(3)]

    def _run(self, command: Any) -> None:
        before = state(self.job)
        try:
            command()
        except DomainError:
            assert self.job.collect_events() == []
            assert state(self.job) == before
        else:
            self.events.extend(self.job.collect_events())

    @rule(which=st.integers(0, 2))
    def assign(self, which: int) -> None:
        self._run(lambda: assign(self.job, self.contractors[which]))

    @precondition(lambda self: self.job.assignments)
    @rule(data=st.data())
    def confirm(self, data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(self.job.assignments))
        self._run(lambda: self.job.confirm_assignment(request=request(),
                                                      assignment_id=target.id))

    @precondition(lambda self: self.job.assignments)
    @rule(data=st.data())
    def cancel_assignment(self, data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(self.job.assignments))
        self._run(lambda: self.job.cancel_assignment(request=request(),
                                                     assignment_id=target.id))

    @rule()
    def start(self) -> None:
        self._run(lambda: self.job.start(request=request()))

    @rule()
    def complete(self) -> None:
        self._run(lambda: self.job.complete(request=request()))

    @rule()
    def cancel(self) -> None:
        self._run(lambda: self.job.cancel(request=request()))

    @invariant()
    def version_counts_the_events(self) -> None:
        assert self.job.version == len(self.events)

    @invariant()
    def events_rebuild_the_job(self) -> None:
        assert state(rebuilt(self.events)) == state(self.job)

    @invariant()
    def status_agrees_with_the_assignments(self) -> None:
        statuses = {a.status for a in self.job.assignments}
        unstarted = statuses & {AssignmentStatus.PENDING, AssignmentStatus.CONFIRMED}
        if self.job.status == JobStatus.CREATED:
            assert not unstarted and AssignmentStatus.IN_PROGRESS not in statuses
        if self.job.status == JobStatus.ASSIGNED:
            assert unstarted and AssignmentStatus.IN_PROGRESS not in statuses
        if self.job.status == JobStatus.CANCELLED:
            assert statuses <= {AssignmentStatus.CANCELLED}
        if self.job.status != JobStatus.COMPLETED:
            assert AssignmentStatus.COMPLETED not in statuses

    @invariant()
    def a_contractor_has_at_most_one_live_assignment(self) -> None:
        live = [a.contractor_id for a in self.job.assignments if a.is_live]
        assert len(live) == len(set(live))


TestJobLifecycle = JobLifecycle.TestCase
