"""RFC 9457 problem details: every error the API returns, from one table."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import PersistenceError
from flask import Flask, Response, g, json, request
from werkzeug.exceptions import HTTPException

from application.errors import (
    ConcurrencyConflict,
    JobNotFound,
    PreconditionFailed,
    VersionNotFound,
)
from application.webhooks import DeliveryNotRetryable, WebhookNotFound, WebhooksUnavailable
from domain import errors as domain

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class Kind:
    status: int
    code: str
    title: str


# Domain and application errors -> HTTP. The only place that decides a status code.
ERRORS: dict[type[Exception], Kind] = {
    JobNotFound: Kind(404, "job_not_found", "Job not found"),
    VersionNotFound: Kind(404, "version_not_found", "Version not found"),
    domain.AssignmentNotFound: Kind(404, "assignment_not_found", "Assignment not found"),
    domain.Forbidden: Kind(403, "forbidden", "Forbidden"),
    domain.JobCompleted: Kind(400, "job_completed", "Job is completed"),
    domain.JobAlreadyCancelled: Kind(400, "job_already_cancelled", "Job already cancelled"),
    domain.InvalidTransition: Kind(400, "invalid_transition", "Invalid transition"),
    domain.JobNotAssignable: Kind(400, "job_not_assignable", "Job not assignable"),
    domain.AssignmentNotConfirmable: Kind(400, "assignment_not_confirmable",
                                          "Assignment not confirmable"),
    domain.AssignmentNotCancellable: Kind(400, "assignment_not_cancellable",
                                          "Assignment not cancellable"),
    domain.IdempotencyKeyReused: Kind(422, "idempotency_key_reused",
                                      "Idempotency key reused"),
    domain.InvalidJob: Kind(422, "validation_failed", "Validation failed"),
    PreconditionFailed: Kind(412, "precondition_failed", "Precondition failed"),
    ConcurrencyConflict: Kind(409, "conflict", "Conflict"),
    WebhookNotFound: Kind(404, "webhook_not_found", "Webhook not found"),
    DeliveryNotRetryable: Kind(409, "delivery_not_retryable", "Delivery not retryable"),
    WebhooksUnavailable: Kind(503, "webhooks_unavailable", "Webhooks unavailable"),
}

# HTTP errors raised by Flask, werkzeug or webargs -> code.
HTTP_CODES: dict[int, str] = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict",
    412: "precondition_failed", 413: "payload_too_large",
    415: "unsupported_media_type", 422: "validation_failed", 428: "precondition_required",
    429: "too_many_requests", 500: "internal_error", 503: "service_unavailable",
}


class Problem(Exception):
    """An error response raised from the web layer itself (auth, bad JSON, ...)."""

    def __init__(self, status: int, code: str, title: str, detail: str,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.kind = Kind(status, code, title)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(kind: Kind, detail: str, headers: dict[str, str] | None = None,
                     **extra: Any) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:smartscheduler:problem:{kind.code}",
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
        "code": kind.code,
        "instance": request.path,
    }
    g.problem_code = kind.code  # the outcome of a command (web.telemetry)
    request_id = getattr(g, "request_id", None)
    if request_id:
        body["requestId"] = request_id
    body.update({k: v for k, v in extra.items() if v is not None})
    response = Response(json.dumps(body), status=kind.status, mimetype=PROBLEM_JSON)
    response.headers.update(headers or {})
    return response


def _domain_error(error: domain.DomainError) -> Response:
    kind = next(kind for cls, kind in ERRORS.items() if isinstance(error, cls))
    extra: dict[str, Any] = {
        "jobId": str(error.job_id) if error.job_id else None,
        "currentStatus": error.current_status,
    }
    headers = {}
    if isinstance(error, domain.AssignmentNotFound):
        extra["assignmentId"] = str(error.assignment_id)
    if isinstance(error, PreconditionFailed):
        headers["ETag"] = f'"{error.current_version}"'
        extra["currentVersion"] = error.current_version
    if isinstance(error, VersionNotFound):
        extra["currentVersion"] = error.current_version
    if isinstance(error, domain.InvalidJob):
        extra["errors"] = {error.field: [error.message]}
    if isinstance(error, ConcurrencyConflict):
        headers["Retry-After"] = "1"
    return problem_response(kind, error.message, headers, **extra)


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    headers = dict(data.get("headers") or {})
    if status == 400 and messages and "json" in messages:
        return problem_response(Kind(400, "invalid_json", "Invalid JSON"),
                                "The request body is not valid JSON.", headers)
    if status == 422:
        return problem_response(
            Kind(422, "validation_failed", "Validation failed"),
            "The request has invalid or unknown fields; see errors.", headers,
            errors=_flatten(messages or {}))
    if status == 405 and error.get_headers():
        headers.update({k: v for k, v in error.get_headers() if k == "Allow"})
    code = HTTP_CODES.get(status, "http_error")
    title = error.name
    return problem_response(Kind(status, code, title), error.description or title, headers)


def _flatten(messages: dict[str, Any]) -> dict[str, Any]:
    """webargs nests field errors under their location; the location adds nothing."""
    flat: dict[str, Any] = {}
    for location, errors in messages.items():
        if isinstance(errors, dict):
            flat.update(errors)
        else:
            flat[location] = errors
    return flat


def _problem(error: Problem) -> Response:
    return problem_response(error.kind, error.detail, error.headers, **error.extra)


def _persistence_error(error: PersistenceError) -> Response:
    log.exception("Storage failure", exc_info=error)
    return problem_response(Kind(503, "service_unavailable", "Service unavailable"),
                            "The event store is unavailable; try again shortly.",
                            {"Retry-After": "1"})


def _unexpected(error: Exception) -> Response:
    log.exception("Unhandled error", exc_info=error)
    return problem_response(Kind(500, "internal_error", "Internal server error"),
                            "Something went wrong on our side; it has been logged.")


def register(app: Flask) -> None:
    app.register_error_handler(domain.DomainError, _domain_error)
    app.register_error_handler(Problem, _problem)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(PersistenceError, _persistence_error)
    app.register_error_handler(Exception, _unexpected)
