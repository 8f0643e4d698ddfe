"""Scenarios that put jobs into every state, and readers of the whole read models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

from application.dispatch import Dispatch, Outcome
from projections.query import Page
from projections.store import DispatchViews
from tests.factories import job_fields, request, slot
from tests.resources import resource, resources


def create(app: Dispatch, **overrides: Any) -> Outcome:
    return app.create_job(request(), **job_fields(**overrides))


def assign(app: Dispatch, job_id: UUID, contractor_id: UUID | None = None,
           hours: int = 0) -> tuple[Outcome, UUID]:
    """Assign a contractor (a new one unless given); the outcome and the assignment id."""
    outcome = app.assign(request(), job_id, contractor_id=contractor_id or uuid4(),
                         **slot(hours))
    return outcome, outcome.job.assignments[-1].id


def created(app: Dispatch) -> Outcome:
    return create(app, priority="Rush", region="North", description=None, location=None,
                  required_skills=["hvac", "hvac", "electrical"])


def assigned_pending(app: Dispatch) -> Outcome:
    job = create(app, priority="High").job
    return assign(app, job.id)[0]


def assigned_confirmed(app: Dispatch) -> Outcome:
    job = create(app, region="South").job
    _, assignment_id = assign(app, job.id)
    return app.confirm_assignment(request(), job.id, assignment_id)


def created_again_after_unassign(app: Dispatch) -> Outcome:
    job = create(app).job
    _, assignment_id = assign(app, job.id)
    return app.cancel_assignment(request(), job.id, assignment_id, reason="Sick")


def assigned_after_one_of_two_unassigned(app: Dispatch) -> Outcome:
    job = create(app, priority="High", region="North").job
    _, first = assign(app, job.id)
    assign(app, job.id, hours=1)
    return app.cancel_assignment(request(), job.id, first)


def in_progress(app: Dispatch) -> Outcome:
    job = create(app, region="South").job
    _, first = assign(app, job.id)
    app.confirm_assignment(request(), job.id, first)
    assign(app, job.id, hours=2)
    return app.start_job(request(), job.id)


def in_progress_with_a_late_assignment(app: Dispatch) -> Outcome:
    job = create(app, priority="Rush").job
    assign(app, job.id)
    app.start_job(request(), job.id)
    return assign(app, job.id, hours=3)[0]


def completed(app: Dispatch) -> Outcome:
    job = create(app, priority="High", region="South").job
    assign(app, job.id)
    app.start_job(request(), job.id)
    return app.complete_job(request(), job.id)


def completed_with_a_pending_leftover(app: Dispatch) -> Outcome:
    job = create(app).job
    assign(app, job.id)
    app.start_job(request(), job.id)
    assign(app, job.id, hours=1)
    return app.complete_job(request(), job.id)


def cancelled_before_assignment(app: Dispatch) -> Outcome:
    job = create(app, region="North").job
    return app.cancel_job(request(), job.id, reason=None, reason_code="Duplicate")


def cancelled_with_live_assignments(app: Dispatch) -> Outcome:
    job = create(app, priority="Rush", region="South").job
    _, first = assign(app, job.id)
    app.confirm_assignment(request(), job.id, first)
    _, second = assign(app, job.id, hours=1)
    app.cancel_assignment(request(), job.id, second)
    assign(app, job.id, hours=2)
    return app.cancel_job(request(), job.id, reason="Customer called",
                          reason_code="CustomerRequest")


def cancelled_while_in_progress(app: Dispatch) -> Outcome:
    job = create(app, priority="High").job
    assign(app, job.id)
    app.start_job(request(), job.id)
    return app.cancel_job(request(), job.id, reason="Storm", reason_code="Weather")


SCENARIOS: dict[str, tuple[Callable[[Dispatch], Outcome], str]] = {
    "created": (created, "Created"),
    "assigned-pending": (assigned_pending, "Assigned"),
    "assigned-confirmed": (assigned_confirmed, "Assigned"),
    "created-again-after-unassign": (created_again_after_unassign, "Created"),
    "assigned-after-one-of-two-unassigned": (assigned_after_one_of_two_unassigned,
                                             "Assigned"),
    "in-progress": (in_progress, "InProgress"),
    "in-progress-with-a-late-assignment": (in_progress_with_a_late_assignment,
                                           "InProgress"),
    "completed": (completed, "Completed"),
    "completed-with-a-pending-leftover": (completed_with_a_pending_leftover, "Completed"),
    "cancelled-before-assignment": (cancelled_before_assignment, "Cancelled"),
    "cancelled-with-live-assignments": (cancelled_with_live_assignments, "Cancelled"),
    "cancelled-while-in-progress": (cancelled_while_in_progress, "Cancelled"),
}


def jobs_in_every_state(app: Dispatch) -> list[Outcome]:
    """One job per scenario, in creation order; the last outcome of each."""
    return [build(app) for build, _ in SCENARIOS.values()]


def pages(lister: Callable[..., Page[Any]], page_size: int,
          **filters: Any) -> list[Page[Any]]:
    """Every page of a list, first to last (one empty page when nothing matches)."""
    found, number = [], 1
    while True:
        page = lister(page=number, page_size=page_size, **filters)
        found.append(page)
        if number * page_size >= page.total:
            return found
        number += 1


def read_all(views: DispatchViews, page_size: int = 4) -> dict[str, list[Page[Any]]]:
    """The full contents of both read models, page by page."""
    return {"jobs": pages(views.list_jobs, page_size),
            "assignments": pages(views.list_assignments, page_size)}


def items(found: list[Page[Any]]) -> list[dict[str, Any] | None]:
    """The resources of every item of the pages, in order."""
    return resources(item for page in found for item in page.items)


def documents_newest_first(app: Dispatch, job_ids: list[UUID]) -> list[dict[str, Any]]:
    """The aggregates' documents in the lists' order: created_at descending, then id."""
    documents = sorted((resource(app.get_job(job_id)) for job_id in job_ids),
                       key=lambda document: document["id"])
    return sorted(documents, key=lambda document: document["createdAt"], reverse=True)


def all_job_ids(app: Dispatch) -> list[UUID]:
    """Every job in the event store, from the log itself."""
    notifications = app.recorder.select_notifications(
        start=0, limit=1_000_000, inclusive_of_start=False)
    return list(dict.fromkeys(n.originator_id for n in notifications))
