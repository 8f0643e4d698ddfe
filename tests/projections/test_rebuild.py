"""Rebuilding the read models from the log, and following the log with a runner."""

from __future__ import annotations

import logging
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError
from hypothesis import given, settings
from hypothesis import strategies as st

from application.dispatch import Dispatch
from application.settings import Settings
from application.sqlite import SQLiteSubscription
from domain.errors import DomainError
from domain.values import Priority
from projections.batches import decode
from projections.following.runner import ViewsRunner
from projections.rebuild import rebuild
from smartscheduler.bootstrap import build_dispatch, build_services
from tests.factories import job_fields, request, slot
from tests.projections.support import (
    all_job_ids,
    create,
    documents_newest_first,
    items,
    jobs_in_every_state,
    read_all,
)
from tests.resources import resource

ROOT = Path(__file__).resolve().parents[2]
RACING_WRITES = 500


def _notifications(app: Dispatch) -> list[Any]:
    return list(app.recorder.select_notifications(start=0, limit=1_000_000,
                                                  inclusive_of_start=False))


def _assert_views_match_the_aggregates(app: Dispatch, views: Any) -> None:
    contents = read_all(views)
    expected = documents_newest_first(app, all_job_ids(app))
    assert items(contents["jobs"]) == expected
    assert len(items(contents["assignments"])) == sum(
        len(document["assignments"]) for document in expected)


def test_a_rebuild_from_scratch_gives_exactly_the_incrementally_built_views(services, app):
    outcomes = jobs_in_every_state(app)
    assert services.views.wait_for(app.head_position(), timeout=10)
    services.runner.stop()
    incremental = read_all(services.views)
    assert len(items(incremental["jobs"])) == len(outcomes)
    _assert_views_match_the_aggregates(app, services.views)

    result = rebuild(app, services.views)

    assert result.events == app.head_position() == len(_notifications(app))
    assert read_all(services.views) == incremental
    assert services.views.position() == app.head_position()


def test_rebuilding_twice_gives_the_same_views_and_position(services, app):
    jobs_in_every_state(app)
    assert services.views.wait_for(app.head_position(), timeout=10)
    services.runner.stop()
    progress: list[tuple[int, int]] = []

    rebuild(app, services.views, batch_size=7)
    first = read_all(services.views)
    rebuild(app, services.views, batch_size=5, progress=lambda *p: progress.append(p))
    second = read_all(services.views)

    assert second == first
    _assert_views_match_the_aggregates(app, services.views)
    assert services.views.position() == app.head_position()
    head = app.head_position()
    assert progress[-1] == (head, head)
    assert [done for done, _ in progress] == [*range(5, head, 5), head]


def test_a_rebuild_replaces_views_that_went_stale(services, app):
    first = create(app)
    assert services.views.wait_for(first.position, timeout=10)
    services.runner.stop()
    later = app.cancel_job(request(), first.job.id, reason="Duplicate")
    assert services.views.get_job(str(first.job.id)).status == "Created"

    result = rebuild(app, services.views)

    assert result.events == later.position
    assert resource(services.views.get_job(str(first.job.id))) == resource(
        app.get_job(first.job.id))


def test_a_rebuild_of_an_empty_log_empties_the_views(services, app):
    assert rebuild(app, services.views).events == 0
    assert read_all(services.views)["jobs"][0].total == 0
    assert services.views.position() == 0


def test_a_new_runner_resumes_from_the_recorded_position(services, app, caplog):
    caplog.set_level(logging.WARNING, logger="projections.follower")
    jobs_in_every_state(app)
    assert services.views.wait_for(app.head_position(), timeout=10)
    services.runner.stop()
    assert not services.runner.is_running
    stopped_at = services.views.position()
    late = [create(app, region="Late") for _ in range(3)]
    app.cancel_job(request(), late[0].job.id)
    assert services.views.position() == stopped_at
    assert services.views.get_job(str(late[1].job.id)) is None

    runner = ViewsRunner(app, services.views, batch_size=2).start()
    try:
        assert services.views.wait_for(app.head_position(), timeout=10)
        extra = create(app, region="Later")
        assert services.views.wait_for(extra.position, timeout=10)
    finally:
        runner.stop()
    assert not runner.is_running
    assert runner.last_error is None
    assert not [r for r in caplog.records if r.name == "projections.follower"]
    resumed = read_all(services.views)

    rebuild(app, services.views)
    assert read_all(services.views) == resumed
    _assert_views_match_the_aggregates(app, services.views)


# Random command sequences, cut at any point of the log ---------------------------

REGIONS = ["North", "South"]
INDEX = st.integers(0, 7)
COMMANDS = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(list(Priority)), st.sampled_from(REGIONS)),
    st.tuples(st.just("assign"), INDEX),
    st.tuples(st.just("confirm"), INDEX, INDEX),
    st.tuples(st.just("unassign"), INDEX, INDEX),
    st.tuples(st.just("start"), INDEX),
    st.tuples(st.just("complete"), INDEX),
    st.tuples(st.just("cancel"), INDEX),
)


def _run(app: Dispatch, commands: list[tuple[Any, ...]]) -> None:
    """Carry out the commands, skipping those the domain refuses."""
    jobs: list[UUID] = []
    for name, *args in commands:
        if name == "create":
            jobs.append(app.create_job(request(), **job_fields(
                priority=str(args[0]), region=args[1])).job.id)
            continue
        if not jobs:
            continue
        job_id = jobs[args[0] % len(jobs)]
        assignments = app.get_job(job_id).assignments
        try:
            if name == "assign":
                app.assign(request(), job_id, contractor_id=uuid4(), **slot(args[0]))
            elif name in ("confirm", "unassign") and assignments:
                assignment_id = assignments[args[1] % len(assignments)].id
                if name == "confirm":
                    app.confirm_assignment(request(), job_id, assignment_id)
                else:
                    app.cancel_assignment(request(), job_id, assignment_id)
            elif name == "start":
                app.start_job(request(), job_id)
            elif name == "complete":
                app.complete_job(request(), job_id)
            elif name == "cancel":
                app.cancel_job(request(), job_id)
        except DomainError:
            pass


def _process_in_batches(app: Dispatch, views: Any, notifications: list[Any],
                        size: int) -> None:
    for start in range(0, len(notifications), size):
        views.process(decode(app, notifications[start:start + size], views.tracking_name))


@settings(max_examples=25)
@given(commands=st.lists(COMMANDS, min_size=1, max_size=25), data=st.data())
def test_views_built_from_any_prefix_of_the_log_then_resumed_equal_a_full_rebuild(
        tmp_path_factory, commands, data):
    path = tmp_path_factory.mktemp("prefix") / "smartscheduler.db"
    services = build_services(Settings(database_url=f"sqlite:///{path}"),
                              run_projections=False)
    app, views = services.app, services.views
    try:
        _run(app, [("create", Priority.NORMAL, "North"), *commands])
        notifications = _notifications(app)
        cut = data.draw(st.integers(0, len(notifications)), label="cut")
        size = data.draw(st.integers(1, 6), label="batch size")

        _process_in_batches(app, views, notifications[:cut], size)
        assert views.position() == (notifications[cut - 1].id if cut else 0)
        if data.draw(st.booleans(), label="resume with a runner"):
            runner = ViewsRunner(app, views, batch_size=size).start()
            try:
                assert views.wait_for(app.head_position(), timeout=10)
            finally:
                runner.stop()
            assert runner.last_error is None
        else:
            _process_in_batches(app, views, notifications[cut:], size)
        resumed = read_all(views)
        _assert_views_match_the_aggregates(app, views)

        rebuild(app, views, batch_size=size)
        assert read_all(views) == resumed
        assert views.position() == app.head_position()
    finally:
        services.close()


# The SQLite subscription --------------------------------------------------------

def _next_in_thread(subscription: Any) -> queue.Queue[Any]:
    """Read the subscription on a thread; what it yields lands on the queue."""
    found: queue.Queue[Any] = queue.Queue()

    def read() -> None:
        for notification in subscription:
            found.put(notification)

    threading.Thread(target=read, daemon=True).start()
    return found


def test_the_sqlite_subscription_is_woken_by_a_write_made_after_subscribing(sqlite_url):
    app = build_dispatch(Settings(database_url=sqlite_url))
    other = build_dispatch(Settings(database_url=sqlite_url))
    try:
        before = create(app)
        # An hour between polls: only the in-process wake-up can deliver in time.
        subscription = SQLiteSubscription(app.recorder, gt=before.position,
                                          poll_interval=3600)
        with subscription:
            found = _next_in_thread(subscription)
            written = create(app)
            first = found.get(timeout=10)
            by_other = other.assign(request(), written.job.id, contractor_id=uuid4(),
                                    **slot())
            second = found.get(timeout=10)
        assert (first.id, first.originator_id) == (written.position, written.job.id)
        assert first.topic == "smartscheduler.JobCreated"
        assert (second.id, second.topic) == (by_other.position,
                                             "smartscheduler.AssignmentCreated")
        assert found.empty()
    finally:
        other.close()
        app.close()


def test_the_sqlite_subscription_polls_for_writes_from_another_process(sqlite_url):
    app = build_dispatch(Settings(database_url=sqlite_url))
    try:
        head = create(app).position
        script = (
            "import sys; from application.settings import Settings;"
            "from smartscheduler.bootstrap import build_dispatch;"
            "from tests.factories import job_fields, request;"
            "app = build_dispatch(Settings(database_url=sys.argv[1]));"
            "print(app.create_job(request(), **job_fields()).job.id); app.close()"
        )
        with app.recorder.subscribe(gt=head) as subscription:
            found = _next_in_thread(subscription)
            written = subprocess.run(
                [sys.executable, "-c", script, sqlite_url], cwd=ROOT, check=True,
                capture_output=True, text=True, timeout=60)
            notification = found.get(timeout=10)
        assert str(notification.originator_id) == written.stdout.strip()
        assert notification.id == head + 1
    finally:
        app.close()


def test_a_stopped_sqlite_subscription_leaves_no_threads_behind(sqlite_url):
    app = build_dispatch(Settings(database_url=sqlite_url))
    try:
        before = set(threading.enumerate())
        with app.recorder.subscribe(gt=0) as subscription:
            found = _next_in_thread(subscription)
            create(app)
            assert found.get(timeout=10).id == 1
            subscription.stop()
        left = [t for t in set(threading.enumerate()) - before
                if t.is_alive() and t.name == "sqlite-subscription-poll"]
        assert left == []
    finally:
        app.close()


def test_a_write_racing_new_subscriptions_never_fails_the_command(sqlite_url):
    """A subscription may be woken by a write while it is still being built."""
    app = build_dispatch(Settings(database_url=sqlite_url))
    stopping = threading.Event()

    def subscribe_again_and_again() -> None:
        while not stopping.is_set():
            with app.recorder.subscribe(gt=app.head_position()) as subscription:
                subscription.stop()

    churners = [threading.Thread(target=subscribe_again_and_again) for _ in range(4)]
    failures: list[BaseException] = []
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave the threads as finely as possible
    try:
        for churner in churners:
            churner.start()
        for _ in range(RACING_WRITES):
            try:
                create(app)
            except Exception as error:  # the command failed after its write
                failures.append(error)
    finally:
        stopping.set()
        for churner in churners:
            churner.join()
        sys.setswitchinterval(switch_interval)
        head = app.head_position()
        app.close()
    assert failures == []
    assert head == RACING_WRITES


@pytest.mark.parametrize("gt", [None, 0, 2])
def test_the_sqlite_subscription_starts_after_the_given_position(sqlite_url, gt):
    app = build_dispatch(Settings(database_url=sqlite_url))
    try:
        for _ in range(4):
            create(app)
        with app.recorder.subscribe(gt=gt) as subscription:
            found = _next_in_thread(subscription)
            ids = [found.get(timeout=10).id for _ in range(4 - (gt or 0))]
        assert ids == list(range((gt or 0) + 1, 5))
    finally:
        app.close()


def test_a_rebuild_while_commands_and_the_runner_go_on_loses_and_repeats_nothing(services, app):
    jobs_in_every_state(app)
    stop = threading.Event()
    failures: list[BaseException] = []

    def keep_writing() -> None:
        while not stop.is_set():
            try:
                created = app.create_job(request(), **job_fields())
                app.assign(request(), created.job.id, contractor_id=uuid4(), **slot())
                app.cancel_job(request(), created.job.id, reason="racing a rebuild")
            except BaseException as error:  # surfaced below
                failures.append(error)
                return

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        for _ in range(3):
            rebuild(app, services.views, batch_size=7)
    finally:
        stop.set()
        writer.join()

    assert failures == []
    assert services.views.wait_for(app.head_position(), timeout=20)
    _assert_views_match_the_aggregates(app, services.views)
    assert services.runner.is_running


def test_a_rebuild_keeps_the_live_read_models_readable_until_it_switches(services, app):
    jobs_in_every_state(app)
    assert services.views.wait_for(app.head_position(), timeout=10)
    before = read_all(services.views)
    seen_during: list[dict[str, Any]] = []

    rebuild(app, services.views, batch_size=2,
            progress=lambda done, head: seen_during.append(read_all(services.views)))

    assert seen_during and all(seen == before for seen in seen_during)
    assert read_all(services.views) == before


def test_a_batch_that_overlaps_the_recorded_position_is_refused_whole(services, app):
    jobs_in_every_state(app)
    assert services.views.wait_for(app.head_position(), timeout=10)
    services.runner.stop()
    position = services.views.position()
    before = read_all(services.views)
    more = app.create_job(request(), **job_fields())
    overlapping = _notifications(app)[position - 2:]

    with pytest.raises(IntegrityError):
        services.views.process(decode(app, overlapping, services.views.tracking_name))

    assert read_all(services.views) == before
    assert services.views.position() == position
    assert services.views.get_job(str(more.job.id)) is None
