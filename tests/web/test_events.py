"""GET /api/events: Server-Sent Events, filtered by role, replayed, then live.

Each stream is read by a thread of its own through the Flask test client
(`buffered=False`), so the test commits events while the stream is open. The
heartbeat is 0.2 s here, so a reader never waits long for its next chunk.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import pytest
from flask import Flask

from application.dispatch import Dispatch
from application.settings import Settings
from projections.realtime.envelopes import contractors_of
from projections.realtime.feeds import read_log
from smartscheduler.bootstrap import create_app
from tests.factories import job_fields, request, save_cancelled_job, slot
from tests.web.support import assert_problem, job_body

WAIT = 30.0
CANCELLED_FIELDS = {"jobId", "reason", "reasonCode", "region", "cancelledBy",
                    "cancelledAt", "version", "cancelledAssignments"}


@pytest.fixture
def test_settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, jwt_secret="test-secret-" + "x" * 32,
                    sse_heartbeat=0.2)


@dataclass
class Sse:
    id: str
    event: str
    data: dict[str, Any]
    lines: list[str]

    @property
    def position(self) -> int:
        return int(self.id)


@dataclass
class EventStream:
    """An open GET /api/events, read in a thread until closed or WAIT runs out."""

    response: Any
    events: list[Sse] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    ended: bool = False
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._changed = threading.Condition()
        self._closing = threading.Event()
        self._deadline = time.monotonic() + WAIT
        self._thread = threading.Thread(target=self._read, daemon=True, name="sse-reader")
        self._thread.start()

    @property
    def positions(self) -> list[int]:
        return [event.position for event in self.events]

    def wait_for(self, condition: Callable[[EventStream], bool], what: str) -> None:
        with self._changed:
            while not condition(self):
                if self.ended or time.monotonic() > self._deadline:
                    pytest.fail(f"The stream never showed {what} (ended: {self.ended}, "
                                f"error: {self.error!r}); it received "
                                f"{[(e.id, e.event) for e in self.events]}")
                self._changed.wait(0.1)

    def wait_for_position(self, position: int) -> None:
        self.wait_for(lambda s: bool(s.events) and s.events[-1].position >= position,
                      f"the event at position {position}")

    def close(self) -> None:
        self._closing.set()
        self._thread.join(WAIT)

    def _read(self) -> None:
        buffer = ""
        try:
            for chunk in self.response.response:
                buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    self._take(block)
                if self._closing.is_set() or time.monotonic() > self._deadline:
                    break
        except BaseException as error:  # reported by wait_for
            self.error = error
        finally:
            self.response.close()
            with self._changed:
                self.ended = True
                self._changed.notify_all()

    def _take(self, block: str) -> None:
        lines = block.split("\n")
        with self._changed:
            values: dict[str, str] = {}
            for line in lines:
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(": ")
                    self.fields.append(name)
                    values[name] = value
            if "data" in values:
                self.events.append(Sse(values["id"], values["event"],
                                       json.loads(values["data"]), lines))
            self._changed.notify_all()


class Streams:
    """Opens streams on the app and closes all of them when the test ends."""

    def __init__(self, flask_app: Flask) -> None:
        self.flask_app = flask_app
        self.opened: list[EventStream] = []

    def open(self, headers: dict[str, str], query: str = "") -> EventStream:
        response = self.flask_app.test_client().get(
            f"/api/events{query}", headers=headers, buffered=False)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.mimetype == "text/event-stream"
        stream = EventStream(response)
        self.opened.append(stream)
        # The stream subscribes before its first line: from here on it misses nothing.
        stream.wait_for(lambda s: "connected" in s.comments, "its first line")
        return stream

    def close(self) -> None:
        for stream in self.opened:
            stream.close()


@pytest.fixture
def streams(flask_app: Flask) -> Iterator[Streams]:
    opened = Streams(flask_app)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def app(flask_app: Flask) -> Dispatch:
    return flask_app.extensions["smartscheduler"].app


def store_envelopes(app: Dispatch) -> list[dict[str, Any]]:
    return list(read_log(app, 0))


def assert_refused(response: Any, status: int, code: str) -> dict[str, Any]:
    """A problem, not a stream; an unexpected stream is closed, never read to its end."""
    if response.status_code != status:
        response.close()
        pytest.fail(f"Expected a {status} {code}, got a {response.status_code} "
                    f"{response.mimetype}")
    return assert_problem(response, status, code)


# Framing and the dispatcher's stream ----------------------------------------


@pytest.mark.parametrize("role", ["Dispatcher", "Admin"])
def test_a_dispatcher_receives_job_cancelled_framed_as_id_event_and_data(
        flask_app, streams, tokens, app, role):
    stream = streams.open(tokens.headers(role))
    client = flask_app.test_client()
    staff = tokens.dispatcher("dispatcher-7")
    job = client.post("/api/jobs", json=job_body(region="North"), headers=staff).get_json()
    contractor_id = str(uuid4())
    client.post(f"/api/jobs/{job['id']}/assignments", headers=staff, json={
        "contractorId": contractor_id, "startUtc": "2030-01-15T09:00:00Z",
        "endUtc": "2030-01-15T11:00:00Z"})
    cancelled = client.post(f"/api/jobs/{job['id']}/cancel", headers=staff,
                            json={"reason": "Customer called to cancel",
                                  "reasonCode": "CustomerRequest"})
    assert cancelled.status_code == 200, cancelled.get_data(as_text=True)

    stream.wait_for(lambda s: any(e.event == "JobCancelled" for e in s.events),
                    "JobCancelled")

    [event] = [e for e in stream.events if e.event == "JobCancelled"]
    assert event.lines == [f"id: {event.position}", "event: JobCancelled",
                           f"data: {json.dumps(event.data)}"]
    [stored] = [e for e in store_envelopes(app) if e["position"] == event.position]
    assert event.data == stored
    assert event.data["type"] == "JobCancelled"
    assert event.data["subject"] == job["id"]
    assert event.data["time"].endswith("Z")
    data = event.data["data"]
    assert set(data) >= CANCELLED_FIELDS
    assert data["jobId"] == job["id"]
    assert data["reason"] == "Customer called to cancel"
    assert data["reasonCode"] == "CustomerRequest"
    assert data["region"] == "North"
    assert data["cancelledBy"] == "dispatcher-7"
    assert data["version"] == cancelled.get_json()["version"]
    assert [ref["contractorId"] for ref in data["cancelledAssignments"]] == [contractor_id]
    assert stream.events[0].event == "JobCreated"
    assert stream.positions == sorted(stream.positions)


def test_a_stream_starts_with_a_retry_hint_and_a_connected_comment(streams, dispatcher):
    stream = streams.open(dispatcher)

    assert stream.fields[:1] == ["retry"]
    assert stream.comments[0] == "connected"


def test_a_dispatcher_without_a_region_receives_every_region(streams, dispatcher, app):
    stream = streams.open(dispatcher)
    for region in ("North", "South", "East"):
        save_cancelled_job(app, region)
    head = app.head_position()

    stream.wait_for_position(head)

    assert [e.data for e in stream.events] == store_envelopes(app)
    assert {e.data["data"]["region"] for e in stream.events} == {"North", "South", "East"}


def test_the_region_filter_delivers_only_the_named_regions(streams, dispatcher, app):
    stream = streams.open(dispatcher, "?region=North&region=East")
    for region in ("North", "South", "West", "East", "South", "North"):
        save_cancelled_job(app, region)
    head = app.head_position()

    stream.wait_for_position(head)  # the last job is in the North

    expected = [e for e in store_envelopes(app) if e["data"]["region"] in {"North", "East"}]
    assert [e.data for e in stream.events] == expected
    assert len(expected) == 3 * 2


# The contractor's stream -----------------------------------------------------


def test_a_contractor_receives_only_events_about_their_own_assignments(
        streams, tokens, app):
    ours, theirs = uuid4(), uuid4()
    stream = streams.open(tokens.contractor(str(ours)))
    app.create_job(request(), **job_fields())  # nobody's
    save_cancelled_job(app, "South", (theirs,))  # someone else's
    shared = app.create_job(request(), **job_fields(region="North")).job.id
    app.assign(request(), shared, contractor_id=ours, **slot())
    app.assign(request(), shared, contractor_id=theirs, **slot(2))
    app.start_job(request(), shared)
    app.cancel_job(request(), shared, reason="Storm", reason_code="Weather")
    head = app.head_position()

    stream.wait_for_position(head)  # the last event, JobCancelled, names them

    expected = [e for e in store_envelopes(app) if str(ours) in contractors_of(e)]
    assert [e.data for e in stream.events] == expected
    assert [e.event for e in stream.events] == [
        "AssignmentCreated", "JobStarted", "AssignmentCancelled", "JobCancelled"]
    assert all(e.data["subject"] == str(shared) for e in stream.events)
    unassigned = [e for e in stream.events if e.event == "AssignmentCancelled"]
    assert [e.data["data"]["contractorId"] for e in unassigned] == [str(ours)]


def test_a_contractor_gets_no_events_of_jobs_that_are_not_theirs(streams, tokens, app):
    ours = uuid4()
    stream = streams.open(tokens.contractor(str(ours)))
    save_cancelled_job(app, "North", (uuid4(), uuid4()))
    mine = save_cancelled_job(app, "North", (ours,))

    stream.wait_for_position(app.head_position())

    assert {e.data["subject"] for e in stream.events} == {str(mine)}
    assert "JobCreated" not in {e.event for e in stream.events}


# Last-Event-ID ---------------------------------------------------------------


def test_last_event_id_replays_exactly_the_missed_events_then_goes_live_seamlessly(
        streams, dispatcher, app):
    for region in ("North", "South", "East", "West"):
        save_cancelled_job(app, region, (uuid4(),))
    last_seen = 7
    connected = threading.Event()
    writer_errors: list[BaseException] = []

    def keep_writing() -> None:
        """Commits before, during and after the replay: across the seam."""
        try:
            after_connecting = 0
            while after_connecting < 5:
                app.create_job(request(), **job_fields(region="North"))
                after_connecting += connected.is_set()
        except BaseException as error:
            writer_errors.append(error)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    while app.head_position() < 20:  # the writer is under way
        time.sleep(0.001)
    stream = streams.open({**dispatcher, "Last-Event-ID": str(last_seen)})
    connected.set()
    writer.join(WAIT)
    head = app.head_position()

    stream.wait_for_position(head)

    assert writer_errors == []
    expected = [e["position"] for e in store_envelopes(app) if e["position"] > last_seen]
    assert stream.positions == expected  # no gap, no duplicate, in order
    assert stream.positions[0] == last_seen + 1
    assert len(expected) == head - last_seen
    assert [e.data for e in stream.events] == store_envelopes(app)[last_seen:]


def test_last_event_id_of_the_head_replays_nothing_and_then_delivers_new_events(
        streams, dispatcher, app):
    save_cancelled_job(app, "North")
    head = app.head_position()
    stream = streams.open({**dispatcher, "Last-Event-ID": str(head)})
    save_cancelled_job(app, "East")

    stream.wait_for_position(app.head_position())

    assert stream.positions == list(range(head + 1, app.head_position() + 1))


def test_last_event_id_replays_only_what_the_contractor_may_see(streams, tokens, app):
    ours = uuid4()
    mine = save_cancelled_job(app, "North", (ours, uuid4()))
    save_cancelled_job(app, "North", (uuid4(),))
    stream = streams.open({**tokens.contractor(str(ours)), "Last-Event-ID": "0"})
    also_mine = save_cancelled_job(app, "South", (ours,))

    stream.wait_for_position(app.head_position())

    assert [e.data for e in stream.events] == [
        e for e in store_envelopes(app) if str(ours) in contractors_of(e)]
    assert {e.data["subject"] for e in stream.events} == {str(mine), str(also_mine)}


@pytest.mark.parametrize("value", ["abc", "1.5", "-1", "0x10", "7 8", "\u00b2",
                                   "99999999999999999999999"])
def test_a_last_event_id_that_is_not_a_position_is_a_422(client, dispatcher, value):
    response = client.get("/api/events", headers={**dispatcher, "Last-Event-ID": value})

    problem = assert_refused(response, 422, "validation_failed")
    assert "Last-Event-ID" in problem["errors"]


# Authentication, heartbeats, limits ------------------------------------------


def test_a_stream_without_a_token_is_a_401(client):
    response = client.get("/api/events")

    assert_refused(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_stream_with_a_bad_token_is_a_401(client):
    response = client.get("/api/events", headers={"Authorization": "Bearer not.a.jwt"})

    assert_refused(response, 401, "unauthorized")


def test_a_quiet_stream_sends_heartbeat_comments(streams, dispatcher):
    stream = streams.open(dispatcher)

    stream.wait_for(lambda s: s.comments.count("heartbeat") >= 2, "two heartbeats")

    assert stream.events == []


def test_streams_beyond_max_streams_are_refused_until_one_closes(test_settings, tokens):
    flask_app = create_app(test_settings.with_(max_streams=2))
    opened = Streams(flask_app)
    try:
        headers = tokens.dispatcher()
        first = opened.open(headers)
        opened.open(headers)

        refused = flask_app.test_client().get("/api/events", headers=headers)
        assert_refused(refused, 503, "service_unavailable")
        assert refused.headers["Retry-After"] == "5"

        first.close()
        third = opened.open(headers)
        assert not third.ended
    finally:
        opened.close()
        flask_app.extensions["smartscheduler"].close()
