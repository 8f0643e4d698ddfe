"""The stream belongs to one store: the relay never takes "id already taken"
for "already published" unless the entry there is the same event.

Against a private Redis and each backend: a fresh store against an old stream,
a restored store (an SQLite file copied, a PostgreSQL schema dumped with
pg_dump and restored with psql), two stores sharing one Redis, and an entry of
another history under a relay that publishes again. Each time the relay stops,
loudly (ERROR log, stuck at once in the followers' report), publishes nothing,
skips nothing; after `smartscheduler relay reset-stream` every event of the
store is in the stream exactly once.
"""

from __future__ import annotations

import json
import logging

from projections.realtime.relay import STREAM
from projections.realtime.stream import OWNER
from tests.projections.relaying import (
    caught_up,
    commit_jobs,
    expected_entries,
    halted,
    moved_entries,
    published_once_after_reset,
    relay,
    relay_of,
    report,
    reset_relay_position,
    reset_stream,
    stream_entries,
    wait_until,
)
from tests.projections.stores import backup, restore


def test_a_fresh_store_against_an_old_stream_stops_the_relay_until_reset_stream(
        database_url, second_url, redis_server, redis_db, monkeypatch, capsys, caplog):
    with relay_of(database_url, redis_server.url) as old:
        commit_jobs(old.app, 2)
        wait_until(caught_up(relay(old), old.app), "the old store was published")
        old_stream = expected_entries(old.app)
    assert stream_entries(redis_db) == old_stream

    with caplog.at_level(logging.ERROR, "projections.relay"), \
            relay_of(second_url, redis_server.url) as fresh:
        commit_jobs(fresh.app, 1)
        found = halted(fresh)
        assert "belongs to another store" in found["lastError"]
        assert found["position"] == 0 and found["lag"] == 4
        assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR
                and "Relay stopped publishing" in r.getMessage()]
        assert stream_entries(redis_db) == old_stream  # nothing skipped, nothing added
        assert redis_db.xlen(STREAM) == 8

        said = reset_stream(monkeypatch, capsys, second_url, redis_server.url)
        assert f"Moved {STREAM} (8 entries" in said
        published_once_after_reset(fresh, redis_db)
    assert moved_entries(redis_db) == [old_stream]


def test_a_restored_store_stops_the_relay_before_and_after_new_writes(
        database_url, redis_server, redis_db, monkeypatch, capsys, tmp_path):
    with relay_of(database_url, redis_server.url) as store:
        commit_jobs(store.app, 2)
        wait_until(caught_up(relay(store), store.app), "published before the backup")
        saved = backup(database_url, tmp_path)
        commit_jobs(store.app, 2)
        wait_until(caught_up(relay(store), store.app), "published after the backup")
    before = stream_entries(redis_db)
    assert len(before) == 16
    restore(database_url, saved)

    with relay_of(database_url, redis_server.url) as restored:
        assert restored.app.head_position() == relay(restored).position() == 8
        # The same store (its epoch came back with it), but the stream is ahead.
        assert "the stream is ahead of the store" in halted(restored)["lastError"]
        commit_jobs(restored.app, 3)  # positions 9..20 again, other events
        assert "this store has event" in halted(restored)["lastError"] or \
            "ahead" in halted(restored)["lastError"]
        assert stream_entries(redis_db) == before
        assert relay(restored).position() == 8

        said = reset_stream(monkeypatch, capsys, database_url, redis_server.url)
        assert f"Moved {STREAM} (16 entries" in said
        published_once_after_reset(restored, redis_db)
    assert moved_entries(redis_db) == [before]


def test_two_stores_sharing_one_redis_the_second_stops_the_first_goes_on(
        database_url, second_url, redis_server, redis_db):
    with relay_of(database_url, redis_server.url) as first:
        commit_jobs(first.app, 1)
        wait_until(caught_up(relay(first), first.app), "the first store was published")
        with relay_of(second_url, redis_server.url) as second:
            commit_jobs(second.app, 3)  # ahead of the first: positions 1..12
            assert "belongs to another store" in halted(second)["lastError"]
            commit_jobs(first.app, 1)
            wait_until(caught_up(relay(first), first.app), "the first store goes on")
            assert report(first)["status"] == "ok"
            assert report(second)["status"] == "stuck"
            assert relay(second).position() == 0
        assert stream_entries(redis_db) == expected_entries(first.app)


def test_a_taken_id_counts_as_published_only_when_its_entry_is_the_same_event(
        database_url, redis_server, redis_db, monkeypatch, capsys):
    with relay_of(database_url, redis_server.url) as store:
        commit_jobs(store.app, 2)
        wait_until(caught_up(relay(store), store.app), "the store was published")
    entries = stream_entries(redis_db)
    # Entry 3 replaced by another event; the last entry is still this store's.
    owner = redis_db.get(OWNER)
    redis_db.delete(STREAM)
    for entry_id, item in entries:
        if entry_id == "3-0":
            item = {**item, "id": "00000000-0000-0000-0000-000000000003"}
        redis_db.xadd(STREAM, {"event": json.dumps(item)}, id=entry_id)
    with relay_of(database_url, redis_server.url) as store:
        reset_relay_position(store.app)  # so that it publishes again from the start

    with relay_of(database_url, redis_server.url) as store:
        found = halted(store)
        assert found["failingEvent"] == {"position": 3, "type": "AssignmentCancelled"}
        assert "entry 3-0 is event 00000000-0000-0000-0000-000000000003" in found["lastError"]
        assert relay(store).position() == 2  # the two before it were the same events
        assert redis_db.get(OWNER) == owner

        reset_stream(monkeypatch, capsys, database_url, redis_server.url)
        published_once_after_reset(store, redis_db)


def test_a_stream_without_an_owner_is_claimed_only_when_its_last_entry_is_ours(
        database_url, second_url, redis_server, redis_db):
    with relay_of(database_url, redis_server.url) as store:
        commit_jobs(store.app, 1)
        wait_until(caught_up(relay(store), store.app), "the store was published")
    redis_db.delete(OWNER)  # a stream published before streams had owners

    with relay_of(second_url, redis_server.url) as other:
        commit_jobs(other.app, 2)
        assert "this store has no event there" in halted(other)["lastError"] or \
            "this store has event" in halted(other)["lastError"]
        assert not redis_db.exists(OWNER)

    with relay_of(database_url, redis_server.url) as store:
        commit_jobs(store.app, 1)
        wait_until(caught_up(relay(store), store.app), "the store goes on")
        assert redis_db.exists(OWNER)
        assert stream_entries(redis_db) == expected_entries(store.app)
