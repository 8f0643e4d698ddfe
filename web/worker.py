"""The gunicorn worker the server runs: gthread, with this service's changes.

`Worker` is the server's `worker_class`. How connections come in (the main loop
reads each request before a thread takes it) is its base, `web.intake`, with the
reading rules in `web.framing`; this module is the rest of the worker's life: the
boot that waits for the store, the hand-over of event streams to the process's
pump (`web.pump`), the stop that ends open streams at once and closes the
services in order, and gunicorn's own error answers made problem+json
(`web.refusals`). Access lines are written by a thread (`web.access_log`).
"""

from __future__ import annotations

import functools
import gc
import os
import threading
import time
from typing import Any

from gunicorn import util
from gunicorn.http.errors import LimitRequestHeaders

from projections.following.backoff import Backoff
from projections.realtime.hub import Hub
from web.access_log import AccessLogInThread
from web.events.resources import encode_event
from web.intake import ReadAheadWorker
from web.pump import Pump
from web.refusals import ErrorPageCapture, problem_reply, refusal_detail
from web.services import EXTENSION, Services

STREAM_SWEEP = 0.05
"""Seconds between sweeps that end event streams opened while the worker stops."""

BOOT_RETRY, BOOT_RETRY_MAX = 0.5, 5.0
"""Seconds between a booting worker's tries to reach the store (doubling, `Backoff`)."""


class Worker(ReadAheadWorker):
    """gunicorn's gthread worker, with these changes for this service.

    - A thread takes a connection only once its request has arrived: the main
      loop reads request heads (and bodies, by length or chunked, up to MAX_PREFETCH),
      so connections that never finish their headers cost a buffer each, not a
      thread, and cannot starve requests. Each has HEAD_TIMEOUT to send it
      (`web.intake`).
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
        self.pump = Pump(encode_event)
        self.flask_app: Any = None
        self._current = threading.local()
        super().init_process()

    def handle(self, conn: Any) -> Any:
        """Run by a thread; the connection is known to the stream hand-over meanwhile."""
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

    # Boot and stop -----------------------------------------------------------------

    def load_wsgi(self) -> None:
        """Build the app; while the store is down, wait for it rather than fail the
        boot: gunicorn stops the whole server when a worker fails to boot, and the
        other workers answer 503 meanwhile."""
        backoff = Backoff(BOOT_RETRY_MAX, first=BOOT_RETRY)
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
                time.sleep(backoff.failed())

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
        answer = ErrorPageCapture()
        super().handle_error(req, answer, addr, exc)
        status, reason = answer.status_line() or (500, "Internal Server Error")
        if isinstance(exc, LimitRequestHeaders) and status == 400:
            status, reason = 431, "Request Header Fields Too Large"
        try:
            util.write_nonblock(client, problem_reply(
                status, reason, refusal_detail(self.cfg, status, exc)))
        except Exception:  # the client is gone
            self.log.debug("Failed to send error message.")

    def _hub(self) -> Hub | None:
        services = self._services()
        return services.hub if services is not None else None

    def _services(self) -> Services | None:
        extensions = getattr(getattr(self, "flask_app", None), "extensions", None) or {}
        found: Services | None = extensions.get(EXTENSION)
        return found

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


def _store_down() -> tuple[type[BaseException], ...]:
    """What building the app raises while the store is unreachable."""
    import psycopg
    from eventsourcing.persistence import PersistenceError

    return (PersistenceError, psycopg.OperationalError, OSError)
