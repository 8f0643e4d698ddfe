"""What gunicorn answers itself, before the app sees a request, is problem+json too.

api-contract.md, "What is accepted": headers or a request line too large for the
server are a 431 / 414, as `application/problem+json`; a request that is not
HTTP at all is a 400. Sent over raw sockets to the real server, since no HTTP
client library would send them. The backend plays no part: SQLite only.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest

from tests.e2e.servers import Server

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

TIMEOUT = 30.0


@dataclass
class RawReply:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def exchange(server: Server, data: bytes) -> RawReply:
    """Send `data` as it is, read the reply up to the server's close of the connection."""
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as raw:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            raw.sendall(data)  # the server may answer, and close, before reading it all
        received = b""
        while chunk := raw.recv(65536):
            received += chunk
    head, separator, body = received.partition(b"\r\n\r\n")
    assert separator, f"no complete reply: {received[:500]!r}"
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, status, reason = status_line.split(" ", 2)
    assert version == "HTTP/1.1", status_line
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawReply(int(status), reason, headers, body)


def assert_problem(server: Server, reply: RawReply, status: int, code: str) -> None:
    assert reply.status == status, (reply.status, reply.reason, reply.body[:500])
    assert reply.headers.get("content-type") == "application/problem+json", reply.headers
    assert int(reply.headers["content-length"]) == len(reply.body)
    assert reply.headers.get("connection") == "close"
    request_id = reply.headers.get("x-request-id", "")
    assert str(UUID(request_id)) == request_id
    problem = reply.json()
    assert problem["type"] == f"urn:smartscheduler:problem:{code}"
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["title"] == reply.reason
    assert isinstance(problem["detail"], str) and problem["detail"]
    assert "<html" not in reply.body.decode(errors="replace").lower()
    # A client's mistake: logged as such, never with a traceback.
    assert "Traceback" not in server.log()
    # The server carries on.
    assert server.client(role=None).get("/healthz").status == 200


def test_a_10_kb_request_line_is_a_414_uri_too_long_problem(server: Server) -> None:
    request_line = b"GET /api/jobs?q=" + b"a" * 10_240 + b" HTTP/1.1\r\n"

    reply = exchange(server, request_line + b"Host: localhost\r\n\r\n")

    assert_problem(server, reply, 414, "uri_too_long")


@pytest.mark.parametrize("headers", [
    pytest.param(b"X-Big: " + b"v" * 102_400 + b"\r\n", id="one-100-kb-header"),
    pytest.param(b"".join(b"X-Field-%d: %s\r\n" % (n, b"v" * 1_000) for n in range(100)),
                 id="a-hundred-1-kb-headers"),
])
def test_100_kb_of_headers_are_a_431_request_header_fields_too_large_problem(
        server: Server, headers: bytes) -> None:
    reply = exchange(server, b"GET /api/jobs HTTP/1.1\r\nHost: localhost\r\n" + headers
                     + b"\r\n")

    assert_problem(server, reply, 431, "request_header_fields_too_large")


@pytest.mark.parametrize("request_line", [
    pytest.param(b"THIS IS NOT HTTP\r\n", id="not-http"),
    pytest.param(b"GET /api/jobs HTTP/9.9\r\n", id="unknown-version"),
    pytest.param(b"G\x00T /api/jobs HTTP/1.1\r\n", id="nul-in-method"),
])
def test_a_malformed_request_line_is_a_400_bad_request_problem(
        server: Server, request_line: bytes) -> None:
    reply = exchange(server, request_line + b"Host: localhost\r\n\r\n")

    assert_problem(server, reply, 400, "bad_request")


def test_every_request_is_in_the_access_log_written_off_the_request_thread(server):
    client = server.client()
    for _ in range(5):
        client.get("/healthz")
    client.get("/api/jobs?page=7")

    deadline = time.monotonic() + 10
    while "/api/jobs?page=7" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.log()

    assert log.count('"GET /healthz HTTP/1.1" 200') >= 5
    assert '"GET /api/jobs?page=7 HTTP/1.1" 200' in log
