"""What the real server (gunicorn) accepts: bodies sent chunked, and the findings
that once stopped the read side, sent over a socket and read back by every reader."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading

import pytest

from tests.e2e.servers import Server

ONE_MIB = 1024 * 1024


def post_chunked(server: Server, path: str, chunks: list[bytes]) -> tuple[int, dict, bytes]:
    """Send a chunked POST from one thread while reading the answer in this one: a
    server may answer (413) before the body is all sent, and close."""
    sock = socket.create_connection((server.host, server.port), timeout=30)
    head = (f"POST {path} HTTP/1.1\r\nHost: {server.host}\r\n"
            f"Authorization: Bearer {server.token()}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")

    def send() -> None:
        with contextlib.suppress(OSError):
            sock.sendall(head.encode())
            for chunk in chunks:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sock.sendall(b"0\r\n\r\n")

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        response = http.client.HTTPResponse(sock)
        response.begin()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, response.read()
    finally:
        sock.close()
        sender.join(10)


def job_json(description_size: int) -> bytes:
    return json.dumps({
        "type": "HVAC repair", "durationMinutes": 60, "description": "x" * description_size,
        "serviceWindow": {"start": "2030-01-15T09:00:00Z", "end": "2030-01-15T13:00:00Z"},
    }).encode()


@pytest.mark.parametrize("size", [ONE_MIB + 1, 10 * ONE_MIB])
def test_a_chunked_body_over_one_mebibyte_is_payload_too_large(server, size):
    body = job_json(size)
    chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)]

    status, headers, raw = post_chunked(server, "/api/jobs", chunks)

    assert status == 413
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(raw)["code"] == "payload_too_large"
    jobs = server.client().get("/api/jobs")
    assert jobs.body == []


def test_a_chunked_body_under_one_mebibyte_is_read_whole(server):
    body = job_json(ONE_MIB - 1000)
    chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)]

    status, _, raw = post_chunked(server, "/api/jobs", chunks)

    # Parsed whole (a cut body would be invalid_json): only the description is too long.
    assert status == 422, raw[:500]
    assert list(json.loads(raw)["errors"]) == ["description"]


def test_the_year_one_window_that_stopped_the_read_side_is_refused_and_reads_go_on(server):
    client = server.client()
    refused = client.post("/api/jobs", {
        "type": "HVAC repair", "durationMinutes": 60,
        "serviceWindow": {"start": "0001-01-01T00:00:00+01:00",
                          "end": "0001-01-01T05:00:00+01:00"}})

    created = client.post("/api/jobs", {
        "type": "After", "durationMinutes": 60,
        "serviceWindow": {"start": "2030-01-15T09:00:00Z", "end": "2030-01-15T13:00:00Z"}})
    listed = client.get("/api/jobs")
    ready = client.get("/readyz")

    assert refused.status == 422
    assert refused.body["code"] == "validation_failed"
    assert created.status == 201
    assert [job["id"] for job in listed.body] == [created.body["id"]]
    assert ready.status == 200
