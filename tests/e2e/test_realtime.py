"""Realtime over real server processes: SSE read with http.client, in threads.

Embedded: one `smartscheduler serve` (SQLite: one worker; PostgreSQL: several
workers, each with its hub on the store). Scaled: two servers on one
PostgreSQL schema, fanned out through a private Redis by a separate
`smartscheduler relay` process.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from projections.realtime.relay import STREAM
from smartscheduler.launch import Launched, NotReady, launch, logged, smartscheduler
from tests.e2e.servers import (
    JWT_SECRET,
    STARTUP_TIMEOUT,
    Client,
    Server,
    start_server,
    stop,
)
from tests.e2e.sse import WAIT, SseClient
from tests.redis_server import RedisServer, start_private_redis

STREAMS = 60  # held open at once; Settings.max_streams defaults to 100
API_CALLS = 20

JOB = {
    "type": "HVAC repair",
    "durationMinutes": 120,
    "priority": "High",
    "region": "North",
    "requiredSkills": ["hvac"],
    "serviceWindow": {"start": "2030-01-15T09:00:00Z", "end": "2030-01-15T13:00:00Z"},
}


class Streams:
    def __init__(self) -> None:
        self.opened: list[SseClient] = []

    def open(self, server: Server, **kwargs: Any) -> SseClient:
        stream = SseClient(server, **kwargs)
        self.opened.append(stream)
        assert stream.status == 200, stream.response.read()
        assert stream.content_type.startswith("text/event-stream")
        return stream.wait_connected()

    def close(self) -> None:
        for stream in self.opened:
            stream.close()


@pytest.fixture
def streams() -> Iterator[Streams]:
    opened = Streams()
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def realtime_server(database_url: str, tmp_path: Path, request: pytest.FixtureRequest
                    ) -> Iterator[Server]:
    """The embedded server (no Redis) on each backend, heartbeat every second."""
    running = start_server(database_url, tmp_path,
                           env={"SMARTSCHEDULER_SSE_HEARTBEAT": "1"})
    request.node.server_log = running.log
    try:
        yield running
    finally:
        running.close_clients()
        stop(running.process)


def assigned_job(client: Client, contractor_id: str | None = None,
                 region: str = "North") -> dict[str, Any]:
    created = client.post("/api/jobs", {**JOB, "region": region})
    assert created.status == 201, created.body
    assigned = client.post(f"/api/jobs/{created.body['id']}/assignments", {
        "contractorId": contractor_id or str(uuid4()),
        "startUtc": "2030-01-15T09:00:00Z", "endUtc": "2030-01-15T11:00:00Z"})
    assert assigned.status == 201, assigned.body
    return assigned.body


def cancel(client: Client, job_id: str) -> dict[str, Any]:
    cancelled = client.post(f"/api/jobs/{job_id}/cancel",
                            {"reason": "Customer called", "reasonCode": "CustomerRequest"})
    assert cancelled.status == 200, cancelled.body
    return cancelled.body


# Embedded ----------------------------------------------------------------------


def test_an_sse_client_receives_job_cancelled_after_a_cancel_over_http(
        realtime_server, streams):
    contractor_id = str(uuid4())
    dispatcher = streams.open(realtime_server)
    contractor = streams.open(realtime_server, role="Contractor", sub=contractor_id)
    client = realtime_server.client()
    job = assigned_job(client, contractor_id)

    cancelled = cancel(client, job["id"])

    event = dispatcher.cancelled(job["id"])
    assert event.lines == [f"id: {event.data['position']}", "event: JobCancelled",
                           f"data: {json.dumps(event.data)}"]
    data = event.data["data"]
    assert data["jobId"] == job["id"]
    assert data["reasonCode"] == "CustomerRequest"
    assert data["region"] == "North"
    assert data["version"] == cancelled["version"]
    assert [ref["contractorId"] for ref in data["cancelledAssignments"]] == [contractor_id]
    assert contractor.cancelled(job["id"]).data == event.data
    assert [e.event for e in contractor.events] == [
        "AssignmentCreated", "AssignmentCancelled", "JobCancelled"]


def test_a_reconnect_with_last_event_id_replays_what_was_missed_over_http(
        realtime_server, streams):
    client = realtime_server.client()
    first = streams.open(realtime_server)
    job = assigned_job(client)
    first.wait_for(lambda s: len(s.events) == 2, "the job's first two events")
    last_seen = first.events[-1].id
    first.close()
    cancel(client, job["id"])  # missed while disconnected

    again = streams.open(realtime_server, headers={"Last-Event-ID": last_seen})
    again.cancelled(job["id"])

    assert [e.event for e in again.events] == ["AssignmentCancelled", "JobCancelled"]
    assert [int(e.id) for e in again.events] == [int(last_seen) + 1, int(last_seen) + 2]


def test_a_quiet_stream_gets_heartbeat_comments_from_the_real_server(
        realtime_server, streams):
    stream = streams.open(realtime_server)

    stream.wait_for(lambda s: "heartbeat" in s.comments, "a heartbeat comment")


def test_api_calls_are_answered_while_many_event_streams_are_held_open(
        realtime_server, streams):
    held = [streams.open(realtime_server) for _ in range(STREAMS)]
    statuses: list[int | str] = []
    lock = threading.Lock()

    def call(number: int) -> None:
        client = Client(realtime_server.host, realtime_server.port,
                        realtime_server.token("Dispatcher"))
        try:
            reply = (client.get("/api/jobs") if number % 2 else
                     client.post("/api/jobs", {**JOB, "region": f"R{number}"}))
            outcome: int | str = reply.status
        except (OSError, http.client.HTTPException) as error:
            outcome = repr(error)
        finally:
            client.close()
        with lock:
            statuses.append(outcome)

    callers = [threading.Thread(target=call, args=(n,)) for n in range(API_CALLS)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(WAIT * 2)

    assert len(statuses) == API_CALLS
    assert all(isinstance(s, int) and 200 <= s < 300 for s in statuses), statuses
    assert not any(stream.ended for stream in held)
    # ... and every stream is still live.
    client = realtime_server.client()
    job = assigned_job(client)
    cancel(client, job["id"])
    for stream in held:
        stream.cancelled(job["id"])


# Scaled: two servers, one database, Redis between them --------------------------


def start_worker(args: list[str], env: dict[str, str], workdir: Path, name: str,
                 ready: str) -> Launched:
    """Start `python -m smartscheduler <args>`; returns once `ready` is in its log."""
    try:
        return launch(smartscheduler(*args), workdir / f"{name}.log",
                      env={**os.environ, **env}, cwd=workdir, ready=logged(ready),
                      timeout=STARTUP_TIMEOUT)
    except NotReady as error:
        pytest.fail(str(error))


@dataclass
class Scaled:
    a: Server
    b: Server
    relay: Launched
    redis: RedisServer


@pytest.fixture
def scaled(database_url: str, tmp_path: Path, request: pytest.FixtureRequest
           ) -> Iterator[Scaled]:
    """The scaled topology: servers A and B on one fresh PostgreSQL schema, a
    projection worker, a relay and a private Redis; the servers only serve."""
    redis_server = start_private_redis(tmp_path / "redis")
    common = {"SMARTSCHEDULER_REDIS_URL": redis_server.url,
              "SMARTSCHEDULER_EMBEDDED_RELAY": "false",
              "SMARTSCHEDULER_EMBEDDED_PROJECTIONS": "false",
              "SMARTSCHEDULER_SSE_HEARTBEAT": "1"}
    logs: list[tuple[str, Callable[[], str]]] = [("redis", redis_server.log)]
    request.node.server_log = lambda: "\n".join(
        f"----- {name}\n{read()}" for name, read in logs)
    servers: list[Server] = []
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name in ("a", "b"):
            server = start_server(database_url, tmp_path, name=f"server-{name}",
                                  env=common)
            servers.append(server)
            processes.append(server.process)
            logs.append((f"server {name.upper()}", server.log))
        relay = start_worker(["relay"], {
            "SMARTSCHEDULER_DATABASE_URL": database_url,
            "SMARTSCHEDULER_JWT_SECRET": JWT_SECRET,
            "SMARTSCHEDULER_REDIS_URL": redis_server.url}, tmp_path, "relay",
            ready="Relay: publishing from position")
        processes.append(relay.process)
        logs.append(("relay", relay.log))
        projector = start_worker(["projections", "run"], {
            "SMARTSCHEDULER_DATABASE_URL": database_url}, tmp_path, "projections",
            ready="Read models: following the log")
        processes.append(projector.process)
        logs.append(("projections", projector.log))
        yield Scaled(servers[0], servers[1], relay, redis_server)
    finally:
        for server in servers:
            server.close_clients()
        for process in reversed(processes):
            stop(process)
        redis_server.stop()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_cancel_sent_to_one_server_reaches_an_sse_client_of_another_through_redis(
        scaled, streams):
    contractor_id = str(uuid4())
    on_b = streams.open(scaled.b)
    contractor_on_b = streams.open(scaled.b, role="Contractor", sub=contractor_id)
    client_a = scaled.a.client()
    job = assigned_job(client_a, contractor_id, region="South")

    cancelled = cancel(client_a, job["id"])

    event = on_b.cancelled(job["id"])
    assert event.data["data"]["version"] == cancelled["version"]
    assert event.data["data"]["region"] == "South"
    assert contractor_on_b.cancelled(job["id"]).data == event.data
    # The same envelope is in the Redis stream under its position.
    with scaled.redis.client() as redis_client:
        entries = redis_client.xrange(STREAM, event.id, event.id)
    assert [(entry_id.decode(), json.loads(fields[b"event"]))
            for entry_id, fields in entries] == [(f"{event.id}-0", event.data)]
    # And the projection worker's read models, read through B, show it cancelled.
    listed = scaled.b.client().get("/api/jobs?status=Cancelled")
    assert listed.status == 200, listed.body
    assert [j["id"] for j in listed.body] == [job["id"]]
