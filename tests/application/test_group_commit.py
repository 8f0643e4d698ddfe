"""Group commit: concurrent commands share an append, and each keeps its own outcome."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import RecordConflictError

from application.commit import GroupCommit
from domain.job import Job
from tests.factories import job_fields, request, slot


class HeldFirstAppend:
    """Wraps the app's append so that the first one waits until `queued` others
    have queued behind it: the next batch is then known to hold them all."""

    def __init__(self, app: Any, queued: int) -> None:
        self.app = app
        self.queued = queued
        self.release = threading.Event()
        self.batches: list[int] = []
        self.commit: GroupCommit | None = None

    def __call__(self, processing: Any) -> Any:
        if not self.batches:
            self.batches.append(len(processing.events))
            self.release.wait(10)
        else:
            self.batches.append(len(processing.events))
        return self.app._record_batch(processing)

    def wait_for_queue(self) -> None:
        assert self.commit is not None
        deadline = threading.Event()
        for _ in range(500):
            if len(self.commit._queue) >= self.queued:
                break
            deadline.wait(0.01)
        self.release.set()


def grouped(app: Any, queued: int) -> tuple[GroupCommit, HeldFirstAppend]:
    held = HeldFirstAppend(app, queued)
    held.commit = GroupCommit(held)
    return held.commit, held


def run_together(commit: GroupCommit, held: HeldFirstAppend,
                 aggregates: list[Any]) -> list[Any]:
    """Save the first aggregate, then the rest while the first append is held."""
    held.queued = len(aggregates) - 1
    outcomes: list[Any] = [None] * len(aggregates)

    def save(index: int) -> None:
        try:
            outcomes[index] = commit.save(aggregates[index])
        except Exception as error:
            outcomes[index] = error

    first = threading.Thread(target=save, args=(0,))
    first.start()
    while not held.batches:
        threading.Event().wait(0.005)
    with ThreadPoolExecutor(len(aggregates)) as pool:
        futures = [pool.submit(save, i) for i in range(1, len(aggregates))]
        held.wait_for_queue()
        for future in futures:
            future.result()
    first.join()
    return outcomes


def new_job() -> Job:
    return Job.create(request=request(), **job_fields())


def test_commands_queued_behind_an_append_share_the_next_one(app):
    commit, held = grouped(app, queued=20)
    jobs = [new_job() for _ in range(21)]

    outcomes = run_together(commit, held, jobs)

    assert held.batches == [1, 20]
    for job, recordings in zip(jobs, outcomes, strict=True):
        assert [r.domain_event.originator_id for r in recordings] == [job.id]
        assert app.repository.get(job.id).version == 1
    positions = [recordings[0].notification.id for recordings in outcomes]
    assert len(set(positions)) == 21


def test_a_stale_command_fails_alone_and_its_neighbours_commit(app):
    stale_job = app.create_job(request(), **job_fields()).job
    moved_on = app.repository.get(stale_job.id)
    app.assign(request(), moved_on.id, contractor_id=uuid4(), **slot(0))
    stale_job.cancel(request=request(), reason="late")  # still at version 1
    commit, held = grouped(app, queued=3)
    fresh = [new_job() for _ in range(3)]

    outcomes = run_together(commit, held, [new_job(), *fresh[:1], stale_job, *fresh[1:]])

    assert isinstance(outcomes[2], RecordConflictError)
    for job in fresh:
        assert app.repository.get(job.id).version == 1
    assert app.repository.get(stale_job.id).status == "Assigned"


def test_two_commands_on_one_job_in_one_batch_give_one_success(app):
    job_id = app.create_job(request(), **job_fields()).job.id
    first, second = app.repository.get(job_id), app.repository.get(job_id)
    first.cancel(request=request(), reason="first")
    second.cancel(request=request(), reason="second")
    commit, held = grouped(app, queued=3)
    other = new_job()

    outcomes = run_together(commit, held, [new_job(), first, second, other])

    assert not isinstance(outcomes[1], Exception)
    assert isinstance(outcomes[2], RecordConflictError)
    assert app.repository.get(job_id).cancellation["reason"] == "first"
    assert app.repository.get(other.id).version == 1


def test_a_store_failure_reaches_every_command_of_the_batch(app):
    failing = RuntimeError("the disk went away")
    calls: list[int] = []

    def record(processing: Any) -> Any:
        calls.append(len(processing.events))
        raise failing

    commit = GroupCommit(record)

    with pytest.raises(RuntimeError, match="disk went away"):
        commit.save(new_job())
    assert calls == [1]
    assert commit._leading is False


def test_many_racing_commands_all_get_their_own_answer(app):
    jobs = [app.create_job(request(), **job_fields()).job.id for _ in range(40)]
    def cancel(job_id: Any) -> Any:
        return app.cancel_job(request(), job_id, reason="racing")

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(cancel, jobs))

    assert [o.job.id for o in outcomes] == jobs
    assert all(app.repository.get(j).status == "Cancelled" for j in jobs)
    assert len({o.position for o in outcomes}) == 40
    assert app.appends.events == 80


class FailingAppend(HeldFirstAppend):
    """Holds the first append like its parent, then fails every append."""

    def __call__(self, processing: Any) -> Any:
        first = not self.batches
        self.batches.append(len(processing.events))
        if first:
            self.release.wait(10)
        raise RuntimeError("the disk went away")


def test_each_command_of_a_failed_batch_gets_its_own_exception(app):
    failing = FailingAppend(app, queued=3)
    failing.commit = GroupCommit(failing)

    outcomes = run_together(failing.commit, failing, [new_job() for _ in range(4)])

    assert failing.batches == [1, 3]
    assert all(isinstance(o, RuntimeError) and "disk" in str(o) for o in outcomes)
    assert len({id(o) for o in outcomes}) == 4
