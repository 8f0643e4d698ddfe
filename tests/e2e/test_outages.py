"""Outages of the event store, and of Redis, under the real server.

api-contract.md, "Health, readiness and outages": while the event store is
unreachable, every /api request that needs it is answered within 5 s with 503
`service_unavailable` (problem+json, Retry-After); /readyz answers 503 naming
the failing check (within 6 s); /healthz stays 200 whatever the store is doing;
and the service answers normally again within 10 s of the store coming back,
without a restart.

The outages are real: a private PostgreSQL cluster (tests/postgres_server.py)
stopped under the server, an SQLite file locked by another connection (BEGIN
EXCLUSIVE), a private redis-server killed. The only bound on time is each
request's client timeout, CLIENT_TIMEOUT: a request that hangs fails the test.
(Before these bounds, a request to a stopped PostgreSQL hung 152-242 s and a
write to a locked SQLite file 30 s.)
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import PersistenceError

from application.persistence import UNAVAILABLE_FOR, StoreUnavailable
from application.settings import Settings
from smartscheduler.bootstrap import build_dispatch
from tests.e2e.processes import children
from tests.e2e.servers import JWT_SECRET, Reply, Server, start_server, stop
from tests.postgres_server import PostgresServer, start_private_postgres
from tests.redis_server import start_private_redis

CLIENT_TIMEOUT = 8.0
"""The contract's 5 s for an answer (6 s for /readyz), with slack for a busy CI machine."""

RECOVERY = 15.0
"""How long the service may take to answer normally again (the contract's 10 s, with slack)."""

IN_FLIGHT = 80
"""Requests kept waiting on the failing store while /healthz is asked."""

JOB = {
    "type": "HVAC repair",
    "durationMinutes": 90,
    "serviceWindow": {"start": "2030-01-15T09:00:00Z", "end": "2030-01-15T13:00:00Z"},
}


class Timings:
    """How long each kind of answer took, printed with the test's output (-s, -rP)."""

    def __init__(self) -> None:
        self.seen: dict[str, list[float]] = {}

    def add(self, what: str, seconds: float) -> None:
        self.seen.setdefault(what, []).append(seconds)

    def report(self, title: str) -> None:
        lines = [f"{what}: max {max(values):.2f} s over {len(values)}"
                 for what, values in self.seen.items()]
        print(f"\n{title}\n  " + "\n  ".join(lines))


def ask(server: Server, method: str, path: str, body: Any = None, *,
        role: str | None = "Dispatcher", timings: Timings | None = None,
        label: str | None = None) -> Reply:
    """One request on a connection of its own; no answer within CLIENT_TIMEOUT
    fails the test."""
    headers = {"Accept": "application/json"}
    if role:
        headers["Authorization"] = f"Bearer {server.token(role)}"
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    connection = http.client.HTTPConnection(server.host, server.port, timeout=CLIENT_TIMEOUT)
    began = time.monotonic()
    try:
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    except TimeoutError:
        pytest.fail(f"{method} {path}: no answer within {CLIENT_TIMEOUT} s")
    finally:
        connection.close()
    if timings is not None:
        timings.add(label or f"{method} {path}", time.monotonic() - began)
    received = {name.lower(): value for name, value in response.getheaders()}
    kind = received.get("content-type", "")
    parsed = json.loads(raw) if raw and "json" in kind else raw.decode(errors="replace")
    return Reply(response.status, received, parsed)


def assert_unavailable(reply: Reply) -> None:
    """503 service_unavailable, as problem+json, with Retry-After."""
    assert reply.status == 503, (reply.status, reply.body)
    assert (reply.header("content-type") or "").startswith("application/problem+json")
    assert reply.body["code"] == "service_unavailable"
    assert reply.body["status"] == 503
    assert (reply.header("retry-after") or "").isdigit()


def assert_not_ready(server: Server, check: str, timings: Timings) -> dict[str, Any]:
    ready = ask(server, "GET", "/readyz", role=None, timings=timings)
    assert ready.status == 503, ready.body
    assert ready.body["status"] == "unavailable"
    assert ready.body["checks"][check]["status"] == "failing", ready.body
    assert ready.body["checks"][check]["error"]
    return dict(ready.body["checks"])


def assert_healthz_while_requests_wait(server: Server, timings: Timings) -> None:
    """/healthz is 200 while IN_FLIGHT commands wait on the failing store, and
    is answered before the last of them (it waits behind none of them); each of
    them gets its 503."""
    # Past the second in which calls fail at once after a failed wait: these wait.
    time.sleep(UNAVAILABLE_FOR + 0.1)
    replies: list[Reply | BaseException | None] = [None] * IN_FLIGHT
    sent = threading.Semaphore(0)
    answered = 0
    answered_lock = threading.Lock()

    def command(index: int) -> None:
        nonlocal answered
        headers = {"Authorization": f"Bearer {server.token()}",
                   "Content-Type": "application/json", "Accept": "application/json"}
        connection = http.client.HTTPConnection(server.host, server.port,
                                                timeout=CLIENT_TIMEOUT)
        began = time.monotonic()
        try:
            connection.request("POST", "/api/jobs", body=json.dumps(JOB).encode(),
                               headers=headers)
            sent.release()
            response = connection.getresponse()
            raw = response.read()
            received = {name.lower(): value for name, value in response.getheaders()}
            replies[index] = Reply(response.status, received, json.loads(raw))
            timings.add("POST /api/jobs (in flight)", time.monotonic() - began)
        except BaseException as error:  # reported below, by the test's thread
            replies[index] = error
            sent.release()
        finally:
            connection.close()
            with answered_lock:
                answered += 1

    threads = [threading.Thread(target=command, args=(index,), daemon=True)
               for index in range(IN_FLIGHT)]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert sent.acquire(timeout=CLIENT_TIMEOUT), "the commands could not be sent"

    health = ask(server, "GET", "/healthz", role=None, timings=timings)
    with answered_lock:
        answered_before_health = answered
    for thread in threads:
        thread.join(CLIENT_TIMEOUT + 2)

    assert health.status == 200
    assert health.body == {"status": "ok"}
    assert answered_before_health < IN_FLIGHT, (
        "/healthz was answered only after every waiting request had been")
    for reply in replies:
        if isinstance(reply, TimeoutError):
            pytest.fail(f"POST /api/jobs: no answer within {CLIENT_TIMEOUT} s")
        assert isinstance(reply, Reply), reply
        assert_unavailable(reply)


def assert_outage(server: Server, job_id: str, timings: Timings) -> None:
    """What every client sees while the event store is unreachable."""
    assert_unavailable(ask(server, "POST", "/api/jobs", JOB, timings=timings))
    assert_unavailable(ask(server, "POST", f"/api/jobs/{job_id}/cancel",
                           {"reason": "Customer called", "reasonCode": "CustomerRequest"},
                           timings=timings))
    checks = assert_not_ready(server, "eventStore", timings)
    if "readModels" in checks:  # nothing to read its position from
        assert checks["readModels"]["position"] is None
    assert_healthz_while_requests_wait(server, timings)


def assert_recovers(server: Server, timings: Timings) -> None:
    """Within RECOVERY of the store coming back: a command succeeds, what it
    stored reads back, and /readyz is 200 (each a request of its own)."""
    began = time.monotonic()
    created = ready = None
    while time.monotonic() - began < RECOVERY:
        created = ask(server, "POST", "/api/jobs", JOB)
        if created.status == 201:
            break
        time.sleep(0.2)
    assert created is not None and created.status == 201, created
    while time.monotonic() - began < RECOVERY:
        ready = ask(server, "GET", "/readyz", role=None)
        if ready.status == 200:
            break
        time.sleep(0.2)
    assert ready is not None and ready.status == 200, ready
    timings.add("back to normal after the store", time.monotonic() - began)
    history = ask(server, "GET", f"/api/jobs/{created.body['id']}/history")
    assert history.status == 200
    assert [event["type"] for event in history.body["events"]] == ["JobCreated"]


@pytest.fixture
def serve(tmp_path: Path, request: pytest.FixtureRequest
          ) -> Iterator[Callable[..., Server]]:
    """Starts the real server (tests/e2e/conftest.py) on a database URL; stops it
    after the test, with its log attached to a failure."""
    started: list[Server] = []

    def start(database_url: str, **env: str) -> Server:
        server = start_server(database_url, tmp_path, env=env)
        request.node.server_log = server.log
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.close_clients()
            stop(server.process)


# PostgreSQL ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster for this module, never the shared server."""
    server = start_private_postgres()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def postgres(cluster: PostgresServer) -> Iterator[PostgresServer]:
    """The cluster, running, and running again after the test whatever it did."""
    if not cluster.running():
        cluster.start()
    try:
        yield cluster
    finally:
        if not cluster.running():
            cluster.start()


def worker_pids(server: Server) -> set[int]:
    """The gunicorn workers of the server: the children of its master process."""
    return children(server.process.pid)


def listening_pids(cluster: PostgresServer, pids: set[int]) -> set[int]:
    """Those of `pids` that hold a LISTEN session on the cluster (matched on the
    client's port, through /proc)."""
    with psycopg.connect(cluster.url, autocommit=True, connect_timeout=5) as connection:
        ports = {row[0] for row in connection.execute(
            "SELECT client_port FROM pg_stat_activity WHERE query LIKE 'LISTEN %'")}
    found = set()
    for pid in pids:
        try:
            inodes = {os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1]
                      for fd in os.listdir(f"/proc/{pid}/fd")
                      if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")}
            lines = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
        except OSError:  # gone meanwhile
            continue
        for line in lines:
            fields = line.split()
            if fields[9] in inodes and int(fields[1].rpartition(":")[2], 16) in ports:
                found.add(pid)
    return found


def wait_for_every_worker(server: Server, cluster: PostgresServer) -> set[int]:
    """Until every worker has booted, not only the first to answer /healthz.

    A worker follows the log over LISTEN once it is done with the store at boot
    (its read-model runner and realtime hub start last, in threads). A worker
    still booting when the store stops fails to boot, and gunicorn then halts
    the whole server (see the xfail test below)."""
    began = time.monotonic()
    while True:
        pids = worker_pids(server)
        if pids and listening_pids(cluster, pids) == pids:
            return pids
        assert time.monotonic() - began < RECOVERY, f"workers {pids} did not all boot"
        time.sleep(0.1)


@pytest.mark.slow
def test_postgres_stopped_every_request_is_answered_503_and_service_comes_back(
        postgres: PostgresServer, serve: Callable[..., Server]) -> None:
    server = serve(postgres.schema_url())
    wait_for_every_worker(server, postgres)
    timings = Timings()
    created = ask(server, "POST", "/api/jobs", JOB)
    assert created.status == 201
    assert ask(server, "GET", "/readyz", role=None).status == 200

    postgres.stop()
    try:
        assert_unavailable(ask(server, "GET", f"/api/jobs/{created.body['id']}/history",
                               timings=timings))
        assert_outage(server, created.body["id"], timings)
    finally:
        postgres.start()
    assert_recovers(server, timings)
    timings.report("PostgreSQL stopped (pg_ctl stop -m fast):")


@pytest.mark.slow
def test_postgres_stopped_a_worker_restarted_meanwhile_does_not_take_the_server_down(
        postgres: PostgresServer, serve: Callable[..., Server]) -> None:
    server = serve(postgres.schema_url())
    pids = wait_for_every_worker(server, postgres)

    postgres.stop()
    try:
        os.kill(min(pids), signal.SIGKILL)  # as if it had crashed, or been recycled
        began = time.monotonic()
        while worker_pids(server) - pids == set() and server.process.poll() is None:
            assert time.monotonic() - began < RECOVERY, "no worker was started again"
            time.sleep(0.1)
        assert_unavailable(ask(server, "POST", "/api/jobs", JOB))
    finally:
        postgres.start()
    assert server.process.poll() is None, "the server stopped"
    assert_recovers(server, Timings())


def test_postgres_stopped_a_store_call_fails_fast_and_the_same_app_recovers(
        postgres: PostgresServer) -> None:
    """Below HTTP: the recorder gives up (StoreUnavailable, a PersistenceError)
    instead of waiting out the library's 10 tries of 30 s, and the same
    application, not a new one, works again once PostgreSQL is back."""
    app = build_dispatch(Settings(database_url=postgres.schema_url(),
                                  jwt_secret=JWT_SECRET), role="web")
    try:
        assert app.head_position() == 0
        postgres.stop()
        try:
            # The first calls may fail fast on the pool's dead connections; the
            # later ones wait for a new one (30 s a try, with the library's defaults).
            errors = [within(CLIENT_TIMEOUT, app.head_position)[1] for _ in range(3)]
        finally:
            postgres.start()
        for error in errors:
            assert isinstance(error, StoreUnavailable), error
            assert isinstance(error, PersistenceError)

        began = time.monotonic()
        while (outcome := within(CLIENT_TIMEOUT, app.head_position))[1] is not None:
            assert isinstance(outcome[1], PersistenceError), outcome
            assert time.monotonic() - began < RECOVERY, f"not back: {outcome[1]}"
            time.sleep(0.2)
        assert outcome == (0, None)
    finally:
        app.close()


def within(seconds: float, call: Callable[[], Any]) -> tuple[Any, Exception | None]:
    """(`call()`'s value, None) or (None, what it raised), from a thread that may
    take at most `seconds` (a client's patience, as CLIENT_TIMEOUT is over HTTP)."""
    outcome: list[tuple[Any, Exception | None]] = []

    def run() -> None:
        try:
            outcome.append((call(), None))
        except Exception as error:  # handed to the caller
            outcome.append((None, error))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"no answer from the store call within {seconds} s")
    return outcome[0]


# SQLite ------------------------------------------------------------------------------


@pytest.mark.slow
def test_sqlite_locked_every_command_is_answered_503_and_service_comes_back(
        tmp_path: Path, serve: Callable[..., Server]) -> None:
    path = tmp_path / "smartscheduler.db"
    server = serve(f"sqlite:///{path}")
    timings = Timings()
    created = ask(server, "POST", "/api/jobs", JOB)
    assert created.status == 201
    assert ask(server, "GET", "/readyz", role=None).status == 200

    lock = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")  # every other writer now waits, then fails
        assert_outage(server, created.body["id"], timings)
    finally:
        lock.rollback()
        lock.close()
    assert_recovers(server, timings)
    timings.report("SQLite locked (BEGIN EXCLUSIVE by another connection):")


# Redis -------------------------------------------------------------------------------


def test_redis_killed_readyz_names_redis_and_recovers(
        tmp_path: Path, serve: Callable[..., Server]) -> None:
    redis = start_private_redis(tmp_path / "redis")
    try:
        server = serve(f"sqlite:///{tmp_path / 'smartscheduler.db'}",
                       SMARTSCHEDULER_REDIS_URL=redis.url)
        timings = Timings()
        ready = ask(server, "GET", "/readyz", role=None)
        assert ready.status == 200, ready.body
        assert ready.body["checks"]["redis"] == {"status": "ok"}

        redis.kill()
        checks = assert_not_ready(server, "redis", timings)
        assert checks["eventStore"]["status"] == "ok"
        assert ask(server, "GET", "/healthz", role=None).status == 200

        redis.start()
        began = time.monotonic()
        while (ready := ask(server, "GET", "/readyz", role=None)).status != 200:
            assert time.monotonic() - began < RECOVERY, ready.body
            time.sleep(0.2)
        assert ready.body["checks"]["redis"] == {"status": "ok"}
        timings.report("Redis killed:")
    finally:
        redis.kill()
