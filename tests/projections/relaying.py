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
from projections.realtime.stream import MOVED_PREFIX
from smartscheduler.bootstrap import Services, build_services
from smartscheduler.cli import main
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


def report(services: Services) -> dict[str, Any]:
    """The relay as /readyz and `projections status` report it."""
    found = services.followers(services.app.head_position())
    return next(f for f in found if f["name"] == "relay")


def halted(services: Services) -> dict[str, Any]:
    wait_until(lambda: relay(services).failure is not None, "the relay stopped")
    found = report(services)
    assert found["status"] == "stuck", found
    assert found["lastError"].startswith("Halted: "), found
    assert "reset-stream" in found["lastError"]
    return found


def reset_stream(monkeypatch, capsys, url: str, redis_url: str) -> str:
    monkeypatch.setenv("SMARTSCHEDULER_DATABASE_URL", url)
    monkeypatch.setenv("SMARTSCHEDULER_REDIS_URL", redis_url)
    capsys.readouterr()
    assert main(["relay", "reset-stream"]) == 0
    return str(capsys.readouterr().out)


def moved_entries(client: redis.Redis) -> list[list[tuple[str, Any]]]:
    """The entries of each stream moved aside, oldest move first."""
    keys = sorted(key for key in client.keys(f"{MOVED_PREFIX}*")
                  if not key.endswith(b":store"))
    return [[(entry_id.decode(), json.loads(fields[b"event"]))
             for entry_id, fields in client.xrange(key, "-", "+")] for key in keys]


def published_once_after_reset(services: Services, client: redis.Redis) -> None:
    """The relay goes on by itself: every event of the store, old and new, once."""
    wait_until(caught_up(relay(services), services.app), "the relay published again")
    commit_jobs(services.app, 1)
    wait_until(caught_up(relay(services), services.app), "the relay published the new job")
    assert stream_entries(client) == expected_entries(services.app)
    assert report(services)["status"] == "ok"
    assert relay(services).failure is None
