"""Helpers for the relay's tests: committing jobs, reading the stream back, and
waiting until a relay has caught up (tests/projections/test_relay.py,
test_relay_history.py and tests/web/test_readyz_stream_history.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import cycle
from typing import Any
from uuid import uuid4

import pytest
import redis
from eventsourcing.postgres import PostgresTrackingRecorder
from psycopg.sql import SQL, Identifier

from application.dispatch import Dispatch
from application.settings import Settings
from projections.realtime.feeds import read_log
from projections.realtime.relay import STREAM, TRACKING_NAME, Relay
from smartscheduler.bootstrap import Services, build_services
from tests.factories import save_cancelled_job

WAIT = 60.0

Envelope = dict[str, Any]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"Gave up after {timeout:.0f}s waiting until {what}")
        time.sleep(0.02)


def commit_jobs(app: Dispatch, count: int) -> None:
    for region in [r for r, _ in zip(cycle(["North", "South", "East"]), range(count),
                                      strict=False)]:
        save_cancelled_job(app, region, (uuid4(),))


def store_envelopes(app: Dispatch) -> list[Envelope]:
    """Every event in the store, as the relay publishes it."""
    return list(read_log(app, 0))


def stream_entries(client: redis.Redis) -> list[tuple[str, Envelope]]:
    """(entry id, envelope) of every entry of the stream, oldest first."""
    entries = []
    for entry_id, fields in client.xrange(STREAM, "-", "+"):
        assert set(fields) == {b"event"}, fields
        entries.append((entry_id.decode(), json.loads(fields[b"event"])))
    return entries


def expected_entries(app: Dispatch) -> list[tuple[str, Envelope]]:
    return [(f"{item['position']}-0", item) for item in store_envelopes(app)]


def caught_up(relay: Relay, app: Dispatch) -> Callable[[], bool]:
    return lambda: relay.position() == app.head_position()


def reset_relay_position(app: Dispatch) -> None:
    """What an operator resetting the relay's tracking record to 0 does."""
    tracking = app.factory.tracking_recorder()
    with tracking.datastore.transaction(commit=True) as cursor:
        if isinstance(tracking, PostgresTrackingRecorder):
            cursor.execute(SQL(
                "UPDATE {}.{} SET notification_id = 0 WHERE application_name = %s").format(
                Identifier(tracking.datastore.schema),
                Identifier(tracking.tracking_table_name)), (TRACKING_NAME,))
        else:
            cursor.execute("UPDATE tracking SET notification_id = 0 "
                           "WHERE application_name = ?", (TRACKING_NAME,))


@contextmanager
def relay_of(url: str, redis_url: str) -> Iterator[Services]:
    """A store with its relay running (and no read models); `stuck_after` an hour,
    so that only a halt makes the relay stuck within a test."""
    settings = Settings(database_url=url, redis_url=redis_url, stuck_after=3600.0)
    services = build_services(settings, run_projections=False, run_relay=True)
    try:
        yield services
    finally:
        services.close()


def relay(services: Services) -> Relay:
    assert services.relay is not None
    return services.relay
