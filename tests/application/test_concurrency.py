"""Commands racing on one job, on every storage backend.

Threads are released together by a barrier; what must hold is the outcome
(who won, what was stored), never how long it took.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

from application.dispatch import Dispatch, Outcome
from application.errors import PreconditionFailed
from domain.errors import JobAlreadyCancelled, JobNotAssignable
from domain.values import AssignmentStatus, JobStatus
from tests.factories import job_fields, request, slot

THREADS = 16


def race(count: int, command: Callable[[int], Any]) -> list[Any]:
    """Run `command(i)` in `count` threads released at once; results or errors."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = command(i)
        except Exception as error:  # collected and asserted on by the caller
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(t.is_alive() for t in threads), "a racing command never returned"
    return results


def successes(results: list[Any]) -> list[Outcome]:
    return [r for r in results if isinstance(r, Outcome)]


def failures(results: list[Any]) -> list[BaseException]:
    return [r for r in results if isinstance(r, BaseException)]


def event_types(app: Dispatch, job_id: UUID) -> list[str]:
    return [record["type"] for record in app.history(job_id)]


def test_racing_cancels_of_one_job_let_exactly_one_through(app):
    job_id = app.create_job(request(), **job_fields()).job.id
    for _ in range(3):
        app.assign(request(), job_id, contractor_id=uuid4(), **slot())

    results = race(THREADS, lambda i: app.cancel_job(request(), job_id,
                                                     reason=f"cancel {i}"))

    assert len(successes(results)) == 1
    errors = failures(results)
    assert len(errors) == THREADS - 1
    assert all(type(e) is JobAlreadyCancelled for e in errors), errors
    types = event_types(app, job_id)
    assert types.count("JobCancelled") == 1
    assert types.count("AssignmentCancelled") == 3
    assert len(types) == 1 + 3 + 3 + 1


def test_the_winning_cancel_is_the_one_that_was_stored(app):
    job_id = app.create_job(request(), **job_fields()).job.id

    results = race(THREADS, lambda i: app.cancel_job(request(), job_id,
                                                     reason=f"cancel {i}"))

    (winner,) = successes(results)
    job = app.get_job(job_id)
    assert job.status == JobStatus.CANCELLED
    assert job.version == winner.job.version == 2
    assert job.cancellation["reason"] == winner.job.cancellation["reason"]
    assert winner.position == app.head_position()


def test_racing_cancels_with_the_same_if_match_let_exactly_one_through(app):
    job_id = app.create_job(request(), **job_fields()).job.id

    results = race(THREADS, lambda i: app.cancel_job(request(), job_id,
                                                     expected_version=1))

    assert len(successes(results)) == 1
    errors = failures(results)
    assert {type(e) for e in errors} <= {PreconditionFailed, JobAlreadyCancelled}, errors
    assert len(errors) == THREADS - 1
    assert event_types(app, job_id) == ["JobCreated", "JobCancelled"]


def test_a_cancel_racing_with_assigns_leaves_no_live_assignment(app):
    job_id = app.create_job(request(), **job_fields()).job.id

    results = race(THREADS, lambda i: app.cancel_job(request(), job_id) if i == 0
                   else app.assign(request(), job_id, contractor_id=uuid4(), **slot()))

    assert isinstance(results[0], Outcome), results[0]
    assert all(isinstance(r, Outcome | JobNotAssignable) for r in results[1:]), results
    job = app.get_job(job_id)
    assert job.status == JobStatus.CANCELLED
    assert {a.status for a in job.assignments} <= {AssignmentStatus.CANCELLED}
    assert len(job.assignments) == len(successes(results)) - 1
    last = app.history(job_id)[-1]
    assert last["type"] == "JobCancelled"
    assert sorted(ref["assignmentId"] for ref in last["data"]["cancelledAssignments"]) == (
        sorted(str(a.id) for a in job.assignments))


def test_racing_cancels_with_one_idempotency_key_all_succeed_once(app):
    job_id = app.create_job(request(), **job_fields()).job.id

    results = race(THREADS, lambda i: app.cancel_job(
        request(key="cancel-race", fingerprint="fp"), job_id))

    assert failures(results) == []
    assert [r.replayed for r in results].count(False) == 1
    assert event_types(app, job_id) == ["JobCreated", "JobCancelled"]


def test_racing_assigns_of_different_contractors_all_succeed(app):
    job_id = app.create_job(request(), **job_fields()).job.id
    contractors = [uuid4() for _ in range(THREADS)]

    results = race(THREADS, lambda i: app.assign(
        request(), job_id, contractor_id=contractors[i], **slot()))

    assert failures(results) == []
    job = app.get_job(job_id)
    assert job.status == JobStatus.ASSIGNED
    assert sorted(a.contractor_id for a in job.assignments) == sorted(contractors)
    assert {a.status for a in job.assignments} == {AssignmentStatus.PENDING}
    assert job.version == 1 + THREADS == len(app.history(job_id))


def test_racing_assigns_of_one_contractor_make_one_assignment(app):
    job_id = app.create_job(request(), **job_fields()).job.id
    contractor_id = uuid4()

    results = race(THREADS, lambda i: app.assign(
        request(), job_id, contractor_id=contractor_id, **slot()))

    assert len(successes(results)) == 1
    assert {type(e).__name__ for e in failures(results)} == {"JobNotAssignable"}
    assert len(app.get_job(job_id).assignments) == 1


def test_racing_creates_with_one_idempotency_key_make_one_job(app):
    results = race(THREADS, lambda i: app.create_job(
        request(key="create-race", fingerprint="fp"), **job_fields()))

    assert failures(results) == []
    assert len({r.job.id for r in results}) == 1
    assert [r.replayed for r in results].count(False) == 1
    job_id = results[0].job.id
    assert event_types(app, job_id) == ["JobCreated"]
    assert app.head_position() == 1
