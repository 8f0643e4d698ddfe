"""A stream's slot is freed soon after its client leaves, not at its next heartbeat."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.servers import Server, start_server, stop

FREED_WITHIN = 5.0  # the stream looks every second; its heartbeat is 15 s away


@pytest.fixture
def one_stream_server(sqlite_url: str, tmp_path: Path) -> Iterator[Server]:
    running = start_server(sqlite_url, tmp_path,
                           env={"SMARTSCHEDULER_MAX_STREAMS": "1",
                                "SMARTSCHEDULER_SSE_HEARTBEAT": "15"})
    try:
        yield running
    finally:
        stop(running.process)


def open_stream(server: Server) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection((server.host, server.port), timeout=10)
    sock.sendall((f"GET /api/events HTTP/1.1\r\nHost: {server.host}\r\n"
                  f"Authorization: Bearer {server.token()}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return sock, head


def test_a_left_stream_frees_its_slot_long_before_its_next_heartbeat(one_stream_server):
    first, head = open_stream(one_stream_server)
    assert head.startswith(b"HTTP/1.1 200")
    second, refused = open_stream(one_stream_server)
    second.close()
    assert refused.startswith(b"HTTP/1.1 503")  # the one slot is taken

    first.close()
    began = time.monotonic()
    while True:
        third, head = open_stream(one_stream_server)
        third.close()
        if head.startswith(b"HTTP/1.1 200"):
            break
        assert time.monotonic() - began < FREED_WITHIN, "the slot was not freed"
        time.sleep(0.2)
