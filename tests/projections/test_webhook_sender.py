"""The webhook sender against real receivers and a real store (each backend):
hostile endpoints cannot starve a healthy one, two senders send each delivery
once, and a deleted or disabled endpoint's deliveries are due no more."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from application.settings import Settings
from domain.values import Actor
from projections.webhooks import tables
from projections.webhooks.secrets import DEVELOPMENT_KEY, SecretBox
from projections.webhooks.sender import Sender
from projections.webhooks.store import WebhookStore
from projections.webhooks.tables import Delivery
from smartscheduler.bootstrap import Services, build_services
from tests.e2e.receiver import Receiver
from tests.projections.hostile import RawReceiver, ok, trickle

ADMIN = Actor("admin", ("Admin",))
BOX = SecretBox(DEVELOPMENT_KEY)


@pytest.fixture
def built(test_settings: Settings) -> Iterator[Services]:
    services = build_services(replace(test_settings, webhooks=True), run_projections=False,
                              run_relay=False)
    try:
        yield services
    finally:
        services.close()


def _record(store: WebhookStore, endpoints: list[str], next_at: float,
            status: str = tables.PENDING) -> list[Delivery]:
    """One delivery per endpoint named (in that order), as the follower records them."""
    base, now = store.position(), time.time()
    made = [Delivery(str(uuid.uuid4()), endpoint, str(uuid.uuid4()), base + i + 1,
                     "JobCreated", json.dumps({"position": base + i + 1}), status,
                     0 if status == tables.PENDING else 1, None, None, next_at, now)
            for i, endpoint in enumerate(endpoints)]
    store.record(made, base + 1, base + len(made))
    return made


def _all(store: WebhookStore, endpoint: str) -> list[Delivery]:
    return list(store.deliveries(endpoint, page_size=100).items)


def _until(check: Callable[[], bool], what: str) -> None:
    """A hang guard, not a timing: long past what any step here takes."""
    deadline = time.monotonic() + 60
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_hanging_endpoints_leave_a_thread_for_a_healthy_one(built):
    store = built.webhook_store
    hostile = [RawReceiver(trickle) for _ in range(2)]
    healthy = RawReceiver(ok)
    try:
        bad = [built.webhooks.register(ADMIN, r.url())[0].id for r in hostile]
        good = built.webhooks.register(ADMIN, healthy.url())[0].id
        sender = Sender(store, BOX, timeout=2.0, threads=4, per_endpoint=4, poll=0.1,
                        schedule=(600.0,))
        deliveries = _record(store, [*bad * 4, good], time.time() + sender.lease)
        sender.submit(deliveries[:-1])  # the hostile endpoints' first, then the
        sender.submit(deliveries[-1:])  # healthy one's: a thread is left for it
        try:
            _until(lambda: _all(store, good)[0].status == tables.SUCCEEDED,
                   "the healthy endpoint's delivery never succeeded")
            # ... while every hostile send is still hanging: none has ended.
            assert all(d.attempts == 0 for e in bad for d in _all(store, e))
            _until(lambda: all(d.attempts for e in bad for d in _all(store, e)),
                   "a hostile endpoint's delivery was never attempted to its end")
        finally:
            sender.stop()
    finally:
        for receiver in [*hostile, healthy]:
            receiver.close()
    failed = [d for e in bad for d in _all(store, e)]
    assert {d.status for d in failed} == {tables.FAILED}
    assert all("timed out" in (d.last_error or "") for d in failed), failed
    assert all(d.next_attempt_at for d in failed)


def test_two_senders_send_each_delivery_once(built):
    store = built.webhook_store
    receiver = Receiver().start()
    receiver.hold = 0.2  # the deliveries wait in the first sender past its lease
    try:
        endpoint, secret = built.webhooks.register(ADMIN, receiver.url)
        receiver.secrets.append(secret)
        first, second = (Sender(store, BOX, timeout=0.5, per_endpoint=1, poll=0.1,
                                lease=1.0) for _ in range(2))
        deliveries = _record(store, [endpoint.id] * 12, time.time() + first.lease)
        first.start().submit(deliveries)
        second.start()
        try:
            receiver.wait_for(12)
            _until(lambda: {d.status for d in _all(store, endpoint.id)} == {
                tables.SUCCEEDED}, "a delivery never succeeded")
        finally:
            first.stop()
            second.stop()
    finally:
        receiver.stop()
    assert second.outcomes["succeeded"]  # the lease ran out: both sent
    counts = Counter(r.position for r in receiver.received)
    assert set(counts.values()) == {1}, counts
    assert sorted(counts) == [d.position for d in deliveries]
    assert receiver.unverified == []
    assert all(d.attempts == 1 for d in _all(store, endpoint.id))


@pytest.mark.parametrize("how", ["deleted", "disabled"])
def test_a_deleted_or_disabled_endpoints_deliveries_are_due_no_more(built, how):
    store = built.webhook_store
    endpoint, _ = built.webhooks.register(ADMIN, "http://127.0.0.1:9/hook")
    other, _ = built.webhooks.register(ADMIN, "http://127.0.0.1:9/other")
    now = time.time()
    _record(store, [endpoint.id] * 3 + [other.id], now - 10, status=tables.FAILED)
    in_flight = _record(store, [endpoint.id], now + 60)[0]  # leased, being sent
    if how == "deleted":
        built.webhooks.delete(ADMIN, endpoint.id)
    else:
        store.disable(endpoint.id, "Answered 410 Gone", now)
    # Its in-flight attempt is still recorded, and is due no more either.
    assert store.finish(in_flight.id, now + 60, tables.FAILED, 500, "HTTP 500", now)
    assert [d.endpoint_id for d in store.due(now + 1, 100)] == [other.id]
    stale = _all(store, endpoint.id)
    assert len(stale) == 4
    assert all(d.next_attempt_at is None for d in stale)  # out of the due index
    assert {d.status for d in stale} == {tables.FAILED}


def test_a_stale_senders_outcome_is_not_recorded(built):
    store = built.webhook_store
    endpoint, _ = built.webhooks.register(ADMIN, "http://127.0.0.1:9/hook")
    now = time.time()
    (delivery,) = _record(store, [endpoint.id], now - 1)
    assert store.lease(delivery, now + 1.5)  # the first sender's lease, run out
    assert not store.lease(delivery, now + 2.5)  # as read: already leased
    (again,) = store.due(now + 2, 10)
    assert store.lease(again, now + 30)  # the second sender's
    assert not store.finish(delivery.id, now + 1.5, tables.FAILED, None, "timed out",
                            now + 5)
    assert store.finish(delivery.id, now + 30, tables.SUCCEEDED, 200, None, None)
    (done,) = _all(store, endpoint.id)
    assert (done.status, done.attempts, done.next_attempt_at) == (tables.SUCCEEDED, 1, None)
