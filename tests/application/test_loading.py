"""Loading a job: a short stream in one query, a long one from its snapshot.

A job is snapshotted at every SNAPSHOT_INTERVAL-th version, so a stream shorter
than that has no snapshot to look for: `Dispatch` reads its events alone. Either
way the job is the one the library's repository rebuilds.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest

from application.dispatch import SNAPSHOT_INTERVAL, Dispatch
from application.errors import JobNotFound
from tests.factories import job_fields, request, slot


def job_with_events(app: Dispatch, count: int) -> UUID:
    """A job whose stream holds exactly `count` events (count >= 1)."""
    job_id = app.create_job(request(), **job_fields()).job.id
    contractor_id = uuid4()
    while app.get_job(job_id).version < count:
        job = app.get_job(job_id)
        live = [a for a in job.assignments if a.is_live]
        if live:
            app.cancel_assignment(request(), job_id, live[0].id)
        else:
            app.assign(request(), job_id, contractor_id=contractor_id, **slot())
    assert app.get_job(job_id).version == count
    return job_id


def counted(monkeypatch: pytest.MonkeyPatch, recorder: Any) -> list[dict[str, Any]]:
    """The select_events calls made on `recorder` from now on."""
    calls: list[dict[str, Any]] = []
    select_events = recorder.select_events

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return select_events(*args, **kwargs)

    monkeypatch.setattr(recorder, "select_events", spy)
    return calls


def test_a_short_job_is_read_with_one_query_and_no_snapshot_look_up(app, monkeypatch):
    job_id = job_with_events(app, 3)
    snapshot_reads = counted(monkeypatch, app.snapshots.recorder)
    event_reads = counted(monkeypatch, app.events.recorder)

    app.cancel_job(request(), job_id)

    assert snapshot_reads == []
    assert len(event_reads) == 1


@pytest.mark.parametrize("count", [1, SNAPSHOT_INTERVAL - 1, SNAPSHOT_INTERVAL,
                                   SNAPSHOT_INTERVAL + 1])
def test_the_job_read_is_the_one_the_library_rebuilds(app, count):
    job_id = job_with_events(app, count)

    job = app.get_job(job_id)

    assert job.version == count
    assert vars(job) == vars(app.repository.get(job_id))


def test_a_long_job_is_read_from_its_snapshot(app, monkeypatch):
    job_id = job_with_events(app, SNAPSHOT_INTERVAL + 2)
    snapshot_reads = counted(monkeypatch, app.snapshots.recorder)
    event_reads = counted(monkeypatch, app.events.recorder)

    job = app.get_job(job_id)

    assert job.version == SNAPSHOT_INTERVAL + 2
    assert len(snapshot_reads) == 1
    # The first SNAPSHOT_INTERVAL events, then those after the snapshot.
    assert [call.get("gt") for call in event_reads] == [None, SNAPSHOT_INTERVAL]


@pytest.mark.parametrize("count, version", [(5, 2), (SNAPSHOT_INTERVAL + 3, 3),
                                            (SNAPSHOT_INTERVAL + 3, SNAPSHOT_INTERVAL + 1)])
def test_a_past_version_is_the_one_the_library_rebuilds(app, count, version):
    job_id = job_with_events(app, count)

    job = app.get_job(job_id, version=version)

    assert job.version == version
    assert vars(job) == vars(app.repository.get(job_id, version=version))


def test_a_job_without_events_is_not_found(app):
    with pytest.raises(JobNotFound):
        app.get_job(uuid4())
