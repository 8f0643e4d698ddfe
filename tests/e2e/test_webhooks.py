"""Delivery to real receivers from a real server: signed (verified with
standardwebhooks' own verifier), retried while the receiver is down, at least
once across a kill -9, a 410 disables, a rotation's overlap signs twice, and
filters by event type and region."""

from __future__ import annotations

import collections
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.processes import followers_pid, running
from tests.e2e.receiver import Receiver
from tests.e2e.scrape import samples, value
from tests.e2e.servers import Server, stop
from tests.e2e.webhooks import create_jobs, head, register, settled, start


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path, request: pytest.FixtureRequest
           ) -> Iterator[Server]:
    running = start(sqlite_url, tmp_path, request)
    try:
        yield running
    finally:
        running.close_clients()
        stop(running.process)


@pytest.fixture
def any_server(database_url: str, tmp_path: Path, request: pytest.FixtureRequest
               ) -> Iterator[Server]:
    """The server on each backend."""
    running = start(database_url, tmp_path, request)
    try:
        yield running
    finally:
        running.close_clients()
        stop(running.process)


def test_every_event_arrives_once_signed_after_the_receiver_comes_up(any_server):
    admin, dispatcher = any_server.client("Admin"), any_server.client("Dispatcher")
    receiver = Receiver()  # not listening yet: connections are refused
    endpoint = register(admin, receiver.url)
    receiver.secrets.append(endpoint["secret"])
    jobs = create_jobs(dispatcher, 3)
    deadline = time.monotonic() + 30
    while True:  # each delivery has failed at least once
        failed = admin.get(f"/api/webhooks/{endpoint['id']}/deliveries?status=Failed").body
        if len(failed) == 3:
            break
        assert time.monotonic() < deadline, failed
        time.sleep(0.1)
    assert all(d["lastError"] and d["nextAttemptAt"] for d in failed)

    receiver.start()
    try:
        received = receiver.wait_for(3)
        deliveries = settled(any_server, admin, endpoint["id"])
    finally:
        receiver.stop()
    assert receiver.unverified == []
    assert sorted(r.envelope["subject"] for r in received) == sorted(j["id"] for j in jobs)
    assert len(received) == 3  # nothing twice: nothing was in flight
    assert {r.webhook_id for r in received} == {r.envelope["id"] for r in received}
    assert {d["status"] for d in deliveries} == {"Succeeded"}
    assert all(d["attempts"] >= 2 and d["lastStatusCode"] == 200 for d in deliveries)
    scraped = samples(any_server.client(None))  # counted where they were sent
    sent = "smartscheduler_webhook_deliveries_total"
    assert value(scraped, sent, outcome="succeeded") == 3
    assert (value(scraped, sent, outcome="failed") or 0) >= 3


def test_a_kill_9_mid_delivery_loses_nothing(server):
    admin, dispatcher = server.client("Admin"), server.client("Dispatcher")
    receiver = Receiver().start()
    receiver.hold = 1.0  # each answer waits: the kill finds deliveries in flight
    try:
        receiver.secrets.append(register(admin, receiver.url)["secret"])
        jobs = create_jobs(dispatcher, 12)
        receiver.wait_for(1)
        victim = followers_pid(server)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while followers_pid(server) in (None, victim):  # started again after a back-off
            assert time.monotonic() < deadline, "the followers process never came back"
            time.sleep(0.05)
        before_kill = set(receiver.positions())  # sent by the killed process
        receiver.hold = 0.0
        received = receiver.wait_for(12, timeout=60)
    finally:
        receiver.stop()
    assert not running(victim)
    assert receiver.unverified == []
    counts = collections.Counter(r.position for r in received)
    assert sorted({r.envelope["subject"] for r in received}) == sorted(j["id"] for j in jobs)
    again = {position for position, n in counts.items() if n > 1}
    assert again <= before_kill, (again, before_kill)  # only what was in flight
    assert len(before_kill) <= 4  # per-endpoint concurrency


def test_a_410_disables_the_endpoint(server):
    admin, dispatcher = server.client("Admin"), server.client("Dispatcher")
    receiver = Receiver().start()
    receiver.status = 410
    try:
        endpoint = register(admin, receiver.url)
        receiver.secrets.append(endpoint["secret"])
        create_jobs(dispatcher, 1)
        receiver.wait_for(1)
        deadline = time.monotonic() + 20
        while admin.get(f"/api/webhooks/{endpoint['id']}").body["status"] != "Disabled":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        create_jobs(dispatcher, 2)
        deliveries = settled(server, admin, endpoint["id"])
    finally:
        receiver.stop()
    assert len(receiver.received) == 1
    assert [d["status"] for d in deliveries] == ["Dead"]
    assert deliveries[0]["lastStatusCode"] == 410


def test_during_a_rotation_both_secrets_sign(server):
    admin, dispatcher = server.client("Admin"), server.client("Dispatcher")
    receiver = Receiver().start()
    try:
        endpoint = register(admin, receiver.url)
        rotated = admin.post(f"/api/webhooks/{endpoint['id']}/rotate-secret")
        assert rotated.status == 200, rotated.body
        assert rotated.body["secret"] != endpoint["secret"]
        receiver.secrets.extend([endpoint["secret"], rotated.body["secret"]])
        create_jobs(dispatcher, 1)
        (received,) = receiver.wait_for(1)
    finally:
        receiver.stop()
    assert received.signatures == 2
    assert set(received.verified_by) == {endpoint["secret"], rotated.body["secret"]}


def test_endpoints_get_the_types_and_regions_they_asked_for(server):
    admin, dispatcher = server.client("Admin"), server.client("Dispatcher")
    cancels, north = Receiver().start(), Receiver().start()
    try:
        by_type = register(admin, cancels.url, eventTypes=["JobCancelled"])
        by_region = register(admin, north.url, regions=["North"])
        cancels.secrets.append(by_type["secret"])
        north.secrets.append(by_region["secret"])
        jobs = create_jobs(dispatcher, 1, "North") + create_jobs(dispatcher, 1, "South")
        for made in jobs:
            reply = dispatcher.post(f"/api/jobs/{made['id']}/cancel", {})
            assert reply.status == 200, reply.body
        settled(server, admin, by_type["id"])
        settled(server, admin, by_region["id"])
    finally:
        cancels.stop()
        north.stop()
    assert head(server) == 4
    assert sorted((r.envelope["type"], r.envelope["data"]["region"])
                  for r in cancels.received) == [("JobCancelled", "North"),
                                                 ("JobCancelled", "South")]
    assert sorted(r.envelope["type"] for r in north.received) == ["JobCancelled",
                                                                   "JobCreated"]
    assert {r.envelope["data"]["region"] for r in north.received} == {"North"}
    assert cancels.unverified == north.unverified == []
