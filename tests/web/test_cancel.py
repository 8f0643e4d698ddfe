"""POST /api/jobs/{id}/cancel: every row of the contract's cancel table."""

from __future__ import annotations

import threading

import pytest

from tests.web.support import Z_TIMESTAMP, assert_job_resource, assert_problem

UNKNOWN_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
REASON_CODES = ["CustomerRequest", "ContractorUnavailable", "Weather", "Duplicate",
                "Other"]


@pytest.fixture
def busy_job(create_job, assign, command):
    """An InProgress job whose assignments are InProgress, Cancelled, Pending and
    Confirmed: assign A and B, unassign B, start (A goes InProgress), then
    assign C and D and confirm D."""
    job_id = create_job()["id"]
    a = assign(job_id)["assignments"][0]["id"]
    b = assign(job_id)["assignments"][1]["id"]
    command(job_id, f"assignments/{b}/cancel")
    command(job_id, "start")
    c = assign(job_id)["assignments"][2]["id"]
    d = assign(job_id)["assignments"][3]["id"]
    command(job_id, f"assignments/{d}/confirm")
    return {"id": job_id, "in_progress": a, "cancelled": b, "pending": c, "confirmed": d}


def statuses(job):
    return {a["id"]: a["status"] for a in job["assignments"]}


# Success --------------------------------------------------------------------


def test_cancelling_a_job_returns_it_cancelled_with_a_new_etag(
        client, tokens, create_job):
    job = create_job()
    headers = tokens.dispatcher("dispatcher-42")
    body = {"reason": "Customer called to cancel", "reasonCode": "CustomerRequest"}

    response = client.post(f"/api/jobs/{job['id']}/cancel", json=body, headers=headers)

    assert response.status_code == 200
    cancelled = response.get_json()
    assert_job_resource(cancelled)
    assert cancelled["status"] == "Cancelled"
    assert cancelled["version"] == 2
    assert response.headers["ETag"] == '"2"'
    cancellation = cancelled["cancellation"]
    assert cancellation["reason"] == "Customer called to cancel"
    assert cancellation["reasonCode"] == "CustomerRequest"
    assert cancellation["cancelledBy"] == "dispatcher-42"
    assert Z_TIMESTAMP.match(cancellation["cancelledAt"])
    assert cancelled["updatedAt"] == cancellation["cancelledAt"]


def test_an_admin_may_cancel_a_job(client, tokens, create_job):
    job = create_job()

    response = client.post(f"/api/jobs/{job['id']}/cancel",
                           headers=tokens.admin("admin-5"))

    assert response.status_code == 200
    assert response.get_json()["cancellation"]["cancelledBy"] == "admin-5"


def test_the_cancelled_job_is_what_a_later_read_returns(client, dispatcher, create_job):
    job = create_job()
    cancelled = client.post(f"/api/jobs/{job['id']}/cancel", headers=dispatcher)

    response = client.get(f"/api/jobs/{job['id']}", headers=dispatcher)

    assert response.get_json() == cancelled.get_json()
    assert response.headers["ETag"] == cancelled.headers["ETag"]


def test_live_assignments_are_cancelled_and_finished_ones_left_as_they_were(
        client, dispatcher, busy_job):
    job_id = busy_job["id"]

    response = client.post(f"/api/jobs/{job_id}/cancel", headers=dispatcher)

    assert response.status_code == 200
    assert statuses(response.get_json()) == {
        busy_job["in_progress"]: "Cancelled",
        busy_job["cancelled"]: "Cancelled",
        busy_job["pending"]: "Cancelled",
        busy_job["confirmed"]: "Cancelled",
    }


def test_a_cancel_appends_one_job_cancelled_and_one_assignment_cancelled_per_live_one(
        client, dispatcher, busy_job, history):
    job_id = busy_job["id"]
    before = history(job_id)

    client.post(f"/api/jobs/{job_id}/cancel", json={"reasonCode": "Weather"},
                headers={**dispatcher, "X-Request-Id": "cancel-req-1"})

    new = history(job_id)[len(before):]
    assert sorted(e["type"] for e in new) == [
        "AssignmentCancelled", "AssignmentCancelled", "AssignmentCancelled",
        "JobCancelled"]
    assert {e["data"]["assignmentId"] for e in new if e["type"] == "AssignmentCancelled"
            } == {busy_job["in_progress"], busy_job["pending"], busy_job["confirmed"]}
    assert [e["version"] for e in new] == list(
        range(len(before) + 1, len(before) + 1 + len(new)))
    for event in new:
        assert event["requestId"] == "cancel-req-1"
        assert event["actor"] == {"sub": "dispatcher-1", "roles": ["Dispatcher"]}
    job_cancelled = next(e for e in new if e["type"] == "JobCancelled")
    assert job_cancelled["data"]["reasonCode"] == "Weather"
    assert {a["assignmentId"] for a in job_cancelled["data"]["cancelledAssignments"]} == {
        busy_job["in_progress"], busy_job["pending"], busy_job["confirmed"]}


def test_cancelling_a_job_with_no_assignment_appends_only_job_cancelled(
        client, dispatcher, create_job, history):
    job = create_job()

    client.post(f"/api/jobs/{job['id']}/cancel", headers=dispatcher)

    assert [e["type"] for e in history(job["id"])] == ["JobCreated", "JobCancelled"]


@pytest.mark.parametrize("setup", [[], ["assign"], ["assign", "start"]])
def test_a_job_can_be_cancelled_from_created_assigned_or_in_progress(
        client, dispatcher, create_job, assign, command, setup):
    job_id = create_job()["id"]
    for step in setup:
        if step == "assign":
            assign(job_id)
        else:
            command(job_id, step)

    response = client.post(f"/api/jobs/{job_id}/cancel", headers=dispatcher)

    assert response.status_code == 200
    assert response.get_json()["status"] == "Cancelled"
    assert all(a["status"] == "Cancelled" for a in response.get_json()["assignments"])


# The body -------------------------------------------------------------------


@pytest.mark.parametrize("body", [None, {}])
def test_reason_code_defaults_to_other_and_reason_to_null(
        client, dispatcher, create_job, body):
    job = create_job()

    response = client.post(f"/api/jobs/{job['id']}/cancel", json=body, headers=dispatcher)

    assert response.status_code == 200
    cancellation = response.get_json()["cancellation"]
    assert cancellation["reasonCode"] == "Other"
    assert cancellation["reason"] is None


@pytest.mark.parametrize("reason_code", REASON_CODES)
def test_every_reason_code_of_the_contract_is_accepted(
        client, dispatcher, create_job, reason_code):
    job = create_job()

    response = client.post(f"/api/jobs/{job['id']}/cancel",
                           json={"reasonCode": reason_code}, headers=dispatcher)

    assert response.status_code == 200
    assert response.get_json()["cancellation"]["reasonCode"] == reason_code


def test_the_reason_is_trimmed(client, dispatcher, create_job):
    job = create_job()

    response = client.post(f"/api/jobs/{job['id']}/cancel",
                           json={"reason": "  \t Rain all day \n "}, headers=dispatcher)

    assert response.status_code == 200
    assert response.get_json()["cancellation"]["reason"] == "Rain all day"


@pytest.mark.parametrize("reason", ["x", "x" * 500, "  " + "y" * 500 + "  "])
def test_a_reason_of_1_to_500_characters_after_trimming_is_accepted(
        client, dispatcher, create_job, reason):
    job = create_job()

    response = client.post(f"/api/jobs/{job['id']}/cancel", json={"reason": reason},
                           headers=dispatcher)

    assert response.status_code == 200
    assert response.get_json()["cancellation"]["reason"] == reason.strip()


def test_an_explicit_null_reason_is_accepted_as_absent(client, dispatcher, create_job):
    job = create_job()

    response = client.post(f"/api/jobs/{job['id']}/cancel", json={"reason": None},
                           headers=dispatcher)

    assert response.status_code == 200
    assert response.get_json()["cancellation"]["reason"] is None


INVALID_BODIES = {
    "reason of 501 characters": {"reason": "x" * 501},
    "empty reason": {"reason": ""},
    "whitespace-only reason": {"reason": "   \t\n "},
    "reason not a string": {"reason": 42},
    "reason a list": {"reason": ["late"]},
    "unknown reasonCode": {"reasonCode": "Bored"},
    "reasonCode in lower case": {"reasonCode": "weather"},
    "reasonCode null": {"reasonCode": None},
    "reasonCode a number": {"reasonCode": 1},
    "unknown field": {"reason": "x", "comment": "y"},
    "snake_case field": {"reason_code": "Weather"},
    "a JSON array": ["Weather"],
    "a JSON string": "Weather",
}


@pytest.mark.parametrize("body", list(INVALID_BODIES.values()), ids=list(INVALID_BODIES))
def test_a_body_that_fails_validation_is_a_422_and_changes_nothing(
        client, dispatcher, create_job, current_version, history, body):
    job = create_job()

    response = client.post(f"/api/jobs/{job['id']}/cancel", json=body, headers=dispatcher)

    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"]
    assert current_version(job["id"]) == 1
    assert [e["type"] for e in history(job["id"])] == ["JobCreated"]


@pytest.mark.parametrize("body", [{"reason": "x" * 501}, {"comment": "x"}])
def test_a_validation_error_names_the_offending_field(client, dispatcher, create_job,
                                                      body):
    job = create_job()

    response = client.post(f"/api/jobs/{job['id']}/cancel", json=body, headers=dispatcher)

    assert set(response.get_json()["errors"]) == set(body)


@pytest.mark.parametrize("raw", ['{"reason": "x"', "reason=x", "{reason: 'x'}", "\x00"])
def test_a_body_that_is_not_json_is_a_400_invalid_json_and_changes_nothing(
        client, dispatcher, create_job, current_version, raw):
    job = create_job()

    response = client.post(f"/api/jobs/{job['id']}/cancel", data=raw,
                           headers={**dispatcher, "Content-Type": "application/json"})

    assert_problem(response, 400, "invalid_json")
    assert current_version(job["id"]) == 1


# Refusals -------------------------------------------------------------------


@pytest.mark.parametrize("job_id", [UNKNOWN_ID, "not-a-uuid", "1"])
def test_cancelling_no_such_job_is_a_404_job_not_found(client, dispatcher, job_id):
    response = client.post(f"/api/jobs/{job_id}/cancel", json={"reason": "x"},
                           headers=dispatcher)

    assert_problem(response, 404, "job_not_found")


def test_cancelling_a_completed_job_is_a_400_job_completed_and_changes_nothing(
        client, dispatcher, create_job, assign, command, current_version):
    job = assign(create_job()["id"])
    command(job["id"], "start")
    command(job["id"], "complete")

    response = client.post(f"/api/jobs/{job['id']}/cancel", headers=dispatcher)

    problem = assert_problem(response, 400, "job_completed")
    assert problem["currentStatus"] == "Completed"
    assert problem["jobId"] == job["id"]
    assert current_version(job["id"]) == 4
    after = client.get(f"/api/jobs/{job['id']}", headers=dispatcher).get_json()
    assert after["status"] == "Completed"
    assert [a["status"] for a in after["assignments"]] == ["Completed"]


def test_cancelling_a_cancelled_job_is_a_400_job_already_cancelled(
        client, dispatcher, create_job, command, current_version, history):
    job = create_job()
    command(job["id"], "cancel")

    response = client.post(f"/api/jobs/{job['id']}/cancel",
                           json={"reasonCode": "Duplicate"}, headers=dispatcher)

    problem = assert_problem(response, 400, "job_already_cancelled")
    assert problem["currentStatus"] == "Cancelled"
    assert current_version(job["id"]) == 2
    assert [e["type"] for e in history(job["id"])].count("JobCancelled") == 1


def test_cancelling_again_with_a_new_idempotency_key_is_job_already_cancelled(
        client, dispatcher, create_job):
    job = create_job()
    client.post(f"/api/jobs/{job['id']}/cancel",
                headers={**dispatcher, "Idempotency-Key": "first-key"})

    response = client.post(f"/api/jobs/{job['id']}/cancel",
                           headers={**dispatcher, "Idempotency-Key": "second-key"})

    assert_problem(response, 400, "job_already_cancelled")


@pytest.mark.parametrize("if_match", ['"1"', '"3"', 'W/"2"', '"2", "1"', "x", '"02"',
                                      '"+2"', '" 2"'])
def test_a_cancel_with_a_mismatched_if_match_is_a_412_with_the_current_etag(
        client, dispatcher, create_job, assign, current_version, if_match):
    job = assign(create_job()["id"])

    response = client.post(f"/api/jobs/{job['id']}/cancel",
                           headers={**dispatcher, "If-Match": if_match})

    assert_problem(response, 412, "precondition_failed")
    assert response.headers["ETag"] == '"2"'
    assert current_version(job["id"]) == 2


def test_a_cancel_with_a_matching_if_match_succeeds(client, dispatcher, create_job,
                                                    assign):
    job = assign(create_job()["id"])

    response = client.post(f"/api/jobs/{job['id']}/cancel",
                           headers={**dispatcher, "If-Match": '"2"'})

    assert response.status_code == 200
    assert response.headers["ETag"] == '"4"'


def test_an_if_match_taken_from_a_read_etag_succeeds(client, dispatcher, create_job):
    job = create_job()
    etag = client.get(f"/api/jobs/{job['id']}", headers=dispatcher).headers["ETag"]

    response = client.post(f"/api/jobs/{job['id']}/cancel",
                           headers={**dispatcher, "If-Match": etag})

    assert response.status_code == 200


def test_a_stale_if_match_on_a_cancelled_job_is_a_412(client, dispatcher, create_job,
                                                      command):
    job = create_job()
    command(job["id"], "cancel")

    response = client.post(f"/api/jobs/{job['id']}/cancel",
                           headers={**dispatcher, "If-Match": '"1"'})

    assert_problem(response, 412, "precondition_failed")
    assert response.headers["ETag"] == '"2"'


def test_a_contractor_may_not_cancel_a_job_even_their_own(
        client, contractor, contractor_id, create_job, assign, current_version):
    job = assign(create_job()["id"], contractor_id)

    response = client.post(f"/api/jobs/{job['id']}/cancel",
                           json={"reasonCode": "ContractorUnavailable"},
                           headers=contractor)

    assert_problem(response, 403, "forbidden")
    assert current_version(job["id"]) == 2


def test_a_contractor_is_forbidden_whatever_the_body(client, contractor, create_job):
    job = create_job()

    response = client.post(f"/api/jobs/{job['id']}/cancel",
                           json={"reasonCode": "Bored"}, headers=contractor)

    assert_problem(response, 403, "forbidden")


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer not-a-jwt",
                                           "Basic dXNlcjpwYXNz"])
def test_a_cancel_without_a_valid_token_is_a_401_with_www_authenticate_bearer(
        client, create_job, current_version, authorization):
    job = create_job()
    headers = {} if authorization is None else {"Authorization": authorization}

    response = client.post(f"/api/jobs/{job['id']}/cancel", headers=headers)

    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].split()[0] == "Bearer"
    assert current_version(job["id"]) == 1


# Idempotency ----------------------------------------------------------------


def test_a_retried_cancel_with_the_same_key_and_body_replays_the_result(
        client, dispatcher, busy_job, history):
    job_id = busy_job["id"]
    headers = {**dispatcher, "Idempotency-Key": "cancel-7f3a"}
    body = {"reason": "Storm", "reasonCode": "Weather"}
    first = client.post(f"/api/jobs/{job_id}/cancel", json=body, headers=headers)
    events = history(job_id)

    retry = client.post(f"/api/jobs/{job_id}/cancel", json=body, headers=headers)

    assert first.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    assert retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json() == first.get_json()
    assert retry.headers["ETag"] == first.headers["ETag"]
    assert history(job_id) == events


def test_a_replayed_cancel_wins_over_a_stale_if_match(client, dispatcher, create_job):
    job = create_job()
    headers = {**dispatcher, "Idempotency-Key": "cancel-if-match", "If-Match": '"1"'}
    client.post(f"/api/jobs/{job['id']}/cancel", headers=headers)

    retry = client.post(f"/api/jobs/{job['id']}/cancel", headers=headers)

    assert retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true"


def test_the_same_idempotency_key_with_a_different_body_is_a_422_and_changes_nothing(
        client, dispatcher, create_job, history):
    job = create_job()
    headers = {**dispatcher, "Idempotency-Key": "cancel-reused"}
    client.post(f"/api/jobs/{job['id']}/cancel", json={"reasonCode": "Weather"},
                headers=headers)
    events = history(job["id"])

    response = client.post(f"/api/jobs/{job['id']}/cancel",
                           json={"reasonCode": "Duplicate"}, headers=headers)

    assert_problem(response, 422, "idempotency_key_reused")
    assert history(job["id"]) == events


def test_a_failed_cancel_does_not_use_up_its_idempotency_key(
        client, dispatcher, create_job):
    job = create_job()
    headers = {**dispatcher, "Idempotency-Key": "cancel-after-412"}
    client.post(f"/api/jobs/{job['id']}/cancel", headers={**headers, "If-Match": '"9"'})

    response = client.post(f"/api/jobs/{job['id']}/cancel", headers=headers)

    assert response.status_code == 200
    assert "Idempotent-Replayed" not in response.headers


def test_an_idempotency_key_is_scoped_to_its_job(client, dispatcher, create_job):
    first, second = create_job(), create_job()
    headers = {**dispatcher, "Idempotency-Key": "same-key-two-jobs"}
    client.post(f"/api/jobs/{first['id']}/cancel", headers=headers)

    response = client.post(f"/api/jobs/{second['id']}/cancel", headers=headers)

    assert response.status_code == 200
    assert response.get_json()["id"] == second["id"]
    assert "Idempotent-Replayed" not in response.headers


def test_a_malformed_idempotency_key_is_a_422(client, dispatcher, create_job,
                                              current_version):
    job = create_job()

    response = client.post(f"/api/jobs/{job['id']}/cancel",
                           headers={**dispatcher, "Idempotency-Key": "x" * 256})

    assert_problem(response, 422, "validation_failed")
    assert current_version(job["id"]) == 1


# Concurrency ------------------------------------------------------------------


@pytest.mark.parametrize("if_match", [False, True])
def test_of_concurrent_cancels_exactly_one_succeeds(
        flask_app, dispatcher, busy_job, history, current_version, if_match):
    job_id = busy_job["id"]
    etag = f'"{current_version(job_id)}"'
    headers = {**dispatcher, **({"If-Match": etag} if if_match else {})}
    barrier = threading.Barrier(8)
    statuses: list[tuple[int, str | None]] = []

    def cancel() -> None:
        client = flask_app.test_client()
        barrier.wait()
        response = client.post(f"/api/jobs/{job_id}/cancel", headers=headers)
        statuses.append((response.status_code, (response.get_json() or {}).get("code")))

    threads = [threading.Thread(target=cancel) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    losers = (412, "precondition_failed") if if_match else (
        400, "job_already_cancelled")
    assert sorted(statuses, key=str) == sorted([(200, None)] + [losers] * 7, key=str)
    assert [e["type"] for e in history(job_id)].count("JobCancelled") == 1
    assert [e["type"] for e in history(job_id)].count("AssignmentCancelled") == 4


def test_a_json_null_body_counts_as_no_body(client, dispatcher, create_job):
    job = create_job()

    response = client.post(f"/api/jobs/{job['id']}/cancel", data="null",
                           headers={**dispatcher, "Content-Type": "application/json"})

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["cancellation"]["reasonCode"] == "Other"
