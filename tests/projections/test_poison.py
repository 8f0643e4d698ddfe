"""Events a reader once failed on, and a follower that meets an event it cannot apply.

The edge now refuses what a reader cannot hold, but a store may still hold what
was accepted before: those events must read. And for the bugs not found yet, a
follower that cannot apply an event must say so (log, status table, readyz)
and resume by itself once a fix is in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from uuid import uuid4

import pytest
from eventsourcing import utils

from domain.catalog import audit_record
from domain.job import Job
from projections.following.status import Watch
from projections.realtime.envelopes import envelope
from projections.rebuild import rebuild
from smartscheduler.bootstrap import Services
from tests.factories import job_fields, request, store_unknown_event
from tests.resources import resource

PLUS_ONE = timezone(timedelta(hours=1))
MINUS_FIVE = timezone(timedelta(hours=-5))


def wait_until(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.02)


def caught_up(services: Services) -> bool:
    return services.views.position() >= services.app.head_position()


def legacy_job(services: Services, **overrides: object) -> Job:
    """A job saved as the service once accepted it, past today's checks."""
    fields = {**job_fields(), **overrides}
    job = Job._create(
        Job.Created, id=uuid4(), request=request().record(), type=fields["type"],
        description=fields["description"], duration_minutes=fields["duration_minutes"],
        priority=fields["priority"], region=fields["region"],
        required_skills=fields["required_skills"], location=fields["location"],
        window_start=fields["window_start"], window_end=fields["window_end"])
    services.app.save(job)
    return job


def test_a_window_beyond_utc_stored_before_the_edge_refused_it_reads_everywhere(services):
    job = legacy_job(services, window_start=datetime(1, 1, 1, tzinfo=PLUS_ONE),
                     window_end=datetime(9999, 12, 31, 23, tzinfo=MINUS_FIVE))

    wait_until(lambda: caught_up(services), "the read models applied the job")

    row = resource(services.views.get_job(str(job.id)))
    assert row is not None
    assert row["serviceWindow"] == {"start": "0001-01-01T00:00:00.000000Z",
                                    "end": "9999-12-31T23:59:59.999999Z"}
    created = next(iter(services.app.events.get(job.id)))
    assert envelope(created, 1)["data"]["windowStart"] == "0001-01-01T00:00:00.000000Z"
    assert audit_record(created)["data"]["windowEnd"] == "9999-12-31T23:59:59.999999Z"
    assert rebuild(services.app, services.views).events == 1
    assert resource(services.views.get_job(str(job.id))) == row


def test_a_nul_stored_before_the_edge_refused_it_reads_on_every_backend(services):
    job = legacy_job(services, type="a\x00b", region="North\x00")

    wait_until(lambda: caught_up(services), "the read models applied the job")

    row = resource(services.views.get_job(str(job.id)))
    assert row is not None
    assert row["type"] in ("a\x00b", "a\ufffdb")  # PostgreSQL text cannot hold NUL
    assert rebuild(services.app, services.views).events == 1
    assert services.runner is not None and services.runner.failure is None


def test_a_follower_that_cannot_apply_an_event_names_it_and_retries(
        services, unknown_topic, caplog):
    caplog.set_level(logging.INFO, logger="projections.follower")
    runner = services.runner
    assert runner is not None

    _, poison = store_unknown_event(services.app, unknown_topic)
    wait_until(lambda: runner.failure is not None and runner.failure.attempts >= 3,
               "the runner failed on the event three times")

    assert runner.is_running
    assert runner.failure.position == poison
    assert runner.failure.event_type == "AssignmentReconfirmedForTest"
    assert services.views.position() == poison - 1  # everything before it applied
    recorded = services.views.failures()["read_models"]
    assert (recorded.position, recorded.event_type) == (poison, "AssignmentReconfirmedForTest")
    said = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(said) == 1
    assert str(poison) in said[0].getMessage()
    assert "AssignmentReconfirmedForTest" in said[0].getMessage()


def test_a_stuck_follower_is_reported_with_its_event_and_error(services, unknown_topic):
    _, poison = store_unknown_event(services.app, unknown_topic)
    wait_until(lambda: "read_models" in services.views.failures(), "the failure was recorded")
    services.watch = Watch(stuck_after=0.0)
    time.sleep(0.01)

    report = services.followers(services.app.head_position())[0]

    assert report["name"] == "read_models"
    assert report["status"] == "stuck"
    assert report["position"] == poison - 1
    assert report["lag"] == 1
    assert report["failingEvent"] == {"position": poison,
                                      "type": "AssignmentReconfirmedForTest"}
    assert "topic" in report["lastError"].lower()


def test_a_follower_resumes_by_itself_once_the_fix_is_in(services, unknown_topic):
    runner = services.runner
    assert runner is not None
    job, poison = store_unknown_event(services.app, unknown_topic)
    wait_until(lambda: runner.failure is not None, "the runner failed on the event")

    utils.register_topic(unknown_topic, Job.AssignmentConfirmed)  # the fix, deployed

    wait_until(lambda: services.views.position() == poison, "the runner applied the event",
               timeout=20)
    wait_until(lambda: runner.failure is None, "the runner cleared its failure")
    assert services.views.failures() == {}
    assert services.views.get_job(str(job.id)).assignments[0].status == "Confirmed"
    assert services.followers(poison)[0]["status"] == "ok"
