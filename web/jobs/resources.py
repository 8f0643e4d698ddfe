"""/api/jobs: create, list, read, time-travel, history, and the lifecycle commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import g, url_for
from flask.views import MethodView

from application.dispatch import Outcome
from domain.job import Job
from projections.jobs import JobRecord
from web import http
from web.docs import COMMAND_HEADERS, JOB_HEADERS, ApiBlueprint
from web.jobs.schemas import (
    AssignSchema,
    CancelAssignmentSchema,
    CancelSchema,
    HistorySchema,
    JobCreateSchema,
    JobListQuery,
    VersionQuery,
)
from web.schemas import JobSchema

blp = ApiBlueprint("jobs", __name__, url_prefix="/api/jobs",
                description="Jobs: create them, follow their lifecycle, cancel them.")


def _on_the_job(operation: str, description: str) -> dict[str, Any]:
    return {"operationId": operation, "description": description,
            "parameters": {"job_id": "$response.body#/id"}}


CREATED_JOB_LINKS = {
    "GetJob": _on_the_job("getJob", "Read the job that was created."),
    "GetJobHistory": _on_the_job("getJobHistory", "Its audit trail."),
    "AssignJob": _on_the_job("assignJob", "Assign a contractor to it."),
    "StartJob": _on_the_job("startJob", "Start it."),
    "CompleteJob": _on_the_job("completeJob", "Complete it."),
    "CancelJob": _on_the_job("cancelJob", "Cancel it."),
}
"""OpenAPI links from a created job to the operations on it (for clients and fuzzers)."""


# Schemas are instances, built once: a schema class would be built again
# (fields deep-copied, nested schemas too) on every request by webargs.
JOB_CREATE = JobCreateSchema()
ASSIGN = AssignSchema()
CANCEL = CancelSchema()
CANCEL_ASSIGNMENT = CancelAssignmentSchema()
LIST_QUERY = JobListQuery()
VERSION_QUERY = VersionQuery()
JOB = JobSchema()
JOBS = JobSchema(many=True)

View = TypeVar("View", bound=Callable[..., Any])

JobResponse = tuple[Job, int, dict[str, str]]
"""A job (dumped by JOB), its status code and headers."""


def job_command(operation_id: str, status: int = 200) -> Callable[[View], View]:
    """What every command on a job declares: the job it returns (`status`, ETag),
    the command headers (If-Match, Idempotency-Key, X-Request-Id), its problems."""
    declarations = (blp.response(status, JOB, headers=JOB_HEADERS),
                    blp.doc(parameters=COMMAND_HEADERS),
                    blp.problems(400, 401, 403, 404, 412, 415, 422),
                    blp.doc(operationId=operation_id))

    def declare(view: View) -> View:
        for declaration in reversed(declarations):  # as if stacked, the first on top
            view = declaration(view)
        return view

    return declare


def _job(outcome: Outcome, status: int = 200) -> JobResponse:
    """A command's job, its status and headers (ETag, Idempotent-Replayed), for
    `@blp.response(..., JOB)` to dump."""
    g.job_id = outcome.job.id  # for the access line (web.telemetry)
    return outcome.job, status, http.job_headers(outcome)


@blp.route("")
class Jobs(MethodView):
    @http.staff_only
    @blp.arguments(LIST_QUERY, location="query", as_kwargs=True)
    @blp.response(200, JOBS)
    @blp.paginate(page=1, page_size=20, max_page_size=100)
    @blp.problems(401, 403)
    @blp.doc(operationId="listJobs")
    def get(self, pagination_parameters: Any, **filters: Any) -> list[JobRecord]:
        """List jobs (Dispatcher, Admin), newest first, filtered and paged."""
        page = http.caught_up_views().list_jobs(
            **filters, page=http.page_to_read(pagination_parameters.page),
            page_size=pagination_parameters.page_size)
        pagination_parameters.item_count = page.total
        return page.items

    @http.staff_only
    @blp.arguments(JOB_CREATE)
    @blp.response(201, JOB, headers={**JOB_HEADERS, "Location": {
        "description": "The new job's URL", "schema": {"type": "string"}}})
    @blp.doc(parameters=COMMAND_HEADERS)
    @blp.problems(400, 401, 403, 412, 415)
    @blp.doc(operationId="createJob", responses={"201": {"links": CREATED_JOB_LINKS}})
    def post(self, fields: dict[str, Any]) -> JobResponse:
        """Create a job (Dispatcher, Admin); honours Idempotency-Key."""
        outcome = http.dispatch().create_job(http.command_request(), **fields)
        job, status, headers = _job(outcome, 201)
        headers["Location"] = url_for("jobs.JobsById", job_id=str(job.id))
        return job, status, headers


@blp.route("/<job_id>")
class JobsById(MethodView):
    @blp.arguments(VERSION_QUERY, location="query", as_kwargs=True)
    @blp.response(200, JOB, headers=JOB_HEADERS)
    @blp.problems(401, 404)
    @blp.doc(operationId="getJob")
    def get(self, job_id: str, version: int | None = None) -> JobResponse:
        """Read a job (Dispatcher, Admin, its contractor); ?version=N rebuilds it as of N."""
        job = http.dispatch().get_job(http.job_id(job_id), http.actor(), version=version)
        return job, 200, http.job_headers(job.version)


@blp.route("/<job_id>/history")
class JobHistory(MethodView):
    @http.staff_only
    @blp.response(200, HistorySchema)
    @blp.problems(401, 403, 404)
    @blp.doc(operationId="getJobHistory")
    def get(self, job_id: str) -> dict[str, Any]:
        """The job's audit trail (Dispatcher, Admin): every stored event, in order."""
        canonical = http.job_id(job_id)
        events = http.dispatch().history(canonical, http.actor())
        return {"jobId": str(canonical), "events": events}


@blp.route("/<job_id>/assignments")
class JobAssignments(MethodView):
    @http.staff_only
    @blp.arguments(ASSIGN, as_kwargs=True)
    @job_command("assignJob", 201)
    def post(self, job_id: str, **fields: Any) -> JobResponse:
        """Assign a contractor (Dispatcher, Admin): a new Pending assignment."""
        return _job(http.dispatch().assign(
            http.command_request(), http.job_id(job_id),
            expected_version=http.expected_version(), **fields), 201)


@blp.route("/<job_id>/assignments/<assignment_id>/confirm")
class AssignmentConfirm(MethodView):
    @job_command("confirmAssignment")
    def post(self, job_id: str, assignment_id: str) -> JobResponse:
        """Confirm a Pending assignment (its Contractor, Dispatcher, Admin)."""
        return _job(http.dispatch().confirm_assignment(
            http.command_request(), http.job_id(job_id), http.assignment_id(assignment_id),
            expected_version=http.expected_version()))


@blp.route("/<job_id>/assignments/<assignment_id>/cancel")
class AssignmentCancel(MethodView):
    @http.staff_only
    @blp.arguments(CANCEL_ASSIGNMENT, required=False, as_kwargs=True)
    @job_command("cancelAssignment")
    def post(self, job_id: str, assignment_id: str, reason: str | None = None) -> JobResponse:
        """Cancel one Pending or Confirmed assignment (Dispatcher, Admin)."""
        return _job(http.dispatch().cancel_assignment(
            http.command_request(), http.job_id(job_id), http.assignment_id(assignment_id),
            reason=reason, expected_version=http.expected_version()))


@blp.route("/<job_id>/start")
class JobStart(MethodView):
    @http.staff_only
    @job_command("startJob")
    def post(self, job_id: str) -> JobResponse:
        """Start an Assigned job (Dispatcher, Admin)."""
        return _job(http.dispatch().start_job(
            http.command_request(), http.job_id(job_id),
            expected_version=http.expected_version()))


@blp.route("/<job_id>/complete")
class JobComplete(MethodView):
    @http.staff_only
    @job_command("completeJob")
    def post(self, job_id: str) -> JobResponse:
        """Complete an InProgress job (Dispatcher, Admin)."""
        return _job(http.dispatch().complete_job(
            http.command_request(), http.job_id(job_id),
            expected_version=http.expected_version()))


@blp.route("/<job_id>/cancel")
class JobCancel(MethodView):
    @http.staff_only
    @blp.arguments(CANCEL, required=False, as_kwargs=True)
    @job_command("cancelJob")
    def post(self, job_id: str, reason_code: str, reason: str | None = None) -> JobResponse:
        """Cancel a job and all of its live assignments (Dispatcher, Admin).

        One atomic append stores JobCancelled and an AssignmentCancelled for every
        Pending, Confirmed or InProgress assignment. A retry with the same
        Idempotency-Key and body returns the job with Idempotent-Replayed: true.
        """
        return _job(http.dispatch().cancel_job(
            http.command_request(), http.job_id(job_id), reason=reason,
            reason_code=reason_code, expected_version=http.expected_version()))
