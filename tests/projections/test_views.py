"""The job and assignment read models against the aggregates they are built from."""

from __future__ import annotations

from uuid import uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError

from application.settings import Settings
from domain.values import JobStatus, Priority
from projections.batches import decode
from projections.rebuild import rebuild
from smartscheduler.bootstrap import build_services
from tests.factories import request
from tests.projections.support import (
    SCENARIOS,
    assign,
    create,
    documents_newest_first,
    items,
    pages,
    read_all,
)
from tests.resources import resource, resources
from tests.services import POSTGRES_URL


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_job_view_equals_the_aggregates_document_in_every_state(
        services, app, scenario):
    build, status = SCENARIOS[scenario]
    outcome = build(app)

    assert services.views.wait_for(outcome.position, timeout=10)
    job = app.get_job(outcome.job.id)
    assert job.status == status
    assert resource(services.views.get_job(str(job.id))) == resource(job)


def test_the_job_view_of_an_unknown_job_is_none(services, app):
    outcome = create(app)
    assert services.views.wait_for(outcome.position, timeout=10)

    assert services.views.get_job(str(uuid4())) is None


def _jobs_for_lists(app):
    """Seven jobs over every status, priority and region; their ids, oldest first."""
    build = [SCENARIOS[name][0] for name in (
        "created", "assigned-pending", "assigned-confirmed", "in-progress", "completed",
        "cancelled-before-assignment", "cancelled-with-live-assignments")]
    outcomes = [each(app) for each in build]
    return [o.job.id for o in outcomes], max(o.position for o in outcomes)


def test_list_jobs_shows_every_job_newest_first_with_the_total(services, app):
    job_ids, position = _jobs_for_lists(app)
    assert services.views.wait_for(position, timeout=10)

    page = services.views.list_jobs(page_size=100)

    expected = documents_newest_first(app, job_ids)
    assert [d["id"] for d in expected] == [str(i) for i in reversed(job_ids)]
    assert resources(page.items) == expected
    assert page.total == len(job_ids)
    assert services.views.count_jobs() == len(job_ids)


@pytest.mark.parametrize("status", list(JobStatus))
def test_list_jobs_filters_by_status(services, app, status):
    job_ids, position = _jobs_for_lists(app)
    assert services.views.wait_for(position, timeout=10)

    page = services.views.list_jobs(status=str(status), page_size=100)

    expected = [d for d in documents_newest_first(app, job_ids) if d["status"] == status]
    assert expected, "every status has a job in this data"
    assert resources(page.items) == expected
    assert page.total == len(expected)


@pytest.mark.parametrize("priority", list(Priority))
def test_list_jobs_filters_by_priority(services, app, priority):
    job_ids, position = _jobs_for_lists(app)
    assert services.views.wait_for(position, timeout=10)

    page = services.views.list_jobs(priority=str(priority), page_size=100)

    expected = [d for d in documents_newest_first(app, job_ids)
                if d["priority"] == priority]
    assert expected
    assert resources(page.items) == expected
    assert page.total == len(expected)


@pytest.mark.parametrize("region", ["Default", "North", "South", "Nowhere"])
def test_list_jobs_filters_by_region(services, app, region):
    job_ids, position = _jobs_for_lists(app)
    assert services.views.wait_for(position, timeout=10)

    page = services.views.list_jobs(region=region, page_size=100)

    expected = [d for d in documents_newest_first(app, job_ids) if d["region"] == region]
    assert resources(page.items) == expected
    assert page.total == len(expected)
    assert (region == "Nowhere") == (not expected)


def test_list_jobs_combines_filters(services, app):
    job_ids, position = _jobs_for_lists(app)
    assert services.views.wait_for(position, timeout=10)
    documents = documents_newest_first(app, job_ids)

    for status, priority, region in [("Cancelled", "Rush", "South"),
                                     ("Cancelled", None, "North"),
                                     ("Assigned", "High", None),
                                     ("Completed", "Normal", "Default")]:
        page = services.views.list_jobs(status=status, priority=priority, region=region,
                                        page_size=100)
        expected = [d for d in documents if d["status"] == status
                    and priority in (None, d["priority"])
                    and region in (None, d["region"])]
        assert resources(page.items) == expected, (status, priority, region)
        assert page.total == len(expected)


@pytest.mark.parametrize("page_size", [1, 2, 3, 7, 50])
def test_list_jobs_pages_through_every_job_once_in_order(services, app, page_size):
    job_ids, position = _jobs_for_lists(app)
    assert services.views.wait_for(position, timeout=10)

    found = pages(services.views.list_jobs, page_size)

    assert items(found) == documents_newest_first(app, job_ids)
    assert all(page.total == len(job_ids) for page in found)
    assert all(len(page.items) == page_size for page in found[:-1])
    past_the_end = services.views.list_jobs(page=len(found) + 1, page_size=page_size)
    assert past_the_end.items == []
    assert past_the_end.total == len(job_ids)


def test_list_jobs_pages_a_filtered_list(services, app):
    job_ids, position = _jobs_for_lists(app)
    assert services.views.wait_for(position, timeout=10)

    found = pages(services.views.list_jobs, 1, status="Cancelled")

    expected = [d for d in documents_newest_first(app, job_ids)
                if d["status"] == "Cancelled"]
    assert len(expected) == 2
    assert items(found) == expected
    assert [page.total for page in found] == [2, 2]


def _assignments_for_lists(app):
    """Three jobs, two contractors, assignments in every status; the aggregates'
    assignment documents newest first, and the position of the last event."""
    first, second = uuid4(), uuid4()
    job_a = create(app).job.id
    _, a1 = assign(app, job_a, first)
    app.confirm_assignment(request(), job_a, a1)
    assign(app, job_a, second, hours=1)
    job_b = create(app).job.id
    _, b1 = assign(app, job_b, first)
    app.cancel_assignment(request(), job_b, b1)
    assign(app, job_b, first, hours=2)
    job_c = create(app).job.id
    assign(app, job_c, second)
    app.start_job(request(), job_c)
    last = app.complete_job(request(), job_c)
    job_d = create(app).job.id
    assign(app, job_d, second)
    assign(app, job_d, first, hours=1)
    app.start_job(request(), job_d)
    assign(app, job_d, uuid4(), hours=2)

    created_order = []
    for job_id in (job_a, job_b, job_c, job_d):
        for assignment in resource(app.get_job(job_id))["assignments"]:
            created_order.append({"jobId": str(job_id), **assignment})
    return created_order[::-1], (first, second), app.head_position(), last


def test_list_assignments_shows_every_assignment_newest_first(services, app):
    expected, _, head, _ = _assignments_for_lists(app)
    assert services.views.wait_for(head, timeout=10)

    page = services.views.list_assignments(page_size=100)

    assert page.total == len(expected) == 8
    assert [a.id for a in page.items] == [a["id"] for a in expected]
    assert resources(page.items) == expected
    assert {a.status for a in page.items} == {
        "Pending", "Confirmed", "InProgress", "Completed", "Cancelled"}


def test_list_assignments_filters_by_contractor_job_and_status(services, app):
    expected, contractors, head, _ = _assignments_for_lists(app)
    assert services.views.wait_for(head, timeout=10)
    job_ids = list(dict.fromkeys(a["jobId"] for a in expected))
    filters = [{"contractor_id": str(c)} for c in contractors]
    filters += [{"job_id": j} for j in job_ids]
    filters += [{"status": s} for s in ("Pending", "Confirmed", "InProgress", "Completed",
                                        "Cancelled")]
    filters += [{"contractor_id": str(contractors[0]), "status": "Pending"},
                {"contractor_id": str(contractors[1]), "job_id": job_ids[0]},
                {"contractor_id": str(contractors[0]), "job_id": job_ids[2]},
                {"contractor_id": str(uuid4())}]
    keys = {"contractor_id": "contractorId", "job_id": "jobId", "status": "status"}

    for given in filters:
        page = services.views.list_assignments(page_size=100, **given)
        wanted = [a for a in expected
                  if all(a[keys[name]] == value for name, value in given.items())]
        assert resources(page.items) == wanted, given
        assert page.total == len(wanted), given
    assert services.views.list_assignments(contractor_id=str(contractors[0])).total == 4


def test_list_assignments_pages_through_every_assignment_once(services, app):
    expected, _, head, _ = _assignments_for_lists(app)
    assert services.views.wait_for(head, timeout=10)

    found = pages(services.views.list_assignments, 3)

    assert items(found) == expected
    assert [page.total for page in found] == [8] * 3


def _notifications(app):
    return list(app.recorder.select_notifications(start=0, limit=1000,
                                                  inclusive_of_start=False))


REDELIVERIES = {
    # name: which notifications (indexes into the log) make up the redelivered batch
    "the-first-event-a-job-creation": [0],
    "an-earlier-confirmation": [3],
    "the-latest-event": [-1],
    "an-older-batch-ending-with-the-latest-event": [3, 4, -1],
}


@pytest.mark.parametrize("redelivery", list(REDELIVERIES))
def test_a_redelivered_event_raises_integrity_error_and_changes_no_rows(
        services, app, redelivery):
    job = create(app).job
    _, assignment_id = assign(app, job.id)
    assign(app, job.id, hours=1)
    app.confirm_assignment(request(), job.id, assignment_id)   # notification 4 (index 3)
    app.start_job(request(), job.id)
    last = app.complete_job(request(), job.id)
    assert services.views.wait_for(last.position, timeout=10)
    services.runner.stop()
    notifications = _notifications(app)
    assert notifications[3].topic.endswith("AssignmentConfirmed")
    before = read_all(services.views)
    position = services.views.position()
    assert position == last.position

    batch = [notifications[i] for i in REDELIVERIES[redelivery]]
    with pytest.raises(IntegrityError):
        services.views.process(decode(app, batch, services.views.tracking_name))

    assert read_all(services.views) == before
    assert services.views.position() == position
    assert resource(services.views.get_job(str(job.id))) == resource(app.get_job(job.id))


def test_a_batch_that_fails_part_way_applies_none_of_its_events(services, app):
    created = create(app)
    job = created.job
    assert services.views.wait_for(created.position, timeout=10)
    services.runner.stop()
    first = app.assign(request(), job.id, contractor_id=uuid4(), start_utc=job.window_start,
                       end_utc=job.window_end)
    notifications = _notifications(app)
    before = read_all(services.views)

    # A new event followed by the job's creation again: the second fails to insert.
    with pytest.raises(IntegrityError):
        services.views.process(decode(app, [notifications[1], notifications[0]],
                                      services.views.tracking_name))

    assert read_all(services.views) == before
    assert services.views.position() == first.position - 1
    services.views.process(decode(app, [notifications[1]], services.views.tracking_name))
    assert resource(services.views.get_job(str(job.id))) == resource(app.get_job(job.id))


def test_wait_for_returns_false_when_the_position_is_never_reached(services, app):
    outcome = create(app)
    assert services.views.wait_for(outcome.position, timeout=10) is True

    assert services.views.wait_for(app.head_position() + 1, timeout=0.3) is False
    assert services.views.wait_for(outcome.position + 100, timeout=0) is False


def test_wait_for_returns_true_at_once_for_a_position_already_applied(services, app):
    first = create(app)
    second = create(app)
    assert services.views.wait_for(second.position, timeout=10)

    assert services.views.wait_for(first.position, timeout=0) is True
    assert services.views.wait_for(0, timeout=0) is True


def _sibling_database(database_url, tmp_path):
    """Another empty database on the same backend (a second file, or a second schema)."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'other.db'}", None
    schema = f"t_{uuid4().hex[:16]}"
    return database_url.rsplit("schema=", 1)[0] + f"schema={schema}", schema


def test_read_models_of_two_databases_on_one_server_stay_apart(database_url, tmp_path):
    other_url, other_schema = _sibling_database(database_url, tmp_path)
    one = build_services(Settings(database_url=database_url), run_projections=True)
    try:
        other = build_services(Settings(database_url=other_url), run_projections=True)
        try:
            mine = create(one.app)
            theirs = create(other.app, region="North")
            assert one.views.wait_for(mine.position, timeout=10)
            assert other.views.wait_for(theirs.position, timeout=10)

            assert [d.id for d in one.views.list_jobs().items] == [str(mine.job.id)]
            assert [d.id for d in other.views.list_jobs().items] == [
                str(theirs.job.id)]
            assert one.views.get_job(str(theirs.job.id)) is None
            other.runner.stop()
            rebuild(other.app, other.views)
            assert one.views.list_jobs().total == 1
        finally:
            other.close()
    finally:
        one.close()
        if other_schema:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
                connection.execute(f'DROP SCHEMA IF EXISTS "{other_schema}" CASCADE')
