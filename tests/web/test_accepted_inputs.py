"""Whatever the contract accepts survives every reader; whatever it refuses stores nothing.

The first property drives generated stories of valid commands (tests/strategies.py)
through the HTTP API and, after each command, reads the job back through every
reader: the response itself, the write side (GET /api/jobs/{id}, ?version=N), the
read models (GET /api/jobs with filters, GET /api/assignments), the audit trail,
the published envelope and its SSE text (and a real /api/events replay), and a
full rebuild of the read models. After a failing example the next one starts on
a fresh database (`SharedService`), so a poison event stays with the example that
stored it and Hypothesis shrinks to the input that caused it, not to whatever
happened to run after it.

The other properties send the inputs the contract refuses ("What is accepted")
and check the listed problem answer and that the event store's head did not move.
They share one app per test: each example asserts only on its own request and on
the head around it, so what earlier examples stored cannot change the outcome.

Each property runs its examples inside the test (a nested @given), so that the
count differs by backend (PostgreSQL is slower) and the app outlives examples by
design rather than by a suppressed health check. Each example also `note`s its
input: with the schemathesis pytest plugin loaded, Hypothesis's own "Failing test
case" line shows the arguments blank.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from pprint import pformat
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from hypothesis.internal.conjecture import engine
from werkzeug.test import TestResponse

from application.settings import Settings
from projections.realtime.envelopes import groups_of
from projections.realtime.feeds import read_log
from projections.rebuild import rebuild
from smartscheduler.bootstrap import Services, create_app
from tests.projections.support import read_all
from tests.services import POSTGRES_URL
from tests.strategies import (
    PRIORITIES,
    REASON_CODES,
    Caller,
    Command,
    Lifecycle,
    Story,
    corrupted,
    deep_json,
    idempotency_keys,
    out_of_range_stamps,
    parse_instant,
    storable_text,
    stories,
    trimmed,
    trimmed_text,
)
from tests.web.support import (
    Z_TIMESTAMP,
    Tokens,
    assert_job_resource,
    assert_problem,
    assignment_body,
    job_body,
)
from web.events.resources import _event

# Examples per backend: the whole module stays within about a minute on 2 cores.
STORIES = {"sqlite": 80, "postgres": 30}
REFUSALS = {"sqlite": 60, "postgres": 30}
SHRINK_SECONDS = 90
ONE_MIB = 1024 * 1024

PATHS = {
    "create": "/api/jobs",
    "assign": "/api/jobs/{job}/assignments",
    "confirm": "/api/jobs/{job}/assignments/{assignment}/confirm",
    "unassign": "/api/jobs/{job}/assignments/{assignment}/cancel",
    "start": "/api/jobs/{job}/start",
    "complete": "/api/jobs/{job}/complete",
    "cancel": "/api/jobs/{job}/cancel",
}
SUCCESS = {"create": 201, "assign": 201}
SSE_LINE_END = re.compile(r"\r\n|\r|\n")


# The service under test ------------------------------------------------------------


def backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgres"


def examples(database_url: str, counts: dict[str, int]) -> settings:
    return settings(max_examples=counts[backend(database_url)], deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


class Service:
    """The Flask app of one database, with its client and a token for every caller."""

    def __init__(self, test_settings: Settings) -> None:
        self.flask_app = create_app(test_settings)
        self.flask_app.config["TESTING"] = True
        self.client: FlaskClient = self.flask_app.test_client()
        self.services: Services = self.flask_app.extensions["smartscheduler"]
        self.tokens = Tokens(test_settings)
        self.staff = self.headers(Caller("Dispatcher", "dispatcher-1"))
        self._creates = 0

    def close(self) -> None:
        self.services.close()

    def head(self) -> int:
        return self.services.app.head_position()

    def headers(self, caller: Caller) -> dict[str, str]:
        return self.tokens.headers(caller.role, sub=caller.sub)

    def read(self, path: str, **query: Any) -> Any:
        response = self.client.get(path, headers=self.staff, query_string=query)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def post(self, path: str, body: str | None = None,
             headers: dict[str, str] | None = None) -> TestResponse:
        return self.client.post(path, data=body, headers={**self.staff, **(headers or {})},
                                content_type="application/json" if body else None)

    def unique_create_key(self, create: Command) -> Command:
        """The create with an Idempotency-Key no earlier example used: its keys are
        scoped to the caller, and examples share the database."""
        if create.idempotency_key is None:
            return create
        self._creates += 1
        return replace(create, idempotency_key=f"{self._creates}.{create.idempotency_key}"[:255])

    def create_job(self, **overrides: Any) -> dict[str, Any]:
        response = self.post("/api/jobs", json.dumps(job_body(**overrides)))
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()

    def assign(self, job_id: str) -> dict[str, Any]:
        response = self.post(f"/api/jobs/{job_id}/assignments", json.dumps(assignment_body()))
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()


@contextmanager
def running(test_settings: Settings) -> Iterator[Service]:
    service = Service(test_settings)
    try:
        yield service
    finally:
        service.close()


@contextmanager
def fresh_database(database_url: str) -> Iterator[str]:
    """A new, empty database on the same backend as `database_url`; gone afterwards."""
    name = f"e{uuid.uuid4().hex[:12]}"
    if backend(database_url) == "sqlite":
        path = Path(database_url.removeprefix("sqlite:///")).with_name(f"{name}.db")
        try:
            yield f"sqlite:///{path}"
        finally:
            for leftover in path.parent.glob(f"{name}.db*"):
                if leftover.is_dir():  # the wake-up sockets beside the file
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink()
        return
    import psycopg

    parts = urlsplit(database_url)
    query = dict(parse_qsl(parts.query))
    schema = query["schema"] = f"{query['schema']}_{name}"
    try:
        yield urlunsplit(parts._replace(query=urlencode(query)))
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def service(test_settings: Settings) -> Iterator[Service]:
    """One app for a whole refusal test: its examples store nothing, or fail."""
    with running(test_settings) as started:
        yield started


# Sending a story's commands ------------------------------------------------------------


def path_of(command: Command, job: dict[str, Any] | None) -> str:
    if job is None:
        return PATHS["create"]
    assignment = ("" if command.assignment is None
                  else job["assignments"][command.assignment]["id"])
    return PATHS[command.action].format(job=job["id"], assignment=assignment)


def send(service: Service, command: Command, job: dict[str, Any] | None,
         version: int) -> TestResponse:
    """The command over HTTP, against the job as it is now (`job`, at `version`)."""
    headers = service.headers(command.caller)
    if command.request_id is not None:
        headers["X-Request-Id"] = command.request_id
    if command.idempotency_key is not None:
        headers["Idempotency-Key"] = command.idempotency_key
    if command.if_match is not None:
        headers["If-Match"] = "*" if command.if_match == "*" else f'"{version}"'
    return service.client.post(path_of(command, job), data=command.body, headers=headers,
                               content_type="application/json" if command.body else None)


def carry_out(service: Service, command: Command, job: dict[str, Any] | None,
              model: Lifecycle) -> tuple[TestResponse, list[str], int]:
    """Send an accepted command; the response, its event types, the head before it."""
    version, before = model.version, service.head()

    response = send(service, command, job, version)
    events = ["JobCreated"] if command.action == "create" else model.apply(command)

    assert response.status_code == SUCCESS.get(command.action, 200), (
        response.get_data(as_text=True))
    assert service.head() == before + len(events)
    if command.retried:
        assert_a_retry_is_replayed(service, command, job, version, response)
    return response, events, before


def assert_a_retry_is_replayed(service: Service, command: Command, job: dict[str, Any] | None,
                               version: int, first: TestResponse) -> None:
    head = service.head()

    retry = send(service, command, job, version)

    assert retry.status_code == first.status_code, retry.get_data(as_text=True)
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.get_json() == first.get_json()
    assert service.head() == head


# What each reader must show --------------------------------------------------------------


def created_fields(create: Command) -> dict[str, Any]:
    """The members of the Job resource that the create body decides, per the contract."""
    body = create.payload
    location = body.get("location")
    return {
        "type": body["type"].strip(),
        "description": body.get("description"),
        "durationMinutes": body["durationMinutes"],
        "priority": body.get("priority", "Normal"),
        "region": body.get("region", "Default").strip(),
        "requiredSkills": list(dict.fromkeys(s.strip() for s in body.get("requiredSkills", []))),
        "location": location and {**location, "address": location["address"].strip()},
        "serviceWindow": [parse_instant(body["serviceWindow"]["start"]),
                          parse_instant(body["serviceWindow"]["end"])],
    }


def observed(job: dict[str, Any]) -> dict[str, Any]:
    """The same members read from a Job resource, timestamps as instants."""
    return {
        **{name: job[name] for name in ("type", "description", "durationMinutes", "priority",
                                        "region", "requiredSkills", "location")},
        "serviceWindow": [parse_instant(job["serviceWindow"]["start"]),
                          parse_instant(job["serviceWindow"]["end"])],
    }


def assert_timestamps_round_trip(document: Any) -> None:
    """Every timestamp member ends in Z and parses (walks the whole JSON document)."""
    if isinstance(document, dict):
        for name, value in document.items():
            if isinstance(value, str) and (name.endswith(("At", "Utc")) or name in (
                    "start", "end", "time", "windowStart", "windowEnd")):
                assert Z_TIMESTAMP.match(value), (name, value)
                parse_instant(value)
            else:
                assert_timestamps_round_trip(value)
    elif isinstance(document, list):
        for value in document:
            assert_timestamps_round_trip(value)


def assert_response_is_the_job_the_contract_describes(
        response: TestResponse, create: Command, model: Lifecycle) -> dict[str, Any]:
    job = json.loads(response.get_data().decode("utf-8"))

    assert_job_resource(job)
    assert_timestamps_round_trip(job)
    assert observed(job) == created_fields(create)
    assert job["version"] == model.version
    assert response.headers["ETag"] == f'"{model.version}"'
    assert job["status"] == model.status
    assert [(a["contractorId"], parse_instant(a["startUtc"]), parse_instant(a["endUtc"]),
             a["status"]) for a in job["assignments"]] == [
        (a.contractor_id, a.start, a.end, a.status) for a in model.assignments]
    cancellation = job["cancellation"] and {
        name: job["cancellation"][name] for name in ("reason", "reasonCode", "cancelledBy")}
    assert cancellation == model.cancellation
    assert parse_instant(job["createdAt"]) <= parse_instant(job["updatedAt"])
    return job


def assert_write_side_shows_the_response(service: Service, job: dict[str, Any]) -> None:
    assert service.read(f"/api/jobs/{job['id']}") == job


def assert_read_models_caught_up(service: Service, timeout: float = 10.0) -> None:
    """Wait for the read models to apply everything; fail at once, with the runner's
    error, when they cannot (a poison event), instead of after a read-your-writes wait."""
    views, runner, head = service.services.views, service.services.runner, service.head()
    deadline = time.monotonic() + timeout
    while not views.wait_for(head, 0.02):
        error = runner and runner.last_error
        assert error is None, f"the read models cannot apply the log up to {head}: {error!r}"
        assert time.monotonic() < deadline, f"the read models fell behind position {head}"


def assert_read_models_show_the_response(service: Service, job: dict[str, Any]) -> None:
    assert_read_models_caught_up(service)
    # The job is the newest in its database (stories run one after the other), so
    # it is on the first page of every list that matches it.
    listed = service.read("/api/jobs", region=job["region"], status=job["status"],
                          priority=job["priority"], page_size=100)
    assert [found for found in listed if found["id"] == job["id"]] == [job]
    assigned = service.read("/api/assignments", jobId=job["id"], page_size=100)
    assert sorted(assigned, key=lambda a: a["id"]) == sorted(
        ({**a, "jobId": job["id"]} for a in job["assignments"]), key=lambda a: a["id"])


def assert_history_records_the_command(
        service: Service, job: dict[str, Any], command: Command, events: list[str],
        response: TestResponse) -> list[dict[str, Any]]:
    """The command's events, last in the audit trail, as the contract describes them."""
    trail = service.read(f"/api/jobs/{job['id']}/history")
    records = trail["events"][-len(events):]

    assert trail["jobId"] == job["id"]
    assert [r["version"] for r in trail["events"]] == list(range(1, job["version"] + 1))
    assert [r["type"] for r in records] == events
    assert_timestamps_round_trip(trail)
    for record in records:
        assert record["requestId"] == response.headers["X-Request-Id"]
        assert record["actor"] == {"sub": command.caller.sub, "roles": [command.caller.role]}
        assert_event_data_describes_the_job(record, job, command)
    if command.request_id is not None:
        assert response.headers["X-Request-Id"] == command.request_id
    return records


def assert_event_data_describes_the_job(record: dict[str, Any], job: dict[str, Any],
                                        command: Command) -> None:
    data, kind = record["data"], record["type"]
    assert (data["jobId"], data["version"], data["region"]) == (
        job["id"], record["version"], job["region"])
    if kind == "JobCreated":
        for name in ("type", "description", "durationMinutes", "priority",
                     "requiredSkills", "location"):
            assert data[name] == job[name], name
        assert [data["windowStart"], data["windowEnd"]] == [
            job["serviceWindow"]["start"], job["serviceWindow"]["end"]]
    elif kind == "AssignmentCreated":
        created = job["assignments"][-1]
        assert (data["assignmentId"], data["contractorId"], data["startUtc"],
                data["endUtc"]) == (created["id"], created["contractorId"],
                                    created["startUtc"], created["endUtc"])
    elif kind == "AssignmentCancelled":
        assert data["reason"] == trimmed((command.payload or {}).get("reason"))
    elif kind == "JobCancelled":
        assert {name: data[name] for name in ("reason", "reasonCode", "cancelledBy",
                                              "cancelledAt")} == job["cancellation"]
        assert {"cancelledAssignments", "region", "version"} <= data.keys()


def parse_sse(text: str) -> dict[str, Any]:
    """One SSE event (`id`, `event`, `data` lines and a blank line), its data decoded."""
    assert text.endswith("\n\n"), text
    lines = SSE_LINE_END.split(text[:-2])
    fields = dict(line.partition(": ")[::2] for line in lines)
    assert [line.partition(": ")[0] for line in lines] == ["id", "event", "data"], lines
    return {"id": fields["id"], "event": fields["event"], "data": json.loads(fields["data"])}


def assert_published_as_recorded(service: Service, before: int,
                                 records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The envelopes of the command's events, as the hub and the relay make them."""
    published = list(read_log(service.services.app, before, until=service.head()))

    assert [item["position"] for item in published] == list(
        range(before + 1, before + len(records) + 1))
    for item, record in zip(published, records, strict=True):
        uuid.UUID(item["id"])
        assert (item["type"], item["time"], item["data"]) == (
            record["type"], record["occurredAt"], record["data"])
        assert item["subject"] == record["data"]["jobId"]
        assert f"dispatch/{record['data']['region']}" in groups_of(item)
        assert json.loads(json.dumps(item)) == item
        assert parse_sse(_event(item)) == {"id": str(item["position"]),
                                           "event": item["type"], "data": item}
    return published


def replayed_over_sse(service: Service, region: str, after: int,
                      count: int) -> list[dict[str, Any]]:
    """GET /api/events?region=… from Last-Event-ID `after`: the events replayed.

    Read until `count` events came, or until the first heartbeat (which the stream
    sends only once its replay is done).
    """
    response = service.client.get("/api/events", query_string={"region": region},
                                  headers={**service.staff, "Last-Event-ID": str(after)},
                                  buffered=False)
    assert response.status_code == 200, response.get_data(as_text=True)
    received: list[dict[str, Any]] = []
    buffer = ""
    try:
        for chunk in response.response:
            buffer += chunk.decode("utf-8") if isinstance(chunk, bytes) else chunk
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                if block.startswith(": heartbeat"):
                    return received
                if not block.startswith(("retry:", ":")):
                    received.append(parse_sse(block + "\n\n"))
            if len(received) >= count:
                return received
    finally:
        response.close()
    return received


def assert_rebuild_gives_the_incremental_read_models(service: Service) -> None:
    """Replaying the whole log into new tables gives the rows the runner built."""
    app, views = service.services.app, service.services.views
    assert_read_models_caught_up(service)
    incremental = read_all(views, page_size=100)

    rebuild(app, views)

    assert read_all(views, page_size=100) == incremental


# Accepted: every reader, every backend -----------------------------------------------------


def assert_time_travel_shows_each_response(service: Service,
                                           responses: list[dict[str, Any]]) -> None:
    """GET /api/jobs/{id}?version=N rebuilds the job each command answered with."""
    for then in responses:
        assert service.read(f"/api/jobs/{then['id']}", version=then["version"]) == then


def assert_sse_replays_what_was_published(service: Service, job: dict[str, Any], after: int,
                                          published: list[dict[str, Any]]) -> None:
    """A stream of the job's region, resumed from before the job, replays its events."""
    replayed = replayed_over_sse(service, job["region"], after, len(published))

    assert replayed == [{"id": str(item["position"]), "event": item["type"], "data": item}
                        for item in published]


def check_every_reader(service: Service, story: Story) -> None:
    """Send the story's commands; after each, read the job back through every reader."""
    model, job = Lifecycle(), None
    first_position = service.head()
    published, responses = [], []
    for command in (service.unique_create_key(story.create), *story.commands):
        response, events, before = carry_out(service, command, job, model)

        job = assert_response_is_the_job_the_contract_describes(response, story.create, model)
        assert_write_side_shows_the_response(service, job)
        assert_read_models_show_the_response(service, job)
        records = assert_history_records_the_command(service, job, command, events, response)
        published += assert_published_as_recorded(service, before, records)
        responses.append(job)

    assert job is not None
    assert len({then["createdAt"] for then in responses}) == 1
    assert_time_travel_shows_each_response(service, responses)
    assert_sse_replays_what_was_published(service, job, first_position, published)


class SharedService:
    """The service that a property's examples share, until one of them fails.

    Examples only add jobs and check their own (and the read models as a whole,
    which every passing example leaves consistent), so passing examples cannot
    disturb each other. A failing one may have stored what a reader cannot read:
    the next example then starts on a fresh database, so that every outcome, and
    so Hypothesis's shrinking, depends on the example's own input alone.
    """

    def __init__(self, test_settings: Settings) -> None:
        self.settings = test_settings
        self._open = ExitStack()
        self._service: Service | None = None

    @contextmanager
    def example(self) -> Iterator[Service]:
        if self._service is None:
            url = self._open.enter_context(fresh_database(self.settings.database_url))
            self._service = self._open.enter_context(
                running(self.settings.with_(database_url=url)))
        try:
            yield self._service
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._service = None
        self._open.close()


@pytest.fixture
def shared(test_settings: Settings) -> Iterator[SharedService]:
    # A short heartbeat: a stream's replay is over at its first heartbeat.
    started = SharedService(test_settings.with_(sse_heartbeat=0.2))
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def shorter_shrinking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink a failure for SHRINK_SECONDS, not Hypothesis's 5 minutes.

    A failing example here costs a fresh database and service (about a second on
    PostgreSQL), so full shrinking outlasts pytest's 300 s timeout and the example
    would never be shown; the essence (the one unreadable value) comes within a
    minute. Hypothesis keeps this constant monkeypatchable for such uses.
    """
    monkeypatch.setattr(engine, "MAX_SHRINKING_SECONDS", SHRINK_SECONDS, raising=False)


@pytest.mark.usefixtures("shorter_shrinking")
def test_every_reader_handles_every_accepted_command(shared, database_url):
    @examples(database_url, STORIES)
    @given(stories())
    def every_reader_agrees(story: Story) -> None:
        note(pformat(story))
        with shared.example() as service:
            check_every_reader(service, story)
            assert_rebuild_gives_the_incremental_read_models(service)

    every_reader_agrees()


# Refused: the listed problem, and nothing stored ----------------------------------------------


def assert_refused_storing_nothing(service: Service, act: Callable[[], TestResponse],
                                   status: int, code: str) -> None:
    head = service.head()

    response = act()

    assert_problem(response, status, code)
    assert service.head() == head


# Each string field of every command body: a valid value, and where it goes.
STRING_FIELDS: dict[str, tuple[st.SearchStrategy[str], Callable[[str], dict[str, Any]]]] = {
    "type": (trimmed_text(100), lambda bad: job_body(type=bad)),
    "description": (storable_text(0, 100), lambda bad: job_body(description=bad)),
    "priority": (st.sampled_from(PRIORITIES), lambda bad: job_body(priority=bad)),
    "region": (trimmed_text(100), lambda bad: job_body(region=bad)),
    "requiredSkills": (trimmed_text(100), lambda bad: job_body(requiredSkills=["hvac", bad])),
    "location.address": (trimmed_text(100), lambda bad: job_body(
        location={"address": bad, "latitude": 1.5, "longitude": 2.5})),
    "serviceWindow.start": (st.just("2030-01-15T09:00:00Z"), lambda bad: job_body(
        serviceWindow={"start": bad, "end": "2030-01-15T13:00:00Z"})),
    "a field name": (trimmed_text(20), lambda bad: {**job_body(), bad: "x"}),
    "assign.contractorId": (st.uuids().map(str), lambda bad: assignment_body(bad)),
    "assign.startUtc": (st.just("2030-01-15T09:00:00+01:00"),
                        lambda bad: assignment_body(startUtc=bad)),
    "cancel.reason": (trimmed_text(100), lambda bad: {"reason": bad}),
    "cancel.reasonCode": (st.sampled_from(REASON_CODES), lambda bad: {"reasonCode": bad}),
    "unassign.reason": (trimmed_text(100), lambda bad: {"reason": bad}),
}


@st.composite
def corrupted_fields(draw: st.DrawFn) -> tuple[str, str]:
    """A string field, and a valid value of it with U+0000 or a lone surrogate inside."""
    field = draw(st.sampled_from(sorted(STRING_FIELDS)))
    return field, draw(corrupted(STRING_FIELDS[field][0]))


def path_for(service: Service, field: str) -> str:
    """Where a field is sent: to create a job, or to a command on a live job."""
    command = field.partition(".")[0]
    if command == "assign":
        return f"/api/jobs/{service.create_job()['id']}/assignments"
    if command == "cancel":
        return f"/api/jobs/{service.create_job()['id']}/cancel"
    if command == "unassign":
        job = service.assign(service.create_job()["id"])
        return f"/api/jobs/{job['id']}/assignments/{job['assignments'][0]['id']}/cancel"
    return "/api/jobs"


def test_a_string_holding_nul_or_a_lone_surrogate_is_refused_and_nothing_is_stored(
        service, database_url):
    @examples(database_url, REFUSALS)
    @given(corrupted_fields())
    @example(("type", "a\x00b"))
    @example(("requiredSkills", "\ud800"))
    @example(("cancel.reason", "\udc00\U0001f600"))
    def refused(case: tuple[str, str]) -> None:
        note(repr(case))
        field, bad = case
        path = path_for(service, field)
        # \u escapes: a lone surrogate has no UTF-8 form to send raw.
        body = json.dumps(STRING_FIELDS[field][1](bad), ensure_ascii=True)

        assert_refused_storing_nothing(service, lambda: service.post(path, body),
                                       422, "validation_failed")

    refused()


@st.composite
def stored_header_values(draw: st.DrawFn) -> tuple[str, str]:
    """A header the service stores, or the token's subject, holding what it refuses.

    HTTP headers carry bytes, so only U+0000 can reach a header; the subject is
    JSON inside the token, so it can hold a lone surrogate too.
    """
    where = draw(st.sampled_from(["X-Request-Id", "Idempotency-Key", "sub"]))
    if where == "sub":
        return where, draw(corrupted(trimmed_text(64)))
    return where, draw(corrupted(idempotency_keys, st.just("\x00")))


def test_a_stored_header_or_subject_holding_nul_is_refused_and_nothing_is_stored(
        service, database_url):
    @examples(database_url, REFUSALS)
    @given(stored_header_values(), st.sampled_from(["create", "cancel"]))
    @example(("X-Request-Id", "req\x00-1"), "create")
    @example(("sub", "dispatcher-\udc00"), "cancel")
    def refused(header: tuple[str, str], action: str) -> None:
        note(f"{header!r} on {action}")
        where, bad = header
        path: str = "/api/jobs"
        body: str | None = json.dumps(job_body())
        if action == "cancel":
            path, body = f"/api/jobs/{service.create_job()['id']}/cancel", None
        headers = (service.headers(Caller("Dispatcher", bad)) if where == "sub"
                   else {where: bad})

        assert_refused_storing_nothing(service, lambda: service.post(path, body, headers),
                                       422, "validation_failed")

    refused()


TIMESTAMP_FIELDS = {
    # Where an out-of-range instant is the only fault: a low one starts, a high one ends.
    ("create", "low"): lambda bad: job_body(
        serviceWindow={"start": bad, "end": "2030-01-15T13:00:00Z"}),
    ("create", "high"): lambda bad: job_body(
        serviceWindow={"start": "2030-01-15T09:00:00Z", "end": bad}),
    ("assign", "low"): lambda bad: assignment_body(startUtc=bad),
    ("assign", "high"): lambda bad: assignment_body(endUtc=bad),
}


@st.composite
def out_of_range_fields(draw: st.DrawFn) -> tuple[str, str, str]:
    action, side = draw(st.sampled_from(sorted(TIMESTAMP_FIELDS)))
    return action, side, draw(out_of_range_stamps(side))


def test_a_timestamp_outside_the_range_is_refused_at_any_offset_and_nothing_is_stored(
        service, database_url):
    @examples(database_url, REFUSALS)
    @given(out_of_range_fields())
    @example(("create", "low", "0001-01-01T00:00:00+01:00"))
    @example(("create", "high", "9999-12-31T23:00:00-05:00"))
    @example(("create", "low", "1969-12-31T23:59:59Z"))
    @example(("assign", "low", "1970-01-01T23:58:59+23:59"))
    @example(("assign", "high", "9999-12-30T00:01:00-23:59"))
    def refused(case: tuple[str, str, str]) -> None:
        note(repr(case))
        action, side, bad = case
        path = "/api/jobs"
        if action == "assign":
            path = f"/api/jobs/{service.create_job()['id']}/assignments"
        body = json.dumps(TIMESTAMP_FIELDS[action, side](bad))

        assert_refused_storing_nothing(service, lambda: service.post(path, body),
                                       422, "validation_failed")

    refused()


def test_the_edges_of_the_timestamp_range_are_accepted_at_the_extreme_offsets(service):
    earliest = ["1970-01-01T00:00:00Z", "1970-01-01T23:59:00+23:59",
                "1969-12-31T00:01:00-23:59"]
    latest = ["9999-12-30T23:59:59Z", "9999-12-31T23:58:59+23:59",
              "9999-12-30T00:00:59-23:59"]

    for start, end in zip(earliest, latest, strict=True):
        job = service.create_job(serviceWindow={"start": start, "end": end})

        assert job["serviceWindow"] == {"start": "1970-01-01T00:00:00.000000Z",
                                        "end": "9999-12-30T23:59:59.000000Z"}


COMMANDS = ["assign", "cancel", "complete", "confirm", "create", "start", "unassign"]


def path_to_succeed(service: Service, action: str) -> str:
    """The path of a POST command, on a new job in a state where it would succeed."""
    if action == "create":
        return "/api/jobs"
    job = service.create_job()
    if action in ("assign", "cancel"):
        return f"/api/jobs/{job['id']}/{'assignments' if action == 'assign' else 'cancel'}"
    job = service.assign(job["id"])
    assignment = f"/api/jobs/{job['id']}/assignments/{job['assignments'][0]['id']}"
    if action in ("confirm", "unassign"):
        return f"{assignment}/{'confirm' if action == 'confirm' else 'cancel'}"
    if action == "complete":
        service.post(f"/api/jobs/{job['id']}/start")
    return f"/api/jobs/{job['id']}/{action}"


def test_json_nested_deeper_than_32_levels_is_refused_and_nothing_is_stored(
        service, database_url):
    @examples(database_url, REFUSALS)
    @given(st.sampled_from(COMMANDS), deep_json(), st.booleans())
    @example("create", "[" * 50_000 + "]" * 50_000, False)
    @example("start", "[" * 33 + "]" * 33, False)
    def refused(action: str, deep: str, inside_a_field: bool) -> None:
        note(f"{action}: {deep.count('[') + deep.count('{')} levels, in a field: "
             f"{inside_a_field}")
        path = path_to_succeed(service, action)
        body = '{"description": ' + deep + "}" if inside_a_field else deep

        assert_refused_storing_nothing(service, lambda: service.post(path, body),
                                       400, "invalid_json")

    refused()


def test_a_body_nested_exactly_32_levels_is_not_refused_as_invalid_json(service):
    body = "[" * 32 + "]" * 32

    response = service.post("/api/jobs", body)

    assert_problem(response, 422, "validation_failed")


def test_a_body_over_one_mebibyte_is_refused_and_nothing_is_stored(service, database_url):
    @examples(database_url, {"sqlite": 10, "postgres": 5})
    @given(st.sampled_from(COMMANDS), st.integers(1, 64 * 1024))
    @example("cancel", 1)
    @example("create", 3 * ONE_MIB)
    def refused(action: str, excess: int) -> None:
        note(f"{action}: 1 MiB + {excess} bytes")
        path = path_to_succeed(service, action)
        frame = '{"reason": ""}'
        body = frame[:-2] + "a" * (ONE_MIB + excess - len(frame)) + frame[-2:]
        assert len(body) == ONE_MIB + excess

        assert_refused_storing_nothing(service, lambda: service.post(path, body),
                                       413, "payload_too_large")

    refused()


LIST_FILTERS = {
    "/api/jobs": {"region": trimmed_text(50), "status": st.just("Created"),
                  "priority": st.just("High"), "page": st.just("1")},
    "/api/assignments": {"contractorId": st.uuids().map(str), "jobId": st.uuids().map(str),
                         "status": st.just("Pending")},
}


@st.composite
def filters_holding_nul(draw: st.DrawFn) -> tuple[str, str, str]:
    path = draw(st.sampled_from(sorted(LIST_FILTERS)))
    name = draw(st.sampled_from(sorted(LIST_FILTERS[path])))
    value = draw(LIST_FILTERS[path][name])
    at = draw(st.integers(0, len(value)))
    return path, name, value[:at] + "\x00" + value[at:]


def test_a_nul_in_a_list_filter_is_a_client_error_not_a_server_error(service, database_url):
    @examples(database_url, REFUSALS)
    @given(filters_holding_nul())
    @example(("/api/jobs", "region", "\x00"))
    def refused(case: tuple[str, str, str]) -> None:
        note(repr(case))
        path, name, value = case

        response = service.client.get(path, query_string={name: value},
                                      headers=service.staff)

        assert 400 <= response.status_code < 500, response.get_data(as_text=True)
        assert response.mimetype == "application/problem+json"

    refused()
