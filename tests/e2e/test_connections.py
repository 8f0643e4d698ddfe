"""Connections and event streams cost no thread: the real server, with 4 threads.

The worker's main loop reads each request's head (and a small body of known
length) before a thread takes it, and an event stream gives its thread back to
the pool after its replay, for the process's stream pump to write (web/worker.py,
web/pump.py). Each server here runs one worker (`--workers 1`) with 4 threads:
a thread per connection from its first byte, or a thread per open stream, as
before, would starve it; nothing else would tell the two apart.

Requests are written on raw sockets, in whatever pieces a test needs, and their
responses parsed back; event streams are read the same way (chunked bodies).
Nothing is timed: every wait is bounded (WAIT) and only fails a test that would
otherwise hang; the one bound on time is STOP_WITHIN, for SIGTERM.

`server` here is one server (SQLite) shared by the tests that leave it running,
not the root conftest's per-test server; `own_server` starts a test's own.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.processes import children, sigterm
from tests.e2e.servers import Client, Server, start_server, stop
from tests.web.support import job_body
from web.framing import HEAD_TIMEOUT

WAIT = 30.0
"""How long to wait for what must happen (a bound on a hang, not a timing claim)."""

THREADS = 4
ONE_WORKER = ["--workers", "1", "--threads", str(THREADS)]

CLOSED_WITHIN = HEAD_TIMEOUT + 20
"""A connection that does not finish its request is closed after HEAD_TIMEOUT: this
waits that long and then some before calling it left open."""

STOP_WITHIN = 5.0
"""Seconds from SIGTERM to the server's exit. The requirement is 2 s (test_shutdown);
this bound is generous, and still tells a stop that waits out the 10 s graceful
timeout (or HEAD_TIMEOUT) from one that does not."""

PROBLEM_JSON = "application/problem+json"


# Raw HTTP/1.1 --------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Raw:
    """One TCP connection: bytes written in any pieces, responses parsed back."""

    def __init__(self, server: Server, timeout: float = WAIT) -> None:
        self.server = server
        self.sock = socket.create_connection((server.host, server.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def send(self, *pieces: bytes, pause: float = 0.0) -> None:
        """Each piece in its own write, `pause` seconds apart."""
        for number, piece in enumerate(pieces):
            if number and pause:
                time.sleep(pause)
            self.sock.sendall(piece)

    def trickle(self, data: bytes, pause: float = 0.001) -> None:
        """Byte by byte."""
        self.send(*(data[i:i + 1] for i in range(len(data))), pause=pause)

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise AssertionError(f"the server closed the connection; received "
                                 f"{self.buffer[:300]!r}")
        self.buffer += data

    def _take_until(self, separator: bytes) -> bytes:
        while separator not in self.buffer:
            self._more()
        taken, _, self.buffer = self.buffer.partition(separator)
        return taken

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._more()
        taken, self.buffer = self.buffer[:size], self.buffer[size:]
        return taken

    def response(self, *, interim: bool = False) -> Response:
        """The next response (an interim 1xx one only when `interim`)."""
        while True:
            head = self._take_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
            status = int(head[0].split(" ", 2)[1])
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if 100 <= status < 200:
                if interim:
                    return Response(status, headers, b"")
                continue
            break
        if "content-length" in headers:
            body = self._take(int(headers["content-length"]))
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = b""
            while size := int(self._take_until(b"\r\n").split(b";")[0], 16):
                body += self._take(size)
                assert self._take(2) == b"\r\n"
            assert self._take(2) == b"\r\n"  # no trailers
        else:
            body = self.read_to_eof()
        return Response(status, headers, body)

    def read_to_eof(self) -> bytes:
        """Everything until the server closes the connection (or resets it)."""
        received = self.buffer
        self.buffer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := self.sock.recv(65536):  # TimeoutError (WAIT) fails the test
                received += chunk
        return received

    def closed_by_server(self, within: float) -> bool:
        """Whether the server closes this connection within `within` seconds."""
        self.sock.settimeout(within)
        try:
            self.read_to_eof()
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def reset(self) -> None:
        """Close with a RST, as a client that crashes."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()


def head(server: Server, method: str, path: str, *, body: bytes | None = None,
         headers: dict[str, str] | None = None, token: str | None = "Dispatcher",
         length: bool = True) -> bytes:
    """A request head (with its blank line); Content-Length from `body` when `length`."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {server.host}:{server.port}",
             "Accept: application/json"]
    if token:
        lines.append(f"Authorization: Bearer {server.token(token)}")
    if body is not None:
        lines.append("Content-Type: application/json")
        if length:
            lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def job_json(**overrides: Any) -> bytes:
    return json.dumps(job_body(**overrides)).encode()


def assert_created(response: Response, job_type: str) -> dict[str, Any]:
    assert response.status == 201, response.body
    job = response.json()
    assert job["type"] == job_type and job["region"] == "Default", job
    return job


def healthz(server: Server, timeout: float = WAIT) -> int:
    """GET /healthz on a connection of its own (http.client, with a timeout)."""
    client = Client(server.host, server.port, None)
    client.connection.timeout = timeout
    try:
        return client.get("/healthz").status
    finally:
        client.close()


# Server-Sent Events on a raw socket ------------------------------------------------


@dataclass
class Sse:
    id: int
    event: str
    data: dict[str, Any]


class EventStream:
    """GET /api/events on a raw socket; the chunked body decoded as it comes."""

    def __init__(self, server: Server, *, last_event_id: int | None = None,
                 connected: bool = True) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=WAIT)
        resume = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id is not None else ""
        self.sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: {server.host}\r\n"
                          f"Authorization: Bearer {server.token()}\r\n"
                          f"Accept: text/event-stream\r\n{resume}\r\n".encode())
        self.raw = b""  # every byte received, as received
        self._rest = b""  # received, not decoded yet
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunked = False
        self.body = b""  # decoded
        self.terminated = False  # the last chunk (0 CRLF CRLF) came
        self.eof = False
        self.wait_for(lambda: self.status != 0, "a status line")
        if self.status == 200 and connected:
            self.wait_for(lambda: b": connected" in self.body, "its greeting")

    def _read(self) -> None:
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return
        self.raw += data
        self._rest += data
        self._decode()

    def _decode(self) -> None:
        if not self.status:
            if b"\r\n\r\n" not in self._rest:
                return
            head, _, self._rest = self._rest.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            self.status = int(lines[0].split(" ", 2)[1])
            for line in lines[1:]:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
            self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        if not self.chunked:
            self.body += self._rest
            self._rest = b""
            return
        while not self.terminated:
            size_line, found, after = self._rest.partition(b"\r\n")
            if not found:
                return
            size = int(size_line.split(b";")[0], 16)
            if len(after) < size + 2:
                return
            assert after[size:size + 2] == b"\r\n", self._rest[:200]
            self.body += after[:size]
            self._rest = after[size + 2:]
            self.terminated = size == 0

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not condition():
            if self.eof:
                pytest.fail(f"The stream ended before {what}: {self.raw[-500:]!r}")
            if time.monotonic() > deadline:
                pytest.fail(f"The stream never showed {what}: {self.raw[-500:]!r}")
            self._read()

    def read_to_eof(self) -> None:
        while not self.eof:
            self._read()  # TimeoutError (WAIT) fails the test

    def messages(self) -> list[list[str]]:
        """The complete SSE messages so far, each as its lines."""
        text = self.body.decode()
        return [block.split("\n") for block in text.split("\n\n")[:-1]]

    def events(self) -> list[Sse]:
        found = []
        for lines in self.messages():
            fields = {}
            for line in lines:
                if not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    fields[name] = value
            if "data" in fields:
                found.append(Sse(int(fields["id"]), fields["event"],
                                 json.loads(fields["data"])))
        return found

    def ids(self) -> list[int]:
        return [event.id for event in self.events()]

    def comments(self) -> list[str]:
        return [line[1:].strip() for lines in self.messages() for line in lines
                if line.startswith(":")]

    def wait_for_event(self, kind: str, subject: str) -> Sse:
        def found() -> Sse | None:
            return next((event for event in self.events()
                         if event.event == kind and event.data["subject"] == subject), None)

        self.wait_for(lambda: found() is not None, f"{kind} of {subject}")
        event = found()
        assert event is not None
        return event

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# The server's processes ------------------------------------------------------------




def threads_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def sockets_of(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    return count




# Fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One worker, 4 threads, on an SQLite file: for the tests that do not stop it."""
    workdir = tmp_path_factory.mktemp("connections")
    running = start_server(f"sqlite:///{workdir / 'smartscheduler.db'}", workdir,
                           args=ONE_WORKER)
    try:
        yield running
    finally:
        running.close_clients()
        stop(running.process)


@pytest.fixture
def server(shared_server: Server, request: pytest.FixtureRequest) -> Iterator[Server]:
    """The shared server, its log attached to a failing test's report; and a check
    that its worker lived through the test (a crashed one is replaced silently)."""
    request.node.server_log = shared_server.log
    workers = children(shared_server.process.pid)
    yield shared_server
    shared_server.close_clients()
    assert shared_server.process.poll() is None, "the server exited"
    assert children(shared_server.process.pid) == workers, "a worker was replaced"


@pytest.fixture
def own_server(sqlite_url: str, tmp_path: Path, request: pytest.FixtureRequest
               ) -> Iterator[Callable[..., Server]]:
    """Starts a server of the test's own (one worker, 4 threads, `env`)."""
    started: list[Server] = []
    request.node.server_log = lambda: "\n".join(s.log() for s in started)

    def start(env: dict[str, str] | None = None, database_url: str = sqlite_url
              ) -> Server:
        running = start_server(database_url, tmp_path, env=env, args=ONE_WORKER,
                               name=f"server-{len(started) + 1}")
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            running.close_clients()
            stop(running.process)


# Connections that never finish their request ------------------------------------------


HALF_OPEN = 1000
SHORT_BODIES = 50


def test_a_thousand_unfinished_heads_starve_no_request(server: Server) -> None:
    unfinished: list[Raw] = []
    try:
        for number in range(HALF_OPEN):
            connection = Raw(server)
            connection.send(f"GET /healthz?n={number} HTTP/1.1\r\nHost: x\r\n".encode())
            unfinished.append(connection)
        body = job_json()
        for _ in range(SHORT_BODIES):  # and whole heads whose bodies do not come
            connection = Raw(server)
            connection.send(head(server, "POST", "/api/jobs", body=body) + body[:10])
            unfinished.append(connection)

        assert healthz(server) == 200
        created = server.client().post("/api/jobs", job_body(type="Half-open"))
        assert created.status == 201, created.body
        assert created.body["type"] == "Half-open"
        # The worker holds every one of them, still waiting for the rest of its request.
        assert max(sockets_of(pid) for pid in children(server.process.pid)
                   ) >= HALF_OPEN + SHORT_BODIES
    finally:
        for connection in unfinished:
            connection.close()
    assert healthz(server) == 200


def test_unfinished_requests_are_closed_after_the_head_timeout(server: Server) -> None:
    silent = Raw(server)  # connects, sends nothing
    partial = Raw(server)
    partial.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    short_body = Raw(server)
    short_body.send(head(server, "POST", "/api/jobs", body=job_json()) + b'{"type": ')
    kept_alive = Raw(server)
    kept_alive.send(head(server, "GET", "/healthz", token=None))
    assert kept_alive.response().status == 200
    kept_alive.send(b"GET /healthz HTTP/1.1\r\nHo")  # its next request, unfinished
    try:
        for name, connection in [("silent", silent), ("partial head", partial),
                                 ("partial body", short_body),
                                 ("kept alive, partial head", kept_alive)]:
            assert connection.closed_by_server(CLOSED_WITHIN), f"{name}: still open"
        assert healthz(server) == 200
    finally:
        for connection in (silent, partial, short_body, kept_alive):
            connection.close()


def test_clients_that_leave_before_sending_anything_do_not_break_the_server(
        server: Server) -> None:
    for number in range(100):
        connection = Raw(server)
        if number % 2:
            connection.reset()
        else:
            connection.close()
    left_mid_head = Raw(server)
    left_mid_head.send(b"POST /api/jobs HTTP/1.1\r\nContent-Le")
    left_mid_head.reset()
    assert healthz(server) == 200
    connection = Raw(server)
    try:
        connection.send(head(server, "POST", "/api/jobs", body=job_json(type="After")),
                        job_json(type="After"))
        assert_created(connection.response(), "After")
    finally:
        connection.close()


# Requests in pieces, kept alive, pipelined --------------------------------------------


def test_a_request_arriving_in_pieces_is_answered(server: Server) -> None:
    body = job_json(type="Trickled")
    connection = Raw(server)
    try:
        connection.trickle(head(server, "POST", "/api/jobs", body=body))
        third = len(body) // 3
        connection.send(body[:third], body[third:2 * third], body[2 * third:], pause=0.3)
        assert_created(connection.response(), "Trickled")
    finally:
        connection.close()


def test_a_kept_alive_connection_takes_its_next_request_in_pieces(server: Server) -> None:
    connection = Raw(server)
    try:
        connection.send(head(server, "GET", "/healthz", token=None))
        first = connection.response()
        assert first.status == 200, first.body
        assert first.headers.get("connection", "").lower() != "close"

        body = job_json(type="Second")
        request = head(server, "POST", "/api/jobs", body=body) + body
        connection.trickle(request[:40])
        connection.send(request[40:-20], request[-20:-7], request[-7:], pause=0.3)
        assert_created(connection.response(), "Second")

        connection.send(head(server, "GET", "/healthz", token=None))  # and a third
        assert connection.response().status == 200
    finally:
        connection.close()


def test_pipelined_requests_in_one_write_are_answered_in_order(server: Server) -> None:
    first, third = job_json(type="First"), job_json(type="Third")
    connection = Raw(server)
    try:
        connection.send(head(server, "POST", "/api/jobs", body=first) + first
                        + head(server, "GET", "/healthz", token=None)
                        + head(server, "POST", "/api/jobs", body=third) + third)
        assert_created(connection.response(), "First")
        assert connection.response().status == 200
        assert_created(connection.response(), "Third")
    finally:
        connection.close()


def test_a_client_awaiting_100_continue_is_told_to_send_its_body(server: Server) -> None:
    body = job_json(type="Continued")
    connection = Raw(server)
    try:
        connection.send(head(server, "POST", "/api/jobs", body=body,
                             headers={"Expect": "100-continue"}))
        interim = connection.response(interim=True)  # a body-awaiting loop never says it
        assert interim.status == 100
        connection.send(body)
        assert_created(connection.response(), "Continued")
    finally:
        connection.close()


def test_a_chunked_request_body_is_read(server: Server) -> None:
    body = job_json(type="Chunked")
    connection = Raw(server)
    try:
        connection.send(head(server, "POST", "/api/jobs", body=body, length=False,
                             headers={"Transfer-Encoding": "chunked"}))
        third = len(body) // 3
        parts = [body[:third], body[third:2 * third], body[2 * third:]]
        connection.send(*(b"%x\r\n%s\r\n" % (len(part), part) for part in parts),
                        b"0\r\n\r\n", pause=0.2)
        assert_created(connection.response(), "Chunked")
    finally:
        connection.close()


FILLER = "a" * 100


@pytest.mark.parametrize(("shape", "statuses"), [
    ("many fields", {431, 400}),
    ("one huge field", {431, 400}),
    ("huge request line", {414}),
])
def test_a_head_larger_than_the_prefetch_gets_a_problem_not_a_hang(
        server: Server, shape: str, statuses: set[int]) -> None:
    if shape == "many fields":
        request = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                   + "".join(f"X-Field-{n}: {FILLER}\r\n" for n in range(700)).encode()
                   + b"\r\n")
    elif shape == "one huge field":
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Huge: " + b"a" * 70_000 + b"\r\n\r\n"
    else:
        request = b"GET /healthz?q=" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert len(request) > 64 * 1024
    connection = Raw(server)
    try:
        connection.send(request)
        response = connection.response()
        assert response.status in statuses, (response.status, response.body[:300])
        assert response.headers["content-type"] == PROBLEM_JSON
        problem = response.json()
        assert problem["status"] == response.status
        assert connection.closed_by_server(WAIT)
    finally:
        connection.close()
    assert healthz(server) == 200


def test_heads_past_the_prefetch_left_unfinished_starve_no_request(server: Server) -> None:
    lines = "".join(f"X-Field-{n}: {FILLER}\r\n" for n in range(700)).encode()
    stalled: list[Raw] = []
    try:
        for _ in range(THREADS):
            connection = Raw(server)
            connection.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + lines)  # no blank line
            stalled.append(connection)
        assert healthz(server, timeout=10.0) == 200
        for connection in stalled:
            assert connection.closed_by_server(CLOSED_WITHIN)
    finally:
        for connection in stalled:
            connection.close()


def test_a_head_with_bare_line_feeds_is_answered_400(server: Server) -> None:
    connection = Raw(server)
    try:
        connection.send(b"GET /healthz HTTP/1.1\nHost: x\n\n")
        response = connection.response()  # the bug: the server closes, after HEAD_TIMEOUT
        assert response.status == 400
        assert response.headers["content-type"] == PROBLEM_JSON
    finally:
        connection.close()


# Event streams -------------------------------------------------------------------------


STREAMS = 20


def test_open_streams_cost_no_thread(own_server: Callable[..., Server]) -> None:
    server = own_server()
    streams = [EventStream(server) for _ in range(STREAMS)]  # all 200, connected
    try:
        assert all(stream.status == 200 for stream in streams)
        assert healthz(server) == 200
        workers = children(server.process.pid)
        threads = {pid: threads_of(pid) for pid in workers}
        assert threads and all(count < STREAMS for count in threads.values()), threads

        client = server.client()
        created = client.post("/api/jobs", job_body(type="Streamed"))
        assert created.status == 201, created.body
        job_id = created.body["id"]
        cancelled = client.post(f"/api/jobs/{job_id}/cancel",
                                {"reason": "Customer called", "reasonCode": "Other"})
        assert cancelled.status == 200, cancelled.body

        for stream in streams:
            event = stream.wait_for_event("JobCancelled", job_id)
            assert event.data["subject"] == job_id
            assert stream.chunked and not stream.terminated
        assert healthz(server) == 200
        threads = {pid: threads_of(pid) for pid in workers}
        assert all(count < STREAMS for count in threads.values()), threads
    finally:
        for stream in streams:
            stream.close()


def test_a_resumed_stream_replays_what_it_missed_then_goes_live_without_duplicates(
        own_server: Callable[..., Server], database_url: str) -> None:
    server = own_server(env={"SMARTSCHEDULER_SSE_HEARTBEAT": "1"},
                        database_url=database_url)
    client = server.client()
    live = EventStream(server)  # sees every event, live
    created: list[str] = []

    def create(kind: str, on: Client = client) -> None:
        reply = on.post("/api/jobs", job_body(type=kind))
        assert reply.status == 201, reply.body
        created.append(reply.body["id"])

    def live_has_all() -> bool:
        subjects = {event.data["subject"] for event in live.events()}
        return subjects >= set(created)

    resumed: EventStream | None = None
    try:
        for _ in range(5):
            create("Before")
        live.wait_for(live_has_all, "the jobs created before the resumption")
        resume_after = live.ids()[1]  # three to replay, at least

        # Jobs are created while the resumed stream replays and goes live: across its seam.
        done = threading.Event()
        failures: list[BaseException] = []
        writer_client = server.client()

        def write() -> None:
            try:
                while not done.is_set():
                    create("Seam", writer_client)
            except BaseException as error:
                failures.append(error)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        try:
            resumed = EventStream(server, last_event_id=resume_after)
            time.sleep(0.3)
        finally:
            done.set()
            writer.join(WAIT)
        assert not failures, failures
        for _ in range(3):
            create("After")

        live.wait_for(live_has_all, "every job created")
        expected = [i for i in live.ids() if i > resume_after]
        assert resumed.status == 200
        resumed.wait_for(lambda: bool(resumed.ids()) and resumed.ids()[-1] >= expected[-1],
                         "every event after it")
        live_ids = live.ids()
        assert live_ids == sorted(set(live_ids))  # in order, each once
        assert resumed.ids() == expected  # the missed ones, then the live ones, each once
        resumed.wait_for(lambda: "heartbeat" in resumed.comments(), "a heartbeat")
    finally:
        live.close()
        if resumed is not None:
            resumed.close()


def open_when_free(server: Server) -> EventStream:
    """A stream, once a slot is free (a left stream's slot is freed asynchronously)."""
    deadline = time.monotonic() + WAIT
    while True:
        stream = EventStream(server)
        if stream.status == 200:
            return stream
        assert stream.status == 503, stream.raw[:300]
        stream.close()
        assert time.monotonic() < deadline, "no stream slot was freed"
        time.sleep(0.1)


def test_slots_are_freed_again_and_again_as_clients_leave(
        own_server: Callable[..., Server]) -> None:
    server = own_server(env={"SMARTSCHEDULER_MAX_STREAMS": "2",
                             "SMARTSCHEDULER_SSE_HEARTBEAT": "15"})
    opened: list[EventStream] = []
    try:
        for cycle in range(5):
            opened = [open_when_free(server), open_when_free(server)]
            refused = EventStream(server)
            refused.close()
            assert refused.status == 503, f"cycle {cycle}: {refused.raw[:300]!r}"
            for stream in opened:  # the clients leave: half of them with a reset
                if cycle % 2:
                    with contextlib.suppress(OSError):
                        stream.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                stream.close()

        opened = [open_when_free(server), open_when_free(server)]
        created = server.client().post("/api/jobs", job_body(type="Rejoined"))
        assert created.status == 201, created.body
        for stream in opened:  # the pump still writes to the streams that came back
            stream.wait_for_event("JobCreated", created.body["id"])
    finally:
        for stream in opened:
            stream.close()


def test_sigterm_ends_the_open_streams_and_the_server_exits_0(
        own_server: Callable[..., Server]) -> None:
    server = own_server()
    streams = [EventStream(server) for _ in range(2 * THREADS)]
    idle = server.client()  # kept alive, idle when the stop comes
    assert idle.get("/healthz").status == 200
    try:
        assert sigterm(server.process, STOP_WITHIN) == 0
        for stream in streams:
            stream.read_to_eof()
            # The pump ended each chunked body with its last chunk, not a bare close.
            assert stream.terminated and stream.raw.endswith(b"\r\n0\r\n\r\n"), \
                stream.raw[-200:]
        assert "Traceback" not in server.log()
    finally:
        for stream in streams:
            stream.close()


def test_sigterm_does_not_wait_for_a_connection_that_never_sent_a_request(
        own_server: Callable[..., Server]) -> None:
    server = own_server()
    stream = EventStream(server)
    silent = Raw(server)  # a browser's preconnect, a load balancer's TCP check
    try:
        assert healthz(server) == 200  # the silent one is accepted by now
        assert sigterm(server.process, STOP_WITHIN) == 0
        stream.read_to_eof()
        assert stream.terminated
    finally:
        silent.close()  # lets a stopping server go at once
        stream.close()
