"""The rebuild's fast path: the same rows as the runner, byte for byte, whatever
the events hold; folded writes with the effect of the statements one by one;
and a rebuild killed midway leaves the live read models as they were.

Real SQLite files and PostgreSQL schemas (`database_url`); no mocks.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from application.settings import Settings
from domain.job import Job
from projections import assignments, jobs
from projections.batches import grouped
from projections.rebuild import rebuild
from projections.rebuild.decode import Decoder
from projections.rebuild.fold import JOB_ROW_INSERT, Writes
from projections.rebuild.pages import read_pages, sqlite_pages
from projections.rebuild.write import connect, sqlite_pool
from smartscheduler.bootstrap import build_services
from tests.factories import job_fields, request, slot
from tests.projections.support import assign, create, jobs_in_every_state, read_all

ROOT = Path(__file__).resolve().parents[2]
PLUS_TWO = timezone(timedelta(hours=2))


def table_rows(views: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every column of every row of both read models, by id."""
    found = {}
    with views._transaction(commit=False) as c:
        for table in (jobs.TABLE, assignments.TABLE):
            c.execute(f"SELECT * FROM {views._table(table)} ORDER BY id")
            found[table] = [tuple(row.values()) if isinstance(row, dict) else tuple(row)
                            for row in c.fetchall()]
    return found


def odd_but_valid_jobs(app: Any) -> None:
    """Events with what the fast path must carry over exactly, or hand to the mapper."""
    texts = ["café \u00e9\u0301 \U0001F600 \"quoted\" back\\slash \n tab\t",
             "\u2028 line separator", "", "<&>"]
    for number, text in enumerate(texts):
        job = create(app, description=text, type=text or "x", region=f"Région {number}",
                     required_skills=[text, "hvac", "hvac"],
                     location={"address": text, "latitude": -0.0, "longitude": 1e-7,
                               "nested": {"floor": [1, 2.5, None, True]}}).job
        _, first = assign(app, job.id)
        app.confirm_assignment(request(), job.id, first)
        app.start_job(request(), job.id)
        app.complete_job(request(), job.id)
    cancelled = create(app, description=None, location=None, required_skills=[]).job
    assign(app, cancelled.id)
    app.cancel_job(request(), cancelled.id, reason=texts[0], reason_code="Other")
    # A window stored before the edge refused instants outside UTC's range, at
    # offsets other than UTC: the mapper's format_time decides.
    legacy = Job._create(
        Job.Created, id=uuid4(), request=request().record(), type="legacy",
        description=None, duration_minutes=30, priority="Normal", region="North",
        required_skills=["x"], location=None,
        window_start=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        window_end=datetime(2030, 1, 1, 12, tzinfo=PLUS_TWO))
    app.save(legacy)
    app.assign(request(), legacy.id, contractor_id=uuid4(),
               start_utc=datetime(2030, 1, 1, 10, tzinfo=PLUS_TWO),
               end_utc=datetime(2030, 1, 1, 11, 30, tzinfo=UTC))
    # A NUL, stored before the edge refused it (PostgreSQL's text cannot hold it,
    # nor its JSON functions read it: that page is read in Python).
    app.save(Job._create(
        Job.Created, id=uuid4(), request=request().record(), type="a\x00b",
        description="\x00", duration_minutes=30, priority="Normal", region="North\x00",
        required_skills=["\x00"], location={"address": "\x00"},
        window_start=datetime(2030, 1, 1, tzinfo=UTC),
        window_end=datetime(2030, 1, 2, tzinfo=UTC)))
    # A location holding objects the mapper decodes (a datetime, a UUID).
    app.save(Job._create(
        Job.Created, id=uuid4(), request=request().record(), type="objects",
        description=None, duration_minutes=30, priority="Normal", region="North",
        required_skills=["x"], location={"since": datetime(2030, 1, 1, tzinfo=PLUS_TWO),
                                         "site": uuid4()},
        window_start=datetime(2030, 1, 1, tzinfo=UTC),
        window_end=datetime(2030, 1, 2, tzinfo=UTC)))


def test_a_rebuild_writes_the_runners_rows_byte_for_byte(services, app):
    jobs_in_every_state(app)
    odd_but_valid_jobs(app)
    assert services.views.wait_for(app.head_position(), timeout=20)
    services.runner.stop()
    incremental = table_rows(services.views)

    result = rebuild(app, services.views, batch_size=7)

    assert result.events == app.head_position()
    assert table_rows(services.views) == incremental
    assert services.views.position() == app.head_position()


def stored_items(app: Any) -> list[Any]:
    """The log as the rebuild reads it on this backend."""
    pool = sqlite_pool(app.recorder)
    if pool is None:
        return [item for page in read_pages(app, 1000) for item in page]
    connection = connect(pool)
    try:
        return [item for page in sqlite_pages(
            connection, app.recorder.events_table_name, 1000) for item in page]
    finally:
        connection.close()


def test_only_the_events_the_fast_path_cannot_carry_exactly_go_to_the_mapper(services, app):
    jobs_in_every_state(app)
    odd_but_valid_jobs(app)
    items = stored_items(app)
    fast = Decoder(app, _state_of(app))

    writes = fast.fold(items)

    assert fast.full_decodes == 1  # the Created whose location holds objects
    slow = Writes()
    for item in items:
        for sql, params in Decoder(app, _state_of(app)).statements(
                _with_state(app, item)):
            slow.add(sql, params)
    assert list(writes.groups()) == list(slow.groups())


def _state_of(app: Any) -> Any:
    def state_of(position: int) -> bytes:
        (notification,) = app.recorder.select_notifications(
            start=position, limit=1, inclusive_of_start=True)
        return notification.state  # type: ignore[no-any-return]
    return state_of


def _with_state(app: Any, item: Any) -> Any:
    return (*item[:4], _state_of(app)(item[0]), None)


def test_an_event_no_reader_knows_fails_the_rebuild_and_leaves_the_live_views(
        services, app, unknown_topic):
    from tests.factories import store_unknown_event

    jobs_in_every_state(app)
    assert services.views.wait_for(app.head_position(), timeout=10)
    services.runner.stop()
    before = table_rows(services.views)
    store_unknown_event(app, unknown_topic)

    with pytest.raises(Exception, match="AssignmentReconfirmedForTest"):
        rebuild(app, services.views, batch_size=5)

    assert table_rows(services.views) == before


# Folding: the effect of the statements one by one -----------------------------------

KEYS = ["a", "b", "c"]
STATEMENTS = st.lists(st.one_of(
    st.tuples(st.just("job"), st.sampled_from(KEYS), st.integers(1, 9)),
    st.tuples(st.just("job_update"), st.sampled_from(KEYS), st.integers(1, 9),
              st.sampled_from([None, "Assigned", "Cancelled"]),
              st.sampled_from([None, '{"reason": 1}', '{"reason": 2}'])),
    st.tuples(st.just("assignment"), st.sampled_from(KEYS), st.integers(1, 9)),
    st.tuples(st.just("assignment_status"), st.sampled_from(KEYS),
              st.sampled_from(["Confirmed", "Cancelled"]), st.integers(1, 9)),
), max_size=25)


def _statement(kind: str, key: str, *args: Any) -> tuple[str, tuple[Any, ...]]:
    if kind == "job":
        n = args[0]
        return jobs.INSERT, (key, n, "t", None, 60, "Normal", "North", "[]", None,
                             f"s{n}", f"e{n}", "Created", f"c{n}", f"u{n}")
    if kind == "job_update":
        version, status, cancellation = args
        return jobs.UPDATE, (version, f"u{version}", status, cancellation, key)
    if kind == "assignment":
        n = args[0]
        return assignments.INSERT, (key, "j", "k", f"s{n}", f"e{n}", "Pending", "North",
                                    f"c{n}", f"u{n}")
    status, n = args
    return assignments.SET_STATUS, (status, f"u{n}", key)


def _database(existing: list[tuple[str, tuple[Any, ...]]]) -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:")
    for sql in (*jobs.CREATE, *assignments.CREATE):
        connection.execute(sql)
    for sql, params in existing:
        connection.execute(sql, params)
    return connection


def _outcome(connection: sqlite3.Connection, groups: Any) -> Any:
    try:
        connection.execute("SAVEPOINT batch")
        for sql, rows in groups:
            connection.executemany(sql, rows)
    except sqlite3.IntegrityError:
        connection.execute("ROLLBACK TO batch")
        return "refused"
    return (connection.execute(f"SELECT * FROM {jobs.TABLE} ORDER BY id").fetchall(),
            connection.execute(f"SELECT * FROM {assignments.TABLE} ORDER BY id").fetchall())


@settings(max_examples=300)
@given(before=STATEMENTS, batch=STATEMENTS)
def test_folded_writes_have_the_effect_of_the_statements_one_by_one(before, batch):
    existing = [_statement(*s) for s in before]
    statements = [_statement(*s) for s in batch]
    writes = Writes()
    for sql, params in statements:
        writes.add(sql, params)
    try:
        one_by_one = _database([])
        for sql, params in existing:
            one_by_one.execute(sql, params)
    except sqlite3.IntegrityError:
        return  # not a state the read models can be in
    expected = _outcome(one_by_one, grouped(statements))
    folded = _database(existing)
    assert _outcome(folded, writes.groups()) == expected


def test_the_job_row_insert_sets_the_cancellation_the_plain_insert_leaves_null():
    assert JOB_ROW_INSERT.count("?") == jobs.INSERT.count("?") + 1


# A crash midway -------------------------------------------------------------------


def test_a_rebuild_killed_midway_leaves_the_live_read_models_whole(sqlite_url, tmp_path):
    settings_ = Settings(database_url=sqlite_url)
    services = build_services(settings_, run_projections=True)
    try:
        for _ in range(6):  # 6,000 events
            services.app.save(*[_assigned_job() for _ in range(500)])
        assert services.views.wait_for(services.app.head_position(), timeout=60)
        before = table_rows(services.views)
        position = services.views.position()
    finally:
        services.close()
    database = sqlite_url.removeprefix("sqlite:///")
    env = {**os.environ, "SMARTSCHEDULER_DATABASE_URL": sqlite_url,
           "PYTHONPATH": str(ROOT)}
    rebuilding = subprocess.Popen(
        [sys.executable, "-m", "smartscheduler", "projections", "rebuild",
         "--batch-size", "50", "--no-progress"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while _shadow_position(database) < 500:  # some batches are in
            assert rebuilding.poll() is None, "the rebuild ended before it was killed"
            assert time.monotonic() < deadline, "the rebuild did not start"
            time.sleep(0.005)
        os.kill(rebuilding.pid, signal.SIGKILL)
    finally:
        rebuilding.wait(30)

    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    services = build_services(settings_, run_projections=False)
    try:
        assert table_rows(services.views) == before
        assert services.views.position() == position
        assert rebuild(services.app, services.views).events == position
        assert table_rows(services.views) == before
        assert read_all(services.views)["jobs"][0].total == 3000
    finally:
        services.close()


def _assigned_job() -> Job:
    job = Job.create(request=request(), **job_fields())
    job.assign(request=request(), contractor_id=uuid4(), **slot())
    return job


def _shadow_position(database: str) -> int:
    try:
        with sqlite3.connect(database, timeout=5) as connection:
            row = connection.execute(
                "SELECT notification_id FROM tracking WHERE application_name = ?",
                ("Dispatch_rebuild",)).fetchone()
    except sqlite3.OperationalError:  # the tracking table, being created
        return 0
    return int(row[0]) if row else 0
