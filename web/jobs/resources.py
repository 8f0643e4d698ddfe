"""/api/jobs: create, list, read, time-travel, history, and the lifecycle commands."""

from __future__ import annotations

from typing import Any

from flask import current_app, url_for
from flask.views import MethodView
from werkzeug.sansio.response import Response as BaseResponse

from application.dispatch import Outcome
from domain.catalog import job_document
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


# Request schemas are instances, built once: a schema class would be built again
# (fields deep-copied, nested schemas too) on every request by webargs.
JOB_CREATE = JobCreateSchema()
ASSIGN = AssignSchema()
CANCEL = CancelSchema()
CANCEL_ASSIGNMENT = CancelAssignmentSchema()
LIST_QUERY = JobListQuery()
VERSION_QUERY = VersionQuery()


def job_response(document: dict[str, Any]) -> BaseResponse:
    """The Job resource as JSON, as `@blp.response(..., JobSchema)` would send it.

    `job_document` already builds exactly what JobSchema dumps (a test holds
    them equal), so the dump, a second walk of the document, is skipped: a
    Response returned by a view goes out as it is, with the view's status and
    headers. JobSchema still documents the response.
    """
    return current_app.json.response(document)


def _job(outcome: Outcome, status: int = 200) -> tuple[BaseResponse, int, dict[str, str]]:
    return job_response(job_document(outcome.job)), status, http.job_headers(outcome)


@blp.route("")
class Jobs(MethodView):
    @http.staff_only
    @blp.arguments(LIST_QUERY, location="query", as_kwargs=True)
    @blp.response(200, JobSchema(many=True))
    @blp.paginate(page=1, page_size=20, max_page_size=100)
    @blp.problems(401, 403)
    @blp.doc(operationId="listJobs")
    def get(self, pagination_parameters: Any, **filters: Any) -> list[dict[str, Any]]:
        """List jobs (Dispatcher, Admin), newest first, filtered and paged."""
        http.actor().require_staff()
        page = http.caught_up_views().list_jobs(
            **filters, page=http.page_to_read(pagination_parameters.page),
            page_size=pagination_parameters.page_size)
        pagination_parameters.item_count = page.total
        return page.items

    @http.staff_only
    @blp.arguments(JOB_CREATE)
    @blp.response(201, JobSchema, headers={**JOB_HEADERS, "Location": {
        "description": "The new job's URL", "schema": {"type": "string"}}})
    @blp.doc(parameters=COMMAND_HEADERS)
    @blp.problems(400, 401, 403, 412, 415)
    @blp.doc(operationId="createJob", responses={"201": {"links": CREATED_JOB_LINKS}})
    def post(self, fields: dict[str, Any]) -> Any:
        """Create a job (Dispatcher, Admin); honours Idempotency-Key."""
        outcome = http.dispatch().create_job(http.command_request(), **fields)
        body, status, headers = _job(outcome, 201)
        headers["Location"] = url_for("jobs.JobsById", job_id=str(outcome.job.id))
        return body, status, headers


@blp.route("/<job_id>")
class JobsById(MethodView):
    @blp.arguments(VERSION_QUERY, location="query", as_kwargs=True)
    @blp.response(200, JobSchema, headers=JOB_HEADERS)
    @blp.problems(401, 404)
    @blp.doc(operationId="getJob")
    def get(self, job_id: str, version: int | None = None) -> Any:
        """Read a job (Dispatcher, Admin, its contractor); ?version=N rebuilds it as of N."""
        job = http.dispatch().get_job(http.job_id(job_id), http.actor(), version=version)
        return job_response(job_document(job)), 200, http.job_headers(job.version)


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
    @blp.response(201, JobSchema, headers=JOB_HEADERS)
    @blp.doc(parameters=COMMAND_HEADERS)
    @blp.problems(400, 401, 403, 404, 412, 415, 422)
    @blp.doc(operationId="assignJob")
    def post(self, job_id: str, **fields: Any) -> Any:
        """Assign a contractor (Dispatcher, Admin): a new Pending assignment."""
        return _job(http.dispatch().assign(
            http.command_request(), http.job_id(job_id),
            expected_version=http.expected_version(), **fields), 201)


@blp.route("/<job_id>/assignments/<assignment_id>/confirm")
class AssignmentConfirm(MethodView):
    @blp.response(200, JobSchema, headers=JOB_HEADERS)
    @blp.doc(parameters=COMMAND_HEADERS)
    @blp.problems(400, 401, 403, 404, 412, 415, 422)
    @blp.doc(operationId="confirmAssignment")
    def post(self, job_id: str, assignment_id: str) -> Any:
        """Confirm a Pending assignment (its Contractor, Dispatcher, Admin)."""
        return _job(http.dispatch().confirm_assignment(
            http.command_request(), http.job_id(job_id), http.assignment_id(assignment_id),
            expected_version=http.expected_version()))


@blp.route("/<job_id>/assignments/<assignment_id>/cancel")
class AssignmentCancel(MethodView):
    @http.staff_only
    @blp.arguments(CANCEL_ASSIGNMENT, required=False, as_kwargs=True)
    @blp.response(200, JobSchema, headers=JOB_HEADERS)
    @blp.doc(parameters=COMMAND_HEADERS)
    @blp.problems(400, 401, 403, 404, 412, 415, 422)
    @blp.doc(operationId="cancelAssignment")
    def post(self, job_id: str, assignment_id: str, reason: str | None = None) -> Any:
        """Cancel one Pending or Confirmed assignment (Dispatcher, Admin)."""
        return _job(http.dispatch().cancel_assignment(
            http.command_request(), http.job_id(job_id), http.assignment_id(assignment_id),
            reason=reason, expected_version=http.expected_version()))


@blp.route("/<job_id>/start")
class JobStart(MethodView):
    @http.staff_only
    @blp.response(200, JobSchema, headers=JOB_HEADERS)
    @blp.doc(parameters=COMMAND_HEADERS)
    @blp.problems(400, 401, 403, 404, 412, 415, 422)
    @blp.doc(operationId="startJob")
    def post(self, job_id: str) -> Any:
        """Start an Assigned job (Dispatcher, Admin)."""
        return _job(http.dispatch().start_job(
            http.command_request(), http.job_id(job_id),
            expected_version=http.expected_version()))


@blp.route("/<job_id>/complete")
class JobComplete(MethodView):
    @http.staff_only
    @blp.response(200, JobSchema, headers=JOB_HEADERS)
    @blp.doc(parameters=COMMAND_HEADERS)
    @blp.problems(400, 401, 403, 404, 412, 415, 422)
    @blp.doc(operationId="completeJob")
    def post(self, job_id: str) -> Any:
        """Complete an InProgress job (Dispatcher, Admin)."""
        return _job(http.dispatch().complete_job(
            http.command_request(), http.job_id(job_id),
            expected_version=http.expected_version()))


@blp.route("/<job_id>/cancel")
class JobCancel(MethodView):
    @http.staff_only
    @blp.arguments(CANCEL, required=False, as_kwargs=True)
    @blp.response(200, JobSchema, headers=JOB_HEADERS)
    @blp.doc(parameters=COMMAND_HEADERS)
    @blp.problems(400, 401, 403, 404, 412, 415, 422)
    @blp.doc(operationId="cancelJob")
    def post(self, job_id: str, reason_code: str, reason: str | None = None) -> Any:
        """Cancel a job and all of its live assignments (Dispatcher, Admin).

        One atomic append stores JobCancelled and an AssignmentCancelled for every
        Pending, Confirmed or InProgress assignment. A retry with the same
        Idempotency-Key and body returns the job with Idempotent-Replayed: true.
        """
        return _job(http.dispatch().cancel_job(
            http.command_request(), http.job_id(job_id), reason=reason,
            reason_code=reason_code, expected_version=http.expected_version()))
