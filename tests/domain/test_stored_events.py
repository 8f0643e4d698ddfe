"""Stored events and snapshots outlive the code: a store written before the Job
aggregate's events were made by `@event` methods reads back the same, and what
is written today has the same topics and attributes.

`legacy_store.json` holds the stored records (topic and JSON state) of two jobs
written by that older code: one created, assigned twice, confirmed, unassigned
once, started and completed (with a snapshot of it), and one assigned and
cancelled.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from application.dispatch import Dispatch
from application.settings import Settings
from domain.catalog import EVENT_TYPES, event_data
from domain.job import Job
from domain.values import Actor, AssignmentStatus, JobStatus, Request
from smartscheduler.bootstrap import build_dispatch

LEGACY = json.loads((Path(__file__).parent / "legacy_store.json").read_text())
FIRST, SECOND = (UUID(LEGACY["events"][0][0]), UUID(LEGACY["events"][-1][0]))
C1 = UUID("11111111-1111-1111-1111-111111111111")
C2 = UUID("22222222-2222-2222-2222-222222222222")
STAFF = Actor("dispatcher-7", ("Dispatcher",))
START = datetime(2030, 1, 15, 9, tzinfo=UTC)

TOPICS = {
    Job.Created: "smartscheduler.JobCreated",
    Job.AssignmentCreated: "smartscheduler.AssignmentCreated",
    Job.AssignmentConfirmed: "smartscheduler.AssignmentConfirmed",
    Job.AssignmentCancelled: "smartscheduler.AssignmentCancelled",
    Job.Started: "smartscheduler.JobStarted",
    Job.Completed: "smartscheduler.JobCompleted",
    Job.Cancelled: "smartscheduler.JobCancelled",
}
COMMON = {"timestamp", "region", "request"}
ATTRIBUTES = {
    "smartscheduler.JobCreated": COMMON | {
        "originator_topic", "type", "description", "duration_minutes", "priority",
        "required_skills", "location", "window_start", "window_end"},
    "smartscheduler.AssignmentCreated": COMMON | {
        "assignment_id", "contractor_id", "start_utc", "end_utc", "job_status"},
    "smartscheduler.AssignmentConfirmed": COMMON | {"assignment_id", "contractor_id"},
    "smartscheduler.AssignmentCancelled": COMMON | {
        "assignment_id", "contractor_id", "reason", "job_status"},
    "smartscheduler.JobStarted": COMMON | {"assignments"},
    "smartscheduler.JobCompleted": COMMON | {"assignments"},
    "smartscheduler.JobCancelled": COMMON | {
        "reason", "reason_code", "cancelled_by", "cancelled_assignments"},
}
JOB_ATTRIBUTES = {
    "_created_on", "_modified_on", "type", "description", "duration_minutes", "priority",
    "region", "required_skills", "location", "window_start", "window_end", "status",
    "assignments", "cancellation", "created_at", "updated_at", "idempotency"}
ASSIGNMENT_ATTRIBUTES = {"id", "contractor_id", "start_utc", "end_utc", "status",
                         "updated_at"}


@pytest.fixture
def app(tmp_path) -> Dispatch:
    return build_dispatch(Settings(database_url=f"sqlite:///{tmp_path / 'store.db'}"))


@pytest.fixture
def legacy(app: Dispatch) -> Dispatch:
    """The application over a store the older code wrote."""
    app.recorder.insert_events([
        StoredEvent(originator_id=UUID(job_id), originator_version=version, topic=topic,
                    state=state.encode())
        for job_id, version, topic, state in LEGACY["events"]])
    return app


def req(number: int, key: str | None = None) -> Request:
    return Request(STAFF, request_id=f"req-{number}", idempotency_key=key,
                   fingerprint=key and f"fp-{key}")


def write_the_legacy_scenario(app: Dispatch) -> tuple[UUID, UUID]:
    """Today's code, the commands the legacy store holds; the two job ids."""
    first = app.create_job(
        req(1, "k1"), type="HVAC repair", description="No cooling", duration_minutes=120,
        priority="High", region="North", required_skills=["hvac", "gas"],
        location={"address": "1 Main St"}, window_start=START,
        window_end=START + timedelta(hours=4)).job.id
    slot = {"start_utc": START, "end_utc": START + timedelta(hours=2)}
    x = app.assign(req(2, "k2"), first, contractor_id=C1, **slot).job.assignments[-1].id
    y = app.assign(req(3), first, contractor_id=C2, **slot).job.assignments[-1].id
    app.confirm_assignment(Request(Actor(str(C1), ("Contractor",)), request_id="req-4"),
                           first, x)
    app.cancel_assignment(req(5), first, y, reason="Sick")
    app.start_job(req(6), first)
    app.complete_job(req(7), first)
    second = app.create_job(req(8), type="Plumbing", duration_minutes=30,
                            window_start=START, window_end=START + timedelta(hours=1)).job.id
    app.assign(req(9), second, contractor_id=C1, start_utc=START,
               end_utc=START + timedelta(hours=1))
    app.cancel_job(req(10), second, reason="Storm", reason_code="Weather")
    return first, second


def stored(app: Dispatch, *job_ids: UUID) -> list[tuple[str, dict[str, Any]]]:
    return [(record.topic, json.loads(record.state))
            for job_id in job_ids for record in app.recorder.select_events(job_id)]


def without_instants_and_ids(state: dict[str, Any]) -> dict[str, Any]:
    """The state with what differs between two runs (times, random ids) left out."""
    varying = {"timestamp", "assignment_id", "assignments", "cancelled_assignments"}
    return {k: v for k, v in state.items() if k not in varying}


def test_every_event_class_keeps_its_stored_topic():
    assert {cls: cls.TOPIC for cls in TOPICS} == TOPICS
    assert set(TOPICS) == set(EVENT_TYPES)
    assert Job.TOPIC == "smartscheduler.Job"


def test_the_legacy_store_holds_every_kind_of_event():
    assert {topic for _, _, topic, _ in LEGACY["events"]} == set(ATTRIBUTES)


def test_todays_events_are_stored_under_the_same_topics_with_the_same_attributes(app):
    first, second = write_the_legacy_scenario(app)

    today = stored(app, first, second)

    legacy = [(topic, json.loads(state)) for _, _, topic, state in LEGACY["events"]]
    assert [topic for topic, _ in today] == [topic for topic, _ in legacy]
    for (topic, state), (_, old_state) in zip(today, legacy, strict=True):
        assert set(state) == set(old_state) == ATTRIBUTES[topic]
        assert without_instants_and_ids(state) == without_instants_and_ids(old_state)


def test_a_legacy_store_replays_into_the_same_jobs(legacy):
    first = legacy.get_job(FIRST)
    assert (first.version, first.status, first.region, first.priority) == (
        7, JobStatus.COMPLETED, "North", "High")
    assert first.required_skills == ["hvac", "gas"]
    assert [(a.contractor_id, a.status) for a in first.assignments] == [
        (C1, AssignmentStatus.COMPLETED), (C2, AssignmentStatus.CANCELLED)]
    assert all(a.updated_at is not None for a in first.assignments)
    assert first.idempotency == {"k1": "fp-k1", "k2": "fp-k2"}
    assert first.cancellation is None
    second = legacy.get_job(SECOND)
    assert (second.version, second.status, second.region) == (4, JobStatus.CANCELLED,
                                                               "Default")
    assert second.assignments[0].status == AssignmentStatus.CANCELLED
    assert second.cancellation == {"reason": "Storm", "reasonCode": "Weather",
                                   "cancelledBy": "dispatcher-7",
                                   "cancelledAt": second.updated_at}


def test_a_legacy_store_reads_back_its_history(legacy):
    history = legacy.history(SECOND)

    assert [record["type"] for record in history] == [
        "JobCreated", "AssignmentCreated", "AssignmentCancelled", "JobCancelled"]
    assert history[-1]["data"]["reasonCode"] == "Weather"


def test_a_legacy_job_remembers_its_idempotency_keys(legacy):
    outcome = legacy.create_job(req(12, "k1"), type="HVAC repair", duration_minutes=120,
                                window_start=START, window_end=START + timedelta(hours=4))

    assert outcome.replayed is True
    assert outcome.job.id == FIRST
    assert legacy.get_job(FIRST).version == 7


def test_the_legacy_events_decode_into_todays_event_classes(legacy):
    events = [legacy.mapper.to_domain_event(record)
              for job_id in (FIRST, SECOND)
              for record in legacy.recorder.select_events(job_id)]

    assert [TOPICS[type(event)] for event in events] == [
        topic for _, _, topic, _ in LEGACY["events"]]
    cancelled = event_data(events[-1])
    assert cancelled["reasonCode"] == "Weather"
    assert cancelled["cancelledBy"] == "dispatcher-7"


def test_a_legacy_snapshot_reads_back_as_the_job_its_events_build(legacy):
    topic, state = LEGACY["snapshot"]
    snapshot = legacy.mapper.to_domain_event(StoredEvent(
        originator_id=FIRST, originator_version=7, topic=topic, state=state.encode()))

    from_snapshot = snapshot.mutate(None)

    from_events = legacy.get_job(FIRST)
    assert isinstance(from_snapshot, Job)
    assert set(vars(from_snapshot)) - {"_id", "_version", "_pending_events"} == (
        JOB_ATTRIBUTES)
    for name in JOB_ATTRIBUTES - {"_modified_on", "updated_at", "assignments"}:
        assert getattr(from_snapshot, name) == getattr(from_events, name), name
    assert [(a.id, a.status) for a in from_snapshot.assignments] == [
        (a.id, a.status) for a in from_events.assignments]


def test_todays_snapshot_stores_the_same_attributes_under_the_same_topic(legacy):
    job = legacy.get_job(FIRST)

    record = legacy.mapper.to_stored_event(Job.Snapshot.take(job))

    state = json.loads(record.state)
    old = json.loads(LEGACY["snapshot"][1])
    assert record.topic == LEGACY["snapshot"][0]
    assert state["topic"] == old["topic"] == "smartscheduler.Job"
    assert set(state["state"]) == set(old["state"]) == JOB_ATTRIBUTES
    assignment = state["state"]["assignments"][0]
    assert assignment["_type_"] == "smartscheduler.Assignment"
    assert set(assignment["_data_"]) == ASSIGNMENT_ATTRIBUTES
