"""The access log written by a thread: while its reader does not keep up, lines
beyond MAX_QUEUED are dropped and counted, never held in memory; the count is
said once the log moves again, and drain() waits for the line being written."""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

from gunicorn.config import Config

from web.access_log import MAX_QUEUED, AccessLogInThread


class Gate(logging.Handler):
    """A log handler that holds every record until it is opened."""

    def __init__(self) -> None:
        super().__init__()
        self.open = threading.Event()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.open.wait()
        self.records.append(record)


def logger_behind(gate: Gate) -> AccessLogInThread:
    cfg = Config()
    cfg.set("accesslog", "-")
    log = AccessLogInThread(cfg)
    log.access_log.handlers = [gate]
    log.error_log.handlers = [gate]
    return log


def request() -> tuple[SimpleNamespace, SimpleNamespace, dict[str, str]]:
    response = SimpleNamespace(status="200 OK", headers=[], sent=0, response_length=0)
    req = SimpleNamespace(headers=[], method="GET", path="/healthz", query="",
                          version=(1, 1), uri="/healthz")
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/healthz", "PATH_INFO": "/healthz",
               "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "x"}
    return response, req, environ


def test_lines_past_the_limit_are_dropped_counted_and_said_when_the_log_moves():
    import datetime

    gate = Gate()
    log = logger_behind(gate)
    response, req, environ = request()
    took = datetime.timedelta(milliseconds=1)
    for _ in range(MAX_QUEUED + 50):
        log.access(response, req, environ, took)

    assert log._lines.qsize() <= MAX_QUEUED  # not every line held while stalled
    gate.open.set()
    log.drain(timeout=30)

    said = [r.getMessage() for r in gate.records if "dropped" in r.getMessage()]
    assert len(said) == 1 and int(said[0].split()[0]) >= 49
    assert log._lines.unfinished_tasks == 0
