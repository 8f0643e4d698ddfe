"""A relay that stopped on a stream from another history is reported at once:
/readyz answers 503 naming the relay and the reason, and `projections status`
says the same (exit 1), until `smartscheduler relay reset-stream`.

The relay here is the one the app runs in its own process (embedded), against
a private Redis whose stream another store published to, on each backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask

from application.settings import Settings
from projections.realtime.relay import STREAM
from smartscheduler.bootstrap import Services, create_app
from smartscheduler.cli import main
from tests.projections.relaying import (
    caught_up,
    commit_jobs,
    expected_entries,
    relay,
    relay_of,
    stream_entries,
    wait_until,
)
from tests.redis_server import RedisServer


@contextmanager
def fresh_app(second_url: str, redis_url: str) -> Iterator[Flask]:
    """The app on a fresh store, with its relay, and an hour before a follower
    counts as stuck for lack of progress."""
    app = create_app(Settings(database_url=second_url, redis_url=redis_url,
                              jwt_secret="test-secret-" + "x" * 32, stuck_after=3600.0))
    app.config["TESTING"] = True
    try:
        yield app
    finally:
        app.extensions["smartscheduler"].close()


def relay_check(body: dict[str, Any]) -> dict[str, Any]:
    return next(f for f in body["checks"]["followers"]["followers"] if f["name"] == "relay")


def test_readyz_and_projections_status_name_the_relay_stopped_by_another_history(
        database_url, second_url, redis_server, monkeypatch, capsys):
    with relay_of(database_url, redis_server.url) as old:
        commit_jobs(old.app, 1)
        wait_until(caught_up(relay(old), old.app), "the old store was published")
    with fresh_app(second_url, redis_server.url) as app:
        stopped_then_reset(app, second_url, redis_server, monkeypatch, capsys)


def stopped_then_reset(fresh_app: Flask, second_url: str, redis_server: RedisServer,
                       monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    services: Services = fresh_app.extensions["smartscheduler"]
    client = fresh_app.test_client()
    commit_jobs(services.app, 1)
    wait_until(lambda: relay(services).failure is not None, "the relay stopped")

    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["followers"]["stuck"] == ["relay"]
    found = relay_check(body)
    assert found["status"] == "stuck"
    assert found["position"] == 0 and found["lag"] == 4
    assert f"the stream {STREAM} belongs to another store" in found["lastError"]
    assert "smartscheduler relay reset-stream" in found["lastError"]

    monkeypatch.setenv("SMARTSCHEDULER_DATABASE_URL", second_url)
    monkeypatch.setenv("SMARTSCHEDULER_REDIS_URL", redis_server.url)
    capsys.readouterr()
    assert main(["projections", "status"]) == 1
    said = capsys.readouterr().out
    assert "relay: position 0 of 4 (lag 4), stuck" in said
    assert f"error: Halted: the stream {STREAM} belongs to another store" in said

    assert main(["relay", "reset-stream"]) == 0
    wait_until(caught_up(relay(services), services.app), "the relay published again")
    wait_until(lambda: client.get("/readyz").status_code == 200, "ready again")
    with redis_server.client() as redis_db:
        assert stream_entries(redis_db) == expected_entries(services.app)
    assert main(["projections", "status"]) == 0
