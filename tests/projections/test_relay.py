"""The relay against a real Redis: every committed event in the stream exactly once.

Each test starts a private `redis-server` (see tests/redis_server.py) on a free
port with its own directory, so the fixed stream name `smartscheduler:events`
never meets a developer's data, and runs over each storage backend.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import cycle
from typing import Any
from uuid import UUID, uuid4

import pytest
import redis
from eventsourcing.postgres import PostgresTrackingRecorder
from psycopg.sql import SQL, Identifier

from application.dispatch import Dispatch
from application.settings import Settings
from projections.realtime.envelopes import contractors_of, region_of
from projections.realtime.relay import STREAM, Relay, channel
from smartscheduler.bootstrap import build_dispatch, redis_client
from tests.factories import job_fields, request, save_cancelled_job
from tests.projections.relaying import (
    WAIT,
    Envelope,
    caught_up,
    commit_jobs,
    expected_entries,
    reset_relay_position,
    store_envelopes,
    stream_entries,
    wait_until,
)
from tests.redis_server import (
    RedisServer,
    free_port,
    require_redis_server,
    start_private_redis,
)


@pytest.fixture
def dispatch(database_url: str) -> Iterator[Dispatch]:
    """The application alone: no read models, no relay of its own."""
    app = build_dispatch(Settings(database_url=database_url))
    try:
        yield app
    finally:
        app.close()


@contextmanager
def running_relay(app: Dispatch, url: str) -> Iterator[Relay]:
    relay = Relay(app, redis_client(url), max_backoff=0.5).start()
    try:
        yield relay
    finally:
        relay.stop()
        relay.redis.close()


def listen(pubsub: Any, enough: Callable[[list[tuple[str, Envelope]]], bool]
           ) -> list[tuple[str, Envelope]]:
    """(channel, envelope) of the messages received, until `enough` or the deadline."""
    received: list[tuple[str, Envelope]] = []
    deadline = time.monotonic() + WAIT
    while not enough(received) and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] in ("message", "pmessage"):
            received.append((message["channel"].decode(), json.loads(message["data"])))
    return received


def reached(position: int) -> Callable[[list[tuple[str, Envelope]]], bool]:
    return lambda received: any(item["position"] >= position for _, item in received)


class Writer:
    """Issues commands continuously in a thread until stopped."""

    def __init__(self, app: Dispatch) -> None:
        self.app = app
        self.errors: list[BaseException] = []
        self.jobs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        regions = cycle(["North", "South", "East", "West"])
        while not self._stop.is_set():
            try:
                save_cancelled_job(self.app, next(regions), (uuid4(),))
                self.jobs += 1
            except Exception as error:  # reported by the test
                self.errors.append(error)
                return
            time.sleep(0.002)


# The stream ------------------------------------------------------------------


def test_every_committed_event_is_in_the_stream_once_with_its_position_as_entry_id(
        dispatch, redis_server, redis_db):
    commit_jobs(dispatch, 3)  # committed before the relay starts

    with running_relay(dispatch, redis_server.url) as relay:
        commit_jobs(dispatch, 3)  # and while it runs
        wait_until(caught_up(relay, dispatch), "the relay reached the head")

    entries = stream_entries(redis_db)
    assert len(entries) == dispatch.head_position() == 6 * 4
    assert entries == expected_entries(dispatch)
    assert [item["type"] for _, item in entries[:4]] == [
        "JobCreated", "AssignmentCreated", "AssignmentCancelled", "JobCancelled"]


def test_a_restarted_relay_resumes_from_its_recorded_position_without_duplicates(
        dispatch, redis_server, redis_db):
    commit_jobs(dispatch, 2)
    with running_relay(dispatch, redis_server.url) as first:
        wait_until(caught_up(first, dispatch), "the first relay reached the head")
    recorded = first.position()
    commit_jobs(dispatch, 2)
    pubsub = redis_db.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(channel("dispatch/*"))

    with running_relay(dispatch, redis_server.url) as second:
        assert second.position() == recorded
        wait_until(caught_up(second, dispatch), "the second relay reached the head")
        head = dispatch.head_position()
        published = listen(pubsub, reached(head))
    pubsub.close()

    assert recorded == 8
    assert [item["position"] for _, item in published] == list(range(recorded + 1, head + 1))
    assert stream_entries(redis_db) == expected_entries(dispatch)


def test_a_relay_reset_to_position_zero_publishes_again_without_duplicate_entries(
        dispatch, redis_server, redis_db):
    commit_jobs(dispatch, 2)
    with running_relay(dispatch, redis_server.url) as first:
        wait_until(caught_up(first, dispatch), "the first relay reached the head")
    reset_relay_position(dispatch)
    commit_jobs(dispatch, 1)
    pubsub = redis_db.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(channel("dispatch/*"))

    with running_relay(dispatch, redis_server.url) as second:
        assert second.position() == 0
        wait_until(caught_up(second, dispatch), "the reset relay reached the head")
        head = dispatch.head_position()
        published = listen(pubsub, reached(head))
    pubsub.close()

    # Published again from the start (at least once) ...
    assert [item["position"] for _, item in published] == list(range(1, head + 1))
    # ... but the stream refused every entry it already had.
    entries = stream_entries(redis_db)
    assert len(entries) == head == 12
    assert entries == expected_entries(dispatch)


def test_the_stream_entries_are_the_envelopes_read_back_from_the_store(
        dispatch, redis_server, redis_db):
    contractor_id = uuid4()
    job_id = save_cancelled_job(dispatch, "East", (contractor_id, uuid4()))

    with running_relay(dispatch, redis_server.url) as relay:
        wait_until(caught_up(relay, dispatch), "the relay reached the head")

    *_, (entry_id, cancelled) = stream_entries(redis_db)
    assert entry_id == "6-0"
    assert cancelled["type"] == "JobCancelled"
    assert cancelled["subject"] == str(job_id)
    assert cancelled["position"] == 6
    data = cancelled["data"]
    assert {"jobId", "reason", "reasonCode", "region", "cancelledBy", "cancelledAt",
            "version", "cancelledAssignments"} <= set(data)
    assert data["region"] == "East"
    assert contractor_id in {UUID(ref["contractorId"])
                             for ref in data["cancelledAssignments"]}


# Pub/sub ---------------------------------------------------------------------


def test_subscribers_of_a_region_channel_and_a_contractor_channel_receive_their_envelopes(
        dispatch, redis_server, redis_db):
    ours, theirs = str(uuid4()), str(uuid4())
    pubsub = redis_db.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel("dispatch/North"), channel(f"contractor/{ours}"))
    save_cancelled_job(dispatch, "North", (UUID(ours), UUID(theirs)))
    save_cancelled_job(dispatch, "South", (UUID(ours),))
    save_cancelled_job(dispatch, "North", (UUID(theirs),))
    dispatch.create_job(request(), **job_fields(region="South"))
    everything = store_envelopes(dispatch)
    north = [item for item in everything if region_of(item) == "North"]
    mine = [item for item in everything if ours in contractors_of(item)]

    with running_relay(dispatch, redis_server.url) as relay:
        wait_until(caught_up(relay, dispatch), "the relay reached the head")
        received = listen(pubsub, lambda got: len(got) >= len(north) + len(mine))
        extra = pubsub.get_message(timeout=0.5)
    pubsub.close()

    assert extra is None

    assert [item for name, item in received if name == channel("dispatch/North")] == north
    assert [item for name, item in received
            if name == channel(f"contractor/{ours}")] == mine
    assert len(received) == len(north) + len(mine)
    assert {item["type"] for item in mine} == {
        "AssignmentCreated", "AssignmentCancelled", "JobCancelled"}
    assert len(mine) == 6


# Redis outages ---------------------------------------------------------------


def test_commands_succeed_while_redis_is_down_and_a_later_relay_publishes_them_all(
        dispatch, tmp_path):
    port = free_port()  # nothing listens here
    with running_relay(dispatch, f"redis://127.0.0.1:{port}/0") as relay:
        commit_jobs(dispatch, 3)
        wait_until(lambda: isinstance(relay.last_error, redis.ConnectionError),
                   "the relay found Redis unreachable")
        assert relay.position() == 0
    assert dispatch.head_position() == 12

    server = start_private_redis(tmp_path / "redis")
    client = server.client()
    try:
        with running_relay(dispatch, server.url) as later:
            wait_until(caught_up(later, dispatch), "the later relay reached the head")
        entries = stream_entries(client)
    finally:
        client.close()
        server.stop()
    assert entries == expected_entries(dispatch)


def test_a_relay_catches_up_by_itself_once_redis_comes_up_at_its_address(
        dispatch, tmp_path):
    require_redis_server()
    server = RedisServer(tmp_path / "redis")  # a free port; nothing listens there yet
    try:
        with running_relay(dispatch, server.url) as relay:
            commit_jobs(dispatch, 2)
            wait_until(lambda: relay.last_error is not None, "the relay found Redis down")
            assert relay.position() == 0
            server.start()
            commit_jobs(dispatch, 1)
            wait_until(caught_up(relay, dispatch), "the relay reached the head")
        with server.client() as client:
            entries = stream_entries(client)
    finally:
        server.stop()

    assert entries == expected_entries(dispatch)
    assert relay.last_error is None


def rename_tracking_table(tracking: Any, *, away: bool) -> None:
    """Take the relay's tracking table away (or bring it back): a failing store."""
    if isinstance(tracking, PostgresTrackingRecorder):
        name, schema = tracking.tracking_table_name, tracking.datastore.schema
        old, new = (name, "tracking_away") if away else ("tracking_away", name)
        statement: Any = SQL("ALTER TABLE {}.{} RENAME TO {}").format(
            Identifier(schema), Identifier(old), Identifier(new))
    else:
        old, new = ("tracking", "tracking_away") if away else ("tracking_away", "tracking")
        statement = f"ALTER TABLE {old} RENAME TO {new}"
    with tracking.datastore.transaction(commit=True) as cursor:
        cursor.execute(statement)


def test_a_relay_keeps_running_through_an_event_store_failure_and_then_catches_up(
        dispatch, redis_server, redis_db):
    with running_relay(dispatch, redis_server.url) as relay:
        commit_jobs(dispatch, 1)
        wait_until(caught_up(relay, dispatch), "the relay reached the head")
        rename_tracking_table(relay.tracking, away=True)  # it can record no position
        try:
            commit_jobs(dispatch, 1)
            wait_until(lambda: relay.last_error is not None or not relay.is_running,
                       "the relay failed")
            assert relay.is_running
        finally:
            rename_tracking_table(relay.tracking, away=False)
        commit_jobs(dispatch, 1)
        wait_until(caught_up(relay, dispatch), "the relay reached the head again")

    assert stream_entries(redis_db) == expected_entries(dispatch)


def test_a_redis_killed_mid_stream_and_restarted_ends_with_every_event_once_in_order(
        dispatch, tmp_path):
    server = start_private_redis(tmp_path / "redis")
    try:
        with running_relay(dispatch, server.url) as relay, Writer(dispatch) as writer:
            wait_until(lambda: relay.position() >= 40, "the relay published 40 events")
            with server.client() as client:
                before_kill = client.xlen(STREAM)
            server.kill()
            killed_at = dispatch.head_position()
            wait_until(lambda: relay.last_error is not None, "the relay saw Redis go")
            wait_until(lambda: dispatch.head_position() >= killed_at + 40,
                       "40 more events were committed while Redis was down")
            server.start()  # the same port and directory: its append-only file
            restarted_at = dispatch.head_position()
            with server.client() as client:
                after_restart = client.xlen(STREAM)
            wait_until(lambda: relay.position() > restarted_at + 40,
                       "the relay published 40 events committed after the restart")
            writer.stop()
            wait_until(caught_up(relay, dispatch), "the relay reached the head")
        with server.client() as client:
            entries = stream_entries(client)
    finally:
        server.stop()

    assert writer.errors == []
    assert after_restart >= before_kill > 0  # acknowledged entries survived SIGKILL
    positions = [item["position"] for item in store_envelopes(dispatch)]
    assert len(positions) == 4 * writer.jobs
    ids = [entry_id for entry_id, _ in entries]
    assert ids == [f"{position}-0" for position in positions]  # one each, in order
    assert len(set(ids)) == len(ids)
    assert entries == expected_entries(dispatch)
    assert relay.last_error is None
