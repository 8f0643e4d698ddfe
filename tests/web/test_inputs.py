"""What the API accepts at all: each refusal is a problem response and stores nothing.

Each case here once got through: it was stored and then stopped every reader,
or it answered 500. (tests/web/test_accepted_inputs.py proves the rule with
generated inputs; these are the findings, one by one.)
"""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest

from tests.web.support import assert_problem, assignment_body, job_body


@pytest.fixture
def head(flask_app):
    return lambda: flask_app.extensions["smartscheduler"].app.head_position()


def post_raw(client, path: str, text: str, headers: dict[str, str]):
    return client.post(path, data=text.encode("utf-8", "surrogatepass"),
                       headers={**headers, "Content-Type": "application/json"})


@pytest.mark.parametrize("window", [
    {"start": "0001-01-01T00:00:00+01:00", "end": "0001-01-01T05:00:00+01:00"},
    {"start": "2030-01-15T09:00:00Z", "end": "9999-12-31T23:00:00-05:00"},
    {"start": "1969-12-31T23:59:59Z", "end": "2030-01-15T13:00:00Z"},
    {"start": "1970-01-01T00:30:00+01:00", "end": "2030-01-15T13:00:00Z"},
    {"start": "2030-01-15T09:00:00Z", "end": "9999-12-30T23:59:59.000001Z"},
])
def test_a_service_window_beyond_what_readers_hold_is_refused(client, dispatcher, head,
                                                             window):
    response = client.post("/api/jobs", json=job_body(serviceWindow=window),
                           headers=dispatcher)

    problem = assert_problem(response, 422, "validation_failed")
    assert "serviceWindow" in problem["errors"]
    assert head() == 0


def test_the_widest_window_readers_hold_is_accepted(client, dispatcher):
    window = {"start": "1970-01-01T00:00:00Z", "end": "9999-12-30T23:59:59Z"}

    response = client.post("/api/jobs", json=job_body(serviceWindow=window),
                           headers=dispatcher)

    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["serviceWindow"] == {
        "start": "1970-01-01T00:00:00.000000Z", "end": "9999-12-30T23:59:59.000000Z"}


def test_an_assignment_ending_past_year_9999_in_utc_is_refused(client, dispatcher,
                                                              create_job, head):
    job = create_job()
    before = head()

    response = client.post(f"/api/jobs/{job['id']}/assignments", headers=dispatcher,
                           json=assignment_body(endUtc="9999-12-31T23:00:00-05:00"))

    problem = assert_problem(response, 422, "validation_failed")
    assert "endUtc" in problem["errors"]
    assert head() == before


@pytest.mark.parametrize("bad", ["a\\u0000b", "\\ud800", "x\\udfff", "\\u0000"])
@pytest.mark.parametrize("field", ["type", "description", "region", "requiredSkills",
                                   "location", "unknownField"])
def test_a_string_readers_cannot_hold_is_refused_in_any_field(client, dispatcher, head,
                                                              field, bad):
    body = job_body()
    text = json.dumps(body)[:-1] + ", " + {
        "type": '"type": "%s"',
        "description": '"description": "%s"',
        "region": '"region": "%s"',
        "requiredSkills": '"requiredSkills": ["ok", "%s"]',
        "location": '"location": {"address": "%s", "latitude": 1, "longitude": 2}',
        "unknownField": '"%s": 1',
    }[field] % bad + "}"

    response = post_raw(client, "/api/jobs", text, dispatcher)

    assert_problem(response, 422, "validation_failed")
    assert head() == 0


def test_a_cancel_reason_readers_cannot_hold_is_refused(client, dispatcher, create_job,
                                                       head):
    job = create_job()
    before = head()

    response = post_raw(client, f"/api/jobs/{job['id']}/cancel",
                        '{"reason": "late\\u0000", "reasonCode": "Weather"}', dispatcher)

    assert_problem(response, 422, "validation_failed")
    assert head() == before


def test_json_nested_fifty_thousand_deep_is_invalid_json_not_a_500(client, dispatcher,
                                                                  head):
    response = post_raw(client, "/api/jobs", "[" * 50_000 + "]" * 50_000, dispatcher)

    assert_problem(response, 400, "invalid_json")
    assert head() == 0


def nested(depth: int) -> str:
    """A job body whose `location` holds containers `depth` deep in all."""
    inner: Any = 1
    for _ in range(depth - 2):
        inner = [inner]
    return json.dumps(job_body(location={"address": inner, "latitude": 1, "longitude": 2}))


def test_json_nested_thirty_three_deep_is_invalid_json(client, dispatcher, head):
    response = post_raw(client, "/api/jobs", nested(33), dispatcher)

    assert_problem(response, 400, "invalid_json")
    assert head() == 0


def test_json_nested_thirty_two_deep_is_read_and_validated(client, dispatcher, head):
    response = post_raw(client, "/api/jobs", nested(32), dispatcher)

    assert_problem(response, 422, "validation_failed")  # the address is not a string
    assert head() == 0


def test_a_body_over_one_mebibyte_is_payload_too_large(client, dispatcher, head):
    body = json.dumps(job_body(description="x" * (1024 * 1024)))

    response = post_raw(client, "/api/jobs", body, dispatcher)

    assert_problem(response, 413, "payload_too_large")
    assert head() == 0


@pytest.mark.parametrize("request_id", ["abc\x00def", "\ud800"])
def test_a_stored_request_id_readers_cannot_hold_is_refused(client, dispatcher, head,
                                                           request_id):
    response = client.post("/api/jobs", json=job_body(),
                           headers={**dispatcher, "X-Request-Id": request_id})

    assert_problem(response, 422, "validation_failed")
    assert head() == 0


@pytest.mark.parametrize("sub", ["dispatcher\x00", "\ud800"])
def test_a_token_subject_readers_cannot_hold_stores_nothing(client, test_settings, head,
                                                           sub):
    token = jwt.encode({"sub": sub, "roles": ["Dispatcher"], "exp": 2**40},
                       test_settings.signing_secret, algorithm="HS256")

    response = client.post("/api/jobs", json=job_body(),
                           headers={"Authorization": f"Bearer {token}"})

    assert_problem(response, 422, "validation_failed")
    assert head() == 0


@pytest.mark.parametrize("query", ["region=%00", "status=Created%00", "%00=1",
                                   "priority=High&region=a%00b"])
def test_a_query_string_readers_cannot_hold_is_a_validation_error(client, dispatcher,
                                                                 query):
    response = client.get(f"/api/jobs?{query}", headers=dispatcher)

    assert_problem(response, 422, "validation_failed")


def test_assignments_query_with_a_nul_is_a_validation_error(client, dispatcher):
    response = client.get("/api/assignments?jobId=%00", headers=dispatcher)

    assert response.status_code == 422


def test_history_names_the_job_by_its_canonical_id(client, dispatcher, create_job):
    job = create_job()

    response = client.get(f"/api/jobs/{job['id'].upper()}/history", headers=dispatcher)

    assert response.status_code == 200
    assert response.get_json()["jobId"] == job["id"]


def test_a_job_read_by_an_upper_case_id_answers_with_the_canonical_one(client, dispatcher,
                                                                      create_job):
    job = create_job()

    response = client.get(f"/api/jobs/{job['id'].upper()}", headers=dispatcher)

    assert response.get_json()["id"] == job["id"]


def test_the_body_checked_at_the_edge_is_the_one_the_schemas_load(client, dispatcher,
                                                                   monkeypatch):
    # webargs would parse the body again; here it may not, so a second parse fails.
    import webargs.core

    def second_parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the body was parsed a second time")

    monkeypatch.setattr(webargs.core, "parse_json", second_parse)

    created = client.post("/api/jobs", json=job_body(), headers=dispatcher)
    assert created.status_code == 201, created.get_json()
    cancelled = client.post(f"/api/jobs/{created.get_json()['id']}/cancel",
                            json={"reason": "Customer called", "reasonCode": "Other"},
                            headers=dispatcher)
    assert cancelled.status_code == 200, cancelled.get_json()
    assert cancelled.get_json()["status"] == "Cancelled"
