"""One reader of the log per process: the read models, the relay and the hub of a
process share it, and each still gets every event after its own position once.

Real SQLite files and PostgreSQL schemas (`database_url`), a private Redis.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from itertools import cycle
from typing import Any
from uuid import uuid4

import pytest
import redis
from eventsourcing.postgres import PostgresTrackingRecorder
from psycopg.sql import SQL, Identifier

from application.dispatch import Dispatch
from application.settings import Settings
from projections import jobs
from projections.backends import views_for
from projections.following.reader import LogReader
from projections.following.runner import ViewsRunner
from projections.realtime.feeds import read_log
from projections.realtime.hub import Hub, Subscriber
from projections.realtime.relay import STREAM, Relay, channel
from projections.store import DispatchViews
from smartscheduler.bootstrap import build_dispatch, redis_client
from tests.factories import save_cancelled_job
from tests.projections.support import all_job_ids, documents_newest_first, items, read_all
from tests.redis_server import RedisServer, require_redis_server

WAIT = 60.0


class Process:
    """The followers one process runs on one application, sharing one reader."""

    def __init__(self, database_url: str, redis_url: str, *, window: int = 4096,
                 backoff: float = 0.5) -> None:
        self.app: Dispatch = build_dispatch(Settings(database_url=database_url))
        self.views: DispatchViews = views_for(self.app.factory)
        self.reader = LogReader(self.app.recorder, self.app.mapper, window=window)
        self.runner = ViewsRunner(self.app, self.views, max_backoff=backoff,
                                  reader=self.reader)
        self.relay = Relay(self.app, redis_client(redis_url), max_backoff=backoff,
                           status=self.views, reader=self.reader)
        self.hub = Hub(self.app, reader=self.reader)
        self.hub_started_at = self.hub.position
        self.seen: Subscriber = self.hub.subscribe(lambda _: True)
        self.delivered: list[int] = []

    def start(self, *parts: str) -> Process:
        for name in parts or ("runner", "relay", "hub"):
            getattr(self, name).start()
        return self

    def positions_delivered(self) -> list[int]:
        """What the hub handed its subscriber so far, in order."""
        while True:
            try:
                item = self.seen.queue.get_nowait()
            except queue.Empty:
                return self.delivered
            assert item is not None, "the hub closed the stream"
            self.delivered.append(item["position"])

    def close(self) -> None:
        self.hub.stop()
        self.relay.stop()
        self.runner.stop()
        self.relay.redis.close()
        self.app.close()


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Processes of a test, closed at its end."""
    started: list[Process] = []
    try:
        yield started
    finally:
        for process in reversed(started):
            process.close()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"Gave up after {timeout:.0f}s waiting until {what}")
        time.sleep(0.02)


def commit_jobs(app: Dispatch, count: int) -> None:
    regions = cycle(["North", "South", "East"])
    for _ in range(count):
        save_cancelled_job(app, next(regions), (uuid4(),))  # 4 events


def log_positions(app: Dispatch, after: int = 0) -> list[int]:
    return [n.id for n in app.recorder.select_notifications(
        start=after, limit=1_000_000, inclusive_of_start=False)]


def stream_entries(client: redis.Redis) -> list[tuple[str, dict[str, Any]]]:
    return [(entry_id.decode(), json.loads(fields[b"event"]))
            for entry_id, fields in client.xrange(STREAM, "-", "+")]


def expected_entries(app: Dispatch) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{item['position']}-0", item) for item in read_log(app, 0)]


def all_caught_up(process: Process) -> bool:
    head = process.app.head_position()
    return (process.views.position() == head and process.relay.position() == head
            and process.hub.position == head)


def assert_exactly_once_everywhere(process: Process, client: redis.Redis) -> None:
    """The read models equal the aggregates, the stream holds every event once in
    order, and the hub handed over every event after it started, once, in order."""
    app = process.app
    assert items(read_all(process.views)["jobs"]) == documents_newest_first(
        app, all_job_ids(app))
    assert len(items(read_all(process.views)["assignments"])) == len(all_job_ids(app))
    assert stream_entries(client) == expected_entries(app)
    assert process.positions_delivered() == log_positions(app, process.hub_started_at)


def pull_threads() -> int:
    """Subscriptions to a store, running in this process (their pulling threads)."""
    return sum("_loop_on_pull" in thread.name for thread in threading.enumerate())


class Writer:
    """Commits cancelled jobs in a thread until stopped."""

    def __init__(self, app: Dispatch) -> None:
        self.app, self.errors = app, []  # type: list[BaseException]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                commit_jobs(self.app, 1)
            except Exception as error:  # reported by the test
                self.errors.append(error)
                return
            time.sleep(0.005)


# One read, one decode ----------------------------------------------------------


def test_one_reader_hands_every_event_once_to_each_follower_of_the_process(
        database_url, redis_server, processes):
    before = pull_threads()
    process = Process(database_url, redis_server.url).start()
    processes.append(process)
    wait_until(lambda: None not in process.reader.cursors().values()
               and len(process.reader.cursors()) == 3, "the three followers asked for events")

    with Writer(process.app) as writer:
        wait_until(lambda: process.app.head_position() >= 160 or bool(writer.errors),
                   "160 events were committed")
        assert pull_threads() - before == 1  # one subscription for three followers
    assert writer.errors == []
    wait_until(lambda: all_caught_up(process), "every follower reached the head")

    with redis_server.client() as client:
        assert_exactly_once_everywhere(process, client)
    notifications = len(log_positions(process.app))
    reader = process.reader
    assert reader.own == 0  # nobody fell behind the others
    assert reader.shared == notifications  # each page read once
    assert reader.decoder.decoded == notifications  # each event decoded once


def test_followers_waiting_for_events_cost_next_to_no_cpu(database_url, redis_server,
                                                           processes):
    process = Process(database_url, redis_server.url).start()
    processes.append(process)
    commit_jobs(process.app, 1)
    wait_until(lambda: all_caught_up(process), "every follower reached the head")

    began = time.process_time()
    time.sleep(1.0)
    busy = time.process_time() - began

    assert busy < 0.3, f"{busy:.2f}s of CPU in 1s while idle: a follower spins"


def test_followers_that_start_at_different_positions_share_what_they_have_in_common(
        database_url, redis_server, processes):
    """The hub starts at the head, the relay and the read models at 0: whichever
    asks first, the events are decoded once for all three."""
    process = Process(database_url, redis_server.url)
    processes.append(process)
    commit_jobs(process.app, 3)
    process.hub_started_at = process.hub.position = process.app.head_position()
    process.start("hub")
    wait_until(lambda: process.reader.cursors()["hub"] is not None, "the hub asked")
    process.start("runner", "relay")
    commit_jobs(process.app, 3)
    wait_until(lambda: all_caught_up(process), "every follower reached the head")

    with redis_server.client() as client:
        assert_exactly_once_everywhere(process, client)
    assert process.reader.decoder.decoded == len(log_positions(process.app))


def test_a_follower_that_fails_holds_back_and_duplicates_nothing_of_the_others(
        database_url, processes, tmp_path):
    """The relay cannot reach Redis while the read models and the hub go on; it
    falls out of the (small) shared window, and once Redis is up it reads on its
    own until it is back: every event in the stream once, in order."""
    require_redis_server()
    server = RedisServer(tmp_path / "redis")  # nothing listens at its port yet
    process = Process(database_url, server.url, window=16).start()
    processes.append(process)
    try:
        commit_jobs(process.app, 10)
        head = process.app.head_position()
        wait_until(lambda: process.views.position() == head, "the read models caught up")
        wait_until(lambda: process.hub.position == head, "the hub caught up")
        wait_until(lambda: isinstance(process.relay.last_error, redis.ConnectionError),
                   "the relay found Redis unreachable")
        assert process.relay.position() == 0
        assert process.relay.is_running

        server.start()
        commit_jobs(process.app, 2)
        wait_until(lambda: all_caught_up(process), "every follower reached the head")
        with server.client() as client:
            assert_exactly_once_everywhere(process, client)
    finally:
        server.stop()
    assert process.reader.own >= head  # the relay caught up on its own
    assert process.relay.last_error is None and process.relay.failure is None
    assert process.runner.last_error is None


def rename_job_views(views: DispatchViews, *, away: bool) -> None:
    """Take the job read model's table away (or bring it back): its runner fails."""
    old, new = (jobs.TABLE, "job_views_away") if away else ("job_views_away", jobs.TABLE)
    with views.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
        if isinstance(views, PostgresTrackingRecorder):
            cursor.execute(SQL("ALTER TABLE {}.{} RENAME TO {}").format(
                Identifier(views.datastore.schema), Identifier(old), Identifier(new)))
        else:
            cursor.execute(f"ALTER TABLE {old} RENAME TO {new}")


def test_read_models_that_fail_resume_from_their_position_while_the_relay_goes_on(
        database_url, redis_server, processes):
    process = Process(database_url, redis_server.url, window=16).start()
    processes.append(process)
    commit_jobs(process.app, 2)
    wait_until(lambda: all_caught_up(process), "every follower reached the head")
    stopped_at = process.views.position()

    rename_job_views(process.views, away=True)
    try:
        commit_jobs(process.app, 10)
        head = process.app.head_position()
        wait_until(lambda: process.relay.position() == head, "the relay went on")
        wait_until(lambda: process.hub.position == head, "the hub went on")
        wait_until(lambda: process.runner.failure is not None, "the read models failed")
        assert process.views.position() == stopped_at
        assert process.runner.is_running
    finally:
        rename_job_views(process.views, away=False)

    wait_until(lambda: all_caught_up(process), "the read models caught up")
    wait_until(lambda: process.runner.failure is None, "the read models cleared their failure")
    with redis_server.client() as client:
        assert_exactly_once_everywhere(process, client)
    assert process.views.failures() == {}


def test_after_a_restart_each_follower_resumes_from_its_own_position(
        database_url, redis_server, processes):
    first = Process(database_url, redis_server.url).start("runner", "relay")
    processes.append(first)
    commit_jobs(first.app, 3)
    wait_until(lambda: first.relay.position() == first.app.head_position(),
               "the relay caught up")
    first.relay.stop()
    relay_at = first.relay.position()
    commit_jobs(first.app, 3)
    wait_until(lambda: first.views.position() == first.app.head_position(),
               "the read models caught up")
    first.runner.stop()
    views_at = first.views.position()
    commit_jobs(first.app, 3)
    assert 0 < relay_at < views_at < first.app.head_position()

    pubsub = redis_server.client().pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(channel("dispatch/*"))
    second = Process(database_url, redis_server.url).start()
    processes.append(second)
    wait_until(lambda: all_caught_up(second), "every follower of the new process caught up")
    commit_jobs(second.app, 1)
    wait_until(lambda: all_caught_up(second), "every follower reached the head")

    published: list[int] = []
    deadline = time.monotonic() + WAIT
    while (not published or published[-1] < second.app.head_position()) and (
            time.monotonic() < deadline):
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "pmessage":
            published.append(json.loads(message["data"])["position"])
    pubsub.close()
    assert published == log_positions(second.app, relay_at)  # once each, from its own
    with redis_server.client() as client:
        assert_exactly_once_everywhere(second, client)


def test_the_hub_delivers_every_position_once_in_order_beside_lagging_followers(
        database_url, redis_server, processes):
    """A relay started far behind reads on its own; the hub and the read models
    share the reader meanwhile, and the hub's subscriber sees each position once."""
    process = Process(database_url, redis_server.url, window=8)
    processes.append(process)
    process.start("runner", "hub")
    with Writer(process.app) as writer:
        wait_until(lambda: process.app.head_position() >= 80 or bool(writer.errors),
                   "80 events were committed")
        assert writer.errors == []
        process.start("relay")  # from position 0, far behind the window
        wait_until(lambda: process.app.head_position() >= 160, "160 events were committed")
    assert writer.errors == []
    wait_until(lambda: all_caught_up(process), "every follower reached the head")

    with redis_server.client() as client:
        assert_exactly_once_everywhere(process, client)
    assert process.positions_delivered() == log_positions(process.app)
