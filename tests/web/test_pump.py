"""The stream pump over real sockets: a stalled client is let go, its slot freed."""

from __future__ import annotations

import socket
import threading

from web import pump
from web.pump import Pump, StreamSubscriber


def test_a_client_that_takes_nothing_is_disconnected_and_its_slot_freed(monkeypatch):
    monkeypatch.setattr(pump, "STALLED_FOR", 0.3)
    monkeypatch.setattr(pump, "HEARTBEAT_CHECK", 0.05)
    server_side, client_side = socket.socketpair()
    client_side.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    closed = threading.Event()
    subscriber = StreamSubscriber(lambda item: True)
    stream = Pump(lambda item: "data: " + "x" * 60_000 + "\n\n").adopt(
        server_side, subscriber, last=0, chunked=False, heartbeat=60.0,
        on_close=closed.set)
    try:
        # More than the socket pair holds; the client never reads.
        subscriber.offer_many([{"position": n, "type": "JobCreated"} for n in range(1, 20)])

        assert closed.wait(10), "the stalled stream was never closed"
        assert stream.closed
    finally:
        client_side.close()


def test_a_client_that_reads_is_not_taken_for_stalled(monkeypatch):
    monkeypatch.setattr(pump, "STALLED_FOR", 0.3)
    monkeypatch.setattr(pump, "HEARTBEAT_CHECK", 0.05)
    server_side, client_side = socket.socketpair()
    closed = threading.Event()
    subscriber = StreamSubscriber(lambda item: True)
    Pump(lambda item: f"id: {item['position']}\n\n").adopt(
        server_side, subscriber, last=0, chunked=False, heartbeat=60.0,
        on_close=closed.set)
    try:
        subscriber.offer_many([{"position": n, "type": "JobCreated"} for n in range(1, 4)])
        received = b""
        client_side.settimeout(5)
        while received.count(b"\n\n") < 3:
            received += client_side.recv(4096)

        assert received == b"id: 1\n\nid: 2\n\nid: 3\n\n"
        assert not closed.wait(0.6)  # twice STALLED_FOR: nothing waits, nothing stalls
    finally:
        client_side.close()
