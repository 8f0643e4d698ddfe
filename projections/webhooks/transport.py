"""One POST of a delivery, with a deadline, to an address checked just before.

In production the host is resolved here and the connection made to one of its
addresses, all of them checked public (`projections.webhooks.addresses`): what
was checked is what is connected to, so DNS rebinding cannot redirect a send.
TLS still verifies the certificate against the URL's host name (SNI too), and the
Host header is the URL's. A fresh connection per send; no redirect is followed.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from typing import Any

from projections.webhooks import addresses

MAX_READ = 64 * 1024
"""Bytes of a response body read at most (only the status counts)."""

_TLS = ssl.create_default_context()


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float,
         production: bool) -> int:
    """POST `body` to `url`; the response's status code. Raises Refused, OSError or
    http.client.HTTPException (a timeout is an OSError); nothing waits more than
    `timeout` seconds in all."""
    deadline = time.monotonic() + timeout
    parts = addresses.parse(url, production=production)
    host, port = parts.hostname or "", addresses.default_port(parts)
    pinned = addresses.public_addresses(host, port)[0] if production else None
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=_TLS)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    connection._create_connection = _connector(pinned)  # type: ignore[attr-defined]
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.connect()
        _remaining(connection, deadline)
        connection.request("POST", path, body=body, headers=headers)
        _remaining(connection, deadline)
        response = connection.getresponse()
        _remaining(connection, deadline)
        response.read(MAX_READ)
        return response.status
    finally:
        connection.close()


def _connector(pinned: str | None) -> Any:
    def connect(address: tuple[str, int], timeout: float, source: Any = None) -> socket.socket:
        sock = socket.create_connection((pinned or address[0], address[1]), timeout, source)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    return connect


def _remaining(connection: http.client.HTTPConnection, deadline: float) -> None:
    """What is left of the deadline becomes the socket's timeout (TimeoutError when
    nothing is left)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    if connection.sock is not None:
        connection.sock.settimeout(left)
