"""The server's logs and the files its metrics are added up from.

Logs: SMARTSCHEDULER_LOG_FORMAT=json writes one JSON object per line
(python-json-logger): `time` (ISO 8601, UTC), `level`, `logger`, `message`,
`pid`, and for a request's access line `requestId`, `method`, `route`,
`status`, `duration` (seconds), `actorSub`, `jobId` (`web.access_log`). Uncaught
exceptions and warnings are logged too, so that nothing else reaches the stream.
Otherwise the logs are text, as before.

Metrics: `smartscheduler serve` gives each start a fresh directory for
prometheus-client's multiprocess files (PROMETHEUS_MULTIPROC_DIR, set before
the library is imported and before any process is forked), tells the library
when a worker exits (its live gauges end with it) and removes the directory when
the server stops.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from web.access_log import AccessLogInThread

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"

log = logging.getLogger("smartscheduler")


def json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(["levelname", "name", "message", "process"],
                         rename_fields={"levelname": "level", "name": "logger",
                                        "process": "pid"},
                         timestamp="time")


def configure_logging(log_format: str) -> None:
    """This process's root logger (and its forks'): text, or JSON lines."""
    if log_format != "json":
        logging.basicConfig(level=logging.INFO, format=TEXT_FORMAT)
        return
    handler = logging.StreamHandler()
    handler.setFormatter(json_formatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


class JsonAccessLog(AccessLogInThread):
    """gunicorn's logs (its own and the access lines) as JSON lines."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                handler.setFormatter(json_formatter())


def logger_class(log_format: str) -> type[AccessLogInThread]:
    return JsonAccessLog if log_format == "json" else AccessLogInThread


@contextmanager
def metrics_files() -> Iterator[str]:
    """A fresh directory for this server's metrics files, while it runs."""
    if "prometheus_client" in sys.modules:
        log.warning("prometheus_client was imported before %s was set: each worker "
                    "will serve its own metrics only", MULTIPROC_DIR)
    arbiter = os.getpid()
    _sweep_left_behind()
    directory = tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{arbiter}-")
    os.environ[MULTIPROC_DIR] = directory
    try:
        yield directory
    finally:
        if os.getpid() == arbiter:  # a worker leaves through here too (SystemExit)
            shutil.rmtree(directory, ignore_errors=True)


METRICS_PREFIX = "smartscheduler-metrics-"


def _sweep_left_behind() -> None:
    """Remove the metrics directories of servers that died without removing theirs
    (kill -9 of the arbiter): each is named after its server's process id."""
    for found in Path(tempfile.gettempdir()).glob(f"{METRICS_PREFIX}*-*"):
        pid = found.name[len(METRICS_PREFIX):].partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(found, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def worker_exited(arbiter: Any, worker: Any) -> None:
    """gunicorn's child_exit: the worker's live gauges (open streams) end with it."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _log_uncaught(kind: type[BaseException], error: BaseException, trace: Any) -> None:
    log.critical("Uncaught exception", exc_info=(kind, error, trace))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    log.error("Uncaught exception in thread %s", name,
              exc_info=(args.exc_type, args.exc_value, args.exc_traceback))  # type: ignore[arg-type]
