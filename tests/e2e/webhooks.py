"""What the webhook tests share: a real server with a short retry schedule, and
helpers that drive it over HTTP."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.servers import Client, Server, start_server

FAST = {"SMARTSCHEDULER_WEBHOOK_RETRY_SCHEDULE": "0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5",
        "SMARTSCHEDULER_WEBHOOK_TIMEOUT": "2"}


def job(region: str = "North") -> dict[str, Any]:
    return {"type": "HVAC repair", "durationMinutes": 60, "region": region,
            "serviceWindow": {"start": "2030-01-15T09:00:00Z",
                              "end": "2030-01-15T13:00:00Z"}}


def start(database_url: str, workdir: Path, request: pytest.FixtureRequest,
          env: dict[str, str] | None = None, name: str = "server") -> Server:
    running = start_server(database_url, workdir, env={**FAST, **(env or {})}, name=name,
                           args=["--workers", "1", "--threads", "4"])
    request.node.server_log = running.log
    return running


def register(admin: Client, url: str, **fields: Any) -> dict[str, Any]:
    reply = admin.post("/api/webhooks", {"url": url, **fields})
    assert reply.status == 201, reply.body
    return dict(reply.body)


def create_jobs(client: Client, count: int, region: str = "North") -> list[dict[str, Any]]:
    made = []
    for _ in range(count):
        reply = client.post("/api/jobs", job(region))
        assert reply.status == 201, reply.body
        made.append(reply.body)
    return made


def head(server: Server) -> int:
    reply = server.client(None).get("/readyz")
    return int(reply.body["checks"]["eventStore"]["head"])


def webhooks_position(server: Server) -> int:
    reply = server.client(None).get("/readyz")
    found = {f["name"]: f for f in reply.body["checks"]["followers"]["followers"]}
    return int(found["webhooks"]["position"])


def settled(server: Server, admin: Client, endpoint_id: str, timeout: float = 30.0
            ) -> list[dict[str, Any]]:
    """Once the webhooks follower has passed the head and no delivery of the
    endpoint is Pending or Failed: its deliveries."""
    deadline = time.monotonic() + timeout
    target = head(server)
    while True:
        reply = admin.get(f"/api/webhooks/{endpoint_id}/deliveries?page_size=100")
        assert reply.status == 200, reply.body
        busy = [d for d in reply.body if d["status"] in ("Pending", "Failed")]
        if webhooks_position(server) >= target and not busy:
            return list(reply.body)
        assert time.monotonic() < deadline, reply.body
        time.sleep(0.1)
