"""The access log, written by a thread of each worker instead of by each request.

gunicorn's logger writes an access line on the request's thread, under the log's
lock and at the terminal's pace. `AccessLogInThread` (the server's `logger_class`)
queues the line instead and a daemon thread of the worker process writes it; the
worker drains the queue as it exits (`web.worker.Worker.run`).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import Any

from gunicorn import glogging

MAX_QUEUED = 10_000
"""Access lines waiting to be written, at most: while the log's reader does not
keep up (a stalled pipe), more are dropped, counted and said, not held in memory."""

ACCESS_FIELDS = "smartscheduler.access"
"""The WSGI environ's key under which the app leaves a request's own fields for its
access line: request id, route, actor sub, job id (`web.telemetry`)."""


class AccessLogInThread(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger, whose access lines a thread of each worker writes: a
    request hands its line over and goes, never waiting on the log's lock or on
    the terminal."""

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self._lines: queue.Queue[Any] = queue.Queue(MAX_QUEUED)
        self._dropped = 0
        self._writer_pid = 0
        self._writer_lock = threading.Lock()

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        try:
            self._lines.put_nowait((self.atoms_wrapper_class(
                self.atoms(resp, req, environ, request_time)),
                request_fields(resp, environ, request_time)))
        except queue.Full:
            self._dropped += 1  # said by the writer once it catches up
        if self._writer_pid != os.getpid():
            self._start_writer()

    def drain(self, timeout: float = 1.0) -> None:
        """Write what is queued (on the way out), the line being written included."""
        deadline = time.monotonic() + timeout
        while self._lines.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def _start_writer(self) -> None:
        with self._writer_lock:
            if self._writer_pid == os.getpid():
                return
            self._writer_pid = os.getpid()  # a fork has no thread of its parent's
            threading.Thread(target=self._write, name="access-log", daemon=True).start()

    def _write(self) -> None:
        while True:
            atoms, fields = self._lines.get()
            try:
                if self._dropped:
                    dropped, self._dropped = self._dropped, 0
                    self.error("%s access log lines were dropped: the log was not "
                               "read fast enough", dropped)
                self.access_log.info(self.cfg.access_log_format, atoms, extra=fields)
            except Exception:  # a log line is never worth the worker
                self.error("Failed to write an access log line")
            finally:
                self._lines.task_done()


def request_fields(resp: Any, environ: Any, request_time: Any) -> dict[str, Any]:
    """The access line's fields beside its text (what a JSON log shows of a request):
    request id, method, route, status, duration in seconds, actor sub, job id."""
    found = (environ or {}).get(ACCESS_FIELDS) or {}
    return {"requestId": found.get("requestId"),
            "method": (environ or {}).get("REQUEST_METHOD"),
            "route": found.get("route"), "status": _status(resp),
            "duration": round(request_time.total_seconds(), 6),
            "actorSub": found.get("actorSub"), "jobId": found.get("jobId")}


def _status(resp: Any) -> int | None:
    """The response's status code (gunicorn's refusals set only its status line)."""
    code = getattr(resp, "status_code", None)
    if code is None:
        line = str(getattr(resp, "status", None) or "").split()
        code = int(line[0]) if line and line[0].isdigit() else None
    return code
