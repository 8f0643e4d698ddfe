"""Raw TCP receivers for the webhook tests: each connection's request is read,
then a behaviour of the test's answers it over the bare socket, so a receiver
can do what no well-behaved HTTP server does (trickle, never finish)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

from smartscheduler.launch import HOST

Behaviour = Callable[[socket.socket], None]

LONG = 8.0
"""Seconds a hostile behaviour keeps at it before it gives up (much longer than
the tests' deadlines: a send still going then was never cut off)."""


class RawReceiver:
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.requests: list[bytes] = []
        self.open = 0
        """Connections being answered now."""
        self.cut_off = 0
        """Connections the sender closed before the behaviour was done with them."""
        self._lock = threading.Lock()
        self._listener = socket.create_server((HOST, 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://{HOST}:{self.port}{path}"

    def settled(self) -> RawReceiver:
        """Once no connection is being answered (a hang guard, not a timing)."""
        deadline = time.monotonic() + 4 * LONG
        while self.open or not self.requests:
            assert time.monotonic() < deadline, "a connection never ended"
            time.sleep(0.05)
        return self

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with self._lock:
            self.open += 1
        try:
            with conn:
                request = _read_request(conn)
                with self._lock:
                    self.requests.append(request)
                self.behaviour(conn)
        except OSError:
            with self._lock:
                self.cut_off += 1
        finally:
            with self._lock:
                self.open -= 1


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def trickle(conn: socket.socket) -> None:
    """A status line and headers, a byte every 0.2 s, for LONG seconds; then it
    hangs up."""
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    until = time.monotonic() + LONG
    while time.monotonic() < until:
        conn.sendall(b"X")
        time.sleep(0.2)


def endless_continue(conn: socket.socket) -> None:
    """`100 Continue` every 0.1 s for LONG seconds, then a 200."""
    until = time.monotonic() + LONG
    while time.monotonic() < until:
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        time.sleep(0.1)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


def no_body(conn: socket.socket) -> None:
    """A 200's headers at once, a body promised and never sent (it hangs up after
    LONG seconds)."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    with contextlib.suppress(OSError):
        conn.settimeout(LONG)
        conn.recv(1)


def ok(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
