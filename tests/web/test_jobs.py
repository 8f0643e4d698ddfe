"""/api/jobs: create, list, read, time travel, the lifecycle commands and history."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.web.support import (
    PROBLEM_JSON,
    Z_TIMESTAMP,
    assert_job_resource,
    assert_problem,
    assignment_body,
    job_body,
)

UNKNOWN_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


# POST /api/jobs -------------------------------------------------------------


def test_creating_a_job_returns_201_with_location_etag_and_the_job_resource(
        client, dispatcher):
    body = job_body()

    response = client.post("/api/jobs", json=body, headers=dispatcher)

    assert response.status_code == 201
    assert response.mimetype == "application/json"
    job = response.get_json()
    assert_job_resource(job)
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"].endswith(f"/api/jobs/{job['id']}")
    assert job["version"] == 1
    assert job["status"] == "Created"
    assert job["type"] == "HVAC repair"
    assert job["description"] == "No cooling on the second floor"
    assert job["durationMinutes"] == 120
    assert job["priority"] == "Normal"
    assert job["region"] == "Default"
    assert job["requiredSkills"] == ["hvac"]
    assert job["location"] == {"address": "1 Main St", "latitude": 40.7,
                               "longitude": -74.0}
    assert job["assignments"] == []
    assert job["cancellation"] is None


def test_the_location_of_a_created_job_serves_that_job(client, dispatcher):
    created = client.post("/api/jobs", json=job_body(), headers=dispatcher)

    response = client.get(created.headers["Location"], headers=dispatcher)

    assert response.status_code == 200
    assert response.get_json() == created.get_json()


def test_timestamps_with_an_offset_are_accepted_and_returned_in_utc_with_z(
        client, dispatcher):
    body = job_body(serviceWindow={"start": "2030-01-15T11:00:00+02:00",
                                   "end": "2030-01-15T09:30:00-05:00"})

    response = client.post("/api/jobs", json=body, headers=dispatcher)

    assert response.status_code == 201
    window = response.get_json()["serviceWindow"]
    assert window["start"].startswith("2030-01-15T09:00:00")
    assert window["end"].startswith("2030-01-15T14:30:00")
    assert window["start"].endswith("Z")
    assert window["end"].endswith("Z")


def test_optional_fields_of_a_job_take_their_defaults(client, dispatcher):
    body = job_body(description=None, priority=None, region=None, requiredSkills=None,
                    location=None)

    response = client.post("/api/jobs", json=body, headers=dispatcher)

    assert response.status_code == 201
    job = response.get_json()
    assert_job_resource(job)
    assert job["description"] is None
    assert job["priority"] == "Normal"
    assert job["region"] == "Default"
    assert job["requiredSkills"] == []
    assert job["location"] is None


def test_an_admin_may_create_a_job(client, admin):
    body = job_body(priority="Rush")

    response = client.post("/api/jobs", json=body, headers=admin)

    assert response.status_code == 201
    assert response.get_json()["priority"] == "Rush"


INVALID_JOBS = {
    "missing type": (job_body(type=None), "type"),
    "missing durationMinutes": (job_body(durationMinutes=None), "durationMinutes"),
    "missing serviceWindow": (job_body(serviceWindow=None), "serviceWindow"),
    "durationMinutes as a string": (job_body(durationMinutes="120"), "durationMinutes"),
    "durationMinutes as a fraction": (job_body(durationMinutes=1.5), "durationMinutes"),
    "durationMinutes zero": (job_body(durationMinutes=0), "durationMinutes"),
    "type as a number": (job_body(type=42), "type"),
    "blank type": (job_body(type="   "), "type"),
    "requiredSkills not a list": (job_body(requiredSkills="hvac"), "requiredSkills"),
    "unknown field": (job_body(colour="red"), "colour"),
    "unknown field in location": (
        job_body(location={"address": "x", "latitude": 1, "longitude": 2, "floor": 3}),
        "location"),
    "latitude out of range": (
        job_body(location={"address": "x", "latitude": 91, "longitude": 2}), "location"),
    "naive window start": (
        job_body(serviceWindow={"start": "2030-01-15T09:00:00",
                                "end": "2030-01-15T13:00:00Z"}), "serviceWindow"),
    "naive window end": (
        job_body(serviceWindow={"start": "2030-01-15T09:00:00Z",
                                "end": "2030-01-15T13:00:00"}), "serviceWindow"),
    "not a timestamp": (
        job_body(serviceWindow={"start": "tomorrow", "end": "2030-01-15T13:00:00Z"}),
        "serviceWindow"),
    "window ends before it starts": (
        job_body(serviceWindow={"start": "2030-01-15T13:00:00Z",
                                "end": "2030-01-15T09:00:00Z"}), "serviceWindow"),
    "window ends when it starts": (
        job_body(serviceWindow={"start": "2030-01-15T13:00:00Z",
                                "end": "2030-01-15T13:00:00Z"}), "serviceWindow"),
    "unknown priority": (job_body(priority="Low"), "priority"),
    "priority in lower case": (job_body(priority="rush"), "priority"),
    "a JSON array instead of an object": ([job_body()], None),
}


@pytest.mark.parametrize("body, field", list(INVALID_JOBS.values()), ids=list(INVALID_JOBS))
def test_an_invalid_job_is_a_422_validation_failed_naming_the_field(
        client, dispatcher, body, field):
    response = client.post("/api/jobs", json=body, headers=dispatcher)

    problem = assert_problem(response, 422, "validation_failed")
    assert isinstance(problem["errors"], dict) and problem["errors"]
    if field is not None:
        assert field in problem["errors"]


def test_an_invalid_job_creates_nothing(client, dispatcher):
    client.post("/api/jobs", json=job_body(priority="Low"), headers=dispatcher)

    response = client.get("/api/jobs", headers=dispatcher)

    assert response.get_json() == []
    assert json.loads(response.headers["X-Pagination"])["total"] == 0


@pytest.mark.parametrize("raw", ['{"type": "HVAC"', "not json", "{'type': 'x'}", "[1,"])
def test_a_malformed_json_body_is_a_400_invalid_json(client, dispatcher, raw):
    headers = {**dispatcher, "Content-Type": "application/json"}

    response = client.post("/api/jobs", data=raw, headers=headers)

    assert_problem(response, 400, "invalid_json")


def test_a_contractor_may_not_create_a_job(client, contractor):
    body = job_body()

    response = client.post("/api/jobs", json=body, headers=contractor)

    assert_problem(response, 403, "forbidden")


def test_a_contractor_is_refused_before_their_body_is_validated(client, contractor):
    body = {"colour": "red"}

    response = client.post("/api/jobs", json=body, headers=contractor)

    assert_problem(response, 403, "forbidden")


def test_a_retried_create_with_the_same_idempotency_key_returns_the_first_job(
        client, dispatcher):
    headers = {**dispatcher, "Idempotency-Key": "create-once-1"}
    first = client.post("/api/jobs", json=job_body(), headers=headers)

    retry = client.post("/api/jobs", json=job_body(), headers=headers)

    assert first.status_code == 201
    assert retry.status_code in (200, 201)
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert retry.get_json() == first.get_json()
    assert retry.headers["ETag"] == first.headers["ETag"]
    listed = client.get("/api/jobs", headers=dispatcher)
    assert json.loads(listed.headers["X-Pagination"])["total"] == 1


def test_a_create_reusing_an_idempotency_key_with_another_body_is_a_422(
        client, dispatcher):
    headers = {**dispatcher, "Idempotency-Key": "create-once-2"}
    client.post("/api/jobs", json=job_body(), headers=headers)

    response = client.post("/api/jobs", json=job_body(type="Plumbing"), headers=headers)

    assert_problem(response, 422, "idempotency_key_reused")
    listed = client.get("/api/jobs", headers=dispatcher)
    assert json.loads(listed.headers["X-Pagination"])["total"] == 1


def test_creates_with_different_idempotency_keys_create_different_jobs(
        client, dispatcher):
    first = client.post("/api/jobs", json=job_body(),
                        headers={**dispatcher, "Idempotency-Key": "key-a"})

    second = client.post("/api/jobs", json=job_body(),
                         headers={**dispatcher, "Idempotency-Key": "key-b"})

    assert first.status_code == second.status_code == 201
    assert first.get_json()["id"] != second.get_json()["id"]


# GET /api/jobs --------------------------------------------------------------


def test_listing_jobs_returns_job_resources_with_an_x_pagination_header(
        client, dispatcher, create_job):
    ids = {create_job()["id"], create_job()["id"]}

    response = client.get("/api/jobs", headers=dispatcher)

    assert response.status_code == 200
    jobs = response.get_json()
    assert {job["id"] for job in jobs} == ids
    for job in jobs:
        assert_job_resource(job)
    pagination = json.loads(response.headers["X-Pagination"])
    assert pagination["total"] == 2


def test_an_admin_may_list_jobs(client, admin, create_job):
    create_job()

    response = client.get("/api/jobs", headers=admin)

    assert response.status_code == 200
    assert len(response.get_json()) == 1


@pytest.mark.parametrize("query, expected", [
    ("status=Cancelled", {"cancelled"}),
    ("status=Created", {"rush-east", "normal-west"}),
    ("priority=Rush", {"rush-east"}),
    ("region=West", {"normal-west", "cancelled"}),
    ("region=West&status=Created", {"normal-west"}),
    ("priority=High", set()),
])
def test_jobs_can_be_filtered_by_status_priority_and_region(
        client, dispatcher, create_job, command, query, expected):
    jobs = {
        "rush-east": create_job(priority="Rush", region="East")["id"],
        "normal-west": create_job(priority="Normal", region="West")["id"],
        "cancelled": create_job(priority="Normal", region="West")["id"],
    }
    command(jobs["cancelled"], "cancel")

    response = client.get(f"/api/jobs?{query}", headers=dispatcher)

    assert response.status_code == 200
    assert {job["id"] for job in response.get_json()} == {jobs[n] for n in expected}
    assert json.loads(response.headers["X-Pagination"])["total"] == len(expected)


def test_jobs_are_listed_page_by_page(client, dispatcher, create_job):
    ids = {create_job()["id"] for _ in range(3)}

    first = client.get("/api/jobs?page=1&page_size=2", headers=dispatcher)
    second = client.get("/api/jobs?page=2&page_size=2", headers=dispatcher)

    assert first.status_code == second.status_code == 200
    assert len(first.get_json()) == 2
    assert len(second.get_json()) == 1
    seen = {job["id"] for job in first.get_json() + second.get_json()}
    assert seen == ids
    pagination = json.loads(first.headers["X-Pagination"])
    assert pagination["total"] == 3
    assert pagination["total_pages"] == 2
    assert pagination["page"] == 1


@pytest.mark.parametrize("query", [
    "page_size=101", "page_size=0", "page=0", "page=x", "status=Bogus", "priority=Low",
])
def test_a_bad_list_query_is_a_422(client, dispatcher, query):
    response = client.get(f"/api/jobs?{query}", headers=dispatcher)

    assert_problem(response, 422, "validation_failed")


def test_a_page_size_of_100_is_allowed(client, dispatcher, create_job):
    create_job()

    response = client.get("/api/jobs?page_size=100", headers=dispatcher)

    assert response.status_code == 200


def test_a_contractor_may_not_list_jobs(client, contractor):
    response = client.get("/api/jobs", headers=contractor)

    assert_problem(response, 403, "forbidden")


def test_a_list_read_right_after_a_cancel_shows_the_job_cancelled(
        client, dispatcher, create_job):
    job = create_job()
    client.post(f"/api/jobs/{job['id']}/cancel", headers=dispatcher)

    response = client.get("/api/jobs", headers=dispatcher)

    listed = response.get_json()
    assert [j["status"] for j in listed] == ["Cancelled"]
    assert listed[0]["version"] == 2


def test_a_listed_job_equals_the_job_read_by_id(client, dispatcher, create_job, assign):
    job = create_job()
    assign(job["id"])

    listed = client.get("/api/jobs", headers=dispatcher).get_json()
    read = client.get(f"/api/jobs/{job['id']}", headers=dispatcher).get_json()

    assert listed == [read]


# GET /api/jobs/{id} ---------------------------------------------------------


def test_reading_a_job_returns_it_with_its_version_as_etag(
        client, dispatcher, create_job, assign):
    job = create_job()
    assign(job["id"])

    response = client.get(f"/api/jobs/{job['id']}", headers=dispatcher)

    assert response.status_code == 200
    assert_job_resource(response.get_json())
    assert response.get_json()["version"] == 2
    assert response.headers["ETag"] == '"2"'


def test_a_job_at_an_earlier_version_is_rebuilt_from_its_events(
        client, dispatcher, create_job, assign, command):
    job = create_job()
    assign(job["id"])
    command(job["id"], "cancel")

    first = client.get(f"/api/jobs/{job['id']}?version=1", headers=dispatcher)
    second = client.get(f"/api/jobs/{job['id']}?version=2", headers=dispatcher)

    assert first.status_code == second.status_code == 200
    assert first.headers["ETag"] == '"1"'
    assert first.get_json()["version"] == 1
    assert first.get_json()["status"] == "Created"
    assert first.get_json()["assignments"] == []
    assert first.get_json()["cancellation"] is None
    assert first.get_json() == {**job, "updatedAt": first.get_json()["updatedAt"]}
    assert second.headers["ETag"] == '"2"'
    assert second.get_json()["status"] == "Assigned"
    assert [a["status"] for a in second.get_json()["assignments"]] == ["Pending"]


def test_the_current_version_asked_for_by_number_is_the_current_job(
        client, dispatcher, create_job, assign):
    job = create_job()
    assign(job["id"])

    response = client.get(f"/api/jobs/{job['id']}?version=2", headers=dispatcher)

    assert response.status_code == 200
    assert response.headers["ETag"] == '"2"'
    assert response.get_json() == client.get(f"/api/jobs/{job['id']}",
                                             headers=dispatcher).get_json()


@pytest.mark.parametrize("version", [2, 99, 0, -1])
def test_a_version_the_job_never_had_is_a_404_version_not_found(
        client, dispatcher, create_job, version):
    job = create_job()

    response = client.get(f"/api/jobs/{job['id']}?version={version}", headers=dispatcher)

    assert_problem(response, 404, "version_not_found")


@pytest.mark.parametrize("job_id", [UNKNOWN_ID, "not-a-uuid", "12345"])
def test_an_unknown_or_malformed_job_id_is_a_404_job_not_found(
        client, dispatcher, job_id):
    response = client.get(f"/api/jobs/{job_id}", headers=dispatcher)

    assert_problem(response, 404, "job_not_found")


def test_a_contractor_sees_a_job_they_are_assigned_to(
        client, contractor, contractor_id, create_job, assign):
    job = create_job()
    assign(job["id"], contractor_id)

    response = client.get(f"/api/jobs/{job['id']}", headers=contractor)

    assert response.status_code == 200
    assert response.get_json()["id"] == job["id"]
    assert response.headers["ETag"] == '"2"'


def test_a_job_that_is_not_theirs_is_a_404_to_a_contractor(
        client, contractor, create_job, assign):
    job = create_job()
    assign(job["id"])  # another contractor

    response = client.get(f"/api/jobs/{job['id']}", headers=contractor)
    unknown = client.get(f"/api/jobs/{UNKNOWN_ID}", headers=contractor)

    problem = assert_problem(response, 404, "job_not_found")
    assert_problem(unknown, 404, "job_not_found")
    assert problem["title"] == unknown.get_json()["title"]


# POST /api/jobs/{id}/assignments --------------------------------------------


def test_assigning_a_contractor_adds_a_pending_assignment(
        client, dispatcher, create_job, contractor_id):
    job = create_job()

    response = client.post(f"/api/jobs/{job['id']}/assignments",
                           json=assignment_body(contractor_id), headers=dispatcher)

    assert response.status_code == 201
    assigned = response.get_json()
    assert_job_resource(assigned)
    assert response.headers["ETag"] == '"2"'
    assert assigned["status"] == "Assigned"
    assert len(assigned["assignments"]) == 1
    assignment = assigned["assignments"][0]
    uuid.UUID(assignment["id"])
    assert assignment["contractorId"] == contractor_id
    assert assignment["status"] == "Pending"
    assert assignment["startUtc"].startswith("2030-01-15T09:00:00")
    assert assignment["endUtc"].startswith("2030-01-15T11:00:00")


def test_an_admin_may_assign_a_second_contractor(client, admin, create_job, assign):
    job = create_job()
    assign(job["id"])

    response = client.post(f"/api/jobs/{job['id']}/assignments",
                           json=assignment_body(), headers=admin)

    assert response.status_code == 201
    assert [a["status"] for a in response.get_json()["assignments"]] == [
        "Pending", "Pending"]


INVALID_ASSIGNMENTS = {
    "missing contractorId": {"startUtc": "2030-01-15T09:00:00Z",
                             "endUtc": "2030-01-15T11:00:00Z"},
    "contractorId not a uuid": assignment_body("bob"),
    "naive startUtc": assignment_body(startUtc="2030-01-15T09:00:00"),
    "endUtc before startUtc": assignment_body(endUtc="2030-01-15T08:00:00Z"),
    "unknown field": {**assignment_body(), "note": "x"},
    "empty body": {},
}


@pytest.mark.parametrize("body", list(INVALID_ASSIGNMENTS.values()),
                         ids=list(INVALID_ASSIGNMENTS))
def test_an_invalid_assignment_is_a_422_and_changes_nothing(
        client, dispatcher, create_job, current_version, body):
    job = create_job()

    response = client.post(f"/api/jobs/{job['id']}/assignments", json=body,
                           headers=dispatcher)

    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"]
    assert current_version(job["id"]) == 1


@pytest.mark.parametrize("job_id", [UNKNOWN_ID, "nope"])
def test_assigning_to_an_unknown_job_is_a_404_job_not_found(client, dispatcher, job_id):
    response = client.post(f"/api/jobs/{job_id}/assignments", json=assignment_body(),
                           headers=dispatcher)

    assert_problem(response, 404, "job_not_found")


@pytest.mark.parametrize("ending", [["cancel"], ["start", "complete"]])
def test_a_terminal_job_is_not_assignable(
        client, dispatcher, create_job, assign, command, current_version, ending):
    job = create_job()
    assign(job["id"])
    for action in ending:
        command(job["id"], action)
    version = current_version(job["id"])

    response = client.post(f"/api/jobs/{job['id']}/assignments", json=assignment_body(),
                           headers=dispatcher)

    assert_problem(response, 400, "job_not_assignable")
    assert current_version(job["id"]) == version


def test_a_contractor_with_a_live_assignment_is_not_assigned_again(
        client, dispatcher, create_job, assign, contractor_id):
    job = create_job()
    assign(job["id"], contractor_id)

    response = client.post(f"/api/jobs/{job['id']}/assignments",
                           json=assignment_body(contractor_id), headers=dispatcher)

    assert_problem(response, 400, "job_not_assignable")


def test_a_contractor_may_not_assign(client, contractor, contractor_id, create_job,
                                     assign):
    job = create_job()
    assign(job["id"], contractor_id)

    response = client.post(f"/api/jobs/{job['id']}/assignments",
                           json=assignment_body(), headers=contractor)

    assert_problem(response, 403, "forbidden")


def test_a_retried_assign_with_the_same_idempotency_key_adds_one_assignment(
        client, dispatcher, create_job):
    job = create_job()
    headers = {**dispatcher, "Idempotency-Key": "assign-once"}
    body = assignment_body()
    first = client.post(f"/api/jobs/{job['id']}/assignments", json=body, headers=headers)

    retry = client.post(f"/api/jobs/{job['id']}/assignments", json=body, headers=headers)

    assert first.status_code == 201
    assert retry.status_code in (200, 201)
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json() == first.get_json()
    assert len(retry.get_json()["assignments"]) == 1


# Confirm --------------------------------------------------------------------


def test_a_contractor_confirms_their_own_assignment(
        client, contractor, contractor_id, create_job, assign):
    job = assign(create_job()["id"], contractor_id)
    assignment_id = job["assignments"][0]["id"]

    response = client.post(f"/api/jobs/{job['id']}/assignments/{assignment_id}/confirm",
                           headers=contractor)

    assert response.status_code == 200
    confirmed = response.get_json()
    assert_job_resource(confirmed)
    assert confirmed["assignments"][0]["status"] == "Confirmed"
    assert confirmed["status"] == "Assigned"
    assert response.headers["ETag"] == '"3"'


def test_a_dispatcher_may_confirm_an_assignment(client, dispatcher, create_job, assign):
    job = assign(create_job()["id"])
    assignment_id = job["assignments"][0]["id"]

    response = client.post(f"/api/jobs/{job['id']}/assignments/{assignment_id}/confirm",
                           headers=dispatcher)

    assert response.status_code == 200
    assert response.get_json()["assignments"][0]["status"] == "Confirmed"


def test_a_contractor_may_not_confirm_an_assignment_on_a_job_not_theirs(
        client, contractor, create_job, assign, current_version):
    job = assign(create_job()["id"])  # another contractor
    assignment_id = job["assignments"][0]["id"]

    response = client.post(f"/api/jobs/{job['id']}/assignments/{assignment_id}/confirm",
                           headers=contractor)

    assert_problem(response, 404, "job_not_found")
    assert current_version(job["id"]) == 2


def test_a_contractor_may_not_confirm_another_contractors_assignment_on_their_job(
        client, contractor, contractor_id, create_job, assign, current_version):
    job_id = create_job()["id"]
    other = assign(job_id)["assignments"][0]["id"]
    assign(job_id, contractor_id)

    response = client.post(f"/api/jobs/{job_id}/assignments/{other}/confirm",
                           headers=contractor)

    assert_problem(response, 403, "forbidden")
    assert current_version(job_id) == 3


def test_confirming_an_assignment_twice_is_a_400_assignment_not_confirmable(
        client, dispatcher, create_job, assign, command):
    job = assign(create_job()["id"])
    assignment_id = job["assignments"][0]["id"]
    command(job["id"], f"assignments/{assignment_id}/confirm")

    response = client.post(f"/api/jobs/{job['id']}/assignments/{assignment_id}/confirm",
                           headers=dispatcher)

    problem = assert_problem(response, 400, "assignment_not_confirmable")
    assert problem["jobId"] == job["id"]


def test_an_assignment_of_a_cancelled_job_is_not_confirmable(
        client, dispatcher, create_job, assign, command):
    job = assign(create_job()["id"])
    assignment_id = job["assignments"][0]["id"]
    command(job["id"], "cancel")

    response = client.post(f"/api/jobs/{job['id']}/assignments/{assignment_id}/confirm",
                           headers=dispatcher)

    assert_problem(response, 400, "assignment_not_confirmable")


@pytest.mark.parametrize("assignment_id", [UNKNOWN_ID, "not-a-uuid"])
def test_confirming_an_unknown_assignment_is_a_404_assignment_not_found(
        client, dispatcher, create_job, assign, assignment_id):
    job = assign(create_job()["id"])

    response = client.post(f"/api/jobs/{job['id']}/assignments/{assignment_id}/confirm",
                           headers=dispatcher)

    assert_problem(response, 404, "assignment_not_found")


def test_confirming_on_an_unknown_job_is_a_404_job_not_found(client, dispatcher):
    response = client.post(f"/api/jobs/{UNKNOWN_ID}/assignments/{UNKNOWN_ID}/confirm",
                           headers=dispatcher)

    assert_problem(response, 404, "job_not_found")


# Cancel one assignment (unassign) -------------------------------------------


def test_cancelling_the_only_assignment_puts_the_job_back_to_created(
        client, dispatcher, create_job, assign):
    job = assign(create_job()["id"])
    assignment_id = job["assignments"][0]["id"]

    response = client.post(f"/api/jobs/{job['id']}/assignments/{assignment_id}/cancel",
                           json={"reason": "  Sick  "}, headers=dispatcher)

    assert response.status_code == 200
    unassigned = response.get_json()
    assert_job_resource(unassigned)
    assert unassigned["status"] == "Created"
    assert unassigned["assignments"][0]["status"] == "Cancelled"
    assert unassigned["cancellation"] is None
    assert response.headers["ETag"] == '"3"'


def test_cancelling_one_of_two_assignments_keeps_the_job_assigned(
        client, dispatcher, create_job, assign, command):
    job_id = create_job()["id"]
    first = assign(job_id)["assignments"][0]["id"]
    assign(job_id)
    command(job_id, f"assignments/{first}/confirm")

    response = client.post(f"/api/jobs/{job_id}/assignments/{first}/cancel",
                           headers=dispatcher)

    assert response.status_code == 200
    assert response.get_json()["status"] == "Assigned"
    assert [a["status"] for a in response.get_json()["assignments"]] == [
        "Cancelled", "Pending"]


def test_an_unassigned_job_can_be_assigned_and_started_again(
        client, dispatcher, create_job, assign, command):
    job = assign(create_job()["id"])
    command(job["id"], f"assignments/{job['assignments'][0]['id']}/cancel")
    assign(job["id"])

    response = client.post(f"/api/jobs/{job['id']}/start", headers=dispatcher)

    assert response.status_code == 200
    assert [a["status"] for a in response.get_json()["assignments"]] == [
        "Cancelled", "InProgress"]


def test_cancelling_an_assignment_twice_is_a_400_assignment_not_cancellable(
        client, dispatcher, create_job, assign, command):
    job = assign(create_job()["id"])
    assignment_id = job["assignments"][0]["id"]
    command(job["id"], f"assignments/{assignment_id}/cancel")

    response = client.post(f"/api/jobs/{job['id']}/assignments/{assignment_id}/cancel",
                           headers=dispatcher)

    assert_problem(response, 400, "assignment_not_cancellable")


def test_an_in_progress_assignment_is_not_cancellable(
        client, dispatcher, create_job, assign, command, current_version):
    job = assign(create_job()["id"])
    assignment_id = job["assignments"][0]["id"]
    command(job["id"], "start")

    response = client.post(f"/api/jobs/{job['id']}/assignments/{assignment_id}/cancel",
                           headers=dispatcher)

    assert_problem(response, 400, "assignment_not_cancellable")
    assert current_version(job["id"]) == 3


@pytest.mark.parametrize("assignment_id", [UNKNOWN_ID, "not-a-uuid"])
def test_cancelling_an_unknown_assignment_is_a_404_assignment_not_found(
        client, dispatcher, create_job, assign, assignment_id):
    job = assign(create_job()["id"])

    response = client.post(f"/api/jobs/{job['id']}/assignments/{assignment_id}/cancel",
                           headers=dispatcher)

    assert_problem(response, 404, "assignment_not_found")


@pytest.mark.parametrize("body", [{"reason": ""}, {"reason": "x" * 501}, {"why": "x"},
                                  {"reason": 5}])
def test_an_invalid_unassign_body_is_a_422(client, dispatcher, create_job, assign,
                                           current_version, body):
    job = assign(create_job()["id"])
    assignment_id = job["assignments"][0]["id"]

    response = client.post(f"/api/jobs/{job['id']}/assignments/{assignment_id}/cancel",
                           json=body, headers=dispatcher)

    assert_problem(response, 422, "validation_failed")
    assert current_version(job["id"]) == 2


def test_a_contractor_may_not_cancel_even_their_own_assignment(
        client, contractor, contractor_id, create_job, assign, current_version):
    job = assign(create_job()["id"], contractor_id)
    assignment_id = job["assignments"][0]["id"]

    response = client.post(f"/api/jobs/{job['id']}/assignments/{assignment_id}/cancel",
                           headers=contractor)

    assert_problem(response, 403, "forbidden")
    assert current_version(job["id"]) == 2


# Start and complete ---------------------------------------------------------


def test_starting_an_assigned_job_puts_it_and_its_assignments_in_progress(
        client, dispatcher, create_job, assign, command):
    job_id = create_job()["id"]
    first = assign(job_id)["assignments"][0]["id"]
    assign(job_id)
    command(job_id, f"assignments/{first}/confirm")

    response = client.post(f"/api/jobs/{job_id}/start", headers=dispatcher)

    assert response.status_code == 200
    started = response.get_json()
    assert_job_resource(started)
    assert started["status"] == "InProgress"
    assert [a["status"] for a in started["assignments"]] == ["InProgress", "InProgress"]
    assert response.headers["ETag"] == f'"{started["version"]}"'


def test_completing_an_in_progress_job_completes_its_assignments(
        client, dispatcher, create_job, assign, command):
    job = assign(create_job()["id"])
    command(job["id"], "start")

    response = client.post(f"/api/jobs/{job['id']}/complete", headers=dispatcher)

    assert response.status_code == 200
    completed = response.get_json()
    assert_job_resource(completed)
    assert completed["status"] == "Completed"
    assert [a["status"] for a in completed["assignments"]] == ["Completed"]
    assert response.headers["ETag"] == '"4"'


def test_starting_a_job_without_an_assignment_is_a_400_invalid_transition(
        client, dispatcher, create_job, current_version):
    job = create_job()

    response = client.post(f"/api/jobs/{job['id']}/start", headers=dispatcher)

    problem = assert_problem(response, 400, "invalid_transition")
    assert problem["currentStatus"] == "Created"
    assert current_version(job["id"]) == 1


@pytest.mark.parametrize("before, action", [
    ([], "complete"),
    (["assign"], "complete"),
    (["assign", "start"], "start"),
    (["assign", "start", "complete"], "start"),
    (["assign", "start", "complete"], "complete"),
    (["assign", "cancel"], "start"),
    (["assign", "cancel"], "complete"),
    (["assign", "start", "cancel"], "complete"),
])
def test_a_lifecycle_step_out_of_order_is_a_400_invalid_transition(
        client, dispatcher, create_job, assign, command, current_version, before, action):
    job_id = create_job()["id"]
    for step in before:
        if step == "assign":
            assign(job_id)
        else:
            command(job_id, step)
    version = current_version(job_id)

    response = client.post(f"/api/jobs/{job_id}/{action}", headers=dispatcher)

    assert_problem(response, 400, "invalid_transition")
    assert current_version(job_id) == version


@pytest.mark.parametrize("action", ["start", "complete"])
def test_a_contractor_may_not_start_or_complete_their_job(
        client, contractor, contractor_id, create_job, assign, action):
    job = assign(create_job()["id"], contractor_id)

    response = client.post(f"/api/jobs/{job['id']}/{action}", headers=contractor)

    assert_problem(response, 403, "forbidden")


@pytest.mark.parametrize("action", ["start", "complete", "cancel", "assignments"])
def test_a_command_on_an_unknown_job_is_a_404_job_not_found(client, dispatcher, action):
    body = assignment_body() if action == "assignments" else None

    response = client.post(f"/api/jobs/{UNKNOWN_ID}/{action}", json=body,
                           headers=dispatcher)

    assert_problem(response, 404, "job_not_found")


# If-Match on the commands ---------------------------------------------------


@pytest.mark.parametrize("if_match", ['"1"', '"3"', 'W/"2"', "2", "garbage"])
def test_a_command_with_a_stale_if_match_is_a_412_with_the_current_etag(
        client, dispatcher, create_job, assign, current_version, if_match):
    job = assign(create_job()["id"])

    response = client.post(f"/api/jobs/{job['id']}/start",
                           headers={**dispatcher, "If-Match": if_match})

    assert_problem(response, 412, "precondition_failed")
    assert response.headers["ETag"] == '"2"'
    assert current_version(job["id"]) == 2


@pytest.mark.parametrize("if_match", ['"2"', "*"])
def test_a_command_with_a_matching_if_match_is_carried_out(
        client, dispatcher, create_job, assign, if_match):
    job = assign(create_job()["id"])

    response = client.post(f"/api/jobs/{job['id']}/start",
                           headers={**dispatcher, "If-Match": if_match})

    assert response.status_code == 200
    assert response.headers["ETag"] == '"3"'


def test_an_assign_with_a_stale_if_match_is_a_412(client, dispatcher, create_job,
                                                   assign, current_version):
    job = assign(create_job()["id"])

    response = client.post(f"/api/jobs/{job['id']}/assignments", json=assignment_body(),
                           headers={**dispatcher, "If-Match": '"1"'})

    assert_problem(response, 412, "precondition_failed")
    assert response.headers["ETag"] == '"2"'
    assert current_version(job["id"]) == 2


def test_a_confirm_with_a_stale_if_match_is_a_412(client, contractor, contractor_id,
                                                  create_job, assign):
    job = assign(create_job()["id"], contractor_id)
    assignment_id = job["assignments"][0]["id"]

    response = client.post(f"/api/jobs/{job['id']}/assignments/{assignment_id}/confirm",
                           headers={**contractor, "If-Match": '"1"'})

    assert_problem(response, 412, "precondition_failed")
    assert response.headers["ETag"] == '"2"'


@pytest.fixture
def ready_for(create_job, assign, command):
    """A job at the state each command needs; returns (path, body, version)."""

    def prepare(action: str) -> tuple[str, dict | None, int]:
        job = assign(create_job()["id"])
        job_id, assignment_id = job["id"], job["assignments"][0]["id"]
        if action == "complete":
            command(job_id, "start")
            return f"/api/jobs/{job_id}/complete", None, 3
        if action == "assign":
            return f"/api/jobs/{job_id}/assignments", assignment_body(), 2
        if action in ("confirm", "unassign"):
            verb = "confirm" if action == "confirm" else "cancel"
            return f"/api/jobs/{job_id}/assignments/{assignment_id}/{verb}", None, 2
        return f"/api/jobs/{job_id}/{action}", None, 2

    return prepare


COMMANDS = ["assign", "confirm", "unassign", "start", "complete", "cancel"]


@pytest.mark.parametrize("action", COMMANDS)
def test_every_command_refuses_a_stale_if_match_with_412_and_the_current_etag(
        client, dispatcher, ready_for, action):
    path, body, version = ready_for(action)

    response = client.post(path, json=body,
                           headers={**dispatcher, "If-Match": f'"{version - 1}"'})

    assert_problem(response, 412, "precondition_failed")
    assert response.headers["ETag"] == f'"{version}"'


@pytest.mark.parametrize("action", COMMANDS)
def test_every_command_is_carried_out_with_a_matching_if_match(
        client, dispatcher, ready_for, action):
    path, body, version = ready_for(action)

    response = client.post(path, json=body,
                           headers={**dispatcher, "If-Match": f'"{version}"'})

    assert response.status_code in (200, 201)
    assert int(response.headers["ETag"].strip('"')) > version


@pytest.mark.parametrize("action", COMMANDS)
def test_every_command_replays_a_retry_with_the_same_idempotency_key(
        client, dispatcher, ready_for, history, action):
    path, body, _ = ready_for(action)
    headers = {**dispatcher, "Idempotency-Key": f"retry-{action}"}
    first = client.post(path, json=body, headers=headers)
    job_id = first.get_json()["id"]
    events = history(job_id)

    retry = client.post(path, json=body, headers=headers)

    assert retry.status_code == first.status_code
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json() == first.get_json()
    assert history(job_id) == events


# History --------------------------------------------------------------------


def test_the_history_lists_every_event_in_version_order_with_actor_and_request_id(
        client, tokens, create_job, contractor_id):
    dispatcher = tokens.dispatcher("dispatcher-7")
    created = client.post("/api/jobs", json=job_body(),
                          headers={**dispatcher, "X-Request-Id": "req-create-1"})
    job_id = created.get_json()["id"]
    assigned = client.post(f"/api/jobs/{job_id}/assignments",
                           json=assignment_body(contractor_id),
                           headers={**dispatcher, "X-Request-Id": "req-assign-2"})
    assignment_id = assigned.get_json()["assignments"][0]["id"]
    client.post(f"/api/jobs/{job_id}/assignments/{assignment_id}/confirm",
                headers={**tokens.contractor(contractor_id), "X-Request-Id": "req-conf-3"})
    client.post(f"/api/jobs/{job_id}/start",
                headers={**tokens.admin("admin-9"), "X-Request-Id": "req-start-4"})
    client.post(f"/api/jobs/{job_id}/complete",
                headers={**dispatcher, "X-Request-Id": "req-complete-5"})

    response = client.get(f"/api/jobs/{job_id}/history", headers=dispatcher)

    assert response.status_code == 200
    trail = response.get_json()
    assert trail["jobId"] == job_id
    events = trail["events"]
    assert [e["version"] for e in events] == [1, 2, 3, 4, 5]
    assert [e["type"] for e in events] == ["JobCreated", "AssignmentCreated",
                                           "AssignmentConfirmed", "JobStarted",
                                           "JobCompleted"]
    assert [e["requestId"] for e in events] == ["req-create-1", "req-assign-2",
                                                "req-conf-3", "req-start-4",
                                                "req-complete-5"]
    assert [e["actor"] for e in events] == [
        {"sub": "dispatcher-7", "roles": ["Dispatcher"]},
        {"sub": "dispatcher-7", "roles": ["Dispatcher"]},
        {"sub": contractor_id, "roles": ["Contractor"]},
        {"sub": "admin-9", "roles": ["Admin"]},
        {"sub": "dispatcher-7", "roles": ["Dispatcher"]},
    ]
    for event in events:
        assert Z_TIMESTAMP.match(event["occurredAt"])
        assert isinstance(event["data"], dict)
    assert [e["occurredAt"] for e in events] == sorted(e["occurredAt"] for e in events)
    assert events[1]["data"]["contractorId"] == contractor_id
    assert events[1]["data"]["assignmentId"] == assignment_id


def test_the_history_records_a_generated_request_id_when_none_is_sent(
        client, dispatcher):
    created = client.post("/api/jobs", json=job_body(), headers=dispatcher)

    response = client.get(f"/api/jobs/{created.get_json()['id']}/history",
                          headers=dispatcher)

    assert response.get_json()["events"][0]["requestId"] == created.headers["X-Request-Id"]


def test_a_refused_command_adds_nothing_to_the_history(
        client, dispatcher, create_job, history):
    job = create_job()
    client.post(f"/api/jobs/{job['id']}/start", headers=dispatcher)

    events = history(job["id"])

    assert [e["type"] for e in events] == ["JobCreated"]


@pytest.mark.parametrize("job_id", [UNKNOWN_ID, "not-a-uuid"])
def test_the_history_of_an_unknown_job_is_a_404(client, dispatcher, job_id):
    response = client.get(f"/api/jobs/{job_id}/history", headers=dispatcher)

    assert_problem(response, 404, "job_not_found")


def test_a_contractor_may_not_read_the_history_even_of_their_own_job(
        client, contractor, contractor_id, create_job, assign):
    job = assign(create_job()["id"], contractor_id)

    response = client.get(f"/api/jobs/{job['id']}/history", headers=contractor)

    assert_problem(response, 403, "forbidden")


# Cross-cutting: request ids and problems ------------------------------------


@pytest.mark.parametrize("method, path, auth", [
    ("GET", "/api/jobs", True),
    ("POST", "/api/jobs", True),
    ("GET", f"/api/jobs/{UNKNOWN_ID}", True),
    ("GET", "/api/jobs", False),
    ("GET", "/healthz", False),
    ("GET", "/openapi.json", False),
    ("GET", "/api/no-such-thing", True),
])
def test_every_response_echoes_the_x_request_id_it_was_given(
        client, dispatcher, method, path, auth):
    headers = {**(dispatcher if auth else {}), "X-Request-Id": "trace-abc.123:4"}
    body = job_body() if method == "POST" else None

    response = client.open(path, method=method, json=body, headers=headers)

    assert response.headers["X-Request-Id"] == "trace-abc.123:4"


@pytest.mark.parametrize("method, path, auth", [
    ("GET", "/api/jobs", True),
    ("POST", "/api/jobs", True),
    ("GET", f"/api/jobs/{UNKNOWN_ID}", True),
    ("GET", "/api/jobs", False),
    ("GET", "/healthz", False),
    ("GET", "/readyz", False),
])
def test_every_response_carries_an_x_request_id_when_none_was_given(
        client, dispatcher, method, path, auth):
    body = job_body() if method == "POST" else None

    response = client.open(path, method=method, json=body,
                           headers=dispatcher if auth else {})

    assert response.headers.get("X-Request-Id")


def test_each_request_gets_its_own_generated_request_id(client, dispatcher):
    first = client.get("/api/jobs", headers=dispatcher)

    second = client.get("/api/jobs", headers=dispatcher)

    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]


def test_an_unknown_api_route_is_a_problem(client, dispatcher):
    response = client.get("/api/no-such-thing", headers=dispatcher)

    assert_problem(response, 404, "not_found")


def test_a_wrong_method_is_a_405_problem_with_allow(client, dispatcher, create_job):
    job = create_job()

    response = client.delete(f"/api/jobs/{job['id']}", headers=dispatcher)

    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_a_json_body_sent_as_text_plain_is_refused_with_a_problem(client, dispatcher):
    headers = {**dispatcher, "Content-Type": "text/plain"}

    response = client.post("/api/jobs", data=json.dumps(job_body()), headers=headers)

    assert response.status_code in (400, 415, 422)
    assert response.mimetype == PROBLEM_JSON
    assert response.get_json()["code"]
