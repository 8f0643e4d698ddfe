"""GET /api/assignments: every assignment for staff, a contractor's own only."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.web.support import Z_TIMESTAMP, assert_problem

ASSIGNMENT_FIELDS = {"id", "jobId", "contractorId", "startUtc", "endUtc", "status"}


@pytest.fixture
def board(create_job, assign, command, contractor_id):
    """Two jobs: the contractor's Confirmed assignment on one, others elsewhere."""
    first = create_job()["id"]
    mine = assign(first, contractor_id)["assignments"][0]["id"]
    command(first, f"assignments/{mine}/confirm")
    theirs = assign(first)["assignments"][1]["id"]
    second = create_job()["id"]
    other = assign(second)["assignments"][0]["id"]
    command(second, "cancel")
    return {"first": first, "second": second, "mine": mine, "theirs": theirs,
            "other": other}


def test_staff_list_every_assignment(client, dispatcher, board):
    response = client.get("/api/assignments", headers=dispatcher)

    assert response.status_code == 200
    listed = response.get_json()
    assert {a["id"] for a in listed} == {board["mine"], board["theirs"], board["other"]}
    for assignment in listed:
        assert set(assignment) == ASSIGNMENT_FIELDS
        assert Z_TIMESTAMP.match(assignment["startUtc"])
        assert Z_TIMESTAMP.match(assignment["endUtc"])
    assert json.loads(response.headers["X-Pagination"])["total"] == 3


@pytest.mark.parametrize("query, expected", [
    ("status=Confirmed", {"mine"}),
    ("status=Pending", {"theirs"}),
    ("status=Cancelled", {"other"}),
    ("jobId={second}", {"other"}),
    ("jobId={first}&status=Pending", {"theirs"}),
    ("contractorId={contractor}", {"mine"}),
    ("contractorId=7c9e6679-7425-40de-944b-e07fc1f90ae7", set()),
])
def test_staff_filter_assignments_by_contractor_job_and_status(
        client, admin, board, contractor_id, query, expected):
    url = "/api/assignments?" + query.format(contractor=contractor_id, **board)

    response = client.get(url, headers=admin)

    assert response.status_code == 200
    assert {a["id"] for a in response.get_json()} == {board[n] for n in expected}


def test_a_contractor_lists_only_their_own_assignments(client, contractor, board,
                                                       contractor_id):
    response = client.get("/api/assignments", headers=contractor)

    assert response.status_code == 200
    listed = response.get_json()
    assert [a["id"] for a in listed] == [board["mine"]]
    assert listed[0]["contractorId"] == contractor_id
    assert listed[0]["status"] == "Confirmed"
    assert listed[0]["jobId"] == board["first"]


def test_a_contractor_filtering_by_a_job_of_theirs_sees_only_their_own(
        client, contractor, board):
    response = client.get(f"/api/assignments?jobId={board['first']}", headers=contractor)

    assert [a["id"] for a in response.get_json()] == [board["mine"]]


def test_a_contractor_may_not_list_another_contractors_assignments(client, contractor,
                                                                   board):
    other = str(uuid.uuid4())

    response = client.get(f"/api/assignments?contractorId={other}", headers=contractor)

    assert_problem(response, 403, "forbidden")


def test_a_token_with_no_known_role_may_not_list_assignments(client, tokens, board):
    headers = tokens.headers("Viewer", sub="viewer-1")

    response = client.get("/api/assignments", headers=headers)

    assert_problem(response, 403, "forbidden")


@pytest.mark.parametrize("query", ["status=Bogus", "jobId=nope", "contractorId=12",
                                   "page_size=101"])
def test_a_bad_assignment_query_is_a_422(client, dispatcher, query):
    response = client.get(f"/api/assignments?{query}", headers=dispatcher)

    assert_problem(response, 422, "validation_failed")


def test_a_list_read_right_after_an_unassign_shows_it_cancelled(
        client, dispatcher, create_job, assign):
    job = assign(create_job()["id"])
    assignment_id = job["assignments"][0]["id"]
    client.post(f"/api/jobs/{job['id']}/assignments/{assignment_id}/cancel",
                headers=dispatcher)

    response = client.get(f"/api/assignments?jobId={job['id']}", headers=dispatcher)

    assert [a["status"] for a in response.get_json()] == ["Cancelled"]
