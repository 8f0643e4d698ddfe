"""The domain's values on their own: who may do what, and the defaults."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from domain.errors import Forbidden
from domain.job import Job
from domain.values import (
    DEFAULT_REGION,
    NO_CONTRACTOR,
    Actor,
    Priority,
    ReasonCode,
)
from tests.factories import admin, contractor, dispatcher, job_fields, request

# require_staff ----------------------------------------------------------------


@pytest.mark.parametrize("actor", [admin(), dispatcher(), Actor("both", ("Admin", "Contractor"))])
def test_staff_pass_the_staff_rule(actor):
    actor.require_staff()


@pytest.mark.parametrize("actor", [contractor(), Actor("nobody"), Actor("x", ("Auditor",))])
def test_anyone_else_is_refused_by_the_staff_rule(actor):
    with pytest.raises(Forbidden) as refused:
        actor.require_staff()

    assert refused.value.message == "Only a Dispatcher or an Admin may do this."


# assignments_to_list ------------------------------------------------------------


@pytest.mark.parametrize("asked", [None, uuid4()])
@pytest.mark.parametrize("actor", [admin(), dispatcher()])
def test_staff_list_whose_assignments_they_ask_for(actor, asked):
    assert actor.assignments_to_list(asked) == asked


def test_a_contractor_lists_their_own_when_asking_for_everyones():
    me = uuid4()

    assert contractor(me).assignments_to_list(None) == me


def test_a_contractor_lists_their_own_when_asking_for_their_own():
    me = uuid4()

    assert contractor(me).assignments_to_list(me) == me


def test_a_contractor_asking_for_another_contractors_is_forbidden():
    with pytest.raises(Forbidden) as refused:
        contractor().assignments_to_list(uuid4())

    assert refused.value.message == "A contractor may list only their own assignments."


def test_a_contractor_whose_sub_is_not_an_id_lists_no_ones():
    actor = Actor("not-a-uuid", ("Contractor",))

    listed = actor.assignments_to_list(None)

    assert listed == NO_CONTRACTOR == UUID(int=0)


def test_a_contractor_whose_sub_is_not_an_id_asking_for_someone_is_forbidden():
    with pytest.raises(Forbidden) as refused:
        Actor("not-a-uuid", ("Contractor",)).assignments_to_list(uuid4())

    assert refused.value.message == "A contractor may list only their own assignments."


@pytest.mark.parametrize("actor", [Actor("nobody"), Actor("x", ("Auditor",))])
def test_anyone_else_may_not_list_assignments(actor):
    with pytest.raises(Forbidden) as refused:
        actor.assignments_to_list(None)

    assert refused.value.message == "Only staff and contractors may list assignments."


# defaults -----------------------------------------------------------------------


def test_a_job_created_without_them_takes_the_named_defaults():
    fields = {k: v for k, v in job_fields().items() if k not in ("region", "priority")}

    job = Job.create(request=request(), **fields)

    assert (job.region, job.priority) == (DEFAULT_REGION, Priority.NORMAL) == (
        "Default", "Normal")


def test_a_job_cancelled_without_a_reason_code_has_the_named_default():
    job = Job.create(request=request(), **job_fields())

    job.cancel(request=request())

    assert job.cancellation is not None
    assert job.cancellation["reasonCode"] == ReasonCode.OTHER == "Other"
