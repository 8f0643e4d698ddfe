"""One POST of a delivery, with a deadline, to an address checked just before.

In production the host is resolved here and the connection made to one of its
addresses, all of them checked public (`projections.webhooks.addresses`): what
was checked is what is connected to, so DNS rebinding cannot redirect a send.
TLS still verifies the certificate against the URL's host name (SNI too), and the
Host header is the URL's. A fresh connection per send; no redirect is followed.

The deadline is the whole attempt's: before each read and write on the socket
(plain or TLS) what is left of it becomes the socket's timeout, and nothing is
left is a TimeoutError, so a receiver that trickles bytes or answers `100
Continue` forever cannot hold a send past it. The outcome is the status line:
the body is read only best-effort (at most MAX_READ bytes, for at most DRAIN
seconds), and a failure to read it changes nothing. The request target is sent
percent-encoded where the URL is not ASCII.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import SplitResult, quote

from projections.webhooks import addresses

MAX_READ = 64 * 1024
"""Bytes of a response body read at most (only the status counts)."""
DRAIN = 1.0
"""Seconds spent at most reading a response body."""

_PATH_SAFE = "/%!$&'()*+,;=:@-._~"
_QUERY_SAFE = _PATH_SAFE + "?"
_ASCII = "".join(chr(code) for code in range(0x21, 0x7F))

_deadline = threading.local()
"""The monotonic deadline of the send running on this thread (None: none)."""


def _left() -> float | None:
    deadline = getattr(_deadline, "at", None)
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out (the attempt's deadline passed)")
    return left


class _Bounded(socket.socket):
    """A plain socket whose every read and write ends by the thread's deadline."""

    def recv_into(self, *args: Any, **kwargs: Any) -> int:
        self.settimeout(_left())
        return super().recv_into(*args, **kwargs)

    def recv(self, *args: Any, **kwargs: Any) -> bytes:
        self.settimeout(_left())
        return super().recv(*args, **kwargs)

    def sendall(self, *args: Any, **kwargs: Any) -> None:
        self.settimeout(_left())
        super().sendall(*args, **kwargs)

    def send(self, *args: Any, **kwargs: Any) -> int:
        self.settimeout(_left())
        return super().send(*args, **kwargs)


class _BoundedTLS(ssl.SSLSocket):
    """The same over TLS: every record read or written ends by the deadline."""

    def read(self, *args: Any, **kwargs: Any) -> Any:
        self.settimeout(_left())
        return super().read(*args, **kwargs)

    def send(self, *args: Any, **kwargs: Any) -> int:  # sendall sends by send
        self.settimeout(_left())
        return super().send(*args, **kwargs)


_TLS = ssl.create_default_context()
_TLS.sslsocket_class = _BoundedTLS


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float,
         production: bool) -> int:
    """POST `body` to `url`; the response's status code. Raises Refused, OSError or
    http.client.HTTPException (a timeout is an OSError); nothing waits more than
    `timeout` seconds in all, name resolution in production aside."""
    deadline = time.monotonic() + timeout
    parts = addresses.parse(_ascii(url), production=production)
    host, port = parts.hostname or "", addresses.default_port(parts)
    pinned = addresses.public_addresses(host, port)[0] if production else None
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=_TLS)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    connection._create_connection = _connector(pinned)  # type: ignore[attr-defined]
    _deadline.at = deadline
    try:
        connection.connect()
        connection.request("POST", target(parts), body=body, headers=headers)
        response = connection.getresponse()
        _deadline.at = min(deadline, time.monotonic() + DRAIN)
        with contextlib.suppress(Exception):  # only the status counts
            response.read(MAX_READ)
        return response.status
    finally:
        _deadline.at = None
        connection.close()


def target(parts: SplitResult) -> str:
    """The request target: the URL's path and query, percent-encoded where they
    are not ASCII (what is already percent-encoded stays as it is)."""
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    return path + (f"?{quote(parts.query, safe=_QUERY_SAFE)}" if parts.query else "")


def _ascii(url: str) -> str:
    """The URL with what is not ASCII in it percent-encoded (UTF-8): one registered
    before URLs had to be ASCII is still sent."""
    return url if url.isascii() else quote(url, safe=_ASCII)


def _connector(pinned: str | None) -> Any:
    def connect(address: tuple[str, int], timeout: float, source: Any = None) -> socket.socket:
        left = _left()
        raw = socket.create_connection((pinned or address[0], address[1]),
                                       timeout if left is None else min(timeout, left),
                                       source)
        sock = _Bounded(fileno=raw.detach())
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(_left())  # the TLS handshake, if any, ends by the deadline
        return sock

    return connect
