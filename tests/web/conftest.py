"""Fixtures of the HTTP tests: the real Flask app over each storage backend.

`flask_app` is `create_app(test_settings)` (so every test runs on SQLite
and on PostgreSQL, through the root conftest's `database_url`), closed after
the test. `tokens` mints bearer tokens for each role with the app's secret;
`create_job` creates a job through POST /api/jobs and returns its JSON. The
helpers (bodies, checks, `Tokens`) are in `tests/web/support.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from application.settings import Settings
from smartscheduler.bootstrap import create_app
from tests.web.support import Tokens, assignment_body, job_body


@pytest.fixture
def flask_app(test_settings: Settings) -> Iterator[Flask]:
    app = create_app(test_settings)
    app.config["TESTING"] = True
    try:
        yield app
    finally:
        app.extensions["smartscheduler"].close()


@pytest.fixture
def client(flask_app: Flask) -> FlaskClient:
    return flask_app.test_client()


@pytest.fixture
def tokens(test_settings: Settings) -> Tokens:
    return Tokens(test_settings)


@pytest.fixture
def dispatcher(tokens: Tokens) -> dict[str, str]:
    """Authorization headers of a Dispatcher (sub `dispatcher-1`)."""
    return tokens.dispatcher()


@pytest.fixture
def admin(tokens: Tokens) -> dict[str, str]:
    return tokens.admin()


@pytest.fixture
def contractor_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def contractor(tokens: Tokens, contractor_id: str) -> dict[str, str]:
    """Authorization headers of the Contractor whose id is `contractor_id`."""
    return tokens.contractor(contractor_id)


@pytest.fixture
def create_job(client: FlaskClient, dispatcher: dict[str, str]
               ) -> Callable[..., dict[str, Any]]:
    """POST /api/jobs as the dispatcher; returns the created job's JSON."""

    def create(**overrides: Any) -> dict[str, Any]:
        response = client.post("/api/jobs", json=job_body(**overrides), headers=dispatcher)
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()

    return create


@pytest.fixture
def assign(client: FlaskClient, dispatcher: dict[str, str]
           ) -> Callable[..., dict[str, Any]]:
    """POST /api/jobs/{id}/assignments as the dispatcher; returns the job's JSON."""

    def add(job_id: str, contractor_id: str | None = None, **overrides: Any
            ) -> dict[str, Any]:
        response = client.post(f"/api/jobs/{job_id}/assignments",
                               json=assignment_body(contractor_id, **overrides),
                               headers=dispatcher)
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()

    return add


@pytest.fixture
def command(client: FlaskClient, dispatcher: dict[str, str]
            ) -> Callable[..., dict[str, Any]]:
    """POST /api/jobs/{id}/<action> as the dispatcher, expecting 200; returns the job."""

    def run(job_id: str, action: str, body: Any = None) -> dict[str, Any]:
        response = client.post(f"/api/jobs/{job_id}/{action}", json=body,
                               headers=dispatcher)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    return run


@pytest.fixture
def history(client: FlaskClient, dispatcher: dict[str, str]
            ) -> Callable[[str], list[dict[str, Any]]]:
    """The events of a job's audit trail, read as the dispatcher."""

    def read(job_id: str) -> list[dict[str, Any]]:
        response = client.get(f"/api/jobs/{job_id}/history", headers=dispatcher)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["events"]

    return read


@pytest.fixture
def current_version(client: FlaskClient, dispatcher: dict[str, str]
                    ) -> Callable[[str], int]:
    def read(job_id: str) -> int:
        response = client.get(f"/api/jobs/{job_id}", headers=dispatcher)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["version"]

    return read
