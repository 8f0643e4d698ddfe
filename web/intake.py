"""Connections in: the worker's main loop reads each request before a thread takes it.

`ReadAheadWorker` is gunicorn's gthread worker with its intake changed: a new (or
kept-alive) connection is watched by the main loop, which reads its bytes into a
buffer until `web.framing.request_ready` says the request is in, and only then
queues it for a thread. A connection that never finishes its head costs a buffer,
not a thread, and is closed after HEAD_TIMEOUT; a head past MAX_HEAD is refused
here (414/431, `web.refusals`). A thread's socket waits at most THREAD_IO_TIMEOUT.
The service's own worker (`web.worker.Worker`) builds on this class.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import resource
import selectors
import socket
import time
from typing import Any

from gunicorn.workers import gthread

from web.framing import HEAD_TIMEOUT, head_unfinished, request_ready, scanned_to
from web.refusals import problem_reply, refusal_detail

STOP_LINGER = 0.5
"""Seconds a stopping worker keeps a kept-alive connection open, for a request the
client may already be sending (gunicorn's default, 2 s, is the whole stop budget)."""

THREAD_IO_TIMEOUT = 30.0
"""Seconds a thread waits on its connection at most, reading (a chunked body, a
body past MAX_PREFETCH) or writing: a stalled client cannot hold it for longer."""


class ReadAheadWorker(gthread.ThreadWorker):  # type: ignore[misc]
    """gthread, whose threads take a connection only once its request has arrived."""

    def init_process(self) -> None:
        # Read by gthread at call time, where it has one; this process runs only this worker.
        linger = getattr(gthread, "STOP_KEEPALIVE_LINGER", None)
        if linger is not None:
            gthread.STOP_KEEPALIVE_LINGER = min(linger, STOP_LINGER)
        _raise_open_files_limit()
        super().init_process()

    def accept(self, listener: Any) -> None:
        try:
            client, address = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = gthread.TConn(self.cfg, client, address, listener.getsockname())
        conn.head = bytearray()
        self._await_request(conn)

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        """A kept-alive connection has bytes: its next request, once whole, gets a thread."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        conn.head = bytearray()
        self._await_request(conn)

    def _await_request(self, conn: Any) -> None:
        conn.scanned = 0  # of conn.head, for the head's end (web.framing.scanned_to)
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + HEAD_TIMEOUT
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ,
                             functools.partial(self._on_request_bytes, conn))

    def _on_request_bytes(self, conn: Any, client: Any) -> None:
        try:
            data = client.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            conn.head += data
            if not request_ready(conn.head, conn.scanned):
                conn.scanned = scanned_to(conn.head, conn.scanned)
                return
        self.poller.unregister(client)
        self.pending_conns.remove(conn)
        if not data:  # the client closed (or reset) before sending a request
            self.nr_conns -= 1
            conn.close()
            return
        if head_unfinished(conn.head):
            # A thread would read the rest with no deadline: refused here instead.
            self.nr_conns -= 1
            self._refuse_head(conn)
            return
        received, conn.head = bytes(conn.head), bytearray()
        conn.data_ready = True
        if conn.initialized:
            conn.parser.unreader.unread(received)
        else:
            conn.received = received
        self.enqueue_req(conn)

    def _refuse_head(self, conn: Any) -> None:
        """Answer a head longer than MAX_HEAD (414 for its request line, else 431)."""
        line_end = conn.head.find(b"\n")
        if line_end < 0 or line_end > self.cfg.limit_request_line:
            status, reason = 414, "URI Too Long"
        else:
            status, reason = 431, "Request Header Fields Too Large"
        with contextlib.suppress(OSError):
            conn.sock.send(problem_reply(status, reason,
                                         refusal_detail(self.cfg, status, None)))
        conn.close()

    def _cap_keepalive(self, deadline: float) -> None:
        """Stopping: kept-alive connections, and those whose request has not come in
        yet, are closed by `deadline` (gunicorn waits for every one it counts)."""
        super()._cap_keepalive(deadline)
        for conn in self.pending_conns:
            conn.timeout = min(conn.timeout, deadline)

    def handle(self, conn: Any) -> Any:
        """Run by a thread: the request is in, read ahead by the main loop."""
        if type(conn.sock) is socket.socket:
            conn.sock.__class__ = ThreadSocket
        received = getattr(conn, "received", b"")
        if received:
            conn.received = b""
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(received)
        return super().handle(conn)


class ThreadSocket(socket.socket):
    """A connection's socket while a thread serves it: "blocking" waits at most
    THREAD_IO_TIMEOUT (gunicorn sets its sockets blocking, with no deadline)."""

    __slots__ = ()

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(THREAD_IO_TIMEOUT)
        else:
            super().setblocking(False)


def _raise_open_files_limit() -> None:
    """Let the process hold as many connections as the system allows it: idle and
    half-open ones cost a descriptor each."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
