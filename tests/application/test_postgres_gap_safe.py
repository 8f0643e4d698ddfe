"""PostgreSQL appends that do not hold a table lock through their commit, and
followers that never skip nor repeat an event (application/postgres.py).

Appends take the append lock only around their INSERT and commit without it,
so notification ids may commit out of order; readers return settled rows only
(written by transactions below their snapshot's xmin). The deterministic tests
hold a transaction open at each step that matters; the last one lets several
processes append at once while followers run, and checks what each one saw.

Checked to fail: with every committed row counted as settled (the library's
reads), the four follower tests fail and the concurrent one catches skips by
both the subscription and the read-model runner (4 to 13 per run); without the
subscription's re-poll, the non-append test times out.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import (
    InfrastructureFactory,
    IntegrityError,
    Notification,
    OperationalError,
    StoredEvent,
)
from eventsourcing.utils import Environment
from psycopg.sql import SQL

from application.errors import ConcurrencyConflict
from application.persistence import eventsourcing_env, storage_lock
from application.postgres import PostgresApplicationRecorder
from application.postgres_settled import REPOLL_MAX
from application.settings import Settings
from projections.following.runner import ViewsRunner
from smartscheduler.bootstrap import build_dispatch, build_services
from tests.factories import job_fields, request, slot
from tests.services import POSTGRES_URL, postgres_schema_url

pytestmark = pytest.mark.postgres

QUIET = 0.3
"""Seconds a follower is watched to show it does not deliver a row it must hold
back (several of its re-polls, REPOLL_MAX apart)."""

DELIVERY = 20.0
"""Seconds a follower may take to deliver what it should (other engineers'
transactions on the shared server may hold the settled bound back meanwhile)."""

assert QUIET > 3 * REPOLL_MAX


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from postgres_schema_url()


def recorder_of(database_url: str, *, library: bool = False) -> Any:
    """Ours (as the service configures it), or the library's stock one."""
    env = eventsourcing_env(database_url)
    if library:
        env.pop("APPLICATION_RECORDER_TOPIC")
    with storage_lock(database_url):
        factory = InfrastructureFactory.construct(Environment("GapSafe", env))
        return factory.application_recorder()


@pytest.fixture
def recorder(postgres_url: str) -> Iterator[PostgresApplicationRecorder]:
    made = recorder_of(postgres_url)
    assert isinstance(made, PostgresApplicationRecorder)
    try:
        yield made
    finally:
        made.datastore.close()


def event(state: bytes = b"{}") -> StoredEvent:
    return StoredEvent(uuid.uuid4(), 1, "tests.Appended", state)


class Follower:
    """A thread iterating over `recorder.subscribe(gt)`, keeping every id it gets."""

    def __init__(self, recorder: Any, gt: int = 0) -> None:
        self.seen: list[int] = []
        self.error: BaseException | None = None
        self._changed = threading.Condition()
        self._subscription = recorder.subscribe(gt=gt)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._subscription:
                for notification in self._subscription:
                    with self._changed:
                        self.seen.append(notification.id)
                        self._changed.notify_all()
        except BaseException as error:  # shown by the test that reads `seen`
            self.error = error

    def wait_until(self, count: int, timeout: float = DELIVERY) -> list[int]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.seen) >= count, timeout)
            return list(self.seen)

    def stop(self) -> None:
        self._subscription.stop()
        self._thread.join(10)
        assert not self._thread.is_alive()
        assert self.error is None, self.error


@pytest.fixture
def follow(recorder: PostgresApplicationRecorder) -> Iterator[Any]:
    followers: list[Follower] = []

    def start(gt: int = 0) -> Follower:
        followers.append(Follower(recorder, gt))
        return followers[-1]

    yield start
    for follower in followers:
        follower.stop()


def ids(notifications: list[Notification]) -> list[int]:
    return [n.id for n in notifications]


def eventually(read: Callable[[], Any], expected: Any) -> Any:
    """What `read()` returns once it is `expected`, or after DELIVERY seconds.

    A positive read waits: any transaction of the server with an id may hold
    the settled bound back for a moment (other engineers' tests share it)."""
    deadline = time.monotonic() + DELIVERY
    while (got := read()) != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return got


def read_ids(recorder: Any, start: int | None, limit: int = 100, **kwargs: Any) -> Callable[
        [], list[int]]:
    return lambda: ids(recorder.select_notifications(start, limit, **kwargs))


def append_held_open(recorder: PostgresApplicationRecorder, conn: Any) -> int:
    """Append one event on `conn` the way insert_events does, but leave its
    transaction open (the caller commits or rolls back)."""
    (position,) = recorder._append(conn, [event(b'"held"')], commit=False)
    return position


def advisory_locks(conn: Any, key: tuple[int, int]) -> list[Any]:
    return conn.execute(
        "SELECT pid, granted FROM pg_locks WHERE locktype = 'advisory' "
        "AND classid = %s AND objid = %s AND objsubid = 2", key).fetchall()


# Deterministic ---------------------------------------------------------------------


def test_a_row_above_an_append_in_flight_waits_for_it_then_both_come_in_order(
        recorder, follow):
    (first,) = recorder.insert_events([event()])
    follower = follow()
    assert follower.wait_until(1) == [first]

    with recorder.datastore.get_connection() as a:
        held = append_held_open(recorder, a)
        (later,) = recorder.insert_events([event()])  # B: commits, with a larger id
        assert first < held < later

        assert eventually(read_ids(recorder, 0), [first]) == [first]
        read = recorder.select_settled_notifications(first, 10, inclusive_of_start=False)
        assert read.notifications == [] and read.cut_short
        assert recorder.max_notification_id() == later  # committed: read-your-writes
        # Safe to start after: no row at or below it can commit later.
        assert eventually(recorder.max_settled_notification_id, first) == first
        time.sleep(QUIET)
        assert follower.seen == [first], "a follower got B before A committed"
        a.execute("COMMIT")

    assert follower.wait_until(3) == [first, held, later]
    assert eventually(read_ids(recorder, 0), [first, held, later]) == [first, held, later]
    assert eventually(recorder.max_settled_notification_id, later) == later


def test_an_aborted_append_leaves_a_gap_that_followers_pass(recorder, follow):
    follower = follow()
    with recorder.datastore.get_connection() as a:
        held = append_held_open(recorder, a)
        (later,) = recorder.insert_events([event()])
        time.sleep(QUIET)
        assert follower.seen == []
        a.execute("ROLLBACK")

    assert follower.wait_until(1) == [later]
    assert later > held
    (last,) = recorder.insert_events([event()])
    assert follower.wait_until(2) == [later, last]
    assert eventually(read_ids(recorder, 0), [later, last]) == [later, last]


def test_a_transaction_that_is_no_append_holds_followers_back_and_they_look_again(
        recorder, follow, postgres_url):
    """No NOTIFY comes when the transaction in the way ends: the subscription
    must look again by itself (without its re-poll this test hangs)."""
    follower = follow()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as other:
        other.execute("BEGIN")
        other.execute("SELECT pg_current_xact_id()")  # holds a transaction id, writes nothing
        (position,) = recorder.insert_events([event()])  # commits and NOTIFYs meanwhile
        time.sleep(QUIET)
        assert follower.seen == []
        assert recorder.select_settled_notifications(0, 10).cut_short
        other.execute("COMMIT")
    began = time.monotonic()
    assert follower.wait_until(1) == [position]
    print(f"delivered {time.monotonic() - began:.3f}s after the other transaction ended")


def test_a_follower_started_after_the_settled_head_skips_nothing(recorder, follow):
    """The committed head (read-your-writes) may lie above a row in flight; the
    settled head never does."""
    with recorder.datastore.get_connection() as a:
        held = append_held_open(recorder, a)
        (later,) = recorder.insert_events([event()])
        start = recorder.max_settled_notification_id() or 0
        assert start < held < later == recorder.max_notification_id()
        follower = follow(gt=start)
        a.execute("COMMIT")
    assert follower.wait_until(2) == [held, later]


def test_the_settled_read_honours_stop_topics_and_limit(recorder):
    positions = recorder.insert_events([event() for _ in range(5)])
    other = StoredEvent(uuid.uuid4(), 1, "tests.Other", b"{}")
    (other_position,) = recorder.insert_events([other])
    cases = [
        (read_ids(recorder, positions[0], 2), positions[:2]),
        (read_ids(recorder, positions[0], inclusive_of_start=False, stop=positions[3]),
         positions[1:4]),
        (read_ids(recorder, 0, topics=["tests.Other"]), [other_position]),
        (read_ids(recorder, 0), [*positions, other_position]),
    ]
    for read, expected in cases:
        assert eventually(read, expected) == expected
    assert recorder.select_notifications(other_position, 10, inclusive_of_start=False) == []


# The append lock ---------------------------------------------------------------------


def test_the_append_lock_is_released_before_the_commit_and_after_every_failure(recorder):
    key = recorder.append_lock_key
    duplicate = event()
    recorder.insert_events([duplicate])
    with psycopg.connect(POSTGRES_URL, autocommit=True) as observer:
        # Held open past its INSERT: the transaction is in flight, the lock is not held.
        with recorder.datastore.get_connection() as a:
            append_held_open(recorder, a)
            assert advisory_locks(observer, key) == []

            # An append that conflicts with A's row in flight waits for A under
            # the lock, until lock_timeout: the lock is released after the error.
            (held_row,) = a.execute(
                f'SELECT originator_id FROM "{recorder.datastore.schema}".'
                f'"{recorder.events_table_name}" ORDER BY notification_id DESC LIMIT 1'
            ).fetchall()
            same = StoredEvent(held_row["originator_id"], 1, "tests.Appended", b"{}")
            with pytest.raises(OperationalError, match="lock timeout"):
                recorder.insert_events([event(), same])
            assert advisory_locks(observer, key) == []
            a.execute("ROLLBACK")

        # A conflict fails the INSERT while the lock is held.
        with pytest.raises(IntegrityError):
            recorder.insert_events([event(), duplicate])
        assert advisory_locks(observer, key) == []

        # A value the driver refuses (U+0000 in text) fails before the INSERT is sent.
        with pytest.raises(Exception):  # noqa: B017  # whichever error the driver raises
            recorder.insert_events([StoredEvent(uuid.uuid4(), 1, "bad\x00topic", b"{}")])
        assert advisory_locks(observer, key) == []

        # Someone else holds the lock: the wait is bounded by POSTGRES_LOCK_TIMEOUT.
        observer.execute("SELECT pg_advisory_lock(%s, %s)", key)
        began = time.monotonic()
        with pytest.raises(OperationalError, match="lock timeout"):
            recorder.insert_events([event()])
        waited = time.monotonic() - began
        assert waited < recorder.datastore.lock_timeout + 1.5
        assert [granted for _, granted in advisory_locks(observer, key)] == [True]
        observer.execute("SELECT pg_advisory_unlock(%s, %s)", key)

    # No pooled connection holds the lock: appends go on (else: lock timeouts).
    appended = [recorder.insert_events([event()])[0] for _ in range(5)]
    assert eventually(lambda: read_ids(recorder, 0)()[-5:], appended) == appended


def test_an_append_whose_notify_fails_after_its_commit_is_not_failed(recorder, caplog):
    """The NOTIFY runs after the append's COMMIT: its failure fails no append."""
    recorder._notify_statements = [*recorder._notify_statements[:2],
                                   SQL("SELECT 1 / 0"), SQL("COMMIT")]
    (position,) = recorder.insert_events([event()])
    assert "An append committed, but what followed failed" in caplog.text
    assert eventually(read_ids(recorder, 0), [position]) == [position]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as observer:
        assert advisory_locks(observer, recorder.append_lock_key) == []


def test_a_table_made_before_the_transaction_id_column_gets_it_and_keeps_its_rows(
        postgres_url):
    library = recorder_of(postgres_url, library=True)
    try:
        old = library.insert_events([event(), event()])
    finally:
        library.datastore.close()
    ours = recorder_of(postgres_url)
    try:
        assert eventually(read_ids(ours, 0), old) == old
        new = ours.insert_events([event()])
        assert eventually(read_ids(ours, 0), [*old, *new]) == [*old, *new]
        with ours.datastore.get_connection() as conn:
            rows = conn.execute(f'SELECT transaction_id::text::bigint AS x FROM '
                                f'"{ours.datastore.schema}"."{ours.events_table_name}" '
                                'ORDER BY notification_id').fetchall()
        assert [row["x"] for row in rows][:2] == [0, 0]
        assert rows[2]["x"] > 0
    finally:
        ours.datastore.close()


# Concurrent appends from several processes ---------------------------------------------

PROCESSES = 4
THREADS = 4
CREATES = 25
"""Jobs each thread creates; every thread also assigns contractors to jobs
shared by all processes, so appends conflict and roll back (gaps in the ids)."""
SHARED_JOBS = 3
ASSIGNS = 10


def _append_concurrently(database_url: str, shared: list[str], barrier: Any,
                         results: Any) -> None:
    """A process appending from THREADS threads at once: creates of its own jobs
    and assignments to the shared ones (conflicting with the other processes')."""
    try:
        app = build_dispatch(Settings(database_url=database_url))
    except BaseException:
        results.put(("error", traceback.format_exc()))
        return
    positions: list[int] = []
    errors: list[str] = []

    def work(index: int) -> None:
        try:
            for i in range(max(CREATES, ASSIGNS)):
                if i < CREATES:
                    positions.append(app.create_job(request(), **job_fields()).position)
                if i < ASSIGNS:
                    job_id = uuid.UUID(shared[(index + i) % len(shared)])
                    try:
                        outcome = app.assign(request(), job_id,
                                             contractor_id=uuid.uuid4(), **slot())
                    except ConcurrencyConflict:  # 20 conflicts in a row: stored nothing
                        continue
                    positions.append(outcome.position)
        except BaseException:
            errors.append(traceback.format_exc())

    try:
        barrier.wait(60)
        threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        results.put(("error", errors[0]) if errors else ("done", positions))
    finally:
        app.close()


class RecordingRunner(ViewsRunner):
    """The read models' runner, keeping the positions of the batches it applied."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.applied: list[int] = []

    def handle(self, batch: Any) -> bool:
        applied = super().handle(batch)
        if applied:
            self.applied.extend(item.id for item in batch)
        return applied


def committed_positions(recorder: Any) -> list[int]:
    with recorder.datastore.get_connection() as conn:
        rows = conn.execute(f'SELECT notification_id FROM "{recorder.datastore.schema}".'
                            f'"{recorder.events_table_name}" ORDER BY notification_id')
        return [row["notification_id"] for row in rows.fetchall()]


def run_appenders(database_url: str, shared: list[str]) -> list[int]:
    """PROCESSES spawned processes appending at once; the positions they were given."""
    mp = multiprocessing.get_context("spawn")
    barrier, results = mp.Barrier(PROCESSES), mp.Queue()
    processes = [mp.Process(target=_append_concurrently, daemon=True,
                            args=(database_url, shared, barrier, results))
                 for _ in range(PROCESSES)]
    for process in processes:
        process.start()
    positions: list[int] = []
    try:
        for _ in processes:
            try:
                kind, payload = results.get(timeout=240)
            except queue.Empty:
                pytest.fail("an appending process gave no answer")
            assert kind == "done", payload
            positions.extend(payload)
    finally:
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.terminate()  # one this test started
    return positions


def test_followers_see_every_append_of_several_processes_once_and_in_order(postgres_url):
    with ExitStack() as stack:
        services = build_services(Settings(database_url=postgres_url), run_projections=False)
        stack.callback(services.close)
        app = services.app
        shared = [str(app.create_job(request(), **job_fields()).job.id)
                  for _ in range(SHARED_JOBS)]
        follower = Follower(app.recorder, gt=0)
        stack.callback(follower.stop)
        runner = RecordingRunner(app, services.views, batch_size=50).start()
        stack.callback(runner.stop)

        positions = run_appenders(postgres_url, shared)

        committed = committed_positions(app.recorder)
        assert len(committed) == SHARED_JOBS + len(positions)  # one event per command
        assert set(positions) <= set(committed)
        assert len(positions) >= PROCESSES * THREADS * CREATES
        gaps = committed[-1] - len(committed)
        print(f"{len(committed)} events committed, {gaps} ids rolled back")

        seen = follower.wait_until(len(committed), timeout=60)
        assert services.views.wait_for(committed[-1], timeout=60)
        runner.stop()
        wrong = []
        for name, got in (("subscription", seen), ("read-model runner", runner.applied)):
            if got != sorted(set(got)):
                wrong.append(f"the {name} repeated or reordered events")
            missed = sorted(set(committed) - set(got))
            if missed:
                wrong.append(f"the {name} skipped {len(missed)} events: {missed[:10]}")
        assert not wrong, "; ".join(wrong)
        assert seen == runner.applied == committed
        assert services.views.count_jobs() == SHARED_JOBS + PROCESSES * THREADS * CREATES
