"""`smartscheduler serve`: the HTTP server's entry point, beside the command line.

gunicorn is configured in code; each worker process builds the app after the fork
(`Server.load`), through the composition root (`smartscheduler.bootstrap`).
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

from gunicorn.app.base import BaseApplication

from application.persistence import eventsourcing_env, redacted
from application.settings import Settings
from web.worker import AccessLogInThread, Worker

log = logging.getLogger(__name__)

THREADS = 16
"""Threads per worker process, for requests."""

WORKER_CONNECTIONS = 10_000
"""Connections a worker process holds open at most (idle, half-open, streams)."""


class Server(BaseApplication):  # type: ignore[misc]
    """gunicorn, configured in code; `load` runs after the fork, in each worker."""

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from smartscheduler.bootstrap import create_app

        return create_app(self.settings)


def prepare_storage(settings: Settings) -> None:
    """Create the schema and tables once, in the master, before the workers boot.

    Workers booting side by side on a fresh PostgreSQL schema would race on
    CREATE SCHEMA/TABLE IF NOT EXISTS (a unique violation in the catalog), and
    gunicorn stops the whole server when a worker fails to boot.
    """
    from smartscheduler.bootstrap import build_services

    build_services(settings, run_projections=False, run_relay=False).close()


def serve(settings: Settings, *, host: str | None = None, port: int | None = None,
          workers: int | None = None, threads: int | None = None) -> int:
    if settings.is_production and settings.problems():
        log.error("Refusing to start in production: %s", "; ".join(settings.problems()))
        return 2
    host = host or os.environ.get("HOST") or "127.0.0.1"
    port = port or int(os.environ.get("PORT") or 8000)
    embedded = eventsourcing_env(settings.database_url)["PERSISTENCE_MODULE"].endswith(
        "sqlite")
    if workers is None:
        # One process on SQLite: the read models, and realtime fan-out, live in it.
        workers = 1 if embedded else max(2, (os.cpu_count() or 1))
    if settings.uses_development_secret:
        log.warning("No SMARTSCHEDULER_JWT_SECRET: tokens are signed with the public "
                    "development secret (refused when SMARTSCHEDULER_ENV=production).")
    log.info("Get a token with: .venv/bin/smartscheduler token --role Dispatcher")
    log.info("Serving on http://%s:%s (API docs at /docs); database %s",
             host, port, redacted(settings.database_url))
    prepare_storage(settings)
    server = Server(settings, {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": Worker,
        # Threads carry requests only: a request's head is read by the worker's main
        # loop before a thread takes it, and an event stream gives its thread back
        # after its replay (web/worker.py). Few threads per process serve best.
        "threads": threads or THREADS,
        # Idle, half-open and streaming connections cost a descriptor each, no thread.
        "worker_connections": WORKER_CONNECTIONS,
        "timeout": 60,
        "graceful_timeout": 10,
        "keepalive": 5,
        "preload_app": False,
        "accesslog": "-",
        "logger_class": AccessLogInThread,
        # gunicorn 27's control socket sits at one path per user: servers side by
        # side would take it from each other. Nothing here uses it.
        "control_socket_disable": True,
        "loglevel": "info",
    })
    try:
        server.run()  # until SIGTERM/SIGINT: gunicorn exits through SystemExit
    finally:
        gc.freeze()  # exiting: skip the last full collection (0.3 s of the stop)
    return 0
