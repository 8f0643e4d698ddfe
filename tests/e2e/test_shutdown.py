"""Clean stops: SIGTERM to each long-running command, as a process manager sends it.

`smartscheduler serve` with an event stream open, `smartscheduler projections
run` and `smartscheduler relay` (with a private Redis) each exit with code 0
within STOP_WITHIN seconds of SIGTERM, without a traceback, and their next run
goes on from the position the last one recorded. Every test runs on each
backend (an SQLite file and a fresh PostgreSQL schema).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from application.settings import Settings
from projections.realtime.relay import CHANNEL_PREFIX, STREAM
from smartscheduler.bootstrap import Services, build_services
from tests.e2e.processes import sigterm
from tests.e2e.servers import STARTUP_TIMEOUT, Server, start_server, stop
from tests.factories import save_cancelled_job
from tests.redis_server import RedisServer

STOP_WITHIN = 2.0
"""Seconds from SIGTERM to the exit of the process: the requirement, the only bound."""

WAIT = 30.0
"""How long to wait for something that must happen (a bound, not a timing claim)."""

JOB = {
    "type": "HVAC repair",
    "durationMinutes": 120,
    "region": "North",
    "serviceWindow": {"start": "2030-01-15T09:00:00Z", "end": "2030-01-15T13:00:00Z"},
}

FOLLOWING = re.compile(r"Read models: following the log from position (\d+)\.")
PUBLISHING = re.compile(r"Relay: publishing from position (\d+) ")




def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {WAIT}s")
        time.sleep(0.05)


@pytest.fixture
def store(database_url: str) -> Iterator[Services]:
    """The event store and read models, from the test: it writes, it never follows."""
    services = build_services(Settings(database_url=database_url), run_projections=False,
                              run_relay=False)
    try:
        yield services
    finally:
        services.close()


# Workers: `projections run` and `relay` ------------------------------------------


@dataclass
class Command:
    """`python -m smartscheduler <args>` in its own process, its stderr kept apart."""

    name: str
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def log(self) -> str:
        return (f"----- {self.name} stdout\n{self.stdout_path.read_text(errors='replace')}"
                f"----- {self.name} stderr\n{self.stderr()}")


class Commands:
    """Starts commands; whatever still runs at the end of the test is stopped."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[Command] = []

    def start(self, args: list[str], env: dict[str, str], name: str,
              ready: re.Pattern[str]) -> tuple[Command, re.Match[str]]:
        """Returns once `ready` matches its stderr (where it logs), with the match."""
        out, err = self.workdir / f"{name}.out", self.workdir / f"{name}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "smartscheduler", *args], cwd=self.workdir,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
                stdout=stdout, stderr=stderr, start_new_session=True)
        command = Command(name, process, out, err)
        self.started.append(command)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while (match := ready.search(command.stderr())) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{name} did not start (exit code {process.returncode}):\n"
                            f"{command.log()}")
            time.sleep(0.05)
        return command, match

    def log(self) -> str:
        return "\n".join(command.log() for command in self.started)

    def stop_all(self) -> None:
        for command in self.started:
            stop(command.process)


@pytest.fixture
def commands(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Commands]:
    started = Commands(tmp_path)
    request.node.server_log = started.log  # attached to the report when a test fails
    try:
        yield started
    finally:
        started.stop_all()


def assert_stopped_cleanly(command: Command, stopped: re.Pattern[str]) -> int:
    """Exit code 0 within STOP_WITHIN of SIGTERM, no traceback; the position it logs."""
    assert sigterm(command.process, STOP_WITHIN) == 0, command.log()
    log = command.stderr()
    assert "Traceback" not in log, log
    match = stopped.search(log)
    assert match is not None, log
    return int(match[1])


def test_projections_run_stops_on_sigterm_and_the_next_run_resumes_where_it_stopped(
        database_url: str, store: Services, commands: Commands) -> None:
    env = {"SMARTSCHEDULER_DATABASE_URL": database_url}
    before = [save_cancelled_job(store.app) for _ in range(3)]
    head = store.app.head_position()

    first, following = commands.start(["projections", "run"], env, "projections-1", FOLLOWING)
    assert int(following[1]) == 0
    wait_until(lambda: store.views.position() == head, "the read models catching up")
    stopped_at = assert_stopped_cleanly(
        first, re.compile(r"Read models: stopped at position (\d+)\."))
    assert stopped_at == head == store.views.position()

    while_stopped = [save_cancelled_job(store.app) for _ in range(2)]
    new_head = store.app.head_position()
    assert store.views.position() == head  # nobody follows meanwhile

    second, following = commands.start(["projections", "run"], env, "projections-2",
                                       FOLLOWING)
    assert int(following[1]) == head  # from its record, not from the start of the log
    wait_until(lambda: store.views.position() == new_head, "the read models catching up")
    assert store.views.count_jobs() == len(before) + len(while_stopped)
    for job_id in before + while_stopped:
        job = store.views.get_job(str(job_id))
        assert job is not None and job.status == "Cancelled", job
    assert assert_stopped_cleanly(
        second, re.compile(r"Read models: stopped at position (\d+)\.")) == new_head


def test_relay_stops_on_sigterm_and_the_next_run_publishes_only_what_came_after(
        database_url: str, store: Services, commands: Commands,
        redis_server: RedisServer) -> None:
    env = {"SMARTSCHEDULER_DATABASE_URL": database_url,
           "SMARTSCHEDULER_REDIS_URL": redis_server.url}
    stopped = re.compile(r"Relay: stopped at position (\d+)\.")
    for _ in range(3):
        save_cancelled_job(store.app)
    head = store.app.head_position()
    with redis_server.client() as client:
        first, publishing = commands.start(["relay"], env, "relay-1", PUBLISHING)
        assert int(publishing[1]) == 0
        wait_until(lambda: client.xlen(STREAM) == head, "the relay publishing the log")
        assert assert_stopped_cleanly(first, stopped) == head

        for _ in range(2):
            save_cancelled_job(store.app)  # while no relay runs
        new_head = store.app.head_position()
        # Every event goes to its region's dispatch channel: this pattern sees each once.
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.psubscribe(f"{CHANNEL_PREFIX}dispatch/*")
        published: list[int] = []

        second, publishing = commands.start(["relay"], env, "relay-2", PUBLISHING)
        assert int(publishing[1]) == head  # from its record, not from the start
        deadline = time.monotonic() + WAIT
        while new_head not in published and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.5)
            if message is not None and message["type"] == "pmessage":
                published.append(json.loads(message["data"])["position"])
        pubsub.close()
        # In order on one connection: anything published again would have come first.
        assert published == list(range(head + 1, new_head + 1))
        assert [entry_id.decode() for entry_id, _ in client.xrange(STREAM)] == [
            f"{position}-0" for position in range(1, new_head + 1)]
        assert assert_stopped_cleanly(second, stopped) == new_head


# The server ---------------------------------------------------------------------


def open_event_stream(server: Server) -> tuple[socket.socket, bytes]:
    """GET /api/events on a raw socket; returns it once the stream says it is connected."""
    stream = socket.create_connection((server.host, server.port), timeout=WAIT)
    stream.sendall(f"GET /api/events HTTP/1.1\r\nHost: {server.host}\r\n"
                   f"Authorization: Bearer {server.token()}\r\n"
                   "Accept: text/event-stream\r\n\r\n".encode())
    received = b""
    while b": connected" not in received:
        chunk = stream.recv(65536)
        assert chunk, f"the stream ended before it connected: {received!r}"
        received += chunk
    assert received.startswith(b"HTTP/1.1 200 "), received
    return stream, received


def read_to_eof(stream: socket.socket) -> bytes:
    received = b""
    with contextlib.closing(stream):
        while chunk := stream.recv(65536):  # socket.timeout (WAIT) fails the test
            received += chunk
    return received


def test_sigterm_ends_the_open_event_streams_and_the_server_exits_0(server: Server) -> None:
    client = server.client()  # a kept-alive connection, idle when the stop comes
    assert client.post("/api/jobs", JOB).status == 201
    stream, received = open_event_stream(server)

    assert sigterm(server.process, STOP_WITHIN) == 0
    received += read_to_eof(stream)
    # The server ended the chunked body (the last chunk), it did not just drop the socket.
    assert received.endswith(b"\r\n0\r\n\r\n"), received[-200:]
    assert "Traceback" not in server.log()


def test_a_server_started_again_goes_on_from_the_position_its_read_models_recorded(
        database_url: str, tmp_path: Path, store: Services,
        request: pytest.FixtureRequest) -> None:
    servers: list[Server] = []
    request.node.server_log = lambda: "\n".join(
        f"----- server {n}\n{s.log()}" for n, s in enumerate(servers, 1))
    try:
        servers.append(start_server(database_url, tmp_path, name="server-1"))
        client = servers[0].client()
        created = [client.post("/api/jobs", JOB) for _ in range(2)]
        assert [reply.status for reply in created] == [201, 201]
        head = store.app.head_position()
        wait_until(lambda: store.views.position() == head, "the read models catching up")
        servers[0].close_clients()
        assert sigterm(servers[0].process, STOP_WITHIN) == 0
        assert "Traceback" not in servers[0].log()
        assert store.views.position() == head

        while_stopped = save_cancelled_job(store.app)
        new_head = store.app.head_position()
        servers.append(start_server(database_url, tmp_path, name="server-2"))
        wait_until(lambda: store.views.position() == new_head, "the read models catching up")
        listed = servers[1].client().get("/api/jobs")
        assert listed.status == 200, listed.body
        expected = {reply.body["id"] for reply in created} | {str(while_stopped)}
        assert sorted(job["id"] for job in listed.body) == sorted(expected)
        assert sigterm(servers[1].process, STOP_WITHIN) == 0
        assert "Traceback" not in servers[1].log()
    finally:
        for running in servers:
            running.close_clients()
            stop(running.process)
