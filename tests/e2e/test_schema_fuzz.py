"""Schemathesis over the served OpenAPI document, against the Flask app in process.

Every operation gets generated requests, valid ones and invalid ones, with a
Dispatcher token, and every response must be as documented: no 5xx, a
documented status code and content type, and a body that matches the documented
schema. The catch-all `default` responses are left out of the document the
checks read, so every status code an operation answers must be listed for it.

Schemathesis's own pytest integration (`from_fixture(...).parametrize()`) sets
`Item._nodeid`, which pytest 9 no longer has; so the operations are driven here
with the public `as_strategy` API, one subtest per operation.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from application.settings import Settings
from smartscheduler.bootstrap import create_app
from web.auth import mint_token

SECRET = "fuzz-secret-" + "f" * 40
EXAMPLES_PER_OPERATION = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
# A server-sent event stream never ends: it cannot be fuzzed request by request.
UNFUZZABLE = {"/api/events"}
JOB = {
    "type": "HVAC repair", "durationMinutes": 120, "region": "North",
    "serviceWindow": {"start": "2030-01-15T09:00:00Z", "end": "2030-01-15T13:00:00Z"},
}
SLOT = {"contractorId": "00000000-0000-4000-8000-000000000001",
        "startUtc": "2030-01-15T09:00:00Z", "endUtc": "2030-01-15T11:00:00Z"}
STATES = ["Created", "Assigned", "InProgress", "Completed", "Cancelled"]


@dataclass
class Fuzz:
    app: Flask
    schema: Any
    headers: dict[str, str]

    def operations(self) -> list[Any]:
        found = [result.ok() for result in self.schema.get_all_operations()]
        return [op for op in found if op.path not in UNFUZZABLE]

    def job_in(self, state: str) -> dict[str, str]:
        """A new job in `state`, with one assignment (cancelled, for a Created job)."""
        client: FlaskClient = self.app.test_client()

        def post(path: str, body: Any = None) -> dict[str, Any]:
            response = client.post(path, json=body, headers=self.headers)
            assert response.status_code in (200, 201), response.get_json()
            return response.get_json()

        job_id = post("/api/jobs", JOB)["id"]
        assignment_id = post(f"/api/jobs/{job_id}/assignments", SLOT)["assignments"][0]["id"]
        base = f"/api/jobs/{job_id}"
        steps = {
            "Created": [f"{base}/assignments/{assignment_id}/cancel"],
            "Assigned": [],
            "InProgress": [f"{base}/start"],
            "Completed": [f"{base}/start", f"{base}/complete"],
            "Cancelled": [f"{base}/cancel"],
        }[state]
        for path in steps:
            post(path)
        return {"job_id": job_id, "assignment_id": assignment_id}


def strictly_documented(document: dict[str, Any]) -> dict[str, Any]:
    """The document without the catch-all `default` responses."""
    strict = copy.deepcopy(document)
    for operations in strict["paths"].values():
        for operation in operations.values():
            if isinstance(operation, dict):
                operation.get("responses", {}).pop("default", None)
    return strict


@pytest.fixture
def fuzz(tmp_path: Path) -> Iterator[Fuzz]:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'fuzz.db'}",
                              jwt_secret=SECRET))
    try:
        document = app.test_client().get("/openapi.json").get_json()
        schema = schemathesis.openapi.from_dict(strictly_documented(document))
        schema.app = app  # as schemathesis.openapi.from_wsgi does
        token = mint_token(Settings(jwt_secret=SECRET), roles=["Dispatcher"], ttl=3600)
        yield Fuzz(app, schema, {"Authorization": f"Bearer {token}"})
    finally:
        app.extensions["smartscheduler"].close()


def fuzz_settings() -> settings:
    return settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid requests", "invalid requests"])
def test_every_documented_operation_answers_as_documented(
        fuzz: Fuzz, mode: GenerationMode, subtests: Any) -> None:
    operations = fuzz.operations()
    assert len(operations) >= 10, [op.label for op in operations]

    for operation in operations:
        with subtests.test(operation=operation.label):
            @given(case=operation.as_strategy(generation_mode=mode))
            @fuzz_settings()
            def answers_as_documented(case: Any) -> None:
                case.call_and_validate(headers=fuzz.headers, checks=CHECKS)

            answers_as_documented()


def test_operations_on_existing_jobs_in_every_state_answer_as_documented(
        fuzz: Fuzz, subtests: Any) -> None:
    on_a_job = [op for op in fuzz.operations() if "{job_id}" in op.path]
    assert len(on_a_job) >= 8, [op.label for op in on_a_job]

    for operation in on_a_job:
        with subtests.test(operation=operation.label):
            @given(case=operation.as_strategy(), state=st.sampled_from(STATES))
            @fuzz_settings()
            def answers_as_documented(case: Any, state: str) -> None:
                ids = fuzz.job_in(state)
                case.path_parameters = {name: ids[name] for name in case.path_parameters}
                case.call_and_validate(headers=fuzz.headers, checks=CHECKS)

            answers_as_documented()
