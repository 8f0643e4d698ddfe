"""/healthz and /readyz in-process: named checks, a store that refuses writes,
and probes that are waited on for a bounded time and never piled up.

The outages under the real server (a stopped PostgreSQL, Redis killed) are in
tests/e2e/test_outages.py.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from application.settings import Settings
from smartscheduler.bootstrap import create_app
from tests.factories import store_unknown_event
from web.health import Probe


def test_readyz_answers_a_named_check_each_ok_or_failing(client, create_job):
    create_job()

    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ready"
    assert {"eventStore", "readModels"} <= body["checks"].keys()
    assert "redis" not in body["checks"]  # not configured
    assert all(check["status"] == "ok" for check in body["checks"].values())
    assert body["checks"]["eventStore"]["head"] == 1
    assert body["checks"]["readModels"]["position"] <= 1


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[tuple[Flask, Path]]:
    path = tmp_path / "smartscheduler.db"
    app = create_app(Settings(database_url=f"sqlite:///{path}",
                              jwt_secret="test-secret-" + "x" * 32))
    app.config["TESTING"] = True
    try:
        yield app, path
    finally:
        app.extensions["smartscheduler"].close()


def test_readyz_is_503_naming_the_event_store_while_its_write_lock_is_held(sqlite_app):
    """In WAL mode a writer's lock blocks no reader: the store still reads but
    refuses every command, and readiness must say so."""
    app, path = sqlite_app
    client = app.test_client()
    assert client.get("/readyz").status_code == 200

    lock = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        locked = client.get("/readyz")
        alive = client.get("/healthz")
    finally:
        lock.rollback()
        lock.close()
    released = client.get("/readyz")

    assert locked.status_code == 503
    body = locked.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["eventStore"]["status"] == "failing"
    assert "locked" in body["checks"]["eventStore"]["error"]
    assert alive.status_code == 200
    assert released.status_code == 200


def test_a_probe_that_hangs_is_reported_failing_and_is_never_run_twice():
    release = threading.Event()
    runs: list[int] = []

    def hanging() -> str:
        runs.append(1)
        release.wait(30)
        return "answered"

    probe = Probe("hanging", hanging, timeout=0.2)

    first = probe.start()
    value, failing = probe.outcome(first, since=time.monotonic())
    second = probe.start()  # the first run is still in flight: waited on, not repeated

    assert second is first
    assert runs == [1]
    assert [thread.name for thread in threading.enumerate()
            if thread.name == "readyz-hanging"] == ["readyz-hanging"]
    assert value is None
    assert failing == {"status": "failing", "error": "no answer within 0.2 s"}

    release.set()
    value, failing = probe.outcome(second, since=time.monotonic())
    assert (value, failing) == ("answered", None)
    third = probe.start()  # the last run is over: a new one
    assert third is not first
    assert probe.outcome(third, since=time.monotonic()) == ("answered", None)
    assert runs == [1, 1]


def test_a_probe_that_fails_names_the_error():
    def refusing() -> None:
        raise ConnectionRefusedError("connection refused")

    probe = Probe("refusing", refusing, timeout=2.0)

    value, failing = probe.outcome(probe.start(), since=time.monotonic())

    assert value is None
    assert failing == {"status": "failing",
                       "error": "ConnectionRefusedError: connection refused"}


@pytest.fixture
def impatient_app(test_settings: Settings) -> Iterator[Flask]:
    """The app, counting a follower as stuck after a tenth of a second."""
    app = create_app(test_settings.with_(stuck_after=0.1))
    try:
        yield app
    finally:
        app.extensions["smartscheduler"].close()


def poisoned(services: Any, topic: str) -> int:
    """Store an event no follower can decode; its position, once the read models'
    runner has recorded that it fails on it."""
    _, poison = store_unknown_event(services.app, topic)
    deadline = time.monotonic() + 10
    while "read_models" not in services.views.failures():
        assert time.monotonic() < deadline, "the runner never recorded its failure"
        time.sleep(0.02)
    return poison


def test_readyz_names_a_stuck_follower_its_position_event_and_error(impatient_app,
                                                                   unknown_topic):
    services = impatient_app.extensions["smartscheduler"]
    poison = poisoned(services, unknown_topic)
    time.sleep(0.2)

    response = impatient_app.test_client().get("/readyz")

    assert response.status_code == 503
    check = response.get_json()["checks"]["followers"]
    assert check["status"] == "failing"
    assert check["stuck"] == ["read_models"]
    (follower,) = check["followers"]
    assert follower["position"] == poison - 1
    assert follower["lag"] == 1
    assert follower["failingEvent"] == {"position": poison,
                                        "type": "AssignmentReconfirmedForTest"}
    assert "topic" in follower["lastError"].lower()


def test_readyz_is_ready_again_once_the_follower_gets_past_the_event(impatient_app,
                                                                    unknown_topic):
    from eventsourcing import utils

    from domain.job import Job

    services = impatient_app.extensions["smartscheduler"]
    poison = poisoned(services, unknown_topic)

    utils.register_topic(unknown_topic, Job.AssignmentConfirmed)  # the fix, deployed
    deadline = time.monotonic() + 20
    while services.views.position() < poison and time.monotonic() < deadline:
        time.sleep(0.05)
    response = impatient_app.test_client().get("/readyz")

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["checks"]["followers"]["followers"][0]["lastError"] is None
