"""The relay under what happens to its store or its Redis while it runs.

Against a private Redis and each backend: a store restored from a backup and
then written again (another event at the same position and version: not the
same event), a reset-stream while the relay is idle, and a Redis that lost
entries (flushed, the stream deleted, restored from an older snapshot). The
relay never skips an event, never takes another history's entry for its own,
and ends with every event of the store in the stream exactly once, in order.
"""

from __future__ import annotations

import json
import logging
import time
from uuid import UUID

import redis

from application.settings import Settings
from projections.realtime.relay import STREAM
from projections.realtime.stream import OWNER
from smartscheduler.bootstrap import build_services
from tests.factories import job_fields, request
from tests.projections.relaying import (
    caught_up,
    commit_jobs,
    expected_entries,
    halted,
    published_once_after_reset,
    relay,
    relay_of,
    report,
    reset_stream,
    stream_entries,
    wait_until,
)
from tests.projections.stores import backup, restore


def cancel(url: str, job_id: UUID, reason: str) -> None:
    """Cancel the job, with no relay running (as a process of the store would)."""
    services = build_services(Settings(database_url=url), run_projections=False,
                              run_relay=False)
    try:
        services.app.cancel_job(request(), job_id, reason=reason,
                                reason_code="CustomerRequest")
    finally:
        services.close()


def reasons(client: redis.Redis) -> list[tuple[str, str]]:
    return [(entry_id, item["data"].get("reason", "")) for entry_id, item
            in stream_entries(client) if item["type"] == "JobCancelled"]


def errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR
            and r.name == "projections.relay"]


def test_another_event_at_the_same_position_and_version_after_a_restore_stops_the_relay(
        database_url, redis_server, redis_db, monkeypatch, capsys, tmp_path):
    with relay_of(database_url, redis_server.url) as store:
        job_id = store.app.create_job(request(), **job_fields()).job.id
        wait_until(caught_up(relay(store), store.app), "the job was published")
        saved = backup(database_url, tmp_path)
    cancel(database_url, job_id, "FIRST HISTORY")
    with relay_of(database_url, redis_server.url) as store:
        wait_until(caught_up(relay(store), store.app), "the first cancel was published")
    assert reasons(redis_db) == [("2-0", "FIRST HISTORY")]

    restore(database_url, saved)
    cancel(database_url, job_id, "SECOND HISTORY")  # position 2, version 2 again
    with relay_of(database_url, redis_server.url) as restored:
        assert restored.app.head_position() == 2
        found = halted(restored)
        assert "entry 2-0 is event" in found["lastError"], found
        assert relay(restored).position() == 1
        assert reasons(redis_db) == [("2-0", "FIRST HISTORY")]

        reset_stream(monkeypatch, capsys, database_url, redis_server.url)
        published_once_after_reset(restored, redis_db)
        assert reasons(redis_db)[0] == ("2-0", "SECOND HISTORY")


def test_a_reset_stream_under_an_idle_relay_is_published_again_at_once(
        database_url, redis_server, redis_db, monkeypatch, capsys, caplog):
    with caplog.at_level(logging.INFO, "projections.relay"), \
            relay_of(database_url, redis_server.url) as store:
        commit_jobs(store.app, 2)
        wait_until(caught_up(relay(store), store.app), "the store was published")
        before = stream_entries(redis_db)
        time.sleep(1.5)  # idle: more than one of its polls found nothing new
        reset_stream(monkeypatch, capsys, database_url, redis_server.url)
        # Nothing new is committed: the idle relay notices the reset by itself.
        wait_until(lambda: stream_entries(redis_db) == before, "published again")
        wait_until(caught_up(relay(store), store.app), "its new position recorded")
        assert report(store)["status"] == "ok"
        commit_jobs(store.app, 1)
        wait_until(caught_up(relay(store), store.app), "the new job was published")
        assert stream_entries(redis_db) == expected_entries(store.app)
        assert report(store)["status"] == "ok" and relay(store).failure is None
    assert errors(caplog) == []


def test_a_flushed_redis_is_published_again_from_the_first_event_loudly(
        database_url, redis_server, redis_db, caplog):
    with caplog.at_level(logging.INFO, "projections.relay"), \
            relay_of(database_url, redis_server.url) as store:
        commit_jobs(store.app, 2)
        wait_until(caught_up(relay(store), store.app), "the store was published")
        expected = expected_entries(store.app)
        redis_db.flushall()
        # Idle: the relay finds the stream gone by itself, and publishes it again.
        wait_until(lambda: stream_entries(redis_db) == expected, "published again")
        commit_jobs(store.app, 1)
        wait_until(caught_up(relay(store), store.app), "the new job was published")
        assert stream_entries(redis_db) == expected_entries(store.app)
        assert report(store)["status"] == "ok" and relay(store).failure is None
    said = errors(caplog)
    assert len(said) == 1 and f"the stream {STREAM} is empty, below the relay's " \
        "position 8" in said[0] and "Publishing positions 1 to 8 again" in said[0], said


def test_a_deleted_stream_or_an_older_snapshot_is_published_again_from_its_top(
        database_url, redis_server, redis_db, caplog):
    with caplog.at_level(logging.ERROR, "projections.relay"), \
            relay_of(database_url, redis_server.url) as store:
        commit_jobs(store.app, 2)
        wait_until(caught_up(relay(store), store.app), "the store was published")
        older = stream_entries(redis_db)[:3]
        owner = redis_db.get(OWNER)
        redis_db.delete(STREAM)  # and back as an older snapshot had it, up to 3-0
        for entry_id, item in older:
            redis_db.xadd(STREAM, {"event": json.dumps(item)}, id=entry_id)
        assert redis_db.get(OWNER) == owner
        wait_until(lambda: stream_entries(redis_db) == expected_entries(store.app),
                   "published again from 4")
        redis_db.delete(STREAM)  # deleted, its owner left: found at the next event
        commit_jobs(store.app, 1)
        wait_until(lambda: stream_entries(redis_db) == expected_entries(store.app),
                   "published again from 1")
        assert report(store)["status"] == "ok" and relay(store).failure is None
    said = errors(caplog)
    assert any("ends at 3-0, below the relay's position 8" in s for s in said), said
    assert any("is empty, below the relay's position 8" in s for s in said), said
