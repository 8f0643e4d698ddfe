"""The Job resource is sent as `job_document` builds it, without a JobSchema dump:
so the two must agree, member for member and in the same order."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.catalog import job_document
from domain.job import Job
from tests.factories import cancelled_job_with_two_assignments, new_job, request, slot
from tests.strategies import job_bodies
from web.jobs.resources import JOB_CREATE
from web.schemas import JobSchema

SCHEMA = JobSchema()


def assert_dumped_as_built(job: Job) -> None:
    document = job_document(job)
    dumped = SCHEMA.dump(document)
    assert dumped == document
    assert _orders(dumped) == _orders(document)


def _orders(value: Any) -> Any:
    """The member order of every object in the document."""
    if isinstance(value, dict):
        return [(key, _orders(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [_orders(item) for item in value]
    return None


def test_a_new_job_is_dumped_as_built():
    assert_dumped_as_built(new_job())
    assert_dumped_as_built(new_job(location=None, description=None, required_skills=[]))


def test_an_assigned_started_and_completed_job_is_dumped_as_built():
    job = new_job()
    job.assign(request=request(), contractor_id=uuid4(), **slot())
    assert_dumped_as_built(job)
    job.start(request=request())
    job.complete(request=request())
    assert_dumped_as_built(job)


def test_a_cancelled_job_is_dumped_as_built():
    job, _ = cancelled_job_with_two_assignments()
    assert_dumped_as_built(job)


@settings(max_examples=100)
@given(job_bodies(), st.booleans())
def test_any_accepted_job_is_dumped_as_built(body, cancelled):
    job = Job.create(request=request(), **JOB_CREATE.load(body))
    if cancelled:
        job.cancel(request=request(), reason="r")
    assert_dumped_as_built(job)
