"""/metrics and the JSON logs of a real server (`smartscheduler serve`, gunicorn).

The metrics of every worker process are added up at each scrape: requests that
the access log shows two workers answered are all in the scrape's counters.
With SMARTSCHEDULER_LOG_FORMAT=json every line of the server's output is a JSON
object, and a request's line carries its own fields. Waits here are bounds,
never timing claims.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.scrape import samples, value
from tests.e2e.servers import JOB, Client, Server, start_server, stop
from tests.e2e.sse import SseClient

WAIT = 60.0
"""How long to wait for what must happen (a bound, not a timing claim)."""

JSON_LOGS = {"SMARTSCHEDULER_LOG_FORMAT": "json"}
MISSING_JOB = "/api/jobs/<job_id>"


@pytest.fixture
def run_server(tmp_path: Path, request: pytest.FixtureRequest
               ) -> Iterator[Callable[..., Server]]:
    """Starts servers (`start_server`'s arguments) and stops them when the test ends."""
    started: list[Server] = []

    def run(database_url: str, **kwargs: Any) -> Server:
        server = start_server(database_url, tmp_path, **kwargs)
        request.node.server_log = server.log
        started.append(server)
        return server

    try:
        yield run
    finally:
        for server in started:
            server.close_clients()
            stop(server.process)


def log_records(server: Server) -> list[dict[str, Any]]:
    """Every line of the server's output (stdout and stderr), each parsed as JSON."""
    records = []
    for number, line in enumerate(server.log().splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"Line {number} of the server's log is not JSON: {line!r}")
    return records


def access_lines(server: Server, route: str) -> list[dict[str, Any]]:
    return [r for r in log_records(server)
            if r.get("logger") == "gunicorn.access" and r.get("route") == route]


def test_a_scrape_adds_up_the_requests_that_both_workers_answered(
        sqlite_url: str, run_server: Callable[..., Server]) -> None:
    server = run_server(sqlite_url, env=JSON_LOGS, args=["--workers", "2"])
    token = server.token()
    sent = 0
    deadline = time.monotonic() + WAIT
    while len({line["pid"] for line in access_lines(server, MISSING_JOB)}) < 2:
        assert time.monotonic() < deadline, "one worker answered every request"
        sent += _at_once(server, token, 16)  # on connections of their own: any worker
        _wait_for(functools.partial(_logged, server, sent), "the access lines")

    per_worker = Counter(line["pid"] for line in access_lines(server, MISSING_JOB))
    scraped = samples(server.client())

    assert len(per_worker) == 2 and sum(per_worker.values()) == sent
    assert value(scraped, "smartscheduler_http_requests_total", method="GET",
                 route=MISSING_JOB, status="404") == sent
    assert value(scraped, "smartscheduler_http_request_duration_seconds_count",
                 method="GET", route=MISSING_JOB) == sent


def test_commands_are_counted_by_outcome_and_positions_read_from_the_store(
        database_url: str, run_server: Callable[..., Server]) -> None:
    server = run_server(database_url, env=JSON_LOGS)
    client = server.client()
    key = {"Idempotency-Key": f"create-{uuid.uuid4()}"}
    created = client.post("/api/jobs", JOB, headers=key)
    assert created.status == 201, created.body
    assert client.post("/api/jobs", JOB, headers=key).header("Idempotent-Replayed") == "true"
    job_id = created.body["id"]
    cancel = {"reason": "Customer called", "reasonCode": "CustomerRequest"}
    assert client.post(f"/api/jobs/{job_id}/cancel", cancel).status == 200
    assert client.post(f"/api/jobs/{job_id}/cancel", cancel).status == 400
    assert client.post(f"/api/jobs/{uuid.uuid4()}/cancel", cancel).status == 404
    assert client.get("/wp-admin/setup-config.php").status == 404
    head = client.get("/readyz").body["checks"]["eventStore"]["head"]
    _wait_for(lambda: _lag(server.client(), "read_models") == 0, "the read models")

    scraped = samples(client)

    commands = {(labels[0][1], labels[1][1]): count for (name, *labels), count
                in scraped.items() if name == "smartscheduler_commands_total" and count}
    assert commands == {("createJob", "ok"): 1, ("createJob", "replayed"): 1,
                        ("cancelJob", "ok"): 1, ("cancelJob", "job_already_cancelled"): 1,
                        ("cancelJob", "job_not_found"): 1}
    assert value(scraped, "smartscheduler_event_store_head_position") == head == 2
    assert value(scraped, "smartscheduler_follower_position", follower="read_models") == 2
    assert value(scraped, "smartscheduler_append_batch_events_sum") == 2
    assert value(scraped, "smartscheduler_append_batch_events_count") == 2
    routes = {dict(labels).get("route") for (_, *labels) in scraped}
    assert "<unmatched>" in routes and "/api/jobs/<job_id>/cancel" in routes
    assert not any(job_id in str(route) or "wp-admin" in str(route) for route in routes)


def test_every_line_of_the_log_is_json_and_a_request_line_has_its_fields(
        sqlite_url: str, run_server: Callable[..., Server]) -> None:
    server = run_server(sqlite_url, env=JSON_LOGS)
    client = Client(server.host, server.port, server.token(sub="dispatcher-7"))
    created = client.post("/api/jobs", JOB, headers={"X-Request-Id": "create-for-the-log"})
    assert created.status == 201, created.body
    client.close()
    stop(server.process)  # its last lines too: the workers' and the arbiter's goodbyes

    records = log_records(server)
    line = next(r for r in records if r.get("requestId") == "create-for-the-log")

    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert {r["logger"] for r in records} >= {"gunicorn.error", "gunicorn.access"}
    assert line["method"] == "POST" and line["route"] == "/api/jobs"
    assert line["status"] == 201 and line["actorSub"] == "dispatcher-7"
    assert line["jobId"] == created.body["id"]
    assert isinstance(line["duration"], float) and line["level"] == "INFO"


CONTRACT_METRICS = {
    "smartscheduler_http_requests_total", "smartscheduler_http_request_duration_seconds",
    "smartscheduler_commands_total", "smartscheduler_event_store_head_position",
    "smartscheduler_follower_position", "smartscheduler_follower_lag_events",
    "smartscheduler_append_batch_events", "smartscheduler_sse_streams_open",
    "smartscheduler_webhook_deliveries_total"}
"""The metrics the API contract says /metrics has at least."""

WEBHOOK_COMMANDS = {"createWebhook", "deleteWebhook", "rotateWebhookSecret",
                    "retryWebhookDelivery"}


def test_a_fresh_server_shows_every_metric_of_the_contract(
        sqlite_url: str, run_server: Callable[..., Server]) -> None:
    server = run_server(sqlite_url, args=["--workers", "2"])

    scraped = samples(server.client(role=None))  # the server's first request

    names = {name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
             for (name, *_) in scraped}
    assert names >= CONTRACT_METRICS, CONTRACT_METRICS - names
    for outcome in ("succeeded", "failed", "dead", "gone"):
        assert value(scraped, "smartscheduler_webhook_deliveries_total",
                     outcome=outcome) == 0
    commands = {dict(labels)["command"]: count for (name, *labels), count
                in scraped.items() if name == "smartscheduler_commands_total"}
    assert set(commands) >= {"createJob", "cancelJob"} | WEBHOOK_COMMANDS
    assert not any("." in command for command in commands), commands  # operationIds
    assert set(commands.values()) == {0}


def test_with_a_token_set_a_scrape_needs_it(
        sqlite_url: str, run_server: Callable[..., Server]) -> None:
    token = "metrics-" + "t" * 32
    server = run_server(sqlite_url, env={"SMARTSCHEDULER_METRICS_TOKEN": token})
    client = server.client(role=None)

    refused = client.get("/metrics")
    wrong = client.get("/metrics", headers={"Authorization": f"Bearer {token}x"})

    assert refused.status == wrong.status == 401
    assert refused.header("Content-Type") == "application/problem+json"
    assert refused.body["code"] == "unauthorized"
    assert samples(client, {"Authorization": f"Bearer {token}"})
    assert samples(client, {"Authorization": f"bearer {token}"})  # RFC 7235: any case
    assert client.get("/metrics", headers={"Authorization": f"Basic {token}"}).status == 401


def test_open_event_streams_are_counted_while_they_are_open(
        sqlite_url: str, run_server: Callable[..., Server]) -> None:
    server = run_server(sqlite_url)
    stream = SseClient(server).wait_connected()
    open_streams = "smartscheduler_sse_streams_open"
    assert value(samples(server.client()), open_streams) == 1
    stream.close()
    _wait_for(lambda: value(samples(server.client()), open_streams) == 0, "the stream's end")


def _at_once(server: Server, token: str, count: int) -> int:
    """`count` reads of missing jobs, sent at once, each on a connection of its own."""
    statuses: list[int] = []

    def read() -> None:
        client = Client(server.host, server.port, token)
        try:
            statuses.append(client.get(f"/api/jobs/{uuid.uuid4()}").status)
        finally:
            client.close()

    threads = [threading.Thread(target=read) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert statuses == [404] * count
    return count


def _logged(server: Server, count: int) -> bool:
    return len(access_lines(server, MISSING_JOB)) == count


def _lag(client: Client, follower: str) -> float | None:
    return value(samples(client), "smartscheduler_follower_lag_events", follower=follower)


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"waited in vain for {what}"
        time.sleep(0.05)
