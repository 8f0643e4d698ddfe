"""The real server process (`smartscheduler serve`, gunicorn gthread) over real HTTP.

Every test runs against each backend: an SQLite file (one worker process) and a
fresh PostgreSQL schema (several worker processes sharing the store).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any
from uuid import uuid4

from tests.e2e.servers import JOB, Client, Reply, Server

CONCURRENT_CANCELS = 16

def slot(contractor_id: str | None = None) -> dict[str, str]:
    return {"contractorId": contractor_id or str(uuid4()),
            "startUtc": "2030-01-15T09:00:00Z", "endUtc": "2030-01-15T11:00:00Z"}


def create_assigned_job(client: Client) -> dict[str, Any]:
    created = client.post("/api/jobs", JOB)
    assert created.status == 201, created.body
    assigned = client.post(f"/api/jobs/{created.body['id']}/assignments", slot())
    assert assigned.status == 201, assigned.body
    return assigned.body


def event_types(client: Client, job_id: str) -> list[str]:
    history = client.get(f"/api/jobs/{job_id}/history")
    assert history.status == 200, history.body
    return [event["type"] for event in history.body["events"]]


def test_a_job_created_assigned_and_cancelled_over_http_comes_back_cancelled_with_its_etag(
        server: Server) -> None:
    client = server.client()

    created = client.post("/api/jobs", JOB, headers={"X-Request-Id": "e2e-create-1"})
    assert created.status == 201, created.body
    job_id = created.body["id"]
    assert created.header("Location") == f"/api/jobs/{job_id}"
    assert created.header("ETag") == '"1"'
    assert created.header("X-Request-Id") == "e2e-create-1"
    assert created.body["status"] == "Created"

    contractor = str(uuid4())
    assigned = client.post(f"/api/jobs/{job_id}/assignments", slot(contractor),
                           headers={"If-Match": '"1"'})
    assert assigned.status == 201, assigned.body
    assert assigned.header("ETag") == '"2"'
    assert assigned.body["status"] == "Assigned"
    [assignment] = assigned.body["assignments"]
    assert assignment["contractorId"] == contractor
    assert assignment["status"] == "Pending"

    cancelled = client.post(
        f"/api/jobs/{job_id}/cancel",
        {"reason": "  Customer called to cancel  ", "reasonCode": "CustomerRequest"},
        headers={"If-Match": '"2"', "X-Request-Id": "e2e-cancel-1"})
    assert cancelled.status == 200, cancelled.body
    assert cancelled.header("ETag") == f'"{cancelled.body["version"]}"'
    assert cancelled.body["status"] == "Cancelled"
    assert [a["status"] for a in cancelled.body["assignments"]] == ["Cancelled"]
    cancellation = cancelled.body["cancellation"]
    assert cancellation["reason"] == "Customer called to cancel"
    assert cancellation["reasonCode"] == "CustomerRequest"
    assert cancellation["cancelledBy"] == "dispatcher"
    assert cancellation["cancelledAt"].endswith("Z")

    read = client.get(f"/api/jobs/{job_id}")
    assert read.status == 200, read.body
    assert read.body["status"] == "Cancelled"
    assert read.header("ETag") == cancelled.header("ETag")
    assert read.body == cancelled.body

    history = client.get(f"/api/jobs/{job_id}/history")
    assert history.status == 200, history.body
    events = history.body["events"]
    assert [e["type"] for e in events[:2]] == ["JobCreated", "AssignmentCreated"]
    # One atomic append; the contract does not fix the order within it.
    assert sorted(e["type"] for e in events[2:]) == ["AssignmentCancelled", "JobCancelled"]
    assert [e["version"] for e in events] == [1, 2, 3, 4]
    assert {e["requestId"] for e in events[2:]} == {"e2e-cancel-1"}
    assert all(e["actor"] == {"sub": "dispatcher", "roles": ["Dispatcher"]} for e in events)


def test_a_cancelled_job_is_listed_as_cancelled_right_after_the_cancel(
        server: Server) -> None:
    client = server.client()
    job = create_assigned_job(client)
    assert client.post(f"/api/jobs/{job['id']}/cancel").status == 200

    listed = client.get("/api/jobs?status=Cancelled&region=North")
    assert listed.status == 200, listed.body
    assert [j["id"] for j in listed.body] == [job["id"]]
    assignments = client.get(f"/api/assignments?jobId={job['id']}")
    assert assignments.status == 200, assignments.body
    assert [a["status"] for a in assignments.body] == ["Cancelled"]


def test_sixteen_concurrent_cancels_of_one_job_let_exactly_one_succeed(
        server: Server) -> None:
    job = create_assigned_job(server.client())
    # Each thread has its own connection, opened before the start line.
    clients = [server.client() for _ in range(CONCURRENT_CANCELS)]
    for client in clients:
        client.connection.connect()
    barrier = threading.Barrier(CONCURRENT_CANCELS, timeout=30)
    replies: list[Reply | BaseException] = [RuntimeError("not run")] * CONCURRENT_CANCELS

    def cancel(index: int) -> None:
        try:
            barrier.wait()
            replies[index] = clients[index].post(
                f"/api/jobs/{job['id']}/cancel",
                {"reason": f"Cancel number {index}", "reasonCode": "Duplicate"},
                headers={"X-Request-Id": f"e2e-race-{index}"})
        except BaseException as error:  # reported below, with the others
            replies[index] = error

    threads = [threading.Thread(target=cancel, args=(i,)) for i in range(CONCURRENT_CANCELS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    errors = [r for r in replies if isinstance(r, BaseException)]
    assert not errors, errors
    answered = [r for r in replies if isinstance(r, Reply)]
    statuses = Counter(r.status for r in answered)
    assert statuses == {200: 1, 400: CONCURRENT_CANCELS - 1}, statuses
    refusals = [r for r in answered if r.status == 400]
    assert {r.body["code"] for r in refusals} == {"job_already_cancelled"}
    assert all(r.header("Content-Type") == "application/problem+json" for r in refusals)
    [winner] = [r for r in answered if r.status == 200]
    assert winner.body["status"] == "Cancelled"

    client = server.client()
    types = event_types(client, job["id"])
    assert types.count("JobCancelled") == 1
    assert types.count("AssignmentCancelled") == 1
    read = client.get(f"/api/jobs/{job['id']}")
    assert read.body["cancellation"]["reason"] == winner.body["cancellation"]["reason"]
    assert read.header("ETag") == winner.header("ETag")


def test_a_retried_cancel_with_the_same_idempotency_key_is_replayed_over_http(
        server: Server) -> None:
    client = server.client()
    job = create_assigned_job(client)
    path = f"/api/jobs/{job['id']}/cancel"
    body = {"reasonCode": "Weather"}

    first = client.post(path, body, headers={"Idempotency-Key": "e2e-cancel-key"})
    again = client.post(path, body, headers={"Idempotency-Key": "e2e-cancel-key"})

    assert first.status == 200, first.body
    assert again.status == 200, again.body
    assert again.header("Idempotent-Replayed") == "true"
    assert again.body == first.body
    assert again.header("ETag") == first.header("ETag")
    assert event_types(client, job["id"]).count("JobCancelled") == 1


def test_a_page_far_past_the_last_is_an_empty_page_not_a_server_error(
        server: Server) -> None:
    client = server.client()
    create_assigned_job(client)

    for path in ("/api/jobs", "/api/assignments"):
        # (page - 1) * page_size overflows a 64-bit OFFSET.
        reply = client.get(f"{path}?page=157160981088017711104&page_size=100")

        assert reply.status == 200, reply.body
        assert reply.body == []
        assert json.loads(reply.header("X-Pagination") or "{}")["total"] == 1


def test_a_request_without_a_token_is_refused_with_a_bearer_challenge(
        server: Server) -> None:
    anonymous = server.client(role=None)

    reply = anonymous.get("/api/jobs", headers={"X-Request-Id": "e2e-anonymous"})

    assert reply.status == 401
    assert reply.header("Content-Type") == "application/problem+json"
    assert reply.body["code"] == "unauthorized"
    assert (reply.header("WWW-Authenticate") or "").startswith("Bearer")
    assert reply.header("X-Request-Id") == "e2e-anonymous"


def test_the_server_reports_itself_ready_and_serves_its_openapi_document(
        server: Server) -> None:
    anonymous = server.client(role=None)

    ready = anonymous.get("/readyz")
    document = anonymous.get("/openapi.json")

    assert ready.status == 200, ready.body
    assert ready.body["status"] == "ready"
    assert document.status == 200
    assert "/api/jobs/{job_id}/cancel" in document.body["paths"]
