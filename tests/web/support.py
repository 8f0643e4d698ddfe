"""Helpers of the HTTP tests: request bodies, problem and resource checks, tokens."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from werkzeug.test import TestResponse

from application.settings import Settings
from web.auth import mint_token

PROBLEM_JSON = "application/problem+json"
Z_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
JOB_FIELDS = {
    "id", "version", "type", "description", "durationMinutes", "priority", "region",
    "requiredSkills", "location", "serviceWindow", "status", "assignments",
    "cancellation", "createdAt", "updatedAt",
}
ASSIGNMENT_FIELDS = {"id", "contractorId", "startUtc", "endUtc", "status"}
CANCELLATION_FIELDS = {"reason", "reasonCode", "cancelledBy", "cancelledAt"}


def job_body(**overrides: Any) -> dict[str, Any]:
    """A valid POST /api/jobs body; `overrides` replace (or, as None, drop) fields."""
    body: dict[str, Any] = {
        "type": "HVAC repair",
        "description": "No cooling on the second floor",
        "durationMinutes": 120,
        "priority": "Normal",
        "region": "Default",
        "requiredSkills": ["hvac"],
        "location": {"address": "1 Main St", "latitude": 40.7, "longitude": -74.0},
        "serviceWindow": {"start": "2030-01-15T09:00:00Z", "end": "2030-01-15T13:00:00Z"},
    }
    for name, value in overrides.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def assignment_body(contractor_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    body = {
        "contractorId": contractor_id or str(uuid.uuid4()),
        "startUtc": "2030-01-15T09:00:00Z",
        "endUtc": "2030-01-15T11:00:00Z",
    }
    body.update(overrides)
    return body


def assert_problem(response: TestResponse, status: int, code: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status and code; returns it."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON
    problem = json.loads(response.get_data(as_text=True))
    assert {"type", "title", "status", "detail", "code"} <= problem.keys()
    assert problem["status"] == status
    assert problem["code"] == code
    assert isinstance(problem["type"], str) and problem["type"]
    assert isinstance(problem["title"], str) and problem["title"]
    assert isinstance(problem["detail"], str) and problem["detail"]
    assert "Traceback" not in response.get_data(as_text=True)
    return problem


def assert_job_resource(job: dict[str, Any]) -> None:
    """The body has exactly the members of the contract's Job resource."""
    assert set(job) == JOB_FIELDS
    uuid.UUID(job["id"])
    assert isinstance(job["version"], int)
    assert set(job["serviceWindow"]) == {"start", "end"}
    for stamp in (job["serviceWindow"]["start"], job["serviceWindow"]["end"],
                  job["createdAt"], job["updatedAt"]):
        assert Z_TIMESTAMP.match(stamp), stamp
    for assignment in job["assignments"]:
        assert set(assignment) == ASSIGNMENT_FIELDS
        assert Z_TIMESTAMP.match(assignment["startUtc"])
        assert Z_TIMESTAMP.match(assignment["endUtc"])
    if job["cancellation"] is not None:
        assert set(job["cancellation"]) == CANCELLATION_FIELDS
        assert Z_TIMESTAMP.match(job["cancellation"]["cancelledAt"])


@dataclass(frozen=True)
class Tokens:
    """Bearer tokens signed with the app's secret, as Authorization headers."""

    settings: Settings

    def token(self, *roles: str, sub: str | None = None, **kwargs: Any) -> str:
        return mint_token(self.settings, roles=roles, sub=sub, **kwargs)

    def headers(self, *roles: str, sub: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*roles, sub=sub)}"}

    def dispatcher(self, sub: str = "dispatcher-1") -> dict[str, str]:
        return self.headers("Dispatcher", sub=sub)

    def admin(self, sub: str = "admin-1") -> dict[str, str]:
        return self.headers("Admin", sub=sub)

    def contractor(self, contractor_id: str) -> dict[str, str]:
        return self.headers("Contractor", sub=contractor_id)
