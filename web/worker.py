"""The gunicorn worker the server runs: gthread, with this service's changes."""

from __future__ import annotations

import contextlib
import errno
import functools
import gc
import json
import logging
import os
import queue
import re
import resource
import selectors
import socket
import threading
import time
import uuid
from typing import Any

from gunicorn import glogging, util
from gunicorn.http.errors import LimitRequestHeaders
from gunicorn.workers import gthread

from projections.hub import Hub
from web.events.resources import encode_event
from web.problems import PROBLEM_JSON
from web.pump import Pump

log = logging.getLogger(__name__)

STOP_LINGER = 0.5
"""Seconds a stopping worker keeps a kept-alive connection open, for a request the
client may already be sending (gunicorn's default, 2 s, is the whole stop budget)."""

STREAM_SWEEP = 0.05
"""Seconds between sweeps that end event streams opened while the worker stops."""

BOOT_RETRY, BOOT_RETRY_MAX = 0.5, 5.0
"""Seconds between a booting worker's tries to reach the store (doubling)."""

GUNICORN_PROBLEM_CODES = {
    400: "bad_request", 403: "forbidden", 414: "uri_too_long", 417: "expectation_failed",
    431: "request_header_fields_too_large", 500: "internal_error", 501: "not_implemented",
}
"""gunicorn's own error statuses (requests it cannot parse) -> problem codes."""


HEAD_TIMEOUT = 10.0
"""Seconds a connection has to send its request head (and a body of known length)
before it is closed; until then it costs a buffer in the worker's main loop, not
a thread."""

MAX_PREFETCH = 1 << 20
"""Bytes of a request body read in the main loop before a thread takes the request
(the API's largest accepted body); a longer body is read by the thread."""

MAX_HEAD = 64 * 1024
"""Bytes of request head read in the main loop before a thread takes the request
anyway (gunicorn's parser then answers 431 or 414)."""

CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*([0-9]{1,12})[ \t]*\r\n", re.I)
TRANSFER_ENCODING = re.compile(rb"\r\ntransfer-encoding[ \t]*:([^\r\n]*)", re.I)
EXPECT = re.compile(rb"\r\nexpect[ \t]*:", re.I)
CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


BARE_LF = re.compile(rb"(?<!\r)\n")

THREAD_IO_TIMEOUT = 30.0
"""Seconds a thread waits on its connection at most, reading (a chunked body, a
body past MAX_PREFETCH) or writing: a stalled client cannot hold it for longer."""


def request_ready(data: bytes | bytearray) -> bool:
    """Whether `data` holds a whole request head, and its body when its length is
    known and small; or enough that a thread should take it as it is."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        # gunicorn's parser refuses a line ended by a bare LF at once (400).
        return len(data) > MAX_HEAD or BARE_LF.search(data) is not None
    head = bytes(data[:end + 2])
    if EXPECT.search(head):  # the client waits for 100 Continue before its body
        return True
    coding = TRANSFER_ENCODING.search(head)
    if coding is not None:
        if not coding.group(1).strip().lower().endswith(b"chunked"):
            return True  # the parser refuses it
        return chunked_body_in(data, end + 4)
    length = CONTENT_LENGTH.search(head)
    if length is None:
        return True
    size = int(length.group(1))
    return size > MAX_PREFETCH or len(data) >= end + 4 + size


MAX_PREFETCH_CHUNKS = 256
"""Chunks of a body the main loop looks through, at each read, before a thread takes
the request (each read scans from the body's start: many tiny chunks would make
that the loop's whole work)."""


def chunked_body_in(data: bytes | bytearray, start: int) -> bool:
    """Whether the chunked body that starts at `start` has ended; or it is past
    MAX_PREFETCH or MAX_PREFETCH_CHUNKS, or malformed (gunicorn's parser answers
    400): a thread takes it."""
    limit, position = start + MAX_PREFETCH, start
    for _ in range(MAX_PREFETCH_CHUNKS):
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            return len(data) > limit
        size_field = bytes(data[position:line_end]).split(b";", 1)[0].strip()
        if not CHUNK_SIZE.fullmatch(size_field):
            return True
        size = int(size_field, 16)
        if size == 0:  # the last chunk: then trailer fields, if any, and an empty line
            rest = bytes(data[line_end + 2:])
            return rest.startswith(b"\r\n") or b"\r\n\r\n" in rest
        position = line_end + 2 + size + 2
        if position > limit:
            return True
        if position > len(data):
            return False
    return True  # a body of many small chunks: the thread reads the rest


class Worker(gthread.ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker, with these changes for this service.

    - A thread takes a connection only once its request has arrived: the main
      loop reads request heads (and bodies, by length or chunked, up to MAX_PREFETCH),
      so connections that never finish their headers cost a buffer each, not a
      thread, and cannot starve requests. Each has HEAD_TIMEOUT to send it.
    - An event stream's thread hands its socket to the process's stream pump
      after the replay (`web.pump`): open streams cost no thread.
    - SIGTERM ends the open event streams at once (their clients reconnect, with
      Last-Event-ID, to a server that stays up), instead of waiting out the
      graceful timeout; then the worker's services stop in order, so the
      read-model runner and the relay finish their batch and record where they are.
    - What gunicorn answers itself, to a request it cannot parse (400, 414, 431),
      is problem+json like every other error of the API, not an HTML page.
    """

    def init_process(self) -> None:
        # Read by gthread at call time, where it has one; this process runs only this worker.
        linger = getattr(gthread, "STOP_KEEPALIVE_LINGER", None)
        if linger is not None:
            gthread.STOP_KEEPALIVE_LINGER = min(linger, STOP_LINGER)
        _raise_open_files_limit()
        self.pump = Pump(encode_event)
        self.flask_app: Any = None
        self._current = threading.local()
        super().init_process()

    # Connections: heads are read by the main loop -----------------------------

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
            if not request_ready(conn.head):
                return
        self.poller.unregister(client)
        self.pending_conns.remove(conn)
        if not data:  # the client closed (or reset) before sending a request
            self.nr_conns -= 1
            conn.close()
            return
        if len(conn.head) > MAX_HEAD and b"\r\n\r\n" not in conn.head:
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
            conn.sock.send(problem_reply(status, reason, self._detail(status, None)))
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
            conn.sock.__class__ = _ThreadSocket
        received = getattr(conn, "received", b"")
        if received:
            conn.received = b""
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(received)
        self._current.conn = conn
        try:
            return super().handle(conn)
        finally:
            self._current.conn = None

    def finish_request(self, conn: Any, fs: Any) -> None:
        if getattr(conn, "handed_over", False):  # the stream pump owns the socket now
            self.nr_conns -= 1
            return
        super().finish_request(conn, fs)

    # Event streams: handed to the pump after their replay ----------------------

    def _with_handoff(self, app: Any) -> Any:
        def application(environ: dict[str, Any], start_response: Any) -> Any:
            conn = getattr(self._current, "conn", None)
            response = getattr(start_response, "__self__", None)
            if conn is not None and response is not None:
                environ["smartscheduler.handoff"] = functools.partial(
                    self._handoff, conn, response)
            return app(environ, start_response)

        return application

    def _handoff(self, conn: Any, response: Any, subscriber: Any, *, last: int,
                 heartbeat: float, on_close: Any) -> bool:
        """Give a stream, whose headers and replay are sent, to the pump."""
        if not self.alive or not response.headers_sent:
            return False
        chunked = response.chunked
        response.chunked = False  # gunicorn's close() must not end the stream
        response.force_close()  # nor keep the connection for another request
        conn.handed_over = True
        self.pump.adopt(conn.sock, subscriber, last=last, chunked=chunked,
                        heartbeat=heartbeat, on_close=on_close)
        return True

    def load_wsgi(self) -> None:
        """Build the app; while the store is down, wait for it rather than fail the
        boot: gunicorn stops the whole server when a worker fails to boot, and the
        other workers answer 503 meanwhile."""
        delay = BOOT_RETRY
        while True:
            try:
                super().load_wsgi()
                self.flask_app = getattr(self, "wsgi")  # noqa: B009  # gunicorn's, untyped
                setattr(self, "wsgi", self._with_handoff(self.flask_app))  # noqa: B010
                return
            except _store_down() as error:
                if not self.alive:
                    raise SystemExit(0) from None
                self.log.warning("The store is unavailable (%s); this worker boots once "
                                 "it answers.", error)
                self.notify()
                time.sleep(delay)
                delay = min(delay * 2, BOOT_RETRY_MAX)

    def run(self) -> None:
        try:
            super().run()
        finally:
            self._close_services()
            if isinstance(self.log, AccessLogInThread):
                self.log.drain()
            gc.freeze()  # exiting: skip the last full collection (0.3 s of the stop)

    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM: stop accepting, as gunicorn does, and end the event streams now."""
        stopping = self.alive
        super().handle_exit(sig, frame)
        hub = self._hub()
        if stopping and hub is not None:
            # Not in the signal handler itself: it interrupts the main thread anywhere.
            threading.Thread(target=_end_streams, args=(hub,), name="end-streams",
                             daemon=True).start()

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """gunicorn's choice of status, its log line and access log; our body."""
        answer = _Capture()
        super().handle_error(req, answer, addr, exc)
        status, reason = answer.status_line() or (500, "Internal Server Error")
        if isinstance(exc, LimitRequestHeaders) and status == 400:
            status, reason = 431, "Request Header Fields Too Large"
        try:
            util.write_nonblock(client, problem_reply(status, reason,
                                                      self._detail(status, exc)))
        except Exception:  # the client is gone
            self.log.debug("Failed to send error message.")

    def _detail(self, status: int, exc: BaseException | None) -> str:
        if status == 414:
            return (f"The request line is longer than the {self.cfg.limit_request_line} "
                    "bytes this server accepts.")
        if status == 431:
            return ("The request's header fields are more, or larger, than this server "
                    f"accepts (at most {self.cfg.limit_request_fields} fields of "
                    f"{self.cfg.limit_request_field_size} bytes each).")
        if status >= 500:
            return "The server could not handle this request."
        text = str(exc)
        return text if len(text) <= 200 else text[:200] + "..."

    def _hub(self) -> Hub | None:
        services = self._services()
        return services.hub if services is not None else None

    def _services(self) -> Any:
        extensions = getattr(getattr(self, "flask_app", None), "extensions", None) or {}
        return extensions.get("smartscheduler")

    def _close_services(self) -> None:
        services = self._services()
        if services is None:
            return
        appends = services.app.appends
        if appends.appends:
            self.log.info("Worker %s: %s events in %s appends (%.2f per append)",
                          os.getpid(), appends.events, appends.appends,
                          appends.events_per_append)
        try:
            services.close()
        except Exception:  # exiting anyway; each follower resumes from its record
            self.log.exception("Stopping the services failed")


def _end_streams(hub: Hub) -> None:
    """End every open event stream now, and any opened from now on (a request that
    was already on its way); runs until the worker process exits."""
    while True:
        hub.end_streams()
        time.sleep(STREAM_SWEEP)


class _ThreadSocket(socket.socket):
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


def _store_down() -> tuple[type[BaseException], ...]:
    """What building the app raises while the store is unreachable."""
    import psycopg
    from eventsourcing.persistence import PersistenceError

    return (PersistenceError, psycopg.OperationalError, OSError)


class AccessLogInThread(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger, whose access lines a thread of each worker writes: a
    request hands its line over and goes, never waiting on the log's lock or on
    the terminal."""

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self._lines: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer_pid = 0
        self._writer_lock = threading.Lock()

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        self._lines.put(self.atoms_wrapper_class(
            self.atoms(resp, req, environ, request_time)))
        if self._writer_pid != os.getpid():
            self._start_writer()

    def drain(self, timeout: float = 1.0) -> None:
        """Write what is queued (on the way out)."""
        deadline = time.monotonic() + timeout
        while not self._lines.empty() and time.monotonic() < deadline:
            time.sleep(0.01)

    def _start_writer(self) -> None:
        with self._writer_lock:
            if self._writer_pid == os.getpid():
                return
            self._writer_pid = os.getpid()  # a fork has no thread of its parent's
            threading.Thread(target=self._write, name="access-log", daemon=True).start()

    def _write(self) -> None:
        while True:
            atoms = self._lines.get()
            try:
                self.access_log.info(self.cfg.access_log_format, atoms)
            except Exception:  # a log line is never worth the worker
                self.error("Failed to write an access log line")


class _Capture:
    """Stands in for the client socket while gunicorn writes its HTML error page."""

    def __init__(self) -> None:
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0

    def setblocking(self, _flag: bool) -> None:
        pass

    def sendall(self, data: bytes) -> None:
        self.data += data

    send = sendall

    def status_line(self) -> tuple[int, str] | None:
        """(status, reason) from "HTTP/1.1 414 URI Too Long"."""
        first = self.data.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        if len(first) < 2 or not first[1].isdigit():
            return None
        return int(first[1]), first[2] if len(first) == 3 else ""


def problem_reply(status: int, reason: str, detail: str) -> bytes:
    """A complete HTTP/1.1 response: the problem+json body, and the connection closes."""
    code = GUNICORN_PROBLEM_CODES.get(status) or (
        "_".join(reason.lower().split()) or f"http_{status}")
    request_id = str(uuid.uuid4())
    body = json.dumps({
        "type": f"urn:smartscheduler:problem:{code}",
        "title": reason,
        "status": status,
        "detail": detail,
        "code": code,
        "requestId": request_id,
    }).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\n"
            f"Date: {util.http_date()}\r\n"
            "Connection: close\r\n"
            f"Content-Type: {PROBLEM_JSON}\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"X-Request-Id: {request_id}\r\n"
            "Cache-Control: no-store\r\n"
            "\r\n")
    return head.encode("latin-1") + body
